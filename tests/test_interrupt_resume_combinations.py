"""Interrupt -> final checkpoint -> resume equals the uninterrupted run, for the option combinations a
demanding user checkpoints and that ``test_interrupt_checkpoint.py`` / ``test_interrupted_fit.py`` do
not cover: BIPOP, restarts with bounds, the augmented Lagrangian (interrupted by the objective, by the
constraint function in the middle of a population and by a callback between generations; with
restarts), uncertainty handling with bounds and integers, repeated evaluations, a distribution
recorder writing into ``history_``, and the torch backend with bounds, integers, noise handling and
constraints.

The augmented Lagrangian's state (``lam``, ``mu``, ``n_updates``, the penalised flags) of the final
checkpoint must be the uninterrupted run's at that generation: an interrupted generation that had
already updated it would leave it one generation ahead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evostrat import ES
from evostrat.callbacks import DistributionRecorder
from evostrat.checkpoint import checkpoint_info, load_checkpoint
from same_run import ones_on, without_time

pytestmark = pytest.mark.filterwarnings("ignore::evostrat.errors.PerCandidateWarning")

EVERY = 5  # periodic checkpoints far apart: the final one must be newer


def _f(x: Any) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.sum((x - 0.3) ** 2) + np.sum(np.cos(3.0 * x)))


def _g(x: Any) -> np.ndarray:  # x0 + x1 >= 1 and x2 <= -0.5: both active near the optimum
    x = np.asarray(x, dtype=np.float64)
    return np.array([1.0 - x[0] - x[1], x[2] + 0.5])


class Cut:
    """``fn``, raising KeyboardInterrupt at its ``at``-th call (never with ``at=None``)."""

    def __init__(self, fn: Any, at: int | None) -> None:
        self.fn, self.at, self.calls = fn, at, 0

    def __call__(self, x: Any) -> Any:
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.fn(x)


class ALTrace:
    """A callback keeping the augmented Lagrangian's state after each generation."""

    def __init__(self) -> None:
        self.states: dict[int, dict[str, Any]] = {}

    def __call__(self, es: Any) -> None:
        self.states[es.n_generations_] = al_state(es)


def al_state(es: Any) -> dict[str, Any]:
    run = es.run_.constrained
    if run is None:
        return {}
    h = run.handler
    return {k: repr(getattr(h, k)) for k in ("lam", "mu", "initialized", "n_updates", "penalised", "g_prev",
                                             "same_changes")} | {"g_history": repr(list(h.g_history))}


def assert_same_run(a: Any, b: Any) -> None:
    """``a`` and ``b`` ran the same generations to the same result, bit for bit (NaN rows alike: with
    constraints a generation without a feasible candidate has a NaN ``generation_best``)."""
    assert repr(without_time(a.history_)) == repr(without_time(b.history_))
    assert (a.fun_, a.n_evals_, a.n_generations_, a.stop_reason_, a.restarts_) == (
        b.fun_, b.n_evals_, b.n_generations_, b.stop_reason_, b.restarts_)
    host = lambda es: np.asarray(es.strategy_.backend.to_numpy(es.x_))  # noqa: E731
    assert np.array_equal(host(a), host(b))


