"""Where a run starts: the backend ``x0`` picks and ``x0`` as a validated search point.

``x0`` decides the backend (a numpy array or a list: numpy, a torch tensor:
torch, a JAX array: JAX) unless ``backend=`` names one; :func:`as_search_point`
turns it into a finite 1-D floating array of that backend.

Examples
--------
>>> import numpy as np
>>> be = resolve_backend([1.0, 2.0], "auto")
>>> be.name, as_search_point([1.0, 2.0], be).dtype
('numpy', dtype('float64'))
"""

from __future__ import annotations

from typing import Any

from evostrat.backends import Backend, get_backend
from evostrat.backends.base import Array
from evostrat.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["as_search_point", "resolve_backend"]


def as_search_point(
    x0: Any, backend: Backend, dtype: Any = None, device: Any = None
) -> Array:
    """Validate ``x0`` and convert it to a 1-D floating array of ``backend``.

    Raises
    ------
    InvalidTypeError
        For a non-real dtype (complex, object, string).
    InvalidArgumentError
        For a shape other than ``(dim,)`` with ``dim >= 1``, or non-finite values.
    """
    try:
        x = backend.asarray(x0, device=device)
    except (TypeError, ValueError) as err:
        raise InvalidTypeError(
            f"x0 must be a 1-D array of real numbers, got {type(x0).__name__}: {err}"
        ) from err
    if dtype is None:
        dtype = backend.float_dtype(x)
    elif isinstance(dtype, str):
        dtype = backend.dtype_from_name(dtype)
    if not backend.xp.isdtype(backend.float_dtype(x), "real floating"):
        raise InvalidTypeError(f"x0 must have a real dtype, got {x.dtype}")
    x = backend.asarray(x, dtype=dtype)
    if x.ndim != 1 or x.shape[0] < 1:
        raise InvalidArgumentError(
            f"x0 must have shape (dim,) with dim >= 1, got shape {tuple(x.shape)}"
        )
    if not bool(backend.xp.all(backend.xp.isfinite(x))):
        raise InvalidArgumentError("x0 must be finite; it contains NaN or inf")
    return x


def resolve_backend(x0: Any, backend: Any) -> Backend:
    """The backend of a run: ``backend`` if given, else the one owning ``x0`` (numpy for lists).

    Examples
    --------
    >>> resolve_backend([1.0, 2.0], "auto").name
    'numpy'
    """
    if backend is None or (isinstance(backend, str) and backend == "auto"):
        if isinstance(x0, (list, tuple, int, float)):
            return get_backend("numpy")
        return get_backend(x0)
    return get_backend(backend)
