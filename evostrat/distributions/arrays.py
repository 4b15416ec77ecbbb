"""Parameters of a search distribution as arrays of one backend, and shape helpers.

:func:`to_one_backend` is what :meth:`Distribution.convert_params
<evostrat.distributions.base.Distribution.convert_params>` does to the parameters
a family's ``__init__`` receives: the first array picks the backend, numbers and
lists follow it (numpy float64 when all are numbers).

Examples
--------
>>> import numpy as np
>>> from evostrat.distributions.arrays import to_one_backend
>>> backend, (mu, sigma) = to_one_backend({"mu": np.zeros(2, np.float32), "sigma": 0.5})
>>> backend.name, sigma.dtype
('numpy', dtype('float32'))
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from evostrat.backends import Backend, array_backend, get_backend
from evostrat.errors import InvalidTypeError

Array = Any

__all__ = ["is_int", "is_number_like", "sum_to_shape", "to_one_backend"]


def is_int(value: Any) -> bool:
    """An integral number that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number_like(value: Any) -> bool:
    """Python numbers, numpy scalars, lists and tuples (not bools): converted, not dispatched on."""
    return isinstance(value, (numbers.Number, list, tuple, np.generic)) and not isinstance(value, bool)


def sum_to_shape(grad: Array, n_sample_axes: int, shape: tuple[int, ...], xp: Any) -> Array:
    """Sum the broadcast axes of ``grad`` so it has shape ``sample_shape + shape``.

    ``grad`` has shape ``sample_shape + full`` where ``shape`` broadcasts to
    ``full``; the axes ``shape`` lacks, or where it has size 1, are summed.
    """
    full = tuple(grad.shape[n_sample_axes:])
    lead = len(full) - len(shape)
    axes = [n_sample_axes + i for i in range(lead)]
    axes += [n_sample_axes + lead + i for i, size in enumerate(shape) if size == 1 and full[lead + i] != 1]
    if axes:
        grad = xp.sum(grad, axis=tuple(axes), keepdims=True)
    return xp.reshape(grad, tuple(grad.shape[:n_sample_axes]) + tuple(shape))


def to_one_backend(values: dict[str, Any]) -> tuple[Backend, list[Array]]:
    """The backend of the arrays among ``values`` and every value on it, in one floating dtype.

    Parameters
    ----------
    values : dict
        Parameter name -> number, list, array (numpy, torch or JAX) or ``None``
        (passed through).

    Returns
    -------
    backend : Backend
        The backend of the first array (numpy when there is none).
    arrays : list
        The values in order, as arrays of that backend, device and one floating
        dtype (the arrays' result type, else the backend's default float).

    Raises
    ------
    InvalidTypeError
        Naming the parameter that is no number or array, an array of another
        backend than the first, or of a non-real dtype.
    """
    backend: Backend | None = None
    arrays: dict[str, Array] = {}
    for name, value in values.items():
        if value is None or is_number_like(value):
            continue
        be = array_backend(value)
        if be is None:
            raise InvalidTypeError(
                f"{name} must be a number or an array (numpy, torch or JAX), got {type(value).__name__}"
            )
        if backend is not None and be is not backend:
            raise InvalidTypeError(
                f"{name} is a {be.name} array but {next(iter(arrays))} is a {backend.name} "
                "array; pass every parameter on one backend"
            )
        if not be.xp.isdtype(value.dtype, ("real floating", "integral")):
            raise InvalidTypeError(f"{name} must have a real dtype, got {value.dtype}")
        backend, arrays[name] = be, value
    backend = backend or get_backend("numpy")
    xp = backend.xp
    device = next((d for d in map(backend.device, arrays.values()) if d is not None), None)
    floats = [a.dtype for a in arrays.values() if xp.isdtype(a.dtype, "real floating")]
    dtype = xp.result_type(*floats) if len(floats) > 1 else floats[0] if floats else backend.default_float
    out = []
    for name, value in values.items():
        try:
            if value is not None and name not in arrays:
                value = backend.asarray(value, dtype=dtype, device=device)
            elif value is not None and value.dtype != dtype:
                value = xp.astype(value, dtype)
        except (TypeError, ValueError) as err:
            raise InvalidTypeError(f"{name} must be a number or an array of real numbers, got {value!r}") from err
        out.append(value)
    return backend, out
