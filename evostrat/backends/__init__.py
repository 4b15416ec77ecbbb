"""Array backends and their selection.

A backend is chosen from the type of ``x0`` (numpy array -> ``"numpy"``, torch
tensor -> ``"torch"`` on the tensor's device, JAX array -> ``"jax"``) or by
name. Backends are plugins: the ``evostrat_backends`` hook lists them by name
and the ``evostrat_backend(x)`` hook claims an array. The result is cached per
array type, so selection costs a dictionary look-up after the first call.

Examples
--------
>>> import numpy as np
>>> from evostrat.backends import get_backend
>>> get_backend(np.zeros(3)).name
'numpy'
>>> get_backend("numpy").name
'numpy'
"""

from __future__ import annotations

from typing import Any

from evostrat.backends.base import Array, Backend, Key
from evostrat.errors import InvalidTypeError, UnknownNameError

__all__ = ["Array", "Backend", "Key", "get_backend", "backend_names"]

_by_name: dict[str, Backend] = {}
_by_type: dict[type, Backend] = {}


def backend_names() -> list[str]:
    """Names of the registered backends (installed or not)."""
    from evostrat.plugins import registry

    return sorted(registry("backends"))


def _instantiate(name: str) -> Backend:
    from evostrat.plugins import registry

    if name not in _by_name:
        backends = registry("backends")
        if name not in backends:
            raise UnknownNameError(
                f"backend must be one of {sorted(backends)} or 'auto', got {name!r}"
            )
        try:
            _by_name[name] = backends[name]()
        except ImportError as err:
            raise UnknownNameError(
                f"backend {name!r} is registered but its library is not installed "
                f"({err}); install it with `pip install evostrat[{name}]`"
            ) from err
    return _by_name[name]


def get_backend(spec: Any) -> Backend:
    """Return the backend named ``spec`` or owning the array ``spec``.

    Parameters
    ----------
    spec : str or array
        A backend name, a :class:`Backend` instance, or an array of some backend.

    Returns
    -------
    Backend

    Raises
    ------
    UnknownNameError
        For a name that is not registered or whose library is missing.
    InvalidTypeError
        For an object no installed backend claims.
    """
    if isinstance(spec, Backend):
        return spec
    if isinstance(spec, str):
        return _instantiate(spec)
    kind = type(spec)
    backend = _by_type.get(kind)
    if backend is None:
        from evostrat.plugins import get_plugin_manager

        name = get_plugin_manager().hook.evostrat_backend(x=spec)
        if name is None:
            raise InvalidTypeError(
                f"no installed backend handles objects of type {kind.__module__}.{kind.__name__}; "
                f"pass a numpy array, torch tensor or JAX array (backends: {backend_names()})"
            )
        backend = _instantiate(name) if isinstance(name, str) else name
        _by_type[kind] = backend
    return backend
