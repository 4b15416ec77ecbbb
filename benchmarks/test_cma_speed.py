"""Per-generation overhead of CMA-ES against pycma, cmaes and evosax.

One benchmark round is one generation (ask, evaluate the sphere, tell) at the
default population ``4 + floor(3 ln d)``, for d = 10, 100, 1000:

- ``numpy``: evostrat's pure ``ask``/``tell`` on numpy float64 against pycma
  (``cma``, ``ask``/``tell`` of the population) and ``cmaes`` (``CMA``, one
  ``ask`` per candidate then ``tell``) in the same session, in two ways:
  ``numpy`` rounds of one generation, whose median is the *typical* generation
  (pycma and evostrat decompose C lazily: every 2 generations at d = 100, every
  8-9 at d = 1000, so at d = 1000 the median excludes the decomposition and at
  d = 100 it falls between the two kinds of generation), and ``numpy-block8``
  rounds of 8 generations, whose median per generation is the *amortised* cost
  including the decompositions. cmaes decomposes every generation: its
  single-generation rounds are its amortised cost too (at d = 1000 a round
  takes seconds, so it runs only those).
- ``numpy`` at d = 10,000: evostrat alone (an eigendecomposition of C takes seconds
  there, so pycma's and cmaes's generations are not run). From ``FACTOR_DIM = 256``
  dimensions evostrat's numpy CMA-ES keeps C as a factor (``covariance="factor"``,
  :mod:`evostrat.kernels.cma_factor`) and never decomposes it: its d = 1000 and
  d = 10,000 rows time that model; the d = 10 and 100 rows the decomposed one.
- ``jax-scan``: the whole loop compiled, ``jax.lax.scan`` over the pure
  ``ask``/``tell`` with the sphere traced in, against evosax's ``CMA_ES`` in the
  same kind of ``lax.scan``; a round runs ``G`` generations and the time is
  divided by ``G``. evosax decomposes C every generation.

Targets (issue 3): numpy at most 0.5x the faster peer at each d; JAX at most
1.0x evosax at d = 10 and 100 and at most 0.3x at d = 1000. Issue 17: numpy d = 10,000
under 1 s per generation.

Run: ``python -m pytest benchmarks/test_cma_speed.py -p no:cacheprovider``
(the end-of-session table prints medians, means and ratios).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from evostrat.problems import sphere
from evostrat.strategies.cma_es import CMAES

DIMS = [10, 100, 1000]
ROUNDS = {10: 400, 100: 120, 1000: 40}
SLOW_PEER_ROUNDS = {10: 400, 100: 60, 1000: 3}  # cmaes decomposes every generation
SCAN_LENGTH = {10: 500, 100: 100, 1000: 16}
SCAN_ROUNDS = {10: 7, 100: 5, 1000: 3}


def _case(dim: int) -> str:
    """Row label in the tables (benchmarks/report.py), apart from the matrix's rows."""
    return f"cma_es d={dim} pop=1x (test_cma_speed)"


def _sphere_one(x: np.ndarray) -> float:
    return float(x @ x)


# -- numpy ---------------------------------------------------------------------------------------
BLOCKS = [1, 8]


def _suite(block: int) -> str:
    return "numpy" if block == 1 else f"numpy-block{block}"