CON = dict(constraints=_g)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], str, str]] = {
    # name: (ES options, fit options, backend, where the interrupt is raised)
    "bipop": (dict(restarts="bipop", max_evals=1500, tolfun=1e-3), {}, "numpy", "objective"),
    "ipop with bounds": (dict(restarts="ipop", max_evals=1200, tolfun=1e-3, bounds=(-2.0, 2.0)), {}, "numpy",
                         "objective"),
    "augmented Lagrangian, objective": (dict(max_generations=20), CON, "numpy", "objective"),
    "augmented Lagrangian, constraint function": (dict(max_generations=20), CON, "numpy", "constraints"),
    "augmented Lagrangian, callback": (dict(max_generations=20), CON, "numpy", "callback"),
    "augmented Lagrangian with ipop": (dict(restarts="ipop", max_evals=1200, tolfun=1e-3), CON, "numpy",
                                       "constraints"),
    "ipop with integers, in a restart run's first generation": (
        dict(restarts="ipop", max_evals=1500, tolfun=1e-3, bounds=(-3.0, 3.0), integer=[0, 2]), {}, "numpy",
        "objective@restart"),
    "bipop augmented Lagrangian, in a restart run's first generation": (
        dict(restarts="bipop", max_evals=2000, tolfun=1e-3), CON, "numpy", "constraints@restart"),
    "noise handling with bounds and integers": (dict(max_generations=16, noise_handling=True, bounds=(-3.0, 3.0),
                                                     integer=[0, 2]), {}, "numpy", "objective"),
    "reevaluations": (dict(max_generations=16, reevaluations=3), {}, "numpy", "objective"),
    "distribution recorder": (dict(max_generations=16), {"recorder": True}, "numpy", "objective"),
    "torch bounds, integers, noise handling": (dict(max_generations=16, noise_handling=True, bounds=(-3.0, 3.0),
                                                    integer=[1]), {}, "torch", "objective"),
    "torch augmented Lagrangian": (dict(max_generations=20), CON, "torch", "constraints"),
}


def _fit(options: dict[str, Any], fit: dict[str, Any], backend: str, f: Any, g: Any, callbacks: list,
         **extra: Any) -> ES:
    """A fit of the case (``g``: its constraint function), with a recorder when the case has one."""
    es = ES("cma_es", random_state=2, **options)
    recorder = [DistributionRecorder(every=3)] if fit.get("recorder") else []
    constraints = {"constraints": g} if "constraints" in fit else {}
    return es.fit(f, ones_on(backend), callbacks=callbacks + recorder, **constraints, **extra)


@pytest.mark.parametrize("case", list(CASES))
def test_an_interrupted_run_resumes_as_the_uninterrupted_one(tmp_path: Path, case: str) -> None:
    options, fit, backend, where = CASES[case]
    trace = ALTrace()
    f, g = Cut(_f, None), Cut(_g, None)
    full = _fit(options, fit, backend, f, g, [trace])
    # a generation two thirds in (of a later restart run with restarts), not one of a periodic checkpoint,
    # or the first generation of the second restart run ("@restart"); one call per candidate
    assert f.calls == full.n_evals_ and g.calls in (0, full.n_evals_)
    rows = [row for row in full.history_ if row["generation"] % EVERY not in (0, EVERY - 1)]
    row = rows[len(rows) * 2 // 3]
    generation = next(i for i, r in enumerate(full.history_) if r is row) + 1  # finished when interrupted
    where, _, at_restart = where.partition("@")
    evaluations = full.restarts_[1]["start_evals"] if at_restart else row["n_evals"]
    cut_f = Cut(_f, evaluations + 3 if where == "objective" else None)
    cut_g = Cut(_g, evaluations + 3 if where == "constraints" else None)

    def crash(es: Any) -> None:
        if where == "callback" and es.n_generations_ == generation:
            raise KeyboardInterrupt

    path = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        _fit(options, fit, backend, cut_f, cut_g, [crash], checkpoint=path, checkpoint_every=EVERY)
    saved = checkpoint_info(path)["n_generations"]
    assert saved < full.n_generations_ and (at_restart or saved % EVERY != 0)  # the final checkpoint
    if at_restart:
        assert checkpoint_info(path)["n_evals"] == full.restarts_[1]["start_evals"]
    if "constraints" in fit:
        # the coefficients have learnt (a missed rollback shows), or start afresh with a restart run
        assert (trace.states[saved]["n_updates"] == "0") == bool(at_restart)
        assert al_state(load_checkpoint(path, constraints=_g)) == trace.states[saved]
    recorder = [DistributionRecorder(every=3)] if fit.get("recorder") else []
    resumed = ES.resume(path, _f, callbacks=recorder, **({"constraints": _g} if "constraints" in fit else {}))
    assert_same_run(resumed, full)
    if "constraints" in fit:
        assert al_state(resumed) == al_state(full)
