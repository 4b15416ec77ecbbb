"""Reductions of the compiled criteria in as few XLA kernels as possible (issue 15).

XLA's CPU compiler emits every fusion of a program as a kernel of its own, and compiling one
costs ~10-15 ms whatever its size: the compiled chunk's first call is mostly spent there. The
criteria's per-row numbers (counts, least and greatest values, first minima) and their running
values over a block of rows (cumulative sums, minima, maxima) were a kernel each, and each
cumulative one four (``lax.cumsum`` lowers to a tree of ``reduce-window``\\ s on the CPU). Here
several such reductions are one variadic ``lax.reduce``: the same numbers, bit for bit (counts,
minima and maxima do not depend on the order they are taken in), from one kernel (two where a
reduced axis is longer than 32: XLA's tree-reduction rewriter splits it).

Examples
--------
>>> import jax.numpy as jnp                                                   # doctest: +SKIP
>>> s, lo = prefix((jnp.asarray([1, 0, 2]), "sum"), (jnp.asarray([3.0, 1.0, 2.0]), "min"))  # doctest: +SKIP
>>> s.tolist(), lo.tolist()                                                  # doctest: +SKIP
([1, 1, 3], [3.0, 1.0, 1.0])
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["row_summary", "prefix", "latest", "extremes"]


def _identity(op: str, dtype: Any) -> Any:
    import jax.numpy as jnp

    if op == "sum":
        return jnp.zeros((), dtype)
    big = jnp.inf if jnp.issubdtype(dtype, jnp.floating) else jnp.iinfo(dtype).max
    return jnp.asarray(big if op == "min" else -big, dtype)


def _combine(ops: tuple[str, ...]) -> Any:
    import jax.numpy as jnp

    fns = {"sum": jnp.add, "min": jnp.minimum, "max": jnp.maximum}

    def combine(a: Any, b: Any) -> tuple[Any, ...]:
        return tuple(fns[op](x, y) for op, x, y in zip(ops, a, b))

    return combine


def prefix(*columns: tuple[Any, str]) -> tuple[Any, ...]:
    """The running reductions of ``columns``, ``(x, op)`` pairs of vectors of one length ``n``
    and ``"sum"``, ``"min"`` or ``"max"``: ``jnp.cumsum(x)``, ``lax.cummin(x)``, ``lax.cummax(x)``,
    bit for bit (integer sums, minima and maxima are exact in any order), from one reduction over
    an ``(n, n)`` triangle (vectors of a block's rows: ``n`` is a few dozen). A lone column past 32
    rows is two kernels: XLA's tree rewriter splits a reduction of one operand, not a variadic one."""
    import jax
    import jax.numpy as jnp

    n = columns[0][0].shape[0]
    # the triangle j <= i as a constant: iotas compared in a loop are hoisted into a kernel of their own
    tri = np.tri(n, dtype=bool)
    ops = tuple(op for _, op in columns)
    inits = tuple(_identity(op, x.dtype) for x, op in columns)
    operands = tuple(jnp.where(tri, x[None, :], e) for (x, _), e in zip(columns, inits))
    return tuple(jax.lax.reduce(operands, inits, _combine(ops), (1,)))


def latest(mask: Any, *values: Any) -> tuple[Any, ...]:
    """Per row of ``mask`` ``(k, n)``: the last column ``j`` where it holds (``-1`` where none does)
    and ``values[j]`` of each of ``values`` (vectors ``(n,)``; unspecified where none does), in one
    reduction: ``jnp.max(jnp.where(mask, arange(n), -1), axis=1)`` and the gathers of its indices."""
    import jax
    import jax.numpy as jnp

    k, n = mask.shape
    operands = (jnp.where(mask, jax.lax.broadcasted_iota(jnp.int32, (k, n), 1), -1),
                *(jnp.broadcast_to(v[None, :], (k, n)) for v in values))
    inits = (jnp.asarray(-1, jnp.int32), *(jnp.zeros((), v.dtype) for v in values))

    def combine(a: Any, b: Any) -> tuple[Any, ...]:
        later = a[0] > b[0]
        return tuple(jnp.where(later, x, y) for x, y in zip(a, b))

    return tuple(jax.lax.reduce(operands, inits, combine, (1,)))


def extremes(x: Any, mask: Any) -> tuple[Any, Any]:
    """``(max, min)`` of the entries of ``x`` where ``mask`` holds (``-inf``, ``inf`` for none), in one
    reduction over the last axis."""
    import jax
    import jax.numpy as jnp

    inits = (jnp.asarray(-jnp.inf, x.dtype), jnp.asarray(jnp.inf, x.dtype))
    operands = (jnp.where(mask, x, inits[0]), jnp.where(mask, x, inits[1]))
    return tuple(jax.lax.reduce(operands, inits, _combine(("max", "min")), (x.ndim - 1,)))


def row_summary(values: Any, signed: Any = None) -> tuple[Any, ...]:
    """Per row of ``values`` ``(..., popsize)``, in one reduction over the last axis: the number of
    finite values, the least and greatest finite values (``inf`` and ``-inf`` when none), and
    where ``signed`` (``values`` without NaN, minimisation sense) is given, the first index of its
    least value (``jnp.argmin``'s)."""
    import jax
    import jax.numpy as jnp

    finite = jnp.isfinite(values)
    axis = values.ndim - 1
    operands = [finite.astype(jnp.int32), jnp.where(finite, values, jnp.inf), jnp.where(finite, values, -jnp.inf)]
    inits = [jnp.asarray(0, jnp.int32), jnp.asarray(jnp.inf, values.dtype), jnp.asarray(-jnp.inf, values.dtype)]
    if signed is not None:
        width = values.shape[-1]
        operands += [signed, jax.lax.broadcasted_iota(jnp.int32, values.shape, axis)]
        inits += [jnp.asarray(jnp.inf, signed.dtype), jnp.asarray(width, jnp.int32)]

    counts_and_range = _combine(("sum", "min", "max"))

    def combine(a: Any, b: Any) -> tuple[Any, ...]:
        out = counts_and_range(a[:3], b[:3])
        if signed is None:
            return out
        first = (a[3] < b[3]) | ((a[3] == b[3]) & (a[4] < b[4]))
        return out + (jnp.where(first, a[3], b[3]), jnp.where(first, a[4], b[4]))

    return tuple(jax.lax.reduce(tuple(operands), tuple(inits), combine, (axis,)))
