"""Batched fits (issue 19): 64 runs of CMA-ES on the 10-D sphere, 200 generations each.

- ``batch-jax``: :func:`evostrat.fit_batch` (the driver's compiled chunk ``vmap``-ed over
  the 64 runs, with 64 fitted ``ES`` objects and their histories at the end) against a
  hand-written ``jax.jit(jax.vmap(...))`` of evosax's ``CMA_ES`` over 64 seeds (``lax.scan``
  over 200 generations, nothing recorded but the best value). Target: at most 1.0x. The same
  pair at d = 100 with 16 runs (``test_batch_jax_lazy_eigen``), where C is decomposed every
  2nd generation.
- ``batch-jax-vs-loop``: the same batch against a Python loop of 64 ``ES.fit`` calls
  (each on the compiled loop, its program compiled once). Target: at most 0.05x (20x faster).
- ``batch-torch-vs-loop``: the same on torch CPU: ``fit_batch`` advances the 64 runs in lockstep
  (:mod:`evostrat.run.batch_torch`: the states stacked, ``ask``, ``tell`` and the read-outs
  by CMA-ES's stack kernel :mod:`evostrat.kernels.cma_torch_stack`, one objective call per
  generation for all runs) against the loop. Target: at most 0.05x. The same for
  sep-CMA-ES (the kernel's diagonal model), no target.

Every criterion but the budget is off, so each run does exactly 200 generations, as evosax's.
Compilation happens in the warm-up round. Every round starts after ``gc.collect()`` (pytest-benchmark's
``setup``, not timed), so that no round pays for collecting an earlier round's garbage.

Run: ``python -m pytest benchmarks/test_batch_speed.py -p no:cacheprovider``. The same rounds
interleaved in one process, CPU time, many rounds: ``benchmarks/batch_interleaved.py``.
"""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import pytest

from evostrat import ES, fit_batch

RUNS, GENERATIONS, DIM = 64, 200, 10
ROUNDS = 3
CASE = f"cma_es d={DIM} {RUNS} runs x {GENERATIONS} generations"


def _case(name: str) -> str:
    return CASE.replace("cma_es", name, 1)


SETTINGS = dict(max_generations=GENERATIONS, sigma0=1.0, tolfun=None, tolx=None, tolfunhist=None,
                tolstagnation=None, tolflatfitness=None,
                strategy_options=dict(tolconditioncov=None, tolupsigma=None, tolfacupx=None, noeffectaxis=False,
                                      noeffectcoord=False))


def _sphere(X: Any) -> Any:
    return (X * X).sum(axis=1)


def _batched(x0: Any, name: str = "cma_es", runs: int = RUNS) -> Any:
    res = fit_batch(ES(name, **SETTINGS), _sphere, x0, seeds=runs)
    assert (res.n_generations == GENERATIONS).all()
    return res


def _batched_torch(x0: Any, name: str = "cma_es") -> None:
    res = _batched(x0, name)
    assert res.fast_path == "batched"  # the lockstep path, not the loop


def _loop(x0: Any, name: str = "cma_es") -> None:
    for seed in range(RUNS):
        ES(name, random_state=seed, **SETTINGS).fit(_sphere, x0)


def _collect() -> None:
    """A round's untimed setup: collect the garbage earlier rounds left (their fitted runs)."""
    gc.collect()


