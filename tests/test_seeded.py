"""Seed-compressed populations (evostrat.evaluators.seeded) rebuild the plain populations bit for bit.

A worker that receives a :class:`~evostrat.evaluators.seeded.GaussianSeed` and a range of
candidate indices must produce exactly the rows ``ask`` returned on the driver,
on every CPU backend, for every layout, for any chunk (single rows included),
generation after generation. Row noise must depend only on (key, row).
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import CPU_CASES, BackendCase, strategy_class, to_numpy

from evostrat import ES
from evostrat.run.asktell import AskTell
from evostrat.backends import get_backend
from evostrat.backends.host_keys import row_words
from evostrat.errors import InvalidArgumentError
from evostrat.evaluators.seeded import GaussianSeed, gaussian_population, layout_rows, population_seed

# seeds are rebuilt on the host: JAX cases run on the CPU even where JAX sees a GPU
pytestmark = pytest.mark.usefixtures("jax_on_host")

GAUSSIAN = [
    ("snes", {}, "independent"),
    ("openai_es", {}, "mirrored"),
    ("openai_es", {"mirrored": False}, "independent"),
    ("pgpe", {}, "pairs"),
]
POPSIZE = 8


def chunks(n: int, backend: str) -> list[tuple[int, int]]:
    """Single rows, uneven chunks and the whole population.

    Every single row on numpy/torch; on JAX (a compilation per chunk shape) the
    first and last rows, which a worker pads on either side.
    """
    singles = [(i, i + 1) for i in range(n)] if backend != "jax" else [(0, 1), (n - 1, n)]
    return singles + [(0, 3), (3, 7), (7, n), (0, n)]


def fitness(X, case: BackendCase):
    return (X * X).sum(axis=1) if case.backend != "torch" else (X * X).sum(dim=1)


@pytest.mark.parametrize("case", CPU_CASES)
@pytest.mark.parametrize("name, options, layout", GAUSSIAN, ids=lambda v: str(v))
def test_rebuilt_chunks_equal_the_asked_population(case, name, options, layout):
    strategy = strategy_class(name)(popsize=POPSIZE, sigma0=0.7, **options)
    runner = AskTell(strategy, case.array(np.linspace(-1.0, 2.0, 13)), random_state=11)
    for _ in range(2):
        seed = population_seed(runner)
        assert seed is not None and seed.layout == layout and seed.backend == case.backend
        X = to_numpy(runner.ask())
        for start, stop in chunks(POPSIZE, case.backend):
            rows = seed.rows(start, stop)
            assert rows.dtype == X.dtype
            # bit-identical, not merely close
            assert np.array_equal(rows.view(np.uint8), X[start:stop].view(np.uint8)), (start, stop)
        runner.tell(runner.pending, fitness(runner.pending, case))


@pytest.mark.parametrize("case", CPU_CASES)
def test_rows_as_backend_arrays(case):
    strategy = strategy_class("snes")(popsize=6)
    runner = AskTell(strategy, case.array(np.zeros(4)), random_state=2)
    seed = population_seed(runner)
    X = runner.ask()
    rows = seed.rows(1, 4, as_backend=True)
    assert case.is_native(rows)
    assert np.array_equal(to_numpy(rows), to_numpy(X)[1:4])


@pytest.mark.parametrize("case", CPU_CASES)
def test_normal_rows_depend_only_on_key_and_row(case):
    be = get_backend(case.backend)
    dtype = be.dtype_from_name(case.dtype)
    key = be.key(5)
    device = "cpu" if case.backend == "torch" else None
    full = to_numpy(be.normal_rows(key, range(10), 50, dtype, device))
    some = to_numpy(be.normal_rows(key, [7, 3, 7], 50, dtype, device))
    assert full.shape == (10, 50) and str(full.dtype) == case.dtype
    assert np.array_equal(some, full[[7, 3, 7]])
    assert len({row.tobytes() for row in full}) == 10  # rows differ
    other = to_numpy(be.normal_rows(be.split(key)[1], range(10), 50, dtype, device))
    assert not np.array_equal(other, full)  # and depend on the key


@pytest.mark.parametrize("case", CPU_CASES)
def test_normal_rows_are_standard_normal(case):
    be = get_backend(case.backend)
    sample = to_numpy(
        be.normal_rows(be.key(0), range(400), 250, be.dtype_from_name(case.dtype))
    ).astype(np.float64)
    assert abs(sample.mean()) < 0.01  # 1e5 draws: standard error 0.003
    assert abs(sample.std() - 1.0) < 0.01
    assert abs(np.corrcoef(sample[:-1].ravel(), sample[1:].ravel())[0, 1]) < 0.015


def test_generic_normal_rows_fallback_is_addressable():
    """The base-class implementation (for third-party backends) has the same property."""
    from evostrat.backends.base import Backend

    be = get_backend("numpy")
    full = Backend.normal_rows(be, be.key(1), range(6), 7, np.float64)
    assert np.array_equal(Backend.normal_rows(be, be.key(1), [4, 0], 7, np.float64), full[[4, 0]])


def test_layout_rows():
    assert layout_rows("mirrored", 6, range(6))[0].tolist() == [0, 1, 2, 0, 1, 2]
    assert layout_rows("mirrored", 6, range(6))[1].tolist() == [1, 1, 1, -1, -1, -1]
    assert layout_rows("independent", 4, [2, 3])[0].tolist() == [2, 3]
    with pytest.raises(InvalidArgumentError, match="layout must be one of"):
        layout_rows("shuffled", 4, range(4))
    with pytest.raises(InvalidArgumentError, match=r"candidates must lie in \[0, 4\)"):
        layout_rows("pairs", 4, [4])


def test_gaussian_population_layouts_are_antithetic():
    be = get_backend("numpy")
    mean, sigma = np.full(3, 2.0), np.array([1.0, 2.0, 3.0])
    X = gaussian_population(be, be.key(3), mean, sigma, 6, "pairs")
    assert np.allclose(X[0::2] - mean, mean - X[1::2], rtol=0, atol=1e-12)
    assert not np.allclose(X[0], X[2])  # distinct pairs
    Y = gaussian_population(be, be.key(3), mean, sigma, 6, "mirrored")
    assert np.allclose(Y[:3] - mean, mean - Y[3:], rtol=0, atol=1e-12)


def test_seed_is_small_at_scale():
    """d = 100,000, popsize 256: the plain population is 205 MB, its seed under 1 MB."""
    dim, popsize = 100_000, 256
    strategy = strategy_class("openai_es")(popsize=popsize)
    state = strategy.init(np.zeros(dim), random_state=0)
    seed = strategy.population_seed(state)
    plain = popsize * dim * 8
    assert plain == 204_800_000
    shipped = len(pickle.dumps(seed, protocol=5))
    assert seed.nbytes < 1_000_000 and shipped < 1_000_000
    snes_seed = strategy_class("snes")(popsize=popsize).population_seed(
        strategy_class("snes")(popsize=popsize).init(np.zeros(dim), random_state=0)
    )
    assert snes_seed.nbytes < 2_000_000  # mean and per-coordinate sigma: 16 d bytes


def test_strategies_without_seeds_and_accelerators():
    runner = AskTell(strategy_class("cma_es")(), np.zeros(3), random_state=0)
    assert population_seed(runner) is None
    be = get_backend("numpy")

    class FakeDevice:
        type = "cuda"

    class OnGpu(type(be)):
        def device(self, x):
            return FakeDevice()

    assert GaussianSeed.from_state(OnGpu(), be.key(0), np.zeros(2), np.ones(2), 4, "pairs") is None


def test_es_ships_seeds_only_without_bounds():
    from evostrat.evaluators import ExecutorEvaluator
    from concurrent.futures import ThreadPoolExecutor

    def sphere(x):
        return float(np.sum(x * x))

    with ThreadPoolExecutor(2) as pool:
        ev = ExecutorEvaluator(pool, seeded=True)
        ES("snes", max_generations=3, random_state=0, evaluator=ev).fit(sphere, np.ones(4))
        assert ev.last_shipped_["seeded"] is True
        ES("snes", max_generations=3, random_state=0, bounds=(-2, 2), evaluator=ev).fit(
            sphere, np.ones(4)
        )
        assert ev.last_shipped_["seeded"] is False
        ES("cma_es", max_generations=3, random_state=0, evaluator=ev).fit(sphere, np.ones(4))
        assert ev.last_shipped_["seeded"] is False



@pytest.mark.parametrize("seeded", [True, "replay"])
def test_injected_candidates_are_shipped_plain(seeded):
    """With a seeded evaluator, a generation with injected candidates shipped the seed: the
    workers rebuilt the Gaussian rows, the injected point was never evaluated (x_ stayed
    near [0.02, 0.26, 0.44, 0.71], f = 0.27) and its row was told another point's value."""
    from concurrent.futures import ThreadPoolExecutor

    from evostrat.evaluators import ExecutorEvaluator

    def run(evaluator):
        seen = []

        def f(x):
            seen.append(np.array(x, dtype=np.float64))
            return float(np.sum((np.asarray(x) - 0.3) ** 2))

        def inject(es):
            if es.n_generations_ == 3:
                es.inject(np.full(4, 0.3))

        es = ES("snes", max_generations=6, random_state=0, evaluator=evaluator).fit(f, np.ones(4), callbacks=[inject])
        return es, np.array(seen)

    serial, _ = run("serial")
    with ThreadPoolExecutor(2) as pool:
        es, seen = run(ExecutorEvaluator(pool, seeded=seeded))
    assert np.all(seen == 0.3, axis=1).any()  # the injected point was evaluated
    assert es.fun_ == 0.0 and np.array_equal(es.x_, np.full(4, 0.3))
    assert [row["best"] for row in es.history_] == [row["best"] for row in serial.history_]
    assert np.array_equal(es.strategy_.mean, serial.strategy_.mean)  # the run of the plain evaluator


