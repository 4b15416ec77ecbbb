"""Exact resume of runs with constraints, integer variables and noise handling (:mod:`evostrat.checkpoint.features`).

Each run keeps a copy of its checkpoint from the middle and is resumed from it: the result,
``history_`` (but ``"time"``) and every counter equal the uninterrupted run's, on numpy. The
augmented Lagrangian's coefficients, the margin scaling ``A`` and the uncertainty handling's
state are checked to matter (they differ from a fresh start at the checkpoint), the noise
measure is in the history, old checkpoints without these states still load, and forged
states are refused naming the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from evostrat import ES
from evostrat.checkpoint import checkpoint_info, load_checkpoint, save_checkpoint
from evostrat.checkpoint.format import read_checkpoint, write_checkpoint
from evostrat.checkpoint.state import capture
from evostrat.constraints import ConstraintHandler, Penalty
from evostrat.errors import CheckpointError, InvalidArgumentError


def shifted_sphere(X: np.ndarray) -> np.ndarray:
    return ((X - 0.3) ** 2).sum(axis=1)


def linear(x: np.ndarray) -> np.ndarray:  # x0 + x1 >= 1 and x2 <= -0.5: both active at the optimum
    return np.array([1.0 - x[0] - x[1], x[2] + 0.5])


def with_g(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # constraints="objective": (F, G)
    return shifted_sphere(X), np.stack([linear(x) for x in X])


def noisy(X: np.ndarray) -> np.ndarray:
    """Additive noise that is a function of x (a resumed run sees the same values): the
    reevaluated candidates, perturbed by ``epsilon sigma z``, get unrelated noise."""
    return (X ** 2).sum(axis=1) + 0.1 * np.sin(1e9 * X.sum(axis=1))


def _rows(history: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{k: repr(v) for k, v in row.items() if k != "time"} for row in history]  # NaN == NaN


def _assert_same_run(resumed: ES, full: ES) -> None:
    assert _rows(resumed.history_) == _rows(full.history_)
    assert np.array_equal(resumed.x_, full.x_) and resumed.fun_ == full.fun_
    assert (resumed.n_evals_, resumed.n_generations_, resumed.stop_reason_) == (
        full.n_evals_, full.n_generations_, full.stop_reason_)
    assert resumed.restarts_ == full.restarts_


def _resume_from_the_middle(tmp_path: Path, make: Callable[[], ES], objective: Any, x0: Any, at: int,
                            **fit: Any) -> tuple[ES, ES, Path]:
    """The uninterrupted run, keeping a copy of its checkpoint at generation ``at``, and the run
    resumed from that copy (with the constraint function passed again when there is one)."""
    path, kept = tmp_path / "run.ckpt", tmp_path / "kept.ckpt"

    def keep(es: ES) -> None:
        if es.n_generations_ == at + 1:  # callbacks run before the checkpoint of their generation
            kept.write_bytes(path.read_bytes())

    full = make().fit(objective, x0, checkpoint=path, checkpoint_every=at, callbacks=[keep], **fit)
    assert checkpoint_info(kept)["n_generations"] == at
    again = {"constraints": fit["constraints"]} if callable(fit.get("constraints")) else {}
    return ES.resume(kept, objective, checkpoint=False, **again), full, kept


CASES: dict[str, tuple[Callable[[], ES], Any, Any, dict[str, Any]]] = {
    "cma_es augmented Lagrangian": (lambda: ES("cma_es", max_generations=45, random_state=1), shifted_sphere,
                                    np.zeros(4), {"constraints": linear}),
    "sep_cma_es constraints from the objective": (lambda: ES("sep_cma_es", max_generations=45, random_state=2),
                                                  with_g, np.zeros(4), {"constraints": "objective"}),
    "snes penalty instance": (lambda: ES("snes", max_generations=45, random_state=3), shifted_sphere, np.zeros(4),
                              {"constraints": linear, "constraint_handler": Penalty(weight=10.0)}),
    "cma_es with margin": (lambda: ES("cma_es", integer=[0, 1], bounds=(-4, 4), max_generations=45,
                                      random_state=4), shifted_sphere, np.full(4, 3.0), {}),
    "cma_es noise handling": (lambda: ES("cma_es", noise_handling=True, max_generations=45, random_state=5),
                              noisy, np.ones(4), {}),
    "cma_es noise handling, reevaluations=2": (
        lambda: ES("cma_es", reevaluations=2, noise_handling={"max_evaluations": 5}, max_generations=45,
                   random_state=6), noisy, np.ones(4), {}),
    "snes reevaluations=3": (lambda: ES("snes", reevaluations=3, max_generations=45, random_state=7), noisy,
                             np.ones(4), {}),
}


AT = 30  # the checkpoint resumed from (noise dominates after about 25 generations: s > 0 there)


@pytest.mark.parametrize("case", list(CASES))
def test_resume_is_bit_identical(tmp_path: Path, case: str) -> None:
    make, objective, x0, fit = CASES[case]
    resumed, full, _ = _resume_from_the_middle(tmp_path, make, objective, x0, at=AT, **fit)
    _assert_same_run(resumed, full)


def test_resume_is_bit_identical_on_torch(tmp_path: Path) -> None:
    """The stored states are host arrays and numbers: a torch run resumes alike."""
    torch = pytest.importorskip("torch")

    def objective(X: Any) -> Any:  # additive noise that is a function of x, as noisy()
        return ((X - 0.3) ** 2).sum(axis=1) + 0.1 * torch.sin(1e9 * X.sum(axis=1))

    def g(x: Any) -> np.ndarray:
        return linear(np.asarray(x, dtype=np.float64))

    make = lambda: ES("cma_es", integer=[0], noise_handling=True, max_generations=45, random_state=9)  # noqa: E731
    resumed, full, _ = _resume_from_the_middle(tmp_path, make, objective, torch.full((4,), 2.0, dtype=torch.float64),
                                               at=AT, constraints=g)
    assert isinstance(resumed.x_, torch.Tensor)
    _assert_same_run(resumed, full)


def test_the_stored_states_matter(tmp_path: Path) -> None:
    """At the checkpoint each feature has left its fresh state: a resume that dropped it would differ."""
    for case, fresh in [("cma_es augmented Lagrangian", lambda es: es.run_.constrained.handler.n_updates == 0),
                        ("cma_es with margin", lambda es: bool((es.run_.integers.A == 1).all())),
                        ("cma_es noise handling", lambda es: es.run_.noise_resume["s"] == 0.0)]:
        make, objective, x0, fit = CASES[case]
        _, _, kept = _resume_from_the_middle(tmp_path, make, objective, x0, at=AT, **fit)
        again = {"constraints": fit["constraints"]} if "constraints" in fit else {}
        assert not fresh(load_checkpoint(kept, **again)), case


def test_restarts_with_constraints_resume_inside_a_later_run(tmp_path: Path) -> None:
    make = lambda: ES("cma_es", restarts="ipop", max_generations=160, tolfun=1e-3, random_state=8)  # noqa: E731
    resumed, full, kept = _resume_from_the_middle(tmp_path, make, shifted_sphere, np.zeros(3), at=100,
                                                  constraints=linear)
    assert load_checkpoint(kept, constraints=linear).restarts_[-1]["run"] >= 1
    _assert_same_run(resumed, full)


def test_integers_with_restarts_resume_before_and_at_a_restart(tmp_path: Path) -> None:
    """From run 0 (the restart then starts from x0, not from x0 rounded by the margin) and from the
    checkpoint written as run 1 begins (the margin state is then run 0's: run 1 starts afresh)."""
    path, kept = tmp_path / "run.ckpt", {}

    def keep(es: ES) -> None:
        if es.n_generations_ - 1 in (15, 60):
            kept[es.n_generations_ - 1] = path.read_bytes()

    make = lambda: ES("cma_es", integer=[0, 1], restarts="ipop", max_generations=75, tolfun=1e-6,  # noqa: E731
                      random_state=3)
    full = make().fit(shifted_sphere, np.full(3, 3.0), checkpoint=path, checkpoint_every=1, callbacks=[keep])
    assert [r["n_evals"] for r in full.restarts_][0] == 60 * 7  # run 0 ends at generation 60
    for at, data in kept.items():
        (tmp_path / f"{at}.ckpt").write_bytes(data)
        _assert_same_run(ES.resume(tmp_path / f"{at}.ckpt", shifted_sphere, checkpoint=False), full)


def test_ask_tell_with_constraints_round_trips(tmp_path: Path) -> None:
    """A manual loop with tell(constraints=G), saved and loaded: the next populations are the same."""
    def step(es: ES) -> np.ndarray:
        X = es.ask()
        es.tell(X, shifted_sphere(X), constraints=np.stack([linear(x) for x in X]))
        return X

    es = ES("cma_es", random_state=0).initialize(np.zeros(3))
    for _ in range(12):
        step(es)
    save_checkpoint(es, tmp_path / "a.ckpt")
    back = load_checkpoint(tmp_path / "a.ckpt")
    assert back.run_.constrained.handler.n_updates == es.run_.constrained.handler.n_updates > 0
    for _ in range(8):
        assert np.array_equal(step(back), step(es))
    assert back.fun_ == es.fun_ and np.array_equal(back.x_, es.x_)


def test_history_records_the_noise_measure() -> None:
    es = ES("cma_es", noise_handling={"max_evaluations": 4}, max_generations=40, random_state=0).fit(noisy, np.ones(3))
    s = [row["noise"] for row in es.history_]
    evals = [row["evals_per_candidate"] for row in es.history_]
    assert len(s) == 40 and all(np.isfinite(s)) and s[-1] == es.run_.noise.handler.s
    assert max(s) > 0  # noise dominates the ranking at some point: the handler reacts
    assert all(isinstance(k, int) and 1 <= k <= 4 for k in evals) and max(evals) > 1
    plain = ES("cma_es", reevaluations=2, max_generations=3, random_state=0).fit(noisy, np.ones(3))
    assert "noise" not in plain.history_[-1]  # no measure without noise handling


def test_resume_needs_the_constraint_function_again(tmp_path: Path) -> None:
    make, objective, x0, fit = CASES["cma_es augmented Lagrangian"]
    _, _, kept = _resume_from_the_middle(tmp_path, make, objective, x0, at=AT, **fit)
    calls = []
    with pytest.raises(InvalidArgumentError, match="pass it again.*constraints=g"):
        ES.resume(kept, lambda X: calls.append(X) or objective(X), checkpoint=False)
    assert calls == []  # refused before any evaluation
    loaded = load_checkpoint(kept)  # without g: a warm start or an ask/tell loop need none
    assert loaded.run_.constrained.handler.n_updates > 0
    warm = ES("cma_es", warm_start=kept, random_state=0).initialize(x0)  # the saved run's strategy state
    assert np.array_equal(warm.strategy_.mean, loaded.strategy_.mean)
    with pytest.raises(InvalidArgumentError, match="must be the run's constraint function"):
        ES.resume(kept, objective, constraints=[1.0])
    path = tmp_path / "plain.ckpt"
    ES("snes", max_generations=3, random_state=0).fit(shifted_sphere, np.zeros(2), checkpoint=path)
    with pytest.raises(InvalidArgumentError, match="resume\\(constraints=...\\) was given"):
        ES.resume(path, shifted_sphere, constraints=linear)



def draw_start() -> np.ndarray:  # a callable x0: pycma's, called for each restart run's start point
    return np.random.uniform(-2, 2, 4)


@pytest.mark.parametrize("extra", [{}, {"bounds": (-3, 3), "integer": [0, 1]}])
def test_resume_with_a_callable_x0_draws_the_restart_starts_again(tmp_path: Path, extra: dict) -> None:
    """The callable x0 is not stored: a resumed run started its restart runs from the saved
    point instead of calling it (row 39, the first of the restart run, had generation_best 3.54
    instead of 1.76). Now resume asks for it (x0=...) and continues bit for bit."""
    def make() -> ES:
        return ES("cma_es", restarts="ipop", tolfun=0.1, max_generations=60, random_state=0, **extra)

    def objective(x: np.ndarray) -> float:
        return float(((x - 0.3) ** 2).sum())

    path, kept = tmp_path / "run.ckpt", tmp_path / "kept.ckpt"

    def keep(es: ES) -> None:
        if es.n_generations_ == 21:  # callbacks run before the checkpoint of their generation
            kept.write_bytes(path.read_bytes())

    full = make().fit(objective, draw_start, checkpoint=path, checkpoint_every=20, callbacks=[keep])
    assert len(full.restarts_) == 2 and full.restarts_[1]["n_evals"] > 0  # a restart run after the checkpoint
    calls = []
    with pytest.raises(InvalidArgumentError, match="callable x0.*x0=draw"):
        ES.resume(kept, lambda x: calls.append(x) or objective(x), checkpoint=False)
    assert calls == []  # refused before any evaluation
    _assert_same_run(ES.resume(kept, objective, checkpoint=False, x0=draw_start), full)
    with pytest.raises(InvalidArgumentError, match="resume\\(x0=...\\) must be a callable"):
        ES.resume(kept, objective, x0=np.zeros(4))
    path = tmp_path / "point.ckpt"
    ES("snes", max_generations=3, random_state=0).fit(objective, np.zeros(4), checkpoint=path)
    with pytest.raises(InvalidArgumentError, match="only for a run fitted with a callable x0"):
        ES.resume(path, objective, x0=draw_start)

def test_a_custom_handler_cannot_be_checkpointed() -> None:
    class Mine(ConstraintHandler):
        def values(self, F: np.ndarray, G: np.ndarray) -> np.ndarray:
            return F + np.maximum(G, 0).sum(axis=1)

    with pytest.raises(InvalidArgumentError, match="constraint_handler whose state it can store.*Mine"):
        ES("cma_es").fit(shifted_sphere, np.ones(2), constraints=linear, constraint_handler=Mine(),
                         checkpoint="never-written.ckpt")
    es = ES("snes", random_state=0).initialize(np.zeros(3))
    X = es.ask()
    es.run_.constraint_spec = Mine()
    es.tell(X, shifted_sphere(X), constraints=np.stack([linear(x) for x in X]))
    with pytest.raises(CheckpointError, match="cannot store the constraint handler Mine"):
        capture(es)


def test_old_checkpoints_without_features_load(tmp_path: Path) -> None:
    es = ES("snes", max_generations=40, random_state=0).initialize(np.full(3, 2.0))
    for _ in range(4):
        X = es.ask()
        es.tell(X, shifted_sphere(X))
    meta, arrays = capture(es)
    assert meta["features"] is None
    del meta["features"]  # as evostrat wrote it before these states were stored
    write_checkpoint(tmp_path / "old.ckpt", meta, arrays)
    back = load_checkpoint(tmp_path / "old.ckpt")
    assert np.array_equal(back.ask(), es.ask()) and back.n_generations_ == 4


def _integer_run() -> ES:
    es = ES("cma_es", integer=[0], max_generations=40, random_state=0).initialize(np.full(3, 2.0))
    for _ in range(6):
        X = es.ask()
        es.tell(X, shifted_sphere(X))
    return es


def _constrained_run() -> ES:  # constraints from the objective: stored, no function to pass again
    return ES("cma_es", max_generations=6, random_state=0).fit(with_g, np.full(3, 2.0), constraints="objective")


def _noise_run() -> ES:
    return ES("cma_es", max_generations=6, random_state=0, noise_handling=True).fit(noisy, np.full(3, 2.0))


LAM, MU = "features/constraints.run.handler.state.lam", "features/constraints.run.handler.state.mu"
FORGED: list[tuple[str, Callable[[], ES], Callable[[dict, dict], None], str]] = [
    ("A shape", _integer_run, lambda m, a: a.__setitem__("features/integers.A", np.ones(4)), "field 'A'"),
    ("A negative", _integer_run, lambda m, a: a.__setitem__("features/integers.A", -np.ones(3)), "field 'A'"),
    ("alpha", _integer_run, lambda m, a: m["features"]["integers"].__setitem__("alpha", "x"), "'alpha'"),
    ("corrected", _integer_run, lambda m, a: m["features"]["integers"].__setitem__("corrected", 10 ** 6),
     "'corrected'"),
    ("extra feature", _integer_run, lambda m, a: m["features"].__setitem__("exec", None), "features state has fields"),
    ("integers on a plain run", _integer_run,
     lambda m, a: m["params"].__setitem__("integer", {"value": None}), "no integer coordinates"),
    ("noise s", _noise_run, lambda m, a: m["features"]["noise"].__setitem__("s", "0"), "'s' must be"),
    ("noise rng", _noise_run, lambda m, a: m["features"]["noise"].__setitem__("rng", 3), "'rng' must be"),
    ("noise pending", _noise_run, lambda m, a: m["features"]["noise"].__setitem__("pending", -1.0),
     "'pending' must be"),
    ("aggregate", _noise_run, lambda m, a: m["features"].__setitem__("aggregate", "mode"), "'aggregate' must be"),
    ("aggregate on a run without repeats", _integer_run, lambda m, a: m["features"].__setitem__("aggregate", "mean"),
     "aggregate 'mean' does not match"),
    ("lam dtype", _constrained_run,
     lambda m, a: a.__setitem__("features/constraints.run.handler.state.lam", np.zeros(2, np.float32)), "'lam'"),
    ("mu shape", _constrained_run,
     lambda m, a: a.__setitem__("features/constraints.run.handler.state.mu", np.zeros(3)), "'mu'"),
    # negative coefficients loaded silently (a negative lam turns the penalty of a violation into a reward)
    ("lam negative", _constrained_run, lambda m, a: a.__setitem__(LAM, -1.0 - a[LAM]), "field 'lam' must be >= 0"),
    ("mu negative", _constrained_run, lambda m, a: a.__setitem__(MU, -1.0 - a[MU]), "field 'mu' must be >= 0"),
    ("handler name", _constrained_run,
     lambda m, a: m["features"]["constraints"]["run"]["handler"].__setitem__("handler", "os.system"), "'handler'"),
    ("spec", _constrained_run, lambda m, a: m["features"]["constraints"].__setitem__("spec", "eval"), "'spec'"),
    ("function", _constrained_run,
     lambda m, a: m["features"]["constraints"].__setitem__("function", "lambda"), "'function'"),
    ("n_updates", _constrained_run,
     lambda m, a: m["features"]["constraints"]["run"]["handler"]["state"].__setitem__("n_updates", -1),
     "'n_updates'"),
    ("constraint count", _constrained_run, lambda m, a: m["features"]["constraints"]["run"].__setitem__("m", 0),
     "constraints field 'm' must be an int >= 1 or null"),
    ("constraint count type", _constrained_run,
     lambda m, a: m["features"]["constraints"]["run"].__setitem__("m", "1"), "constraints field 'm'"),
]


@pytest.mark.parametrize("make, edit, message", [f[1:] for f in FORGED], ids=[f[0] for f in FORGED])
def test_forged_feature_states_are_refused_by_name(tmp_path: Path, make: Callable[[], ES],
                                                   edit: Callable[[dict, dict], None], message: str) -> None:
    meta, arrays = capture(make())
    edit(meta, arrays)
    path = tmp_path / "forged.ckpt"
    write_checkpoint(path, meta, arrays)  # a valid digest: only the schemas can refuse it
    read_checkpoint(path)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("at", [34, 40])  # the checkpoint of the generation that starts run 1, and one in it
def test_noise_handling_with_restarts_resumes_at_and_after_a_restart(tmp_path: Path, at: int) -> None:
    """Each restart run measures the noise afresh (run 0 ends with 4 evaluations per candidate, run 1
    starts with 1); a checkpoint taken at the restart holds the fresh state."""
    make = lambda: ES("cma_es", restarts="ipop", noise_handling={"max_evaluations": 4},  # noqa: E731
                      max_generations=200, tolfun=0.3, random_state=8)
    resumed, full, _ = _resume_from_the_middle(tmp_path, make, noisy, np.ones(3), at=at)
    rows = full.history_
    assert [rows[33]["run"], rows[34]["run"]] == [0, 1]
    assert (rows[33]["evals_per_candidate"], rows[34]["evals_per_candidate"]) == (4, 1)
    _assert_same_run(resumed, full)
