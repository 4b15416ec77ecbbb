"""Block sampling of addressable noise (issue 17 item 2).

A population's noise rows are drawn as blocks (one generator call per block of
``block_rows(dim)`` rows) while any row stays rebuildable from (key, block, offset):
subsets across block boundaries equal the full draw, the blocks are what one
generator call gives, seeded chunks that start mid-block rebuild ``ask``'s rows bit
for bit, and ``tell_seed`` agrees with ``tell``, on numpy, torch (CPU) and JAX.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CPU_CASES, strategy_class, to_numpy

import evostrat.backends.numpy as numpy_backend
from evostrat.backends import get_backend
from evostrat.backends.host_keys import BLOCK_NUMBERS, block_rows, row_words
from evostrat.errors import InvalidArgumentError
from evostrat.evaluators.seeded import population_seed
from evostrat.run.asktell import AskTell

pytestmark = pytest.mark.usefixtures("jax_on_host")

#: 4 rows per block: populations of a dozen span several blocks.
DIM = BLOCK_NUMBERS // 4


def test_block_rows():
    assert block_rows(DIM) == 4 and block_rows(10) == BLOCK_NUMBERS // 10
    assert block_rows(BLOCK_NUMBERS) == 1 and block_rows(10 * BLOCK_NUMBERS) == 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numpy_blocks_are_one_generator_call(dtype):
    """Block b is one standard_normal call of the generator seeded from (key, b)."""
    be = get_backend("numpy")
    key, dim = be.key(4), 10
    per = block_rows(dim)
    z = be.normal_rows(key, range(2 * per + 3), dim, dtype)
    for b in range(3):
        gen = numpy_backend.seeded_generator(*row_words(key, b))
        block = gen.standard_normal((per, dim), dtype=dtype)
        assert np.array_equal(z[b * per:(b + 1) * per], block[: len(z) - b * per])


def test_numpy_rows_past_the_block_size_keep_the_per_row_stream():
    """From dim = BLOCK_NUMBERS on a block is one row: row r as before the blocks."""
    be = get_backend("numpy")
    key = be.key(9)
    z = be.normal_rows(key, [3, 1], BLOCK_NUMBERS, np.float64)
    for j, r in enumerate([3, 1]):
        gen = numpy_backend.seeded_generator(*row_words(key, r))
        assert np.array_equal(z[j], gen.standard_normal(BLOCK_NUMBERS))


def test_numpy_population_costs_one_reseeding_per_block(monkeypatch):
    """SNES's ask at popsize 100,000, d = 10: ceil(n / block_rows) generator seedings, not n."""
    from evostrat.strategies.snes import SNES

    calls = []
    real = numpy_backend.seeded_generator
    monkeypatch.setattr(numpy_backend, "seeded_generator", lambda *w: calls.append(w) or real(*w))
    s = SNES(popsize=100_000)
    X, _ = s.ask(s.init(np.zeros(10), random_state=0))
    assert X.shape == (100_000, 10)
    assert len(calls) == -(-100_000 // block_rows(10))


SUBSETS = [range(0, 12), range(3, 9), range(5, 6), [11, 0, 4, 4, 7], [8, 9], range(4, 8), [2, 10]]


@pytest.mark.parametrize("case", CPU_CASES)
def test_rows_across_blocks_equal_the_full_draw(case):
    be = get_backend(case.backend)
    dtype = be.dtype_from_name(case.dtype)
    key = be.key(7)
    full = to_numpy(be.normal_rows(key, range(12), DIM, dtype))
    assert full.shape == (12, DIM) and len({r.tobytes() for r in full}) == 12
    for rows in SUBSETS:
        got = to_numpy(be.normal_rows(key, rows, DIM, dtype))
        assert np.array_equal(got, full[list(rows)]), rows
    assert to_numpy(be.normal_rows(key, range(3, 3), DIM, dtype)).shape == (0, DIM)


@pytest.mark.parametrize("case", [c for c in CPU_CASES if c.values[0].backend == "torch"])
def test_torch_cpu_rows_are_the_numpy_blocks(case):
    be, nb = get_backend("torch"), get_backend("numpy")
    key = nb.key(3)
    got = be.normal_rows(key, range(5, 40), 100, be.dtype_from_name(case.dtype))
    assert got.dtype == be.dtype_from_name(case.dtype)
    assert np.array_equal(got.numpy(), nb.normal_rows(key, range(5, 40), 100, case.dtype))


def test_jax_blocks_are_draws_of_folded_keys():
    jax = pytest.importorskip("jax")
    be = get_backend("jax")
    key, per = be.key(2), block_rows(DIM)
    z = np.asarray(jax.jit(lambda k: be.normal_rows(k, range(10), DIM, "float32"))(key))
    blocks = [np.asarray(jax.random.normal(jax.random.fold_in(key, b), (per, DIM))) for b in range(3)]
    assert np.array_equal(z, np.concatenate(blocks)[:10])


@pytest.mark.parametrize("case", CPU_CASES)
def test_negative_rows_are_refused(case):
    be = get_backend(case.backend)
    with pytest.raises(InvalidArgumentError, match="row indices must be >= 0"):
        be.normal_rows(be.key(0), [-1, 2], 10, be.dtype_from_name(case.dtype))


@pytest.mark.parametrize("case", CPU_CASES)
@pytest.mark.parametrize("name, options", [("snes", {}), ("openai_es", {}), ("pgpe", {})])
def test_chunks_starting_mid_block_rebuild_ask_bit_for_bit(case, name, options):
    n = 22  # 11 noise rows for the antithetic layouts: three blocks
    strategy = strategy_class(name)(popsize=n, sigma0=0.3, **options)
    x0 = case.array(np.linspace(-1.0, 1.0, DIM))
    runner = AskTell(strategy, x0, random_state=5)
    seed = population_seed(runner)
    X = to_numpy(runner.ask())
    spans = [(0, n), (1, 7), (6, 13), (13, 22), (5, 6)]
    for start, stop in spans if case.backend != "jax" else spans[:1] + spans[2:3]:  # JAX compiles each
        rows = seed.rows(start, stop)
        assert np.array_equal(rows.view(np.uint8), X[start:stop].view(np.uint8)), (start, stop)


@pytest.mark.parametrize("case", CPU_CASES)
@pytest.mark.parametrize("name", ["snes", "openai_es"])
def test_tell_seed_across_blocks_agrees_with_tell(case, name):
    strategy = strategy_class(name)(popsize=14, sigma0=0.5)
    state = strategy.init(case.array(np.full(DIM, 0.5)), random_state=1)
    seed, state2 = strategy.ask_seed(state)
    X, state1 = strategy.ask(state)
    f = (to_numpy(X).astype(np.float64) ** 2).sum(axis=1)
    f = case.array(f)
    a, b = strategy.tell(state1, X, f), strategy.tell_seed(state2, seed, f, chunk_size=5)
    rtol = 1e-12 if case.dtype == "float64" else 1e-5
    np.testing.assert_allclose(to_numpy(a.mean), to_numpy(b.mean), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(to_numpy(a.sigma), to_numpy(b.sigma), rtol=rtol, atol=rtol)


def test_jax_without_partitionable_threefry_keeps_addressable_rows():
    """Unpartitionable threefry draws depend on their whole shape: per-row draws then."""
    jax = pytest.importorskip("jax")
    be = get_backend("jax")
    old = jax.config.jax_threefry_partitionable
    jax.config.update("jax_threefry_partitionable", False)
    try:
        key = be.key(6)
        full = np.asarray(be.normal_rows(key, range(10), 30, "float32"))
        assert np.array_equal(np.asarray(be.normal_rows(key, [9, 2, 2], 30, "float32")), full[[9, 2, 2]])
        row = jax.random.normal(jax.random.fold_in(key, 4), (30,))
        assert np.array_equal(full[4], np.asarray(row))
    finally:
        jax.config.update("jax_threefry_partitionable", old)
