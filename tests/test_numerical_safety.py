"""Numerical safety of long runs: every strategy, Rosenbrock and a flat objective (issue 10).

Every registered strategy runs on the 5-D Rosenbrock function from ``x0 = 3``
and on a flat (constant) objective, in float64 and float32; strategies with
``needs_behaviours`` are told the behaviours ``(f(x), x_0)`` (flat: constant
rows). Two properties:

1. **Finite state.** ``ask``/``tell`` for a fixed number of generations, with
   no termination: after every generation every floating leaf of the state is
   finite and ``sigma`` is finite and positive. The default run uses the
   fastest eager path for d = 5, numpy, in float64 and float32, for
   ``DEFAULT_GENERATIONS`` = 500 generations (torch float32 joins in the slow
   suite). The slow variant (``-m slow``) runs ``SLOW_GENERATIONS`` = 10,000
   generations through the JAX fast path, :class:`evostrat.run.compiled_loop.CompiledLoop`
   (one ``lax.scan`` per chunk of 500 generations; behaviour strategies get the
   ``(popsize,)`` behaviour ``f(x)``), in float32 and float64
   (``jax.enable_x64``), checking the state after every chunk and the
   per-generation ``sigma`` and best candidate of every generation (NaN
   would propagate into them).
2. **Termination.** ``ES(...).fit`` with the default criteria (numpy float64 and
   float32; torch float32 in the slow suite), the state checked after every
   generation by a callback:

   - on the flat objective every fitness strategy stops on a criterion, never
     on the budget: with the run-level ``"tolfun"`` after one generation, as
     pycma (its window holds the generations seen so far); without ``tolfun``
     the CMA family (``stop()`` criteria) stops with ``"tolflatfitness"`` after
     2 generations and the others run to the budget. Behaviour
     strategies (MaxVar, MaxEnt) are not told any fitness, so only budgets,
     ``tolx`` and their own criteria (they have none; sigma is fixed) can stop
     them: they run to ``"maxiter"`` (documented in :mod:`evostrat.run.behaviours`);
   - on Rosenbrock the strategies with termination criteria (the CMA family)
     stop on one within ``CMA_ROSENBROCK_GENERATIONS`` = 2,000 generations
     (``cma_es``: ``"tolfun"``/``"noeffectaxis"`` after about 200 generations,
     ``sep_cma_es``: ``"tolupsigma"`` after about 920: on this non-separable
     valley sigma grows while C shrinks, pycma's "creeping" test). The others
     have no criteria of their own: SNES and xNES may stop on ``"tolfun"`` once
     converged, the strategies with fixed or slowly adapted step sizes
     (OpenAI-ES, PGPE, ExpectationES, MaxVar, MaxEnt) run to ``"maxiter"``; the
     slow variant checks over 10,000 generations that the reason is one of the
     documented names and the state stays finite.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pytest
from array_api_compat import array_namespace
from conftest import strategy_class, strategy_names, to_numpy

from evostrat import ES
from evostrat.run.asktell import state_to_numpy
from evostrat.backends import get_backend
from evostrat.problems import rosenbrock

STRATEGIES = strategy_names()
DIM = 5
DEFAULT_GENERATIONS = 500
SLOW_GENERATIONS = 10_000
CMA_ROSENBROCK_GENERATIONS = 2_000
CHUNK = 500
BEHAVIOUR_FLAT_GENERATIONS = 50
#: Run-level criteria of the estimator (evostrat.run.termination) and "callback".
RUN_LEVEL = {"ftarget", "maxfevals", "maxiter", "tolfun", "tolx", "tolfunhist", "tolstagnation",
             "tolflatfitness", "callback"}


def flat(X: Any) -> Any:
    """A constant objective: 1.0 for every candidate."""
    xp = array_namespace(X)
    return xp.zeros(X.shape[0], dtype=X.dtype, device=getattr(X, "device", None)) + 1.0


OBJECTIVES: dict[str, Callable] = {"rosenbrock": rosenbrock, "flat": flat}


def objective_for(name: str, objective: str, k: int = 2) -> Callable:
    """The objective, or for behaviour strategies behaviours ``(f(X), X[:, 0])`` (k = 2) or ``f(X)`` (k = 1)."""
    f = OBJECTIVES[objective]
    if not strategy_class(name).needs_behaviours:
        return f
    if k == 1:
        return f

    def behaviours(X: Any) -> Any:
        xp = array_namespace(X)
        return xp.stack([f(X), X[:, 0] * (0.0 if objective == "flat" else 1.0)], axis=1)

    return behaviours


def x0_for(library: str) -> Any:
    if library == "numpy":
        return np.full(DIM, 3.0)
    if library == "numpy32":
        return np.full(DIM, 3.0, dtype=np.float32)
    if library == "torch32":
        torch = pytest.importorskip("torch")
        return torch.full((DIM,), 3.0, dtype=torch.float32)
    raise AssertionError(library)


def _leaves(state: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for field, value in zip(state._fields, state):
        if hasattr(value, "_fields"):
            out.extend(_leaves(value, f"{prefix}{field}."))
        else:
            out.append((f"{prefix}{field}", value))
    return out


def nonfinite_leaves(state: Any, backend: Any) -> list[str]:
    """Names of the floating state leaves holding NaN or inf."""
    bad = []
    for path, values in state_to_numpy(state, backend).items():
        if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
            bad.append(path)
    return bad


#: numpy is the fastest eager path for small dimensions; torch float32 runs in the slow suite.
LIBRARIES = [
    pytest.param("numpy", id="numpy-float64"),
    pytest.param("numpy32", id="numpy-float32"),
    pytest.param("torch32", id="torch-float32", marks=pytest.mark.slow),
]


# -- 1. the state stays finite -------------------------------------------------------------------


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
@pytest.mark.parametrize("name", STRATEGIES)
def test_state_stays_finite_for_500_generations(name: str, objective: str, library: str) -> None:
    x0 = x0_for(library)
    runner = strategy_class(name)().initialize(x0, random_state=0, nonfinite="ignore")
    assert runner.state_dict()["dtype"] == str(x0.dtype).replace("torch.", "")
    f = objective_for(name, objective)
    for g in range(DEFAULT_GENERATIONS):
        X = runner.ask()
        runner.tell(X, f(X))
        bad = nonfinite_leaves(runner.state, runner.backend)
        assert not bad, f"generation {g}: non-finite state leaves {bad}"
        sigma = runner.sigma
        assert math.isfinite(sigma) and sigma > 0, f"generation {g}: sigma = {sigma}"
    assert runner.generation == DEFAULT_GENERATIONS


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
@pytest.mark.parametrize("name", STRATEGIES)
def test_state_stays_finite_for_10000_generations_jax(name: str, objective: str, dtype: str) -> None:
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from evostrat.run.compiled_loop import CompiledLoop

    with jax.enable_x64(dtype == "float64"):
        strategy = strategy_class(name)()
        state = strategy.init(jnp.full(DIM, 3.0, dtype=dtype), random_state=0)
        assert str(state.mean.dtype) == dtype
        backend = get_backend("jax")
        loop = CompiledLoop(strategy, objective_for(name, objective, k=1), chunk=CHUNK)
        for chunk in range(SLOW_GENERATIONS // CHUNK):
            state, out = loop.run(state, CHUNK)
            done = (chunk + 1) * CHUNK
            bad = nonfinite_leaves(state, backend)
            assert not bad, f"after {done} generations: non-finite state leaves {bad}"
            sigma = np.asarray(out.sigma)
            assert np.all(np.isfinite(sigma)) and np.all(sigma > 0), f"sigma in generations up to {done}"
            if not strategy.needs_behaviours:
                assert np.all(np.isfinite(np.asarray(out.best_x))), f"best x in generations up to {done}"
        assert str(state.mean.dtype) == dtype


# -- 2. termination --------------------------------------------------------------------------------


def _allowed_reasons(name: str) -> set[str]:
    s = strategy_class(name)()
    return RUN_LEVEL | set(s.stop(s.init(np.zeros(DIM), random_state=0)))


def _fit(name: str, objective: str, library: str, generations: int, **params: Any) -> ES:
    seen: list[float] = []

    def check(es: ES) -> None:
        runner = es.strategy_
        bad = nonfinite_leaves(runner.state, runner.backend)
        assert not bad, f"generation {es.n_generations_}: non-finite state leaves {bad}"
        seen.append(runner.sigma)

    es = ES(name, max_generations=generations, nonfinite="ignore", random_state=0, **params)
    es.fit(objective_for(name, objective), x0_for(library), callbacks=[check])
    assert len(seen) == es.n_generations_
    assert all(math.isfinite(s) and s > 0 for s in seen)
    assert es.stop_reason_ in _allowed_reasons(name), es.stop_reason_
    x = to_numpy(es.x_)
    assert x.shape == (DIM,) and np.all(np.isfinite(x))
    if not strategy_class(name).needs_behaviours:
        assert math.isfinite(es.fun_)
    return es


def has_criteria(name: str) -> bool:
    s = strategy_class(name)()
    return bool(s.stop(s.init(np.zeros(DIM), random_state=0)))


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("name", STRATEGIES)
def test_flat_objective_terminates(name: str, library: str) -> None:
    if strategy_class(name).needs_behaviours:
        # no fitness: only budgets, tolx and the strategy's own criteria apply (none here)
        es = _fit(name, "flat", library, BEHAVIOUR_FLAT_GENERATIONS)
        if not has_criteria(name):
            assert es.stop_reason_ == "maxiter" and es.n_generations_ == BEHAVIOUR_FLAT_GENERATIONS
        return
    es = _fit(name, "flat", library, DEFAULT_GENERATIONS)
    assert es.stop_reason_ != "maxiter", "a flat objective must stop on a criterion, not the budget"
    assert es.stop_reason_ == "tolfun" and es.n_generations_ == 1
    assert es.fun_ == 1.0
    # without tolfun the state stays finite over more flat generations
    es = _fit(name, "flat", library, 30, tolfun=None)
    if has_criteria(name):
        assert es.stop_reason_ == "tolflatfitness" and es.n_generations_ == 2
    else:
        assert es.stop_reason_ == "maxiter" and es.n_generations_ == 30
    assert es.fun_ == 1.0


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("name", [n for n in STRATEGIES if has_criteria(n)])
def test_strategies_with_criteria_terminate_on_rosenbrock(name: str, library: str) -> None:
    es = _fit(name, "rosenbrock", library, CMA_ROSENBROCK_GENERATIONS)
    assert es.stop_reason_ != "maxiter", f"no criterion fired in {CMA_ROSENBROCK_GENERATIONS} generations"
    assert es.n_generations_ < CMA_ROSENBROCK_GENERATIONS
    assert es.fun_ < rosenbrock(np.full(DIM, 3.0))  # it made progress before stopping


@pytest.mark.slow
@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("name", STRATEGIES)
def test_rosenbrock_10000_generations_terminates_with_a_documented_reason(name: str, library: str) -> None:
    es = _fit(name, "rosenbrock", library, SLOW_GENERATIONS)
    assert es.n_generations_ <= SLOW_GENERATIONS
    if has_criteria(name):
        assert es.stop_reason_ != "maxiter"
