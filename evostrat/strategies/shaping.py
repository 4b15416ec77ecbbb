"""Fitness shaping: rank-based weights, NES utilities, z-scores.

The strategies take ``fitness_shaping`` (MaxVar and MaxEnt: ``behaviour_shaping``),
naming an entry of :data:`SHAPINGS`. Every shaping keeps lower as better:

- ``"centered_ranks"``: ranks scaled to [-0.5, 0.5] (OpenAI-ES, PGPE);
- ``"nes_utilities"``: minus the NES utility of the rank (SNES, xNES);
- ``"zscore"``: z-scores, non-finite values made finite first (ExpectationES);
- ``"raw"`` (also ``"none"``): the values, non-finite ones made finite.

Every function works on the Array API namespace of its input (numpy, torch, JAX, also
under ``jax.jit``). NaN counts as the worst value; tied values share the mean of the
weights of their positions, so a constant objective gives all-equal weights.

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies.shaping import centered_ranks
>>> centered_ranks(np.array([3.0, 1.0, 2.0]))
array([ 0.5, -0.5,  0. ])
>>> centered_ranks(np.array([1.0, 1.0, 1.0]))
array([0., 0., 0.])
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

import array_api_compat
import numpy as np

from evostrat.backends.namespaces import (PAIRWISE_MAX, host_cached, pairwise_counts_pay,
                                         searchsorted_span)

Array = Any

__all__ = ["SHAPINGS", "finite_fitness", "shape_fitness", "sanitize_fitness", "rank_weights",
           "tie_span", "tie_ranks", "tie_apply", "centered_ranks", "nes_utilities", "zscore"]


def _xp(x: Array) -> Any:
    return array_api_compat.array_namespace(x)


def sanitize_fitness(fitness: Array) -> Array:
    """Replace NaN by ``+inf`` so it ranks worst under minimisation."""
    xp = _xp(fitness)
    return xp.where(xp.isnan(fitness), xp.inf, fitness)  # a scalar: no host-to-device copy



def tie_span(xp: Any, sorted_values: Array, values: Array) -> tuple[Array, Array]:
    """First and one-past-last position of each of ``values`` in ``sorted_values``.

    ``searchsorted`` with ``side="left"`` and ``"right"``; on JAX without the
    default ``method="scan"``, whose sequential loop made one JAX generation on
    an H100 5-9x slower than evosax's (benchmarks/BENCHMARKS.md).

    Examples
    --------
    >>> import numpy as np
    >>> lo, hi = tie_span(np, np.array([1.0, 2.0, 2.0, 3.0]), np.array([2.0, 3.0]))
    >>> lo.tolist(), hi.tolist()
    ([1, 3], [3, 4])
    """
    return searchsorted_span(xp, sorted_values, values)


def rank_weights(fitness: Array, sorted_weights: Array) -> Array:
    """Assign ``sorted_weights[k]`` to the k-th best candidate, averaging over ties.

    Parameters
    ----------
    fitness : array, shape (n,)
        Values to minimise; NaN ranks worst.
    sorted_weights : array, shape (n,)
        Weight of the best, second best, ... candidate.

    Returns
    -------
    array, shape (n,)
        Each candidate's weight. Candidates with equal fitness get the mean of
        the weights of the positions they jointly occupy.

    Examples
    --------
    >>> import numpy as np
    >>> rank_weights(np.array([2.0, 0.0, 2.0]), np.array([3.0, 2.0, 1.0])).tolist()
    [1.5, 3.0, 1.5]
    """
    xp = _xp(fitness)
    csum = xp.cumulative_sum(sorted_weights, include_initial=True)

    def mean_weight(lo: Array, hi: Array) -> Array:
        return (xp.take(csum, hi) - xp.take(csum, lo)) / xp.astype(hi - lo, sorted_weights.dtype)

    return tie_apply(sanitize_fitness(fitness), mean_weight)


#: Above this population :func:`tie_ranks` searches the sorted values for themselves
#: (sorted queries walk memory in order) and un-permutes the result; up to it, it
#: searches for the unsorted values directly. The two give the same integers.
_SEARCH_SORTED_MIN = PAIRWISE_MAX


def tie_ranks(values: Array) -> tuple[Array, Array]:
    """How many of ``values`` are smaller than, and at most, each of them.

    ``lo[i]`` and ``hi[i]`` are the first and one-past-last sorted positions
    that ``values[i]`` shares with its ties (``values`` without NaN); see
    :func:`tie_apply`.

    Examples
    --------
    >>> import numpy as np
    >>> lo, hi = tie_ranks(np.array([2.0, 0.0, 2.0, 1.0]))
    >>> lo.tolist(), hi.tolist()
    ([2, 0, 2, 1], [4, 1, 4, 2])
    """
    xp = _xp(values)
    spans = tie_apply(values, lambda lo, hi: xp.stack([lo, hi]))
    return spans[0, ...], spans[1, ...]


def tie_apply(values: Array, fn: Callable[[Array, Array], Array]) -> Array:
    """``fn(lo, hi)`` with the tie spans of :func:`tie_ranks`, in the order of ``values``.

    ``fn`` works elementwise along its last axis (``lo``, ``hi``: integer arrays of
    shape (n,); its result: shape (..., n)). O(n log n) on every backend: a binary
    search for each unsorted value jumps around memory (5.7 s at n = 10**6 on
    numpy), so above ``_SEARCH_SORTED_MIN`` values are argsorted once, ``fn`` is
    applied in sorted order (where ``lo`` and ``hi`` come from the runs of ties,
    without a search) and its result un-permuted by one gather. On JAX up to 4096
    values the spans are counted over all pairs (no sort). Every path gives the
    same integers, hence the same result.

    Examples
    --------
    >>> import numpy as np
    >>> tie_apply(np.array([2.0, 0.0, 2.0]), lambda lo, hi: hi - lo).tolist()
    [2, 1, 2]
    """
    xp = _xp(values)
    n = values.shape[0]
    if pairwise_counts_pay(xp, n):
        # counted over all pairs, no sort: one fused XLA loop, 3-4x faster on the CPU
        # than sorting and then comparing all pairs (n = 20-300)
        lo = xp.sum(values[None, :] < values[:, None], axis=1, dtype=xp.int32)
        return fn(lo, xp.sum(values[None, :] <= values[:, None], axis=1, dtype=xp.int32))
    if n <= _SEARCH_SORTED_MIN:
        return fn(*tie_span(xp, xp.sort(values), values))
    order = xp.argsort(values, stable=False)  # ties share their span: any order will do
    in_order = fn(*_sorted_spans(xp, xp.take(values, order)))
    return xp.take(in_order, xp.argsort(order, stable=False), axis=-1)  # the inverse permutation


def _sorted_spans(xp: Any, ordered: Array) -> tuple[Array, Array]:
    """``tie_span(xp, ordered, ordered)`` without a search: from where the runs of ties start.

    With ``m`` runs, sorting ``[start position of each run, else 0] + [n]`` puts the
    start of run ``g`` at ``n - m + g`` and the end of the last run, ``n``, at ``n``.
    """
    n = ordered.shape[0]
    device = array_api_compat.device(ordered)
    positions = xp.arange(n, device=device)
    starts = xp.concat([xp.ones(1, dtype=xp.bool, device=device), ordered[1:] != ordered[:-1]])
    run = xp.cumulative_sum(xp.astype(starts, positions.dtype)) - 1
    first = xp.sort(xp.concat([xp.where(starts, positions, 0), xp.full(1, n, device=device)]))
    index = run + (n - 1 - run[-1])  # n - m + run
    return xp.take(first, index), xp.take(first, index + 1)


def centered_ranks(fitness: Array) -> Array:
    """Ranks scaled to [-0.5, 0.5], best = -0.5 (Salimans et al. 2017, sec. 2.2).

    Parameters
    ----------
    fitness : array, shape (n,)
        Values to minimise, n >= 2.

    Returns
    -------
    array, shape (n,)
    """
    xp = _xp(fitness)
    n = fitness.shape[0]
    positions = xp.arange(n, dtype=fitness.dtype, device=array_api_compat.device(fitness))
    return rank_weights(fitness, positions / (n - 1) - 0.5)


def nes_utilities(popsize: int, xp: Any, dtype: Any, device: Any = None) -> Array:
    """NES utility values for sorted positions (Wierstra et al. 2014, eq. 19 and sec. 3.1).

    ``u_k = max(0, ln(n/2 + 1) - ln k) / sum_j max(0, ln(n/2 + 1) - ln j) - 1/n``
    for ``k = 1..n`` (best first); they sum to zero.
    """
    if device is not None and getattr(device, "type", "cpu") != "cpu":  # no host copy each time
        return _device_utilities(popsize, xp.__name__, dtype, device)
    return xp.asarray(_nes_utility_values(popsize), dtype=dtype, device=device, copy=True)


@host_cached(maxsize=64)  # read as a constant by torch.compile (see host_cached), so keyed by
def _device_utilities(popsize: int, namespace: str, dtype: Any, device: Any) -> Array:  # name
    xp = importlib.import_module(namespace)
    return xp.asarray(_nes_utility_values(popsize), dtype=dtype, device=device)


@host_cached(maxsize=64)
def _nes_utility_values(popsize: int) -> np.ndarray:
    k = np.arange(1, popsize + 1, dtype=np.float64)
    raw = np.maximum(0.0, math.log(popsize / 2 + 1) - np.log(k))
    values = raw / np.cumsum(raw)[-1] - 1.0 / popsize  # summed in order, as before
    values.flags.writeable = False  # cached: shared by every call
    return values


def zscore(values: Array, axis: int = 0, eps: float = 1e-8) -> Array:
    """Standardise along ``axis``; never divides by zero (constant input gives zeros).

    Parameters
    ----------
    values : array
    axis : int
    eps : float
        Added to the standard deviation.
    """
    xp = _xp(values)
    # Values whose squares or sums would overflow are first scaled down (z is unchanged
    # when eps is scaled too; a float32 fitness of 3e38 gave inf - inf = NaN). Shifting
    # by the minimum makes a constant input exactly zero.
    limit = math.sqrt(float(xp.finfo(values.dtype).max) / max(values.shape[axis], 1)) / 4
    factor = downscale_factor(xp.max(xp.abs(values), axis=axis, keepdims=True), limit)
    scaled = values * factor
    shifted = scaled - xp.min(scaled, axis=axis, keepdims=True)
    mean = xp.mean(shifted, axis=axis, keepdims=True)
    std = xp.std(shifted, axis=axis, keepdims=True)
    den = std + eps * factor  # 0 only for a constant huge input (numerator 0)
    return (shifted - mean) / xp.where(den > 0, den, xp.ones_like(den))


def finite_fitness(fitness: Array) -> Array:
    """NaN and ``+inf`` become the worst finite value, ``-inf`` the best (0 if none is finite).

    Examples
    --------
    >>> import numpy as np
    >>> finite_fitness(np.array([1.0, np.nan, -np.inf, 3.0])).tolist()
    [1.0, 3.0, 1.0, 3.0]
    """
    xp = _xp(fitness)
    finite = xp.isfinite(fitness)
    zero = xp.zeros_like(fitness)
    any_finite = xp.any(finite)
    hi = xp.max(xp.where(finite, fitness, zero - xp.inf))
    lo = xp.min(xp.where(finite, fitness, zero + xp.inf))
    hi = xp.where(any_finite, hi, zero[0])
    lo = xp.where(any_finite, lo, zero[0])
    out = xp.where(fitness == -xp.inf, lo, fitness)
    return xp.where(xp.isnan(out) | (out == xp.inf), hi, out)


def nes_ranks(fitness: Array) -> Array:
    """Minus the NES utility of each candidate's rank (best: the most negative), ties averaged."""
    xp = _xp(fitness)
    utilities = nes_utilities(fitness.shape[0], xp, fitness.dtype, array_api_compat.device(fitness))
    return -rank_weights(fitness, utilities)


