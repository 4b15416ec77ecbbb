"""A strategy state as named numpy arrays and back: what ``state_dict`` and checkpoints store.

:func:`state_to_numpy` flattens a (nested) ``NamedTuple`` state to ``{"field.sub": array}``
(host copies; the names are words, so a checkpoint's ``.npz`` needs no pickle);
:func:`state_from_numpy` rebuilds a state shaped like a template, each array checked
against the template's shape and dtype and put on the run's device (a JAX key rebuilt
from its data).

Examples
--------
>>> import numpy as np
>>> from evostrat.backends import get_backend
>>> from evostrat.strategies.snes import SNES
>>> state = SNES().init(np.zeros(3), random_state=0)
>>> arrays = state_to_numpy(state, get_backend("numpy"))
>>> sorted(arrays)[:2]
['key', 'mean']
>>> back = state_from_numpy(state, arrays, get_backend("numpy"), None)
>>> all(np.array_equal(a, b) for a, b in zip(state_to_numpy(back, get_backend("numpy")).values(), arrays.values()))
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evostrat.backends import Backend
from evostrat.backends.trees import field_names, named_leaves
from evostrat.errors import InvalidArgumentError

__all__ = ["state_from_numpy", "state_to_numpy"]


def state_to_numpy(state: Any, backend: Backend, prefix: str = "") -> dict[str, np.ndarray]:
    """Flatten a (nested) NamedTuple state to ``{"field.sub": numpy array}`` (copies; keys as words)."""
    return {name: np.array(v, copy=True) for name, v in named_leaves(backend.to_host(state), prefix)}


def state_from_numpy(template: Any, arrays: dict[str, np.ndarray], backend: Backend, device: Any,
                     prefix: str = "") -> Any:
    """Inverse of :func:`state_to_numpy`, shaped like ``template``."""
    values = []
    for field, value in zip(field_names(template), template):
        name = f"{prefix}{field}"
        if field_names(value):
            values.append(state_from_numpy(value, arrays, backend, device, prefix=f"{name}."))
            continue
        if name not in arrays:
            raise InvalidArgumentError(f"state_dict is missing the array {name!r}")
        data = np.asarray(arrays[name])
        if field == "key":  # on the run's device on JAX, as the run's other arrays (not the default one)
            key = backend.key_from_numpy(data)
            values.append(backend.asarray(key, device=device) if backend.traceable and device is not None else key)
        else:
            ref = backend.to_numpy(value)
            if data.shape != ref.shape or data.dtype != ref.dtype:
                raise InvalidArgumentError(f"state_dict array {name!r} has shape {data.shape} and dtype "
                                           f"{data.dtype}; expected shape {ref.shape} and dtype {ref.dtype}")
            values.append(backend.asarray(data, device=backend.restored_device(value, device)))
    return type(template)(*values)