def _rounds(dim: int, block: int) -> int:
    return max(5, ROUNDS[dim] // block)


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("dim", DIMS)
def test_numpy_evostrat(benchmark: Any, record: Any, dim: int, block: int) -> None:
    s = CMAES(sigma0=1.0)
    box = {"state": s.init(np.ones(dim), random_state=0)}

    def generations() -> None:
        state = box["state"]
        for _ in range(block):
            X, state = s.ask(state)
            state = s.tell(state, X, sphere(X))
        box["state"] = state

    benchmark.group = f"{_suite(block)} d={dim}"
    benchmark.pedantic(generations, rounds=_rounds(dim, block), iterations=1, warmup_rounds=3)
    record(_suite(block), _case(dim), "evostrat", benchmark, per_round=block,
           strategy="cma_es", dim=dim)


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("dim", DIMS)
def test_numpy_pycma(benchmark: Any, record: Any, require: Any, dim: int, block: int) -> None:
    cma = require("cma")
    es = cma.CMAEvolutionStrategy(np.ones(dim), 1.0, {"verbose": -9, "seed": 1})

    def generations() -> None:
        for _ in range(block):
            X = es.ask()
            es.tell(X, [_sphere_one(x) for x in X])

    benchmark.group = f"{_suite(block)} d={dim}"
    benchmark.pedantic(generations, rounds=_rounds(dim, block), iterations=1, warmup_rounds=3)
    record(_suite(block), _case(dim), "pycma", benchmark, per_round=block,
           strategy="cma_es", dim=dim)


def test_numpy_evostrat_10000(benchmark: Any, record: Any) -> None:
    """d = 10,000 (popsize 31), the factor model: a few single generations."""
    dim = 10_000
    s = CMAES(sigma0=1.0)
    box = {"state": s.init(np.ones(dim), random_state=0)}

    def generation() -> None:
        X, state = s.ask(box["state"])
        box["state"] = s.tell(state, X, sphere(X))

    benchmark.group = f"numpy d={dim}"
    benchmark.pedantic(generation, rounds=3, iterations=1, warmup_rounds=1)
    record("numpy", _case(dim), "evostrat", benchmark, strategy="cma_es", dim=dim)


@pytest.mark.parametrize("dim", DIMS)
def test_numpy_cmaes(benchmark: Any, record: Any, require: Any, dim: int) -> None:
    cmaes = require("cmaes")
    opt = cmaes.CMA(mean=np.ones(dim), sigma=1.0, seed=1)

    def generation() -> None:
        solutions = []
        for _ in range(opt.population_size):
            x = opt.ask()
            solutions.append((x, _sphere_one(x)))
        opt.tell(solutions)

    benchmark.group = f"numpy d={dim}"
    benchmark.pedantic(generation, rounds=SLOW_PEER_ROUNDS[dim], iterations=1, warmup_rounds=1)
    for block in BLOCKS:  # a decomposition every generation: typical == amortised
        record(_suite(block), _case(dim), "cmaes", benchmark, strategy="cma_es", dim=dim)


# -- JAX, whole loop compiled -------------------------------------------------------------------------
@pytest.mark.parametrize("dim", DIMS)
def test_jax_scan_evostrat(benchmark: Any, record: Any, require: Any, dim: int) -> None:
    jax = require("jax")
    jnp = jax.numpy
    s = CMAES(sigma0=1.0)
    length = SCAN_LENGTH[dim]

    def body(state: Any, _: Any) -> tuple[Any, None]:
        X, state = s.ask(state)
        return s.tell(state, X, jnp.sum(X * X, axis=1)), None

    run = jax.jit(lambda state: jax.lax.scan(body, state, None, length=length)[0])
    state0 = s.init(jnp.ones(dim), random_state=0)
    jax.block_until_ready(run(state0))  # compile outside the timing
    benchmark.group = f"jax-scan d={dim}"
    benchmark.pedantic(lambda: jax.block_until_ready(run(state0)), rounds=SCAN_ROUNDS[dim],
                       iterations=1, warmup_rounds=1)
    record("jax-scan", _case(dim), "evostrat", benchmark, per_round=length,
           strategy="cma_es", dim=dim)


@pytest.mark.parametrize("dim", DIMS)
def test_jax_scan_evosax(benchmark: Any, record: Any, require: Any, dim: int) -> None:
    jax = require("jax")
    require("evosax")
    from test_matrix_jax import evosax_loop

    body, (state0, key) = evosax_loop(jax, "cma_es", dim, CMAES(sigma0=1.0))
    length = SCAN_LENGTH[dim]

    run = jax.jit(lambda state, key: jax.lax.scan(body, (state, key), None, length=length)[0])
    jax.block_until_ready(run(state0, key))
    benchmark.group = f"jax-scan d={dim}"
    benchmark.pedantic(lambda: jax.block_until_ready(run(state0, key)), rounds=SCAN_ROUNDS[dim],
                       iterations=1, warmup_rounds=1)
    record("jax-scan", _case(dim), "evosax", benchmark, per_round=length,
           strategy="cma_es", dim=dim)