#: The fitness shapings by name: ``fitness (n,) -> shaped values (n,)``, lower is better.
SHAPINGS = {
    "centered_ranks": centered_ranks,
    "nes_utilities": nes_ranks,
    "zscore": lambda f: zscore(finite_fitness(f)),
    "raw": finite_fitness,
    "none": finite_fitness,
}


def shape_fitness(fitness: Array, how: str) -> Array:
    """``fitness`` shaped by the entry ``how`` of :data:`SHAPINGS`.

    Examples
    --------
    >>> import numpy as np
    >>> shape_fitness(np.array([3.0, 1.0, 2.0]), "centered_ranks").tolist()
    [0.5, -0.5, 0.0]
    >>> np.round(shape_fitness(np.array([3.0, 1.0, 2.0]), "nes_utilities"), 4).tolist()
    [0.3333, -0.4708, 0.1375]
    """
    return SHAPINGS[how](fitness)


def downscale_factor(magnitude: Array, limit: float) -> Array:
    """An exact power of two ``r`` with ``magnitude * r <= 16`` where ``magnitude > limit``, else 1.

    Multiplying by ``r`` rescales values near the dtype's maximum without rounding,
    so sums and squares of the result cannot overflow. (Dividing by ``magnitude``
    instead fails under XLA, which divides through the reciprocal: ``1 / 3e38`` is
    subnormal in float32 and XLA on CPU flushes it to zero.) ``limit >= 1``.
    """
    xp = _xp(magnitude)
    huge = magnitude > limit
    safe = xp.where(huge, magnitude, xp.ones_like(magnitude))
    exponent = xp.floor(xp.log2(safe)) - 3.0
    return xp.where(huge, 2.0 ** (-exponent), xp.ones_like(magnitude))