# -- worker-side state replay (seeded="replay") --------------------------------------------
from evostrat.evaluators.replay import (  # noqa: E402
    NeedState,
    ReplayLog,
    ReplayMessage,
    ReplayStep,
    _REPLAY_CACHE,
    state_digest,
)


def _run_with_log(case, name, options, generations, popsize=POPSIZE, dim=13, maximize=False):
    """An AskTell loop (the driver) with its ReplayLog: yields (step, X) per generation."""
    strategy = strategy_class(name)(popsize=popsize, sigma0=0.7, **options)
    runner = AskTell(strategy, case.array(np.linspace(-1.0, 2.0, dim)), random_state=11)
    log = ReplayLog()
    for _ in range(generations):
        step = log.step(runner)
        X = runner.ask()
        yield step, to_numpy(X)
        told = fitness(X, case)
        told = -told if maximize else told
        runner.tell(X, told)
        log.told(runner, told)


def _same(a, b):
    return a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))


@pytest.mark.parametrize("case", CPU_CASES)
@pytest.mark.parametrize("name, options, layout", GAUSSIAN, ids=lambda v: str(v))
def test_replayed_state_rebuilds_the_asked_population(case, name, options, layout):
    """Generation 0 installs the full state; every later generation replays from messages alone."""
    _REPLAY_CACHE.clear()
    for g, (step, X) in enumerate(_run_with_log(case, name, options, 5)):
        source = step.full() if g == 0 else step.message()
        assert (g == 0) == (not step.history)
        pickled = pickle.loads(pickle.dumps(source, protocol=5))  # what a worker receives
        for start, stop in [(0, 3), (3, POPSIZE), (5, 6)] if case.backend != "jax" else [(0, 3), (3, POPSIZE)]:
            assert _same(pickled.rows(start, stop), X[start:stop]), (g, start, stop)
    _REPLAY_CACHE.clear()


