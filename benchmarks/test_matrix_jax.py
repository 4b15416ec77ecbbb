"""The matrix on JAX float32, whole loop compiled, against evosax's ``lax.scan`` loop.

One round runs ``G`` generations in one call of a jitted ``jax.lax.scan`` (the
time per generation is the round's time over ``G``), state carried into the
scan, the vectorised sphere traced in:

- evostrat: ``X, state = s.ask(state)``; ``state = s.tell(state, X, f(X))``;
- evosax 0.3.2: ``X, state = es.ask(k1, state, params)``;
  ``state, _ = es.tell(k2, X, f(X), state, params)`` with the key split in the
  body, same popsize and initial std. Peers: SNES -> ``SNES``, OpenAI-ES ->
  ``Open_ES`` (Adam 0.01, constant std 0.1, antithetic), PGPE -> ``PGPE``
  (ClipUp 0.15, std lr 0.1, max change 0.2), xNES -> ``xNES``, sep-CMA-ES ->
  ``Sep_CMA_ES``, CMA-ES -> ``CMA_ES``.

For CMA-ES the scan covers whole gaps between evostrat's lazy decompositions
(every round starts from the same state; evosax decomposes every generation).

Every cell runs at least ``MIN_ROUNDS`` (31) rounds. The two libraries' rounds are not
interleaved here; ``benchmarks/jax_vs_evosax_interleaved.py`` alternates them in one process
and reports CPU-time ratios (what BENCHMARKS.md's JAX rows of issue 17 quote).

Compilation is timed apart: ``jax.jit(loop).lower(state).compile()``, stored as
``extra_info["compile_s"]`` (the report lists it), and excluded from the rounds.

Suites: ``jax-scan`` on the CPU, ``jax-gpu`` on the first GPU (skipped unless
JAX sees one: run with ``JAX_PLATFORMS=cuda,cpu``).

Run: ``python -m pytest benchmarks/test_matrix_jax.py --benchmark-only``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from _matrix import BUDGET_S, MAX_ROUNDS, block, case, cells, make_strategy

SCAN_LENGTH = {10: 100, 100: 50, 1000: 8, 100_000: 4}
#: Fewest timed rounds per cell: the goal is a ratio of medians over at least 30 rounds.
MIN_ROUNDS = 31
PLATFORMS = [pytest.param("cpu", id="cpu"), pytest.param("gpu", id="gpu")]


def _device(platform: str) -> tuple[Any, Any]:
    jax = pytest.importorskip("jax")
    try:
        devices = jax.devices(platform)
    except RuntimeError:
        devices = []
    if not devices:
        pytest.skip(f"JAX sees no {platform} device (JAX_PLATFORMS={platform} or cuda,cpu)")
    return jax, devices[0]


def _scan_length(name: str, dim: int, factor: int = 1) -> int:
    """Generations per round; for CMA-ES whole decomposition gaps.

    Every round restarts from the same state, so a scan shorter than evostrat's
    decomposition gap (8 generations at d = 1000) would never decompose.
    """
    base = 4 if name in ("xnes", "cma_es") and dim >= 1000 else SCAN_LENGTH[dim]
    gap = block(name, dim, factor)
    return gap * -(-base // gap)


def _timed_loop(benchmark: Any, jax: Any, body: Any, carry0: Any, length: int) -> float:
    """Compile the scan of ``body`` (returns the seconds), then time its rounds."""
    loop = jax.jit(lambda carry: jax.lax.scan(body, carry, None, length=length)[0])
    start = time.perf_counter()
    compiled = loop.lower(carry0).compile()
    compile_s = time.perf_counter() - start
    run = lambda: jax.block_until_ready(compiled(carry0))  # noqa: E731
    run()  # warm-up, then one timed call: rounds fitted to the budget, at least MIN_ROUNDS
    start = time.perf_counter()
    run()
    once = max(time.perf_counter() - start, 1e-7)
    rounds = min(MAX_ROUNDS, max(MIN_ROUNDS, math.floor(BUDGET_S / once)))
    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)
    return compile_s


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("name, dim, factor", cells())
def test_jax_scan_evostrat(benchmark: Any, record: Any, name: str, dim: int, factor: int,
                           platform: str) -> None:
    jax, device = _device(platform)
    jnp = jax.numpy
    s = make_strategy(name, dim, factor)
    length = _scan_length(name, dim, factor)

    def body(state: Any, _: Any) -> tuple[Any, None]:
        X, state = s.ask(state)
        return s.tell(state, X, jnp.sum(X * X, axis=1)), None

    with jax.default_device(device):
        state0 = s.init(jnp.ones(dim, dtype=jnp.float32), random_state=0)
        suite = f"jax-{'scan' if platform == 'cpu' else 'gpu'}"
        benchmark.group = f"{suite} {case(name, dim, factor)}"
        compile_s = _timed_loop(benchmark, jax, body, state0, length)
    benchmark.extra_info["compile_s"] = compile_s
    record(suite, case(name, dim, factor), "evostrat", benchmark, per_round=length, strategy=name,
           dim=dim, popsize=s.resolved_popsize(dim), compile_s=compile_s)


def _evosax(name: str, lam: int, dim: int, s: Any) -> tuple[Any, Any]:
    import jax.numpy as jnp
    import optax
    from evosax import algorithms as ea
    from evosax.core.optimizer import clipup

    solution = jnp.zeros(dim, dtype=jnp.float32)
    if name == "openai_es":
        es = ea.Open_ES(population_size=lam, solution=solution, optimizer=optax.adam(s.lr),
                        std_schedule=optax.constant_schedule(s.sigma0))
        return es, es.default_params
    if name == "pgpe":
        es = ea.PGPE(population_size=lam, solution=solution,
                     optimizer=clipup(learning_rate=s.center_learning_rate,
                                      max_velocity=2 * s.center_learning_rate))
        params = es.default_params.replace(std_init=s.sigma0, std_lr=s.stdev_learning_rate,
                                           std_max_change=s.stdev_max_change)
        return es, params
    cls = {"snes": ea.SNES, "xnes": ea.xNES, "sep_cma_es": ea.Sep_CMA_ES, "cma_es": ea.CMA_ES}[name]
    es = cls(population_size=lam, solution=solution)
    return es, es.default_params.replace(std_init=s.sigma0)


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("name, dim, factor", cells())
def test_jax_scan_evosax(benchmark: Any, record: Any, require: Any, name: str, dim: int,
                         factor: int, platform: str) -> None:
    jax, device = _device(platform)
    require("evosax")
    jnp = jax.numpy
    s = make_strategy(name, dim, factor)
    lam = s.resolved_popsize(dim)
    length = _scan_length(name, dim, factor)

    with jax.default_device(device):
        es, params = _evosax(name, lam, dim, s)
        key = jax.random.key(0)
        state0 = es.init(key, jnp.ones(dim, dtype=jnp.float32), params)

        def body(carry: Any, _: Any) -> tuple[Any, None]:
            state, key = carry
            key, k_ask, k_tell = jax.random.split(key, 3)
            X, state = es.ask(k_ask, state, params)
            state, _ = es.tell(k_tell, X, jnp.sum(X * X, axis=1), state, params)
            return (state, key), None

        suite = f"jax-{'scan' if platform == 'cpu' else 'gpu'}"
        benchmark.group = f"{suite} {case(name, dim, factor)}"
        compile_s = _timed_loop(benchmark, jax, body, (state0, key), length)
    benchmark.extra_info["compile_s"] = compile_s
    record(suite, case(name, dim, factor), "evosax", benchmark, per_round=length, strategy=name,
           dim=dim, popsize=lam, compile_s=compile_s)
