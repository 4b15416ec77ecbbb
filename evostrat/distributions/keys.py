"""The ``key=`` argument of :meth:`Distribution.sample` / ``rsample``, checked and resolved.

An int seed (``>= 0``) becomes the backend's key; a backend key passes through (on JAX a
raw ``uint32`` key of shape ``(2,)`` or a typed ``jax.random.key``, concrete or traced);
anything else is an evostrat error naming ``key``, not the backend's own.

Examples
--------
>>> from evostrat.backends import get_backend
>>> from evostrat.distributions.keys import sampling_key
>>> sampling_key(get_backend("numpy"), 3).shape
(2,)
>>> sampling_key(get_backend("numpy"), 1.5)
Traceback (most recent call last):
...
evostrat.errors.InvalidTypeError: key must be an int seed or a numpy backend key (evostrat.backends.get_backend('numpy').key(seed)), got float
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from evostrat.backends import Backend
from evostrat.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["is_jax_key", "sampling_key"]


def is_jax_key(key: Any) -> bool:
    """Whether ``key`` is a JAX PRNG key, concrete or traced: ``uint32`` words of shape ``(2,)``
    (``(4,)`` for the ``rbg`` implementations) or a typed key (a ``key<impl>`` dtype, shape ``()``).
    Told apart without importing JAX."""
    dtype, shape = getattr(key, "dtype", None), tuple(getattr(key, "shape", (None,)))
    if dtype is None:
        return False
    if str(dtype).startswith("key<"):
        return shape == ()
    return dtype == np.uint32 and shape in ((2,), (4,))


def sampling_key(backend: Backend, key: Any) -> Any:
    """The backend key a draw uses for ``key`` (``None``: fresh entropy, refused on JAX).

    Parameters
    ----------
    backend : Backend
        The backend of the distribution's parameters.
    key : None, int or backend key

    Returns
    -------
    backend key

    Raises
    ------
    InvalidArgumentError
        ``key`` is ``None`` on JAX, or a negative int.
    InvalidTypeError
        ``key`` is neither an int nor a key of ``backend``.
    """
    be = backend
    if key is None:
        if be.traceable:
            raise InvalidArgumentError(
                "key is required on JAX (e.g. key=jax.random.PRNGKey(0) or key=0): "
                "JAX has no hidden random state"
            )
        return be.key(None)
    if isinstance(key, numbers.Integral) and not isinstance(key, bool):
        if key < 0:
            raise InvalidArgumentError(f"key must be an int seed >= 0 or a {be.name} backend key, got {key}")
        return be.key(int(key))
    if not (is_jax_key(key) if be.traceable else be.is_key(key)):
        shape = f" of dtype {key.dtype} and shape {tuple(key.shape)}" if hasattr(key, "shape") else ""
        raise InvalidTypeError(
            f"key must be an int seed or a {be.name} backend key "
            f"(evostrat.backends.get_backend({be.name!r}).key(seed)), got {type(key).__name__}{shape}"
        )
    return key
