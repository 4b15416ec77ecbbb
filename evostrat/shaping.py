"""Fitness shaping: rank-based weights, NES utilities, z-scores, weight decay.

Every function is written over the Array API namespace of its input, so one
implementation serves numpy, torch and JAX (and traces under ``jax.jit``).
Fitness is *minimised*; NaN counts as the worst value (``+inf``). Tied values
share the mean of the weights their positions would get, so a constant
objective yields all-equal weights and a zero gradient.

Examples
--------
>>> import numpy as np
>>> from evostrat.shaping import centered_ranks
>>> centered_ranks(np.array([3.0, 1.0, 2.0]))
array([ 0.5, -0.5,  0. ])
>>> centered_ranks(np.array([1.0, 1.0, 1.0]))
array([0., 0., 0.])
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat

Array = Any

__all__ = [
    "sanitize_fitness",
    "rank_weights",
    "centered_ranks",
    "nes_utilities",
    "zscore",
]


def _xp(x: Array) -> Any:
    return array_api_compat.array_namespace(x)


def sanitize_fitness(fitness: Array) -> Array:
    """Replace NaN by ``+inf`` so it ranks worst under minimisation."""
    xp = _xp(fitness)
    return xp.where(xp.isnan(fitness), xp.asarray(xp.inf, dtype=fitness.dtype), fitness)


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
    """
    xp = _xp(fitness)
    f = sanitize_fitness(fitness)
    s = xp.sort(f)
    lo = xp.searchsorted(s, f, side="left")
    hi = xp.searchsorted(s, f, side="right")
    csum = xp.cumulative_sum(sorted_weights, include_initial=True)
    total = xp.take(csum, hi) - xp.take(csum, lo)
    count = xp.astype(hi - lo, sorted_weights.dtype)
    return total / count


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
    raw = [max(0.0, math.log(popsize / 2 + 1) - math.log(k)) for k in range(1, popsize + 1)]
    total = sum(raw)
    values = [r / total - 1.0 / popsize for r in raw]
    return xp.asarray(values, dtype=dtype, device=device)


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
    mean = xp.mean(values, axis=axis, keepdims=True)
    std = xp.std(values, axis=axis, keepdims=True)
    return (values - mean) / (std + eps)
