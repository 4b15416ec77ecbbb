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
- :func:`host_cached`: a cache of host-side constants (hyper-parameters, weight tables) that a
  tracing compiler reads as constants: ``torch.compile`` traces through ``functools.lru_cache``
  into the numpy code behind it and fails there; it reads a plain dict instead.
- :func:`eigh_identity`: the identity in the layout of ``eigh``'s eigenvectors (column-major on
  torch), so a decomposed state keeps one layout before and after its first decomposition.
- :func:`solve`: ``xp.linalg.solve``; on torch without the LAPACK status check, which reads
  a device value on the host (a GPU synchronisation); callers test the result for finiteness.
- :func:`cheap_cond`: ``Backend.cond`` for a branch cheap enough to run every time: on torch
  both branches and a select, so no device value is read on the host (a GPU synchronisation).

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

import functools
from typing import Any, Callable, TypeVar

import array_api_compat
import numpy as np

from evostrat.backends.trees import merge_leaves

__all__ = ["PAIRWISE_MAX", "cheap_cond", "eigh_identity", "host_cached", "pairwise_counts_pay", "searchsorted_span",
           "solve"]

F = TypeVar("F", bound=Callable[..., Any])
_MISSING = object()

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


def host_cached(maxsize: int) -> Callable[[F], F]:
    """Cache a function of hashable host values (``lru_cache`` that tracing compilers can read).

    ``torch.compile`` ignores ``functools.lru_cache`` and traces the numpy code behind it,
    which fails (``ndarray.flags``, a data-dependent ``float()``); from a plain dict it takes a
    cached value as a constant. A value computed once outside the trace (the first, eager
    call of a program) is then read, never traced. At ``maxsize`` entries the cache is emptied.

    Parameters
    ----------
    maxsize : int
        Entries kept before the cache is emptied.

    Returns
    -------
    callable
        A decorator; the cached function has ``cache_clear()``.

    Examples
    --------
    >>> @host_cached(maxsize=4)
    ... def table(n):
    ...     return tuple(range(n))
    >>> table(3) is table(3)
    True
    """
    def decorate(fn: F) -> F:
        cache: dict = {}

        @functools.wraps(fn)
        def cached(*args: Any, **kwargs: Any) -> Any:
            key = args + (_MISSING, *sorted(kwargs.items())) if kwargs else args
            hit = cache.get(key, _MISSING)
            if hit is _MISSING:
                hit = fn(*args, **kwargs)
                if len(cache) >= maxsize:
                    cache.clear()
                cache[key] = hit
            return hit

        cached.cache_clear = cache.clear  # type: ignore[attr-defined]
        return cached  # type: ignore[return-value]

    return decorate


def cheap_cond(backend: Any, pred: Any, true_fn: Callable, false_fn: Callable, *operands: Any) -> Any:
    """``backend.cond(pred, true_fn, false_fn, *operands)`` for branches cheap enough to run both.

    For a torch predicate off the CPU (or under ``torch.compile``) both branches run and each
    leaf of the result is ``where(pred, a, b)`` (leaves both branches return as the same object
    are kept), so the predicate is never read on the host: no GPU synchronisation, no graph
    break. The values are those of the branch ``pred`` picks, bit for bit. JAX does the same
    while a batch of runs advanced together is traced (``Backend.in_lockstep``), where a
    ``cond`` would first sum the runs' predicates. Otherwise ``cond``: one branch on numpy and
    for a torch predicate in host memory, which costs nothing to read (the torch backend's
    ``cond`` still selects under ``torch.func.vmap``); ``lax.cond`` on JAX. On the CPU that
    skips CMA-ES's eigenvalue repair and its selects in the usual generation, about a fifth of a
    torch generation at d = 10.

    Parameters
    ----------
    backend : Backend
    pred : 0-d bool array
    true_fn, false_fn : callable
        Return trees (NamedTuples, tuples) of the same structure.
    *operands
        Passed to the branch taken (to both on torch).

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat.backends import get_backend
    >>> cheap_cond(get_backend("numpy"), np.bool_(True), lambda x: x + 1, lambda x: x, 1.0)
    2.0
    """
    xp = backend.xp
    if backend.in_lockstep or (array_api_compat.is_torch_namespace(xp) and not _read_on_host(pred)):
        otherwise = false_fn(*operands)
        return merge_leaves(lambda a, b: xp.where(pred, a, b), true_fn(*operands), otherwise)
    return backend.cond(pred, true_fn, false_fn, *operands)


def _read_on_host(pred: Any) -> bool:
    """Whether the torch predicate ``pred`` is read at no cost: in host memory, outside ``torch.compile``
    (whose graphs keep the selects, as on a GPU)."""
    import torch  # loaded: pred is a torch tensor

    return pred.device.type == "cpu" and not torch.compiler.is_compiling()


def eigh_identity(xp: Any, n: int, dtype: Any, device: Any = None) -> Any:
    """``xp.eye(n)`` in the memory layout of ``xp.linalg.eigh``'s eigenvectors.

    torch returns them column-major: an initial ``B`` in that layout gives a state one
    layout whether decomposed yet or not, so ``torch.cond``'s branches agree and the
    products with ``B`` round alike in eager and compiled runs. Other libraries: ``xp.eye``.

    >>> import array_api_compat.numpy as xp
    >>> eigh_identity(xp, 2, xp.float64).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    eye = xp.eye(n, dtype=dtype, device=device)
    return eye.T if array_api_compat.is_torch_namespace(xp) else eye


def solve(xp: Any, a: Any, b: Any) -> Any:
    """``xp.linalg.solve(a, b)`` for a matrix ``b``; on torch ``solve_ex(check_errors=False)``.

    The same numbers; torch's ``solve`` reads its LAPACK status on the host (on a GPU a
    synchronisation) to raise on a singular ``a``, where ``solve_ex`` returns non-finite
    values instead, which callers test for. numpy's ``LinAlgError`` on a singular ``a``
    gives NaN the same way (JAX's solve returns non-finite values itself).

    >>> import array_api_compat.numpy as xp
    >>> solve(xp, xp.eye(2) * 2.0, xp.ones((2, 1))).tolist()
    [[0.5], [0.5]]
    """
    if array_api_compat.is_torch_namespace(xp):
        return xp.linalg.solve_ex(a, b, check_errors=False)[0]
    try:
        return xp.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        return xp.full(b.shape, xp.nan, dtype=b.dtype)
