"""Dispatch overhead per generation of each evaluator, and bytes shipped per generation.

- Overhead: one ``evaluate`` of 256 candidates of dimension 1000 (a SNES
  population, float64) with a trivial objective (``x[0]``), so the time is the
  evaluator's own: slicing or rebuilding candidates, serialisation, transport,
  scheduling, collecting values. Pools and the Ray cluster have 2 workers and
  are warm (started, objective shipped) before timing.
- Bytes: what one generation puts on the wire at d = 100,000 and popsize 256,
  plain (the population) vs seed-compressed (key, mean, sigma), measured as the
  pickled size of each submitted payload (executor) and of the objects put in
  Ray's store plus the task arguments. Plain is ``8 n d`` = 204.8 MB.

Run with ``python -m pytest benchmarks/test_evaluation_overhead.py -p no:cacheprovider``;
not part of the default test run. ``-k "not d100k"`` skips the large case.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from evostrat.asktell import AskTell
from evostrat.backends import get_backend
from evostrat.evaluation import SerialEvaluator, VectorizedEvaluator
from evostrat.evaluators import ExecutorEvaluator
from evostrat.evaluators.worker import WorkerOptions, dumps
from evostrat.plugins import registry
from evostrat.seeded import population_seed

NUMPY = get_backend("numpy")
POPSIZE, DIM, BIG_DIM = 256, 1000, 100_000
SUITE = "evaluation overhead"


def _objectives() -> tuple[Any, Any]:
    # Closures travel by value (cloudpickle): Ray workers need not import this file.
    def trivial(x: Any) -> float:
        return float(x[0])

    def trivial_rows(X: Any) -> Any:
        return X[:, 0].copy()

    trivial_rows.vectorized = True  # type: ignore[attr-defined]
    return trivial, trivial_rows


trivial, trivial_rows = _objectives()


def generation(dim: int, strategy: str = "snes") -> tuple[np.ndarray, Any]:
    runner = AskTell(registry("strategies")[strategy](popsize=POPSIZE, sigma0=0.5),
                     np.zeros(dim), random_state=0)
    seed = population_seed(runner)
    return runner.ask(), seed


@pytest.fixture(scope="module")
def population() -> tuple[np.ndarray, Any]:
    return generation(DIM)


@pytest.fixture(scope="module")
def ray_cluster() -> Any:
    ray = pytest.importorskip("ray")
    from evostrat.evaluators.ray import start_local_cluster

    if not ray.is_initialized():
        start_local_cluster(2, log_to_driver=False, object_store_memory=700 * 2**20,
                            configure_logging=False)
    yield ray
    ray.shutdown()


def _time(benchmark: Any, record: Any, name: str, evaluate: Any, rounds: int = 30) -> None:
    for _ in range(3):  # warm-up: pools started, objective shipped and unpickled, JIT
        evaluate()
    benchmark.group = f"{SUITE}: {POPSIZE} x {DIM}, trivial objective, 2 workers"
    values = benchmark.pedantic(evaluate, rounds=rounds, iterations=1, warmup_rounds=1)
    assert values.shape == (POPSIZE,)
    record(SUITE, f"{POPSIZE}x{DIM}", f"evostrat-{name}", benchmark)


def test_overhead_serial(benchmark, record, population):
    X, _ = population
    _time(benchmark, record, "serial", lambda: SerialEvaluator().evaluate(trivial, X, NUMPY))


def test_overhead_vectorized(benchmark, record, population):
    X, _ = population
    ev = VectorizedEvaluator()
    _time(benchmark, record, "vectorized", lambda: ev.evaluate(trivial_rows, X, NUMPY))


@pytest.mark.parametrize("seeded", [False, True], ids=["plain", "seeded"])
def test_overhead_executor(benchmark, record, population, seeded):
    X, seed = population
    ev = ExecutorEvaluator(max_workers=2, seeded=seeded)
    try:
        _time(benchmark, record, f"executor-{'seeded' if seeded else 'plain'}",
              lambda: ev.evaluate(trivial, X, NUMPY, seed=seed))
        benchmark.extra_info.update(ev.last_shipped_)
    finally:
        ev.close()


@pytest.mark.parametrize("seeded", [False, True], ids=["plain", "seeded"])
def test_overhead_ray(benchmark, record, population, ray_cluster, seeded):
    from evostrat.evaluators import RayEvaluator

    X, seed = population
    ev = RayEvaluator(seeded=seeded)
    _time(benchmark, record, f"ray-{'seeded' if seeded else 'plain'}",
          lambda: ev.evaluate(trivial, X, NUMPY, seed=seed))
    benchmark.extra_info.update(ev.last_shipped_)


# -- bytes per generation at d = 100,000 -----------------------------------------------------
def _executor_payloads(X: np.ndarray, seed: Any, seeded: bool, workers: int = 2) -> int:
    """Serialised bytes of every ``submit`` of one generation (cloudpickle, as loky sends)."""
    from evostrat.evaluators.remote import chunk_bounds

    options = WorkerOptions()
    total = 0
    for start, stop in chunk_bounds(X.shape[0], n_chunks=workers):
        source = seed if seeded else X[start:stop]
        total += len(dumps((trivial, source, start, stop, start, options)))
    return total


@pytest.mark.parametrize("strategy", ["openai_es", "snes"])
def test_bytes_per_generation_d100k(benchmark, strategy):
    X, seed = generation(BIG_DIM, strategy)
    plain = _executor_payloads(X, seed, seeded=False)
    compressed = _executor_payloads(X, seed, seeded=True)
    ray_plain = len(pickle.dumps(X, protocol=5))  # the one object put per generation
    ray_seeded = len(pickle.dumps(seed, protocol=5))
    benchmark.extra_info.update(
        plain_executor_bytes=plain, seeded_executor_bytes=compressed,
        plain_ray_put_bytes=ray_plain, seeded_ray_put_bytes=ray_seeded,
    )
    print(f"\n{strategy} d={BIG_DIM} n={POPSIZE}: executor plain {plain / 1e6:.1f} MB, "
          f"seeded {compressed / 1e6:.3f} MB; ray put plain {ray_plain / 1e6:.1f} MB, "
          f"seeded {ray_seeded / 1e6:.3f} MB")
    assert plain > 200e6 and ray_plain > 200e6
    assert compressed < plain / 50 and ray_seeded < 2e6
    # time a worker's share of the rebuild (half the population), the price of compression
    benchmark.group = f"{SUITE}: rebuild 128 of 256 candidates at d = {BIG_DIM}"
    benchmark.pedantic(lambda: seed.rows(0, POPSIZE // 2), rounds=3, iterations=1)


@pytest.mark.parametrize("seeded", [False, True], ids=["plain", "seeded"])
def test_ray_generation_d100k(benchmark, ray_cluster, seeded):
    """A whole generation at d = 100,000 over Ray: 205 MB through the object store, or seeds."""
    from evostrat.evaluators import RayEvaluator

    X, seed = generation(BIG_DIM, "openai_es")
    ev = RayEvaluator(seeded=seeded)
    ev.evaluate(trivial, X, NUMPY, seed=seed)  # warm-up
    benchmark.group = f"{SUITE}: ray generation at d = {BIG_DIM}, popsize {POPSIZE}"
    values = benchmark.pedantic(lambda: ev.evaluate(trivial, X, NUMPY, seed=seed),
                                rounds=3, iterations=1)
    assert np.array_equal(values, X[:, 0])
