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

Every cell runs at least ``MIN_ROUNDS`` (31) rounds, and the two libraries' rounds alternate
in one benchmark (evosax's round is the untimed ``setup`` of each evostrat round), each timed
on the wall clock (``time.perf_counter``); the process is bound to one CPU
(``benchmarks/_single_thread.py``), so wall and CPU time agree. Both rows travel in that benchmark's ``extra_info``
with their own medians (``record(..., times=...)``), so the table's ratio is a ratio of
medians of interleaved rounds, which a load that drifts during the run shifts for both. ``benchmarks/jax_vs_evosax_interleaved.py`` does the same outside pytest,
for chosen cells.

Compilation is timed apart: ``jax.jit(loop).lower(state).compile()``, stored as
``extra_info["compile_s"]`` (the report lists it), and excluded from the rounds.

Suites: ``jax-scan`` on the CPU, ``jax-gpu`` on the first GPU (skipped unless
JAX sees one: run with ``JAX_PLATFORMS=cuda,cpu``).

Run: ``python -m pytest benchmarks/test_matrix_jax.py --benchmark-only``.
"""

from __future__ import annotations

import importlib.util
import math
import time
from typing import Any, Callable

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


def _compiled(jax: Any, body: Any, carry0: Any, length: int) -> tuple[Any, float]:
    """The jitted scan of ``body`` over ``length`` generations, compiled, and the compile seconds."""
    loop = jax.jit(lambda carry: jax.lax.scan(body, carry, None, length=length)[0])
    start = time.perf_counter()
    compiled = loop.lower(carry0).compile()
    return compiled, time.perf_counter() - start


def _timed(run: Callable[[], Any], times: list[float]) -> Callable[[], None]:
    """``run`` that appends its wall seconds (``time.perf_counter``) to ``times``."""
    def timed() -> None:
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return timed


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


def evostrat_loop(jax: Any, name: str, dim: int, factor: int) -> tuple[Any, Any, Any, int]:
    """evostrat's strategy, scan body, initial state and generations per round for one cell."""
    jnp = jax.numpy
    s = make_strategy(name, dim, factor)

    def body(state: Any, _: Any) -> tuple[Any, None]:
        X, state = s.ask(state)
        return s.tell(state, X, jnp.sum(X * X, axis=1)), None

    return s, body, s.init(jnp.ones(dim, dtype=jnp.float32), random_state=0), _scan_length(name, dim, factor)


def evosax_loop(jax: Any, name: str, dim: int, s: Any) -> tuple[Any, Any]:
    """evosax's scan body for evostrat's strategy ``s`` (same popsize and initial std) and its carry."""
    jnp = jax.numpy
    es, params = _evosax(name, s.resolved_popsize(dim), dim, s)
    key = jax.random.key(0)
    state0 = es.init(key, jnp.ones(dim, dtype=jnp.float32), params)

    def body(carry: Any, _: Any) -> tuple[Any, None]:
        state, key = carry
        key, k_ask, k_tell = jax.random.split(key, 3)
        X, state = es.ask(k_ask, state, params)
        state, _ = es.tell(k_tell, X, jnp.sum(X * X, axis=1), state, params)
        return (state, key), None

    return body, (state0, key)


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("name, dim, factor", cells())
def test_jax_scan(benchmark: Any, record: Any, name: str, dim: int, factor: int,
                  platform: str) -> None:
    """evostrat's compiled loop, its rounds interleaved with evosax's (when installed)."""
    jax, device = _device(platform)
    have_evosax = importlib.util.find_spec("evosax") is not None
    suite = f"jax-{'scan' if platform == 'cpu' else 'gpu'}"
    benchmark.group = f"{suite} {case(name, dim, factor)}"
    with jax.default_device(device):
        s, body, state0, length = evostrat_loop(jax, name, dim, factor)
        ours, compile_s = _compiled(jax, body, state0, length)
        ours_times: list[float] = []
        peer_times: list[float] = []
        run_ours = _timed(lambda: jax.block_until_ready(ours(state0)), ours_times)
        run_peer: Callable[[], None] | None = None
        if have_evosax:
            peer_body, peer0 = evosax_loop(jax, name, dim, s)
            peer, peer_compile_s = _compiled(jax, peer_body, peer0, length)
            run_peer = _timed(lambda: jax.block_until_ready(peer(peer0)), peer_times)
        # Warm-up, then one timed pair fits the rounds to the budget (at least MIN_ROUNDS).
        for run in (run_ours, run_peer):
            if run is not None:
                run()
                run()
        once = max(ours_times[-1] + (peer_times[-1] if run_peer else 0.0), 1e-7)
        ours_times.clear()
        peer_times.clear()
        rounds = min(MAX_ROUNDS, max(MIN_ROUNDS, math.floor(BUDGET_S / once)))
        # Each timed round of evostrat follows one of evosax (the untimed setup): the two alternate.
        setup = (lambda: run_peer()) if run_peer is not None else None  # noqa: E731
        benchmark.pedantic(run_ours, setup=setup, rounds=rounds, iterations=1)
    benchmark.extra_info["compile_s"] = compile_s
    record(suite, case(name, dim, factor), "evostrat", benchmark, per_round=length, strategy=name,
           dim=dim, popsize=s.resolved_popsize(dim), compile_s=compile_s, times=ours_times,
           clock="perf_counter")
    if run_peer is not None:
        record(suite, case(name, dim, factor), "evosax", benchmark, per_round=length, strategy=name,
               dim=dim, popsize=s.resolved_popsize(dim), compile_s=peer_compile_s,
               times=peer_times, clock="perf_counter")
