"""Array helpers shared by the distributions: number detection, traced values,
broadcast reduction."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from evostrat.backends import Backend

Array = Any

__all__ = ["LOG_2PI", "is_number_like", "concrete_bool", "sum_to_shape"]

LOG_2PI = math.log(2 * math.pi)


def is_number_like(value: Any) -> bool:
    """Python numbers, numpy scalars, lists and tuples (not bools): converted, not dispatched on."""
    return isinstance(value, (numbers.Number, list, tuple, np.generic)) and not isinstance(
        value, bool
    )


def concrete_bool(backend: Backend, value: Array) -> bool | None:
    """``bool(value)``, or ``None`` when ``value`` is a JAX tracer (no value yet)."""
    try:
        return bool(value)
    except TypeError:  # jax ConcretizationTypeError / TracerBoolConversionError
        if backend.traceable:
            return None
        raise


def sum_to_shape(grad: Array, n_sample_axes: int, shape: tuple[int, ...], xp: Any) -> Array:
    """Sum the broadcast axes of ``grad`` so it has shape ``sample_shape + shape``.

    ``grad`` has shape ``sample_shape + full`` where ``shape`` broadcasts to
    ``full``; the axes ``shape`` lacks, or where it has size 1, are summed.
    """
    full = tuple(grad.shape[n_sample_axes:])
    lead = len(full) - len(shape)
    axes = [n_sample_axes + i for i in range(lead)]
    axes += [
        n_sample_axes + lead + i
        for i, size in enumerate(shape)
        if size == 1 and full[lead + i] != 1
    ]
    if axes:
        grad = xp.sum(grad, axis=tuple(axes), keepdims=True)
    return xp.reshape(grad, tuple(grad.shape[:n_sample_axes]) + tuple(shape))
