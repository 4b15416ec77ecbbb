"""Checkpoints written by an older evostrat: parameters added since take their defaults.

A file written before a parameter existed (``integer``, ``warm_start``, ...) holds no
entry for it; loading gives it its default (the behaviour the old version had), and the
resumed run continues exactly as the uninterrupted one. A parameter this evostrat does not
know (a newer or a forged file) is refused with a ``CheckpointError`` naming it and the
version that wrote the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evostrat import ES
from evostrat.checkpoint import load_checkpoint
from evostrat.checkpoint.format import read_checkpoint, write_checkpoint
from evostrat.errors import CheckpointError
from evostrat.problems import rosenbrock
from evostrat.run import noise
from evostrat.run.uncertainty import aggregate_values

NEWER_PARAMETERS = ("integer", "noise_handling", "reevaluations", "warm_start")


def _rewrite(path: Path, edit: Any) -> None:
    meta, arrays = read_checkpoint(path)
    for key in ("format", "version", "arrays", "sha256"):  # write_checkpoint sets these again
        meta.pop(key, None)
    edit(meta["params"])
    write_checkpoint(path, meta, arrays)


class Crash(Exception):
    pass


def _crash_at(generation: int) -> Any:
    def callback(es: ES) -> None:
        if es.n_generations_ == generation:
            raise Crash(f"simulated crash at generation {generation}")

    return callback


def test_a_checkpoint_without_newer_parameters_loads_with_their_defaults(tmp_path: Path) -> None:
    path = tmp_path / "old.ckpt"
    full = ES("cma_es", max_generations=30, random_state=4).fit(rosenbrock, np.zeros(4))
    with pytest.raises(Crash):
        ES("cma_es", max_generations=30, random_state=4).fit(rosenbrock, np.zeros(4), checkpoint=path,
                                                             callbacks=[_crash_at(12)])
    present = [name for name in NEWER_PARAMETERS if name in read_checkpoint(path)[0]["params"]]
    assert present, "the test needs parameters to drop"
    _rewrite(path, lambda params: [params.pop(name) for name in present])

    es = load_checkpoint(path)
    defaults = ES().get_params(deep=False)
    assert all(es.get_params(deep=False)[name] == defaults[name] for name in present)
    resumed = ES.resume(path, rosenbrock)
    assert (resumed.n_generations_, resumed.n_evals_) == (full.n_generations_, full.n_evals_) == (30, 30 * 8)
    assert resumed.fun_ == full.fun_
    np.testing.assert_array_equal(resumed.x_, full.x_)


def test_an_unknown_parameter_is_refused_naming_it_and_the_version(tmp_path: Path) -> None:
    path = tmp_path / "newer.ckpt"
    ES("snes", max_generations=3, random_state=0).fit(rosenbrock, np.zeros(3), checkpoint=path)
    _rewrite(path, lambda params: params.update(frobnicate={"value": 1}))
    with pytest.raises(CheckpointError, match=r"'frobnicate'.*evostrat '"):
        load_checkpoint(path)


class CountedNoise:
    """A sphere with skewed noise that is a function of the candidate and of how often it was
    evaluated before (its repeated evaluations differ, so do their mean and median); a resumed
    run continues with the same object."""

    def __init__(self) -> None:
        self.seen: dict[bytes, int] = {}

    def __call__(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        times = []
        for x in X:
            times.append(self.seen.get(x.tobytes(), 0))
            self.seen[x.tobytes()] = times[-1] + 1
        return (X ** 2).sum(axis=1) + 0.5 * np.sin(1e3 * X.sum(axis=1) + np.array(times)) ** 3


def _mean_of(objective: Any, times: int) -> Any:
    return lambda X: np.mean(np.stack([objective(X) for _ in range(times)]), axis=0)


def _strip_feature(path: Path, name: str) -> None:
    """Make ``path`` what a writer before the feature ``name`` was stored did: no ``name`` among the
    features, ``null`` features when no other part was stored."""
    meta, arrays = read_checkpoint(path)
    for key in ("format", "version", "arrays", "sha256"):
        meta.pop(key, None)
    del meta["features"][name]
    if all(part is None for part in meta["features"].values()):
        meta["features"] = None
    write_checkpoint(path, meta, arrays)


def _strip_aggregate(path: Path) -> None:
    """Make ``path`` what the writer before the median did (no ``"aggregate"``)."""
    _strip_feature(path, "aggregate")


# reference: the same run with the repeated evaluations averaged (reevaluations=1 of their mean,
# or noise_handling's aggregate="mean")
MEAN_CASES = {
    "reevaluations": (dict(reevaluations=3), lambda obj: (dict(), _mean_of(obj, 3), 3)),
    "noise handling": (dict(reevaluations=3, noise_handling=True),
                       lambda obj: (dict(reevaluations=3, noise_handling={"aggregate": "mean"}), obj, 1)),
}


@pytest.mark.parametrize("case", sorted(MEAN_CASES))
def test_a_checkpoint_from_before_the_median_resumes_with_the_mean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   case: str) -> None:
    options, reference = MEAN_CASES[case]
    common = dict(max_generations=30, random_state=3)
    objective = CountedNoise()
    ref_options, ref_objective, scale = reference(CountedNoise())
    full = ES("cma_es", **common, **ref_options).fit(ref_objective, np.ones(3))
    path = tmp_path / "old.ckpt"
    with monkeypatch.context() as old, pytest.raises(Crash):  # the evostrat that averaged
        old.setattr(noise, "aggregate_values", lambda values, how: aggregate_values(values, "mean"))
        ES("cma_es", **common, **options).fit(objective, np.ones(3), checkpoint=path, callbacks=[_crash_at(12)])
    assert read_checkpoint(path)[0]["features"]["aggregate"] == "median"  # new files say it
    _strip_aggregate(path)

    resumed = ES.resume(path, objective, checkpoint=path)  # was: the median from generation 12 on
    assert resumed.run_.noise.aggregate == "mean"
    assert read_checkpoint(path)[0]["features"]["aggregate"] == "mean"  # its own checkpoints keep the mean
    rows = lambda es, k: [{**{c: v for c, v in row.items() if c != "time"}, "n_evals": row["n_evals"] * k}  # noqa: E731
                          for row in es.history_]
    assert rows(resumed, 1) == rows(full, scale)
    assert (resumed.fun_, resumed.n_generations_, resumed.n_evals_) == (full.fun_, 30, full.n_evals_ * scale)
    np.testing.assert_array_equal(resumed.x_, full.x_)
    again = ES.resume(path, CountedNoise(), max_generations=31)  # from the checkpoint the resumed run wrote
    assert again.run_.noise.aggregate == "mean"


def test_a_new_checkpoint_resumes_with_the_median(tmp_path: Path) -> None:
    full = ES("cma_es", reevaluations=3, max_generations=20, random_state=3).fit(CountedNoise(), np.ones(3))
    path, objective = tmp_path / "new.ckpt", CountedNoise()
    with pytest.raises(Crash):
        ES("cma_es", reevaluations=3, max_generations=20, random_state=3).fit(
            objective, np.ones(3), checkpoint=path, callbacks=[_crash_at(8)])
    resumed = ES.resume(path, objective)
    assert resumed.run_.noise.aggregate == "median"
    assert resumed.history_[-1] | {"time": 0} == full.history_[-1] | {"time": 0}
    np.testing.assert_array_equal(resumed.x_, full.x_)


def _bounded(path: Path | None = None, crash: int | None = None, **extra: Any) -> ES:
    es = ES("cma_es", bounds=(-1.0, 2.0), max_generations=40, random_state=2, **extra)
    if path is None:
        return es.fit(rosenbrock, np.full(4, 0.5))
    with pytest.raises(Crash):
        es.fit(rosenbrock, np.full(4, 0.5), checkpoint=path, callbacks=[_crash_at(crash)])
    return es


def _same_run(resumed: ES, full: ES) -> None:
    assert (resumed.n_generations_, resumed.n_evals_, resumed.fun_) == (full.n_generations_, full.n_evals_, full.fun_)
    np.testing.assert_array_equal(resumed.x_, full.x_)
    assert [row | {"time": 0} for row in resumed.history_] == [row | {"time": 0} for row in full.history_]


@pytest.mark.parametrize("extra", [{}, {"integer": [0]}, {"fixed_variables": {1: 0.5}}])
def test_a_bounded_checkpoint_from_before_pycma4_margins_resumes_with_pycma3s(tmp_path: Path,
                                                                              extra: dict[str, Any]) -> None:
    from evostrat.run.bounds import MARGINS, margins_of

    path = tmp_path / "old.ckpt"
    token = MARGINS.set("pycma3")  # the evostrat before: (1 + |b|) / 20
    try:
        full = _bounded(**extra)
        _bounded(path, crash=15, **extra)
    finally:
        MARGINS.reset(token)
    assert read_checkpoint(path)[0]["features"]["bounds_margins"] == "pycma3"
    _strip_feature(path, "bounds_margins")  # what the writer before pycma 4's margins wrote

    resumed = ES.resume(path, rosenbrock, checkpoint=path)
    assert margins_of(resumed.run_.bounds) == "pycma3" and margins_of(_bounded(**extra).run_.bounds) == "pycma4"
    _same_run(resumed, full)
    assert read_checkpoint(path)[0]["features"]["bounds_margins"] == "pycma3"  # its own checkpoints keep the rule
    new = tmp_path / "new.ckpt"
    _bounded(new, crash=15, **extra)
    _same_run(ES.resume(new, rosenbrock), _bounded(**extra))
    assert not np.array_equal(full.x_, _bounded(**extra).x_)  # the two rules give two runs


@pytest.mark.parametrize("value, match", [("pycma5", r"'bounds_margins' must be one of \('pycma4', 'pycma3'\)"),
                                          (None, r"bounds_margins None does not match its run's bounds \(a box\)")])
def test_a_forged_margin_rule_is_refused(tmp_path: Path, value: Any, match: str) -> None:
    path = tmp_path / "forged.ckpt"
    _bounded(path, crash=5)
    meta, arrays = read_checkpoint(path)
    for key in ("format", "version", "arrays", "sha256"):
        meta.pop(key, None)
    meta["features"]["bounds_margins"] = value
    write_checkpoint(path, meta, arrays)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)
