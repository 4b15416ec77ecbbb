"""The thresholds of the compiled criteria, rounded so that the device decides as the host does.

The host compares a run's numbers with a criterion's threshold in float64 (a float32 value is
exact there); the compiled chunk compares in the run's dtype. :func:`threshold` rounds the
threshold towards the comparison's answer and :func:`below` tests a difference exactly, so
both give the same answer on the same numbers.

Examples
--------
>>> import numpy as np
>>> float(directed(0.1, np.float32, up=True)) > 0.1 > float(directed(0.1, np.float32, up=False))
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["threshold", "directed", "below"]


def threshold(value: Any, like: Any, up: bool = True) -> Any:
    """The threshold ``value`` (a Python float, or a traced one of :meth:`Rules.with_thresholds`) in
    the dtype of ``like``, the array it is compared with, rounded so that the comparison gives the
    host's answer (float64 against the exact ``value``): ``up`` (``x < value``, ``x >= value``) the
    least number of that dtype at or above ``value``, else (``x <= value``) the greatest at or below
    it. Rounded to the nearest, ``ftarget=0.1`` was reached by a float32 best of 0.100000001 (the
    host: not reached), and ``tolfun=1e-40`` became a subnormal number, which XLA's CPU flushes to
    zero (the host stopped a flat run on it). A threshold that rounds into the subnormal range
    goes to zero or to the least normal number, in its direction."""
    import jax.numpy as jnp

    dtype = jnp.result_type(like)
    if isinstance(value, (int, float, np.number)):  # a constant: decided here, in float64
        return jnp.asarray(directed(float(value), dtype, up)[()], dtype)
    near = value.astype(dtype)
    wide = near.astype(value.dtype)
    out = jnp.where((wide < value) if up else (wide > value),
                    jnp.nextafter(near, jnp.asarray(jnp.inf if up else -jnp.inf, dtype)), near)
    tiny = jnp.finfo(dtype).tiny
    small = (jnp.abs(value) < tiny) & (value != 0)  # tested in value's dtype (a float32 one is normal)
    flushed = jnp.where(value > 0, tiny if up else 0.0, 0.0 if up else -tiny).astype(dtype)
    return jnp.where(small, flushed, out)


def directed(value: float, dtype: Any, up: bool) -> np.ndarray:
    """:func:`threshold` of a constant ``value``: a 0-d numpy array of ``dtype`` (host side)."""
    import jax.numpy as jnp

    near = np.asarray(value).astype(dtype)
    if (float(near) < value) if up else (float(near) > value):  # numpy's (ml_dtypes' for bfloat16): no tracing
        near = np.nextafter(near, np.asarray(np.inf if up else -np.inf, near.dtype))
    tiny = float(jnp.finfo(dtype).tiny)
    if 0 < abs(value) < tiny:
        near = np.asarray((tiny if up else 0.0) if value > 0 else (0.0 if up else -tiny)).astype(dtype)
    return near


def below(hi: Any, lo: Any, tol: Any) -> Any:
    """Whether ``hi - lo``, computed exactly, is below ``tol`` (:func:`threshold` of their dtype):
    the host subtracts in float64, where the difference of two float32 numbers is exact. Where
    the rounded difference equals ``tol``, its rounding error (Knuth's two-sum) decides."""
    s = hi - lo
    b = s - hi
    error = (hi - (s - b)) + (-lo - b)  # hi - lo == s + error exactly
    return (s < tol) | ((s == tol) & (error < 0))
