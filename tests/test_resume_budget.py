"""``ES.resume(path, objective, max_evals=N)`` / ``max_generations=N``: extending a run's budget.

A run with budget A, finished (or interrupted) and resumed with budget B, must equal the
uninterrupted run with budget B: history (but its ``time`` column), best point and value,
counters, stop reason and restart records, on numpy and on JAX's compiled chunks. A run
stopped by another criterion stays stopped, and a budget below what was spent is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evostrat import ES
from evostrat.checkpoint import checkpoint_info
from evostrat.errors import InvalidArgumentError
from evostrat.problems import rastrigin, rosenbrock, sphere


def _same_run(resumed: ES, full: ES) -> None:
    strip = lambda h: [{k: v for k, v in row.items() if k != "time"} for row in h]  # noqa: E731
    assert strip(resumed.history_) == strip(full.history_)
    assert resumed.fun_ == full.fun_
    host = lambda es: np.asarray(es.strategy_.backend.to_numpy(es.x_))  # noqa: E731
    assert np.array_equal(host(resumed), host(full))
    assert (resumed.n_evals_, resumed.n_generations_, resumed.stop_reason_) == (
        full.n_evals_, full.n_generations_, full.stop_reason_)
    assert resumed.restarts_ == full.restarts_


def _extend(tmp_path: Path, make: Any, objective: Any, x0: Any, small: dict, large: dict) -> tuple[ES, ES]:
    path = tmp_path / "run.ckpt"
    short = make(**small).fit(objective, x0, checkpoint=path)
    assert short.stop_reason_ in ("maxfevals", "maxiter")
    assert checkpoint_info(path)["stop_reason"] == short.stop_reason_
    resumed = ES.resume(path, objective, checkpoint=False, **large)
    assert resumed.n_evals_ > short.n_evals_ and resumed.get_params()[next(iter(large))] == next(iter(large.values()))
    return resumed, make(**large).fit(objective, x0)


@pytest.mark.parametrize("strategy", ["snes", "cma_es", "openai_es", "sep_cma_es"])
@pytest.mark.parametrize("budgets", [({"max_evals": 240}, {"max_evals": 900}),
                                     ({"max_generations": 25}, {"max_generations": 70})])
def test_extended_budget_equals_the_uninterrupted_run_numpy(tmp_path: Path, strategy: str, budgets: tuple) -> None:
    make = lambda **kw: ES(strategy, random_state=3, **kw)  # noqa: E731
    resumed, full = _extend(tmp_path, make, rosenbrock, np.zeros(4), *budgets)
    _same_run(resumed, full)


@pytest.mark.parametrize("strategy", ["snes", "cma_es"])
def test_extended_budget_equals_the_uninterrupted_run_jax(tmp_path: Path, strategy: str) -> None:
    jnp = pytest.importorskip("jax.numpy")
    make = lambda **kw: ES(strategy, random_state=5, **kw)  # noqa: E731
    resumed, full = _extend(tmp_path, make, rosenbrock, jnp.zeros(5), {"max_evals": 200}, {"max_evals": 1000})
    assert full.run_.fast_path == resumed.run_.fast_path == "compiled_loop"
    assert type(resumed.x_) is type(full.x_)
    _same_run(resumed, full)


def test_extended_budget_equals_the_uninterrupted_run_torch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    make = lambda **kw: ES("snes", random_state=5, **kw)  # noqa: E731
    resumed, full = _extend(tmp_path, make, rosenbrock, torch.zeros(4), {"max_generations": 20},
                            {"max_generations": 90})
    assert isinstance(resumed.x_, torch.Tensor)
    _same_run(resumed, full)


@pytest.mark.parametrize("kind", ["ipop", "bipop"])
@pytest.mark.parametrize("name", ["max_evals", "max_generations"])
def test_extended_budget_with_restarts(tmp_path: Path, kind: str, name: str) -> None:
    make = lambda **kw: ES("cma_es", restarts=kind, tolfun=1e-4, random_state=7, **kw)  # noqa: E731
    small, large = ({"max_evals": 1500}, {"max_evals": 5000}) if name == "max_evals" else (
        {"max_generations": 120}, {"max_generations": 400})
    resumed, full = _extend(tmp_path, make, rastrigin, np.full(3, 2.0), small, large)
    assert len(full.restarts_) >= 3
    _same_run(resumed, full)


def test_interrupted_run_resumed_with_a_larger_budget(tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"

    def crash(es: ES) -> None:
        if es.n_generations_ == 17:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ES("cma_es", max_evals=300, random_state=2).fit(rosenbrock, np.zeros(4), checkpoint=path,
                                                          checkpoint_every=5, callbacks=[crash])
    assert checkpoint_info(path)["stop_reason"] is None
    resumed = ES.resume(path, rosenbrock, max_evals=700, checkpoint=False)
    _same_run(resumed, ES("cma_es", max_evals=700, random_state=2).fit(rosenbrock, np.zeros(4)))


def _never(X: Any) -> Any:
    raise AssertionError("a finished run must not evaluate")


def test_a_run_stopped_by_another_criterion_stays_stopped(tmp_path: Path) -> None:
    path = tmp_path / "target.ckpt"
    done = ES("snes", ftarget=1e-3, max_evals=5000, random_state=0).fit(sphere, np.ones(3), checkpoint=path)
    assert done.stop_reason_ == "ftarget"
    again = ES.resume(path, _never, max_evals=10_000, checkpoint=False)
    assert (again.stop_reason_, again.n_evals_, again.max_evals) == ("ftarget", done.n_evals_, 10_000)


def test_the_same_budget_finishes_without_evaluating(tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    done = ES("snes", max_generations=10, random_state=0).fit(sphere, np.ones(3), checkpoint=path)
    again = ES.resume(path, _never, max_generations=10, checkpoint=False)
    assert (again.stop_reason_, again.n_generations_, again.fun_) == ("maxiter", 10, done.fun_)


def test_wrong_budgets_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    ES("snes", max_generations=10, random_state=0).fit(sphere, np.ones(3), checkpoint=path)
    with pytest.raises(InvalidArgumentError, match=r"max_generations=5\) is below the 10 generations"):
        ES.resume(path, sphere, max_generations=5)
    with pytest.raises(InvalidArgumentError, match="max_evals=.*positive int"):
        ES.resume(path, sphere, max_evals=0)
    with pytest.raises(InvalidArgumentError, match="random_state"):
        ES.resume(path, sphere, random_state=3, max_evals=1000)


def test_a_restart_run_ended_together_with_the_generation_budget_restarts(tmp_path: Path) -> None:
    """When a local criterion ends restart run 0 at the very generation the old budget is
    spent, the run stops with that criterion; the larger budget starts run 1 instead."""
    make = lambda **kw: ES("cma_es", restarts="ipop", tolfun=1e-4, random_state=7, **kw)  # noqa: E731
    full = make(max_generations=300).fit(rastrigin, np.full(3, 2.0))
    end = max(row["generation"] for row in full.history_ if row["run"] == 0)
    path = tmp_path / "run.ckpt"
    short = make(max_generations=end).fit(rastrigin, np.full(3, 2.0), checkpoint=path)
    assert short.stop_reason_ == full.restarts_[0]["stop_reason"] == "tolfun"
    _same_run(ES.resume(path, rastrigin, max_generations=300, checkpoint=False), full)