def _time(benchmark: Any, fn: Any) -> None:
    benchmark.pedantic(fn, setup=_collect, rounds=ROUNDS, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("suite", ["batch-jax", "batch-jax-vs-loop"])
def test_batch_jax_evostrat(benchmark: Any, record: Any, require: Any, suite: str) -> None:
    jax = require("jax")
    x0 = jax.numpy.ones(DIM)
    benchmark.group = suite
    _time(benchmark, lambda: _batched(x0))
    record(suite, CASE, "evostrat", benchmark, strategy="cma_es", dim=DIM,
           target=1.0 if suite == "batch-jax" else 0.05)


def evosax_vmap_round(jax: Any, dim: int = DIM, runs: int = RUNS) -> Any:
    """The evosax round: ``jax.jit(jax.vmap(...))`` of evosax's ``CMA_ES`` over ``RUNS`` seeds
    (``lax.scan`` over ``GENERATIONS``, nothing recorded but the best value), as a callable that
    runs it once and waits for the result (compiled on its first call)."""
    jnp = jax.numpy
    from evosax.algorithms import CMA_ES

    from evostrat.strategies.cma_es import CMAES

    es = CMA_ES(population_size=CMAES().resolved_popsize(dim), solution=jnp.zeros(dim))
    params = es.default_params.replace(std_init=1.0)

    def one(key: Any) -> Any:
        key, k_init = jax.random.split(key)
        state = es.init(k_init, jnp.ones(dim), params)

        def body(carry: Any, _: Any) -> tuple[Any, Any]:
            state, key = carry
            key, k_ask, k_tell = jax.random.split(key, 3)
            X, state = es.ask(k_ask, state, params)
            f = jnp.sum(X * X, axis=1)
            state, _ = es.tell(k_tell, X, f, state, params)
            return (state, key), f.min()

        (state, _), best = jax.lax.scan(body, (state, key), None, length=GENERATIONS)
        return state.mean, best.min()

    run = jax.jit(jax.vmap(one))
    keys = jax.random.split(jax.random.key(0), runs)
    return lambda: jax.block_until_ready(run(keys))


def batch_round(x0: Any, name: str = "cma_es") -> Any:
    """The evostrat round: ``fit_batch`` of the ``RUNS`` runs of ``name`` from ``x0`` (a callable)."""
    return lambda: _batched(x0, name)


def loop_round(x0: Any, name: str = "cma_es") -> Any:
    """The loop round: ``RUNS`` calls of ``ES.fit`` of ``name`` from ``x0`` (a callable)."""
    return lambda: _loop(x0, name)


def test_batch_jax_evosax_vmap(benchmark: Any, record: Any, require: Any) -> None:
    jax = require("jax")
    require("evosax")
    benchmark.group = "batch-jax"
    _time(benchmark, evosax_vmap_round(jax))
    record("batch-jax", CASE, "evosax", benchmark, strategy="cma_es", dim=DIM, target=1.0)


#: A larger case where CMA-ES decomposes C every 2nd generation (its lazy gap at d = 100): the
#: lockstep chunk decomposes when a running run is due, evosax's vmap in every generation.
LAZY_DIM, LAZY_RUNS = 100, 16
LAZY_CASE = f"cma_es d={LAZY_DIM} {LAZY_RUNS} runs x {GENERATIONS} generations"


@pytest.mark.parametrize("who", ["evostrat", "evosax"])
def test_batch_jax_lazy_eigen(benchmark: Any, record: Any, require: Any, who: str) -> None:
    jax = require("jax")
    if who == "evosax":
        require("evosax")
    x0 = jax.numpy.ones(LAZY_DIM)
    benchmark.group = "batch-jax d=100"
    run = evosax_vmap_round(jax, LAZY_DIM, LAZY_RUNS) if who == "evosax" else lambda: _batched(x0, runs=LAZY_RUNS)
    _time(benchmark, run)
    record("batch-jax", LAZY_CASE, who, benchmark, strategy="cma_es", dim=LAZY_DIM,
           target=1.0 if who == "evostrat" else None)


def test_batch_jax_loop(benchmark: Any, record: Any, require: Any) -> None:
    jax = require("jax")
    x0 = jax.numpy.ones(DIM)
    benchmark.group = "batch-jax-vs-loop"
    _time(benchmark, lambda: _loop(x0))
    record("batch-jax-vs-loop", CASE, "ES.fit loop", benchmark, strategy="cma_es", dim=DIM, target=0.05)


@pytest.mark.parametrize("name", ["cma_es", "sep_cma_es"])
@pytest.mark.parametrize("how", ["batch", "loop"])
def test_batch_torch(benchmark: Any, record: Any, require: Any, how: str, name: str) -> None:
    torch = require("torch")
    x0 = torch.ones(DIM, dtype=torch.float64)
    benchmark.group = f"batch-torch-vs-loop {name}"
    _time(benchmark, (lambda: _batched_torch(x0, name)) if how == "batch" else (lambda: _loop(x0, name)))
    record("batch-torch-vs-loop", _case(name), "evostrat" if how == "batch" else "ES.fit loop", benchmark,
           strategy=name, dim=DIM, target=0.05 if name == "cma_es" else None)


def test_batch_equals_loop_values() -> None:
    """The batch benchmarked is the loop's runs (numpy: bit for bit)."""
    res = fit_batch(ES("cma_es", **{**SETTINGS, "max_generations": 5}), _sphere, np.ones(DIM), seeds=2)
    alone = ES("cma_es", random_state=1, **{**SETTINGS, "max_generations": 5}).fit(_sphere, np.ones(DIM))
    assert res.fun[1] == alone.fun_
