"""Rank shaping with ties and NaN against a brute-force reference, on both search paths.

:func:`evostrat.strategies.shaping.tie_ranks` searches unsorted values directly up to
``_SEARCH_SORTED_MIN`` and argsorts above it (issue 17); both must give the integers and
weights of the quadratic definition below, bit for bit, on every backend.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest
from conftest import CPU_CASES, BackendCase, to_numpy
from hypothesis import given, settings
from hypothesis import strategies as st

from evostrat.strategies import shaping
from evostrat.strategies.shaping import centered_ranks, nes_utilities, rank_weights, tie_ranks


@contextlib.contextmanager
def search_sorted_above(n: int) -> Iterator[None]:
    """Use the argsort path of ``tie_ranks`` for populations above ``n``."""
    saved = shaping._SEARCH_SORTED_MIN
    shaping._SEARCH_SORTED_MIN = n
    try:
        yield
    finally:
        shaping._SEARCH_SORTED_MIN = saved


def reference_weights(fitness: np.ndarray, sorted_weights: np.ndarray) -> np.ndarray:
    """Quadratic definition: each value gets the mean weight of the positions its ties occupy."""
    f = np.where(np.isnan(fitness), np.inf, fitness)
    lo = (f[None, :] < f[:, None]).sum(axis=1)
    hi = (f[None, :] <= f[:, None]).sum(axis=1)
    return np.array([sorted_weights[a:b].mean() for a, b in zip(lo, hi)])


# few distinct values, so that ties are common; NaN and infinities included
values = st.sampled_from([0.0, -0.0, 1.0, -2.5, 3.0, 1e300, np.inf, -np.inf, np.nan])
fitness_arrays = st.lists(values, min_size=2, max_size=40).map(np.array)


@settings(max_examples=150, deadline=None)
@given(fitness_arrays, st.booleans())
def test_rank_weights_match_brute_force(fitness: np.ndarray, argsort_path: bool) -> None:
    n = fitness.shape[0]
    weights = np.random.default_rng(n).standard_normal(n)
    with search_sorted_above(0 if argsort_path else 10**9):
        lo, hi = tie_ranks(shaping.sanitize_fitness(fitness))
        got = rank_weights(fitness, weights)
        ranks = centered_ranks(fitness)
        utilities = shaping.nes_ranks(fitness)
    f = np.where(np.isnan(fitness), np.inf, fitness)
    np.testing.assert_array_equal(lo, (f[None, :] < f[:, None]).sum(axis=1))
    np.testing.assert_array_equal(hi, (f[None, :] <= f[:, None]).sum(axis=1))
    np.testing.assert_allclose(got, reference_weights(fitness, weights), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ranks, reference_weights(fitness, np.arange(n) / (n - 1) - 0.5), atol=1e-12)
    u = nes_utilities(n, np, np.float64)
    np.testing.assert_allclose(utilities, -reference_weights(fitness, u), atol=1e-12)
    assert abs(ranks.sum()) < 1e-9  # ties keep the weights' sum


def test_both_paths_are_bit_identical_above_the_threshold() -> None:
    n = shaping._SEARCH_SORTED_MIN + 1000  # the default picks the argsort path
    rng = np.random.default_rng(1)
    fitness = rng.integers(0, 300, n).astype(np.float64)  # ~20 ties per value
    fitness[rng.integers(0, n, 50)] = np.nan
    fitness[:5] = np.inf
    weights = nes_utilities(n, np, np.float64)
    fast = rank_weights(fitness, weights)
    with search_sorted_above(10**9):
        direct = rank_weights(fitness, weights)
    np.testing.assert_array_equal(fast, direct)
    # the tied NaN and +inf share the worst positions: the mean of the last weights
    worst = np.isnan(fitness) | (fitness == np.inf)
    np.testing.assert_allclose(fast[worst], weights[-int(worst.sum()):].mean(), rtol=1e-12)


@pytest.mark.parametrize("case", CPU_CASES, ids=lambda c: c.id)
def test_backends_agree_on_both_paths(case: BackendCase) -> None:
    n = shaping._SEARCH_SORTED_MIN + 300
    rng = np.random.default_rng(2)
    host = rng.integers(0, 50, n).astype(case.dtype)
    host[::97] = np.nan
    fitness = case.array(host)
    got = to_numpy(centered_ranks(fitness))
    with search_sorted_above(10**9):
        direct = to_numpy(centered_ranks(fitness))
    np.testing.assert_array_equal(got, direct)
    if case.backend == "jax":  # the same spans under jit (the run count is a traced value there)
        import jax

        clean = shaping.sanitize_fitness(fitness)
        for jitted, eager in zip(jax.jit(tie_ranks)(clean), tie_ranks(clean)):
            np.testing.assert_array_equal(to_numpy(jitted), to_numpy(eager))
        # float32 weights differ by ulps between XLA's fused cumulative sum and the eager one
        np.testing.assert_allclose(to_numpy(jax.jit(centered_ranks)(fitness)), got, rtol=0, atol=1e-6)
    expected = centered_ranks(host.astype(np.float64))  # float32 cumulative sums differ by library
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 if case.dtype == "float32" else 1e-12)


@pytest.mark.parametrize("case", CPU_CASES, ids=lambda c: c.id)
def test_small_populations_on_every_backend(case: BackendCase) -> None:
    # small inputs take the per-backend fast path (on JAX: counts over all pairs)
    host = np.array([2.0, np.nan, 0.0, 2.0, -np.inf, np.inf, 0.0, 5.0, 2.0, -1.0])
    f = np.where(np.isnan(host), np.inf, host)
    lo, hi = tie_ranks(shaping.sanitize_fitness(case.array(host)))
    np.testing.assert_array_equal(to_numpy(lo), (f[None, :] < f[:, None]).sum(axis=1))
    np.testing.assert_array_equal(to_numpy(hi), (f[None, :] <= f[:, None]).sum(axis=1))
    n = host.shape[0]
    expected = reference_weights(host, np.arange(n) / (n - 1) - 0.5)
    np.testing.assert_allclose(to_numpy(centered_ranks(case.array(host))), expected, atol=1e-6)


def test_cma_candidate_weights_on_both_paths() -> None:
    import array_api_compat.numpy as xp

    from evostrat.strategies.cma_base import candidate_weights

    n = shaping._SEARCH_SORTED_MIN + 500
    rng = np.random.default_rng(3)
    fitness = rng.integers(0, 400, n).astype(np.float64)
    fitness[::301] = np.nan
    cumulative = np.cumsum(np.concatenate([np.zeros((2, 1)), rng.standard_normal((2, n))], axis=1), axis=1)
    fast = candidate_weights(fitness, cumulative, xp)
    with search_sorted_above(10**9):
        direct = candidate_weights(fitness, cumulative, xp)
    for a, b, row in zip(fast, direct, cumulative):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, reference_weights(fitness, np.diff(row)), rtol=1e-9, atol=1e-9)