def test_stale_cache_catches_up_within_the_window_else_needs_state():
    case = CPU_CASES[0].values[0]
    _REPLAY_CACHE.clear()
    steps = list(_run_with_log(case, "pgpe", {}, 9))
    steps[0][0].full().rows(0, 2)  # this worker has generation 0, then runs no chunk for a while
    step, X = steps[4]
    message = step.message()
    assert (message.first, message.generation) == (0, 4)  # four generations of told fitness
    assert _same(message.rows(2, 6), X[2:6])  # replays 0 -> 4
    assert _REPLAY_CACHE[message.run].generation == 4
    assert _same(message.rows(0, 2), X[0:2])  # same generation again: no replay
    step, X = steps[8]
    assert _same(step.message(window=4).rows(0, 8), X)  # 4 -> 8, exactly the window
    with pytest.raises(NeedState, match="cached state of generation 8"):
        steps[4][0].message().rows(0, 2)  # a cache ahead of the message cannot go back
    _REPLAY_CACHE[message.run].generation = 2  # too far behind for a window of 4 at 8
    with pytest.raises(NeedState, match="the message replays 4..8"):
        step.message(window=4).rows(0, 2)
    _REPLAY_CACHE.clear()
    with pytest.raises(NeedState, match="no cached state"):
        step.message().rows(0, 2)


