"""Seed-compressed populations (evostrat.seeded) rebuild the plain populations bit for bit.

A worker that receives a :class:`~evostrat.seeded.GaussianSeed` and a range of
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
from evostrat.asktell import AskTell
from evostrat.backends import get_backend
from evostrat.errors import InvalidArgumentError
from evostrat.seeded import GaussianSeed, gaussian_population, layout_rows, population_seed

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
        runner.tell(runner._pending, fitness(runner._pending, case))


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
