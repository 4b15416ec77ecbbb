"""Dispatch overhead per generation of each evaluator, and bytes shipped per generation.

- Overhead: one ``evaluate`` of 256 candidates of dimension 1000 (a SNES
  population, float64) with a trivial objective (``x[0]``), so the time is the
  evaluator's own: slicing or rebuilding candidates, serialisation, transport,
  scheduling, collecting values. Pools and the Ray cluster have 2 workers and
  are warm (started, objective shipped) before timing. Three ways the
  population travels (``seeded=``): ``plain`` (the rows), ``seed`` (key, mean
  and sigma; workers rebuild their rows) and ``replay`` (workers keep the
  state and replay the strategy's update from the told fitness, then rebuild
  their rows: each round is the next generation of a real run).
- Bytes: what one generation puts on the wire at d = 100,000 and popsize 256
  for openai_es, snes and pgpe: plain (the population), seed (key, mean,
  sigma) and replay (told fitness of the last ``replay_window`` = 4
  generations, a digest and the run id), measured as the pickled size of each
  submitted payload (executor) and of the object put in Ray's store per
  generation. Plain is ``8 n d`` = 204.8 MB. The full state a worker gets
  once per run in replay mode is reported too.

Run with ``python -m pytest benchmarks/test_evaluation_overhead.py -p no:cacheprovider -s``;
not part of the default test run. ``-k "not d100k"`` skips the large case.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from evostrat.run.asktell import AskTell
from evostrat.backends import get_backend
from evostrat.evaluators.local import SerialEvaluator, VectorizedEvaluator
from evostrat.evaluators import ExecutorEvaluator
from evostrat.evaluators.worker import WorkerOptions, dumps
from evostrat.plugins import registry
from evostrat.evaluators.replay import ReplayLog
from evostrat.evaluators.seeded import population_seed

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


def generations(dim: int, count: int, strategy: str = "snes") -> list[tuple[np.ndarray, Any, Any]]:
    """``count`` successive generations of a run: ``(X, seed, replay step)`` each."""
    runner = AskTell(registry("strategies")[strategy](popsize=POPSIZE, sigma0=0.5),
                     np.zeros(dim), random_state=0)
    log, out = ReplayLog(), []
    for _ in range(count):
        seed, step = population_seed(runner), log.step(runner)
        X = runner.ask()
        out.append((X, seed, step))
        told = (X * X).sum(axis=1)
        runner.tell(X, told)
        log.told(runner, told)
    return out


@pytest.fixture(scope="module")
def population() -> tuple[np.ndarray, Any]:
    return generation(DIM)


def _time_replay(benchmark: Any, record: Any, name: str, ev: Any, rounds: int = 30) -> None:
    """Each round evaluates the next generation of a run (warm-up: the state installed)."""
    run = iter(generations(DIM, rounds + 5))
    for _ in range(4):
        X, seed, step = next(run)
        ev.evaluate(trivial, X, NUMPY, seed=seed, replay=step)

    def setup() -> Any:
        X, seed, step = next(run)
        return (trivial, X, NUMPY), {"seed": seed, "replay": step}

    benchmark.group = f"{SUITE}: {POPSIZE} x {DIM}, trivial objective, 2 workers"
    values = benchmark.pedantic(ev.evaluate, setup=setup, rounds=rounds, iterations=1)
    assert values.shape == (POPSIZE,)
    assert ev.last_shipped_["mode"] == "replay"
    record(SUITE, f"{POPSIZE}x{DIM}", f"evostrat-{name}", benchmark)


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


MODES = [False, "seed", "replay"]
MODE_IDS = ["plain", "seed", "replay"]


@pytest.mark.parametrize("seeded", MODES, ids=MODE_IDS)
def test_overhead_executor(benchmark, record, population, seeded):
    X, seed = population
    ev = ExecutorEvaluator(max_workers=2, seeded=seeded)
    name = f"executor-{MODE_IDS[MODES.index(seeded)]}"
    try:
        if seeded == "replay":
            _time_replay(benchmark, record, name, ev)
        else:
            _time(benchmark, record, name, lambda: ev.evaluate(trivial, X, NUMPY, seed=seed))
        benchmark.extra_info.update(ev.last_shipped_)
    finally:
        ev.close()


@pytest.mark.parametrize("seeded", MODES, ids=MODE_IDS)
def test_overhead_ray(benchmark, record, population, ray_cluster, seeded):
    from evostrat.evaluators import RayEvaluator

    X, seed = population
    ev = RayEvaluator(seeded=seeded)
    name = f"ray-{MODE_IDS[MODES.index(seeded)]}"
    if seeded == "replay":
        _time_replay(benchmark, record, name, ev)
    else:
        _time(benchmark, record, name, lambda: ev.evaluate(trivial, X, NUMPY, seed=seed))
    benchmark.extra_info.update(ev.last_shipped_)


# -- bytes per generation at d = 100,000 -----------------------------------------------------
def _executor_payloads(X: np.ndarray, source: Any, workers: int = 2) -> int:
    """Serialised bytes of every ``submit`` of one generation (cloudpickle, as loky sends)."""
    from evostrat.evaluators.remote import chunk_bounds

    options = WorkerOptions()
    total = 0
    for start, stop in chunk_bounds(X.shape[0], n_chunks=workers):
        chunk = X[start:stop] if source is None else source
        total += len(dumps((trivial, chunk, start, stop, start, options)))
    return total


@pytest.mark.parametrize("strategy", ["openai_es", "snes", "pgpe"])
def test_bytes_per_generation_d100k(benchmark, strategy):
    # A steady-state replay message carries the last 4 generations of told fitness.
    (_, _, _), (_, _, _), (_, _, _), (_, _, _), (X, seed, step) = generations(BIG_DIM, 5, strategy)
    assert len(step.history) == 4
    message, full = step.message(window=4), step.full()
    sizes = {
        "plain_executor_bytes": _executor_payloads(X, None),
        "seed_executor_bytes": _executor_payloads(X, seed),
        "replay_executor_bytes": _executor_payloads(X, message),
        "plain_ray_put_bytes": len(pickle.dumps(X, protocol=5)),  # one object per generation
        "seed_ray_put_bytes": len(pickle.dumps(seed, protocol=5)),
        "replay_ray_put_bytes": len(pickle.dumps(message, protocol=5)),
        "replay_state_once_bytes": len(pickle.dumps(full, protocol=5)),
    }
    benchmark.extra_info.update(sizes)
    print(f"\n{strategy} d={BIG_DIM} n={POPSIZE} per generation: plain "
          f"{sizes['plain_ray_put_bytes'] / 1e6:.1f} MB, seed {sizes['seed_ray_put_bytes'] / 1e6:.3f} MB, "
          f"replay {sizes['replay_ray_put_bytes'] / 1e3:.1f} KB (Ray put); executor (2 chunks) "
          f"plain {sizes['plain_executor_bytes'] / 1e6:.1f} MB, seed "
          f"{sizes['seed_executor_bytes'] / 1e6:.3f} MB, replay {sizes['replay_executor_bytes'] / 1e3:.1f} KB; "
          f"replay full state once per worker and run {sizes['replay_state_once_bytes'] / 1e6:.2f} MB")
    assert sizes["plain_ray_put_bytes"] > 200e6
    assert sizes["seed_ray_put_bytes"] < 2e6
    assert sizes["replay_ray_put_bytes"] < 1e6 and sizes["replay_executor_bytes"] < 1e6
    # time a worker's share of the rebuild (half the population), the price of seeds
    benchmark.group = f"{SUITE}: rebuild 128 of 256 candidates at d = {BIG_DIM}"
    benchmark.pedantic(lambda: seed.rows(0, POPSIZE // 2), rounds=3, iterations=1)


@pytest.mark.parametrize("strategy", ["openai_es", "snes", "pgpe"])
def test_replay_cost_d100k(benchmark, strategy):
    """The price of replay on a worker: regenerate the previous population and tell (d = 100,000)."""
    from evostrat.evaluators.replay import _REPLAY_CACHE

    (_, _, first), (X, _, step) = generations(BIG_DIM, 2, strategy)
    first.full().rows(0, 2)  # the worker holds generation 0
    run = first.run

    def replay_one() -> Any:
        _REPLAY_CACHE[run].generation, _REPLAY_CACHE[run].state = 0, first.state
        return step.message().rows(0, 2)  # replays 0 -> 1, checks the digest, 2 rows

    benchmark.group = f"{SUITE}: replay one generation on a worker at d = {BIG_DIM}, popsize {POPSIZE}"
    rows = benchmark.pedantic(replay_one, rounds=3, iterations=1)
    assert np.array_equal(rows, X[:2])
    _REPLAY_CACHE.clear()


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
