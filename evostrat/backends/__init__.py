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

import numbers
from typing import Any

from evostrat import plugins
from evostrat.backends.base import Array, Backend, Key
from evostrat.backends.trees import map_tree
from evostrat.errors import InvalidTypeError, UnknownNameError

__all__ = [
    "Array", "Backend", "Key", "array_backend", "backend_names", "get_backend", "is_array", "to_host",
]

_by_name: dict[str, Backend] = {}
_by_type: dict[type, Backend | None] = {}  # None: no installed backend claims the type


@plugins.on_reset
def _forget() -> None:
    """Drop the cached backends (the plugins that provide them were reset)."""
    _by_name.clear()
    _by_type.clear()


def backend_names() -> list[str]:
    """Names of the registered backends (installed or not)."""
    return sorted(plugins.registry("backends"))


def _instantiate(name: str) -> Backend:
    if name not in _by_name:
        registered = plugins.lookup("backends", name, "backend", also=" or 'auto'")
        try:
            _by_name[name] = plugins.registry("backends")[registered]()
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
    backend = _claim(spec)
    if backend is None:
        kind = type(spec)
        raise InvalidTypeError(
            f"no installed backend handles objects of type {kind.__module__}.{kind.__name__}; "
            f"pass a numpy array, torch tensor or JAX array (backends: {backend_names()})"
        )
    return backend


def _claim(x: Any) -> Backend | None:
    """The backend the ``evostrat_backend`` hook assigns to ``type(x)`` (cached per type)."""
    kind = type(x)
    if kind in _by_type:
        return _by_type[kind]
    backend = None
    if not isinstance(x, (str, bytes, numbers.Number)) or hasattr(x, "dtype"):
        name = plugins.get_plugin_manager().hook.evostrat_backend(x=x)
        if name is not None:
            backend = _instantiate(name) if isinstance(name, str) else name
    _by_type[kind] = backend
    return backend


def array_backend(x: Any) -> Backend | None:
    """The backend owning the array ``x``, or ``None`` for anything else.

    >>> import numpy as np
    >>> array_backend(np.zeros(2)).name, array_backend(1.5), is_array([1.0])
    ('numpy', None, False)
    """
    backend = _claim(x)
    return backend if backend is not None and backend.owns(x) else None


def is_array(x: Any) -> bool:
    """Whether an installed backend owns ``x`` (a numpy, torch or JAX array or scalar)."""
    return array_backend(x) is not None


def to_host(tree: Any) -> Any:
    """``tree`` (tuples, NamedTuples, lists, dicts) with arrays of any backend as numpy arrays.

    For values of unknown library (what an objective returns); other leaves
    are kept. With a known backend, :meth:`Backend.to_host` also converts keys.

    Examples
    --------
    >>> import numpy as np
    >>> to_host({"f": 1.0, "b": (np.ones(2), "x")})
    {'f': 1.0, 'b': (array([1., 1.]), 'x')}
    """

    def leaf(x: Any, is_key: bool) -> Any:
        backend = array_backend(x)
        return x if backend is None else backend.to_host(x)

    return map_tree(leaf, tree)
