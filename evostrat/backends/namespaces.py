"""What the numerical code needs to know about an array namespace's own fast paths.

The shared numerical code (fitness shaping, strategies) is written once against the array API
(``xp``). A few operations have a faster form on one library; which one, and when, is decided
here, so that no module outside :mod:`evostrat.backends` tests which array library it has.

- :func:`searchsorted_span`: both ``searchsorted`` sides; on JAX with ``method="compare_all"``
  (small inputs) or ``"sort"``, not the default sequential ``"scan"``, whose loop made one JAX
  generation on an H100 5-9x slower than evosax's (BENCHMARKS.md).
- :func:`pairwise_counts_pay`: whether counting ranks over all ``n^2`` pairs beats a sort
  (on JAX up to ``n = 4096``: one fused XLA loop, 3-4x faster on the CPU than sorting and then
  comparing, n = 20-300; never on numpy or torch, which run the pairs as separate kernels).

Examples
--------
>>> import numpy as np
>>> lo, hi = searchsorted_span(np, np.array([1.0, 2.0, 2.0, 3.0]), np.array([2.0, 3.0]))
>>> lo.tolist(), hi.tolist()
([1, 3], [3, 4])
>>> pairwise_counts_pay(np, 10)
False
"""

from __future__ import annotations

from typing import Any

import array_api_compat

__all__ = ["PAIRWISE_MAX", "pairwise_counts_pay", "searchsorted_span"]

#: Largest ``n`` for which JAX counts ranks over all pairs (``n^2`` comparisons) instead of sorting.
PAIRWISE_MAX = 4096


def searchsorted_span(xp: Any, sorted_values: Any, values: Any) -> tuple[Any, Any]:
    """``(searchsorted(..., side="left"), searchsorted(..., side="right"))`` of ``values``.

    Parameters
    ----------
    xp : module
        The array namespace of both arrays.
    sorted_values : array, shape (m,)
        Ascending.
    values : array, shape (n,)
        Where to look them up.

    Returns
    -------
    tuple of int arrays, shape (n,)
        The first index of each value's run of ties in ``sorted_values`` and one past its last.
    """
    kw = {}
    if array_api_compat.is_jax_namespace(xp):
        kw["method"] = "compare_all" if values.shape[0] <= PAIRWISE_MAX else "sort"
    return (xp.searchsorted(sorted_values, values, side="left", **kw),
            xp.searchsorted(sorted_values, values, side="right", **kw))


def pairwise_counts_pay(xp: Any, n: int) -> bool:
    """Whether ranks of ``n`` values are cheaper counted over all pairs than through a sort."""
    return n <= PAIRWISE_MAX and array_api_compat.is_jax_namespace(xp)