@pytest.mark.parametrize("case", CPU_CASES)
def test_corrupted_cache_is_detected_by_the_digest(case):
    _REPLAY_CACHE.clear()
    steps = list(_run_with_log(case, "snes", {}, 3))
    steps[0][0].full().rows(0, 2)
    entry = next(iter(_REPLAY_CACHE.values()))
    be = entry.backend
    # one coordinate of the mean off (by more than the update can round away: a change
    # that leaves the replayed state bit-identical would be harmless)
    mean = to_numpy(entry.state.mean).copy()
    mean[3] += 1e-3
    entry.state = entry.state._replace(mean=be.asarray(mean, device="cpu" if be.name == "torch" else None))
    with pytest.raises(NeedState, match="differs from the driver's"):
        steps[1][0].message().rows(0, 2)
    assert not _REPLAY_CACHE  # dropped: the fallback installs the driver's state
    step, X = steps[2]
    assert _same(step.full().rows(0, 4), X[:4])
    # a state told different fitness also differs
    wrong = step.message()
    wrong = ReplayMessage(wrong.run, wrong.generation, wrong.first, wrong.fitness, wrong.digest[::-1])
    with pytest.raises(NeedState):
        wrong.rows(0, 2)
    _REPLAY_CACHE.clear()


def test_digest_covers_every_leaf_dtype_and_shape():
    strategy = strategy_class("openai_es")(popsize=4)
    be = get_backend("numpy")
    state = strategy.init(np.zeros(3), random_state=0)
    base = state_digest(be.to_host(state))
    assert len(base) == 16 and base == state_digest(be.to_host(state))
    bumped = state._replace(opt=state.opt._replace(t=state.opt.t + 1))  # a nested 0-d leaf
    assert state_digest(be.to_host(bumped)) != base
    assert state_digest(be.to_host(state._replace(mean=np.zeros(3, np.float32)))) != base
    assert state_digest(be.to_host(state._replace(key=be.split(state.key)[0]))) != base


def test_replay_log_starts_a_new_run_per_runner_and_keeps_contiguous_history():
    strategy = strategy_class("snes")(popsize=4)
    log = ReplayLog(keep=3)
    a = AskTell(strategy, np.zeros(2), random_state=0)
    first = log.step(a)
    assert first.history == [] and first.generation == 0
    for g in range(5):
        X = a.ask()
        f = X.sum(axis=1)
        a.tell(X, f)
        log.told(a, f)
    step = log.step(a)
    assert step.generation == 5 and len(step.history) == 3 and step.run == first.run
    assert step.message(window=2).first == 3 and step.message(window=2).fitness.shape == (2, 4)
    b = AskTell(strategy, np.zeros(2), random_state=0)  # a restart: a new runner
    log.told(a, f)  # late news of the old run is ignored
    fresh = log.step(b)
    assert fresh.run != first.run and fresh.history == []


@pytest.mark.parametrize("name", ["openai_es", "snes", "pgpe"])
def test_bytes_per_generation_at_scale(name):
    """d = 100,000, popsize 256 (plain: 204.8 MB): replay messages are a few KB.

    Measured as the pickled size of what one generation ships (protocol 5, as
    Ray and loky send): the replay message with a full window of told fitness,
    vs the seed (mean and sigma), vs the full state a worker gets once per run.
    """
    dim, popsize = 100_000, 256
    strategy = strategy_class(name)(popsize=popsize)
    runner = AskTell(strategy, np.zeros(dim), random_state=0)
    told = np.linspace(0.0, 1.0, popsize)
    step = ReplayStep("0" * 32, runner, [told] * 4)  # a full window of history
    message = len(pickle.dumps(step.message(window=4), protocol=5))
    # the strategy's seed, which population_seed returns after checking it once against a whole
    # ask (two 204.8 MB populations: 13 s alone, minutes on a busy machine; checked in
    # test_a_population_seed_that_rebuilds_other_rows_is_refused_naming_the_strategy)
    seed = len(pickle.dumps(runner.strategy.population_seed(runner.state), protocol=5))
    full = len(pickle.dumps(step.full(), protocol=5))
    print(f"\n{name}: plain {popsize * dim * 8 / 1e6:.1f} MB, seed {seed / 1e6:.3f} MB, "
          f"replay {message / 1e3:.1f} KB per generation (full state once: {full / 1e6:.2f} MB)")
    assert message < 1_000_000
    assert message < 12_000  # 4 x 256 float64 and a digest
    assert len(pickle.dumps(step.message(window=1), protocol=5)) < 3_000
    assert seed < 2_000_000 and full < 3_000_000


def _torch_devices() -> list[str]:
    try:
        import torch
    except ImportError:
        return ["cpu"]
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def _splitmix64_normal(seed: int, count: int) -> np.ndarray:
    """Pure-Python reference of hashed_normal_rows: SplitMix64 outputs -> inverse erf."""
    from scipy.special import erfinv

    mask, out = (1 << 64) - 1, []
    for j in range(1, count + 1):
        x = (seed + j * 0x9E3779B97F4A7C15) & mask
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
        x ^= x >> 31
        out.append(erfinv(2.0 * (((x >> 11) + 0.5) * 2.0**-53) - 1.0) * 2.0**0.5)
    return np.array(out)


def test_hashed_normal_rows_match_the_splitmix64_reference():
    torch = pytest.importorskip("torch")
    from evostrat.backends.torch import hashed_normal_rows

    seeds = np.array([0, 1, 2**63 + 12345, 2**64 - 1], dtype=np.uint64)
    got = hashed_normal_rows(seeds, 6, torch.float64, "cpu").numpy()
    want = np.stack([_splitmix64_normal(int(s), 6) for s in seeds])
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)


def test_torch_row_seeds_equal_row_words():
    pytest.importorskip("torch")
    from evostrat.backends.torch import row_seeds

    be = get_backend("torch")
    key = be.key(2024)
    want = np.array([row_words(key, r)[0] for r in range(9)], dtype=np.uint64)
    assert np.array_equal(row_seeds(key, range(9), "cpu").numpy().view(np.uint64), want)
    assert np.array_equal(row_seeds(key, [8, 0, 3], "cpu").numpy().view(np.uint64), want[[8, 0, 3]])
    with pytest.raises(InvalidArgumentError, match="row indices"):
        row_seeds(key, [1, -1], "cpu")


@pytest.mark.parametrize("device", _torch_devices())
def test_hashed_normal_rows_are_addressable_standard_normal(device):
    torch = pytest.importorskip("torch")
    from evostrat.backends.torch import hashed_normal_rows

    be = get_backend("torch")
    seeds = np.array([row_words(be.key(3), r)[0] for r in range(400)], dtype=np.uint64)
    full = hashed_normal_rows(seeds, 250, torch.float64, device).cpu().numpy()
    assert abs(full.mean()) < 0.01 and abs(full.std() - 1.0) < 0.01
    assert abs(np.corrcoef(full[:-1].ravel(), full[1:].ravel())[0, 1]) < 0.015
    assert abs(np.corrcoef(full[:, :-1].ravel(), full[:, 1:].ravel())[0, 1]) < 0.015
    some = hashed_normal_rows(seeds[[7, 3]], 250, torch.float64, device).cpu().numpy()
    assert np.array_equal(some, full[[7, 3]])
    # the integer hash is exact on every device; erfinv agrees to rounding
    np.testing.assert_allclose(full, hashed_normal_rows(seeds, 250, torch.float64, "cpu").numpy(),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.skipif("cuda" not in _torch_devices(), reason="no CUDA device")
def test_torch_cuda_rows_come_from_the_hash():
    import torch

    from evostrat.backends.torch import hashed_normal_rows

    be = get_backend("torch")
    key = be.key(11)
    rows = be.normal_rows(key, [0, 5, 2], 33, torch.float32, "cuda")
    assert rows.device.type == "cuda"
    seeds = np.array([row_words(key, r)[0] for r in (0, 5, 2)], dtype=np.uint64)
    np.testing.assert_allclose(rows.cpu().numpy(),
                               hashed_normal_rows(seeds, 33, torch.float32, "cpu").numpy(), rtol=1e-6)


def test_a_population_seed_that_rebuilds_other_rows_is_refused_naming_the_strategy():
    """A plugin's population_seed that did not rebuild ask's population had the workers evaluate
    other points, silently (fun_ 1.18 instead of 0.25 here); the first seed of a run is now checked."""
    import concurrent.futures as cf

    from evostrat.errors import InvalidTypeError
    from evostrat.evaluators import ExecutorEvaluator
    from evostrat.problems import sphere
    from evostrat.strategies.snes import SNES

    class ShiftedSeed(SNES):
        def population_seed(self, state):
            return super().population_seed(state._replace(mean=state.mean + 1.0))

    with cf.ThreadPoolExecutor(2) as pool:
        plain = ES(SNES(), max_generations=5, random_state=0).fit(sphere, np.ones(3))
        seeded = ES(SNES(), max_generations=5, random_state=0,
                    evaluator=ExecutorEvaluator(pool, seeded=True)).fit(sphere, np.ones(3))
        assert seeded.fun_ == plain.fun_
        with pytest.raises(InvalidTypeError, match=r"^population_seed\(state\) of strategy 'snes' must rebuild the "
                                                   r"population ask\(state\) returns; its rows differ$"):
            ES(ShiftedSeed(), max_generations=5, random_state=0,
               evaluator=ExecutorEvaluator(pool, seeded=True)).fit(sphere, np.ones(3))
    runner = AskTell(ShiftedSeed(), np.ones(3), random_state=0)
    with pytest.raises(InvalidTypeError, match="its rows differ"):
        population_seed(runner)
