"""The one cache of compiled programs that :meth:`Backend.compile` serves from.

An LRU of :data:`COMPILE_CACHE_SIZE` programs (no more are kept alive), keyed
by the backend's name and a program key: by default the function itself; with
:func:`program_key`, a strategy's class, method, hyper-parameters and input
signature, so equal strategies share their compiled ``ask``/``tell`` across
runs, restarts and replaying workers.

>>> compile_cached(("demo", "double"), lambda x: 2 * x, lambda fn: fn)(3)
6
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable

import numpy as np

from evostrat.run.memo import PLAIN_TYPES, Memo, plain_key

__all__ = ["COMPILE_CACHE_SIZE", "compile_cached", "frozen", "program_key"]

#: Compiled programs kept by :meth:`Backend.compile`, shared by all backends (LRU).
COMPILE_CACHE_SIZE = 64
_COMPILED: "OrderedDict[Hashable, Callable]" = OrderedDict()
_COMPILED_LOCK = threading.Lock()


def frozen(value: Any) -> Hashable:
    """A hashable stand-in for a hyper-parameter value (lists, dicts, arrays); ``TypeError`` if none.

    >>> frozen({"b": [1, 2], "a": np.zeros(2)})[1]
    ('b', (1, 2))
    """
    if type(value) in PLAIN_TYPES:  # its own hashable stand-in: the usual hyper-parameter, without the checks below
        return value
    if isinstance(value, (list, tuple)):
        return tuple(frozen(v) for v in value)
    if isinstance(value, dict):
        if PLAIN_TYPES.issuperset(map(type, value.values())):  # a strategy's usual parameters: as they are
            return tuple(sorted(value.items()))
        return tuple(sorted((k, frozen(v)) for k, v in value.items()))
    if hasattr(value, "__array__") and not isinstance(value, (str, bytes)):
        array = np.asarray(value)
        return ("array", array.dtype.str, array.shape, array.tobytes())
    hash(value)
    return value


def program_key(fn: Callable, *extra: Hashable) -> Hashable:
    """A :meth:`Backend.compile` key under which equal strategies share ``fn``'s program.

    A bound method of an object with ``get_params()`` (a strategy) is keyed by
    its class, method name and hyper-parameters (its result must depend on
    nothing else, as the built-in strategies' do), any other function by
    itself; ``extra`` (the input signature: dimension, dtype) is appended.
    The hyper-parameters the owner lists in ``initial_only_params`` key only
    its ``initial_state``.

    >>> from evostrat.strategies.snes import SNES
    >>> program_key(SNES().ask, 3) == program_key(SNES().ask, 3) != program_key(SNES(popsize=8).ask, 3)
    True
    >>> program_key(SNES(sigma0=2.0).tell, 3) == program_key(SNES().tell, 3)  # sigma0: the state's
    True
    """
    owner = getattr(fn, "__self__", None)
    if owner is not None and hasattr(owner, "get_params"):
        try:
            return (type(owner), fn.__name__, _frozen_params(owner, fn.__name__ == "initial_state")) + extra
        except TypeError:
            pass
    return (fn,) + extra


#: :func:`_frozen_params` of owners whose attributes are all plain, by their class and attributes.
_PARAMS = Memo()


def _frozen_params(owner: Any, initial: bool) -> Hashable:
    """``frozen(owner.get_params(deep=False))``, without its ``initial_only_params`` unless ``initial``;
    once per class and plain attributes (a run keys three programs by its strategy's)."""
    attributes = getattr(owner, "__dict__", None)
    key = None if attributes is None else plain_key(tuple(attributes.values()), (type(owner), initial, *attributes),
                                                    zeros=False)  # -0.0 and 0.0 freeze to equal keys anyway
    known = _PARAMS.get(key)
    if known is None:
        params = owner.get_params(deep=False)
        initial_only = getattr(owner, "initial_only_params", ())
        if initial_only and not initial:
            params = {k: v for k, v in params.items() if k not in initial_only}
        known = _PARAMS.keep(key, frozen(params))
    return known


def compile_cached(key: tuple[str, Hashable], fn: Callable, compiler: Callable) -> Callable:
    """``compiler(fn)`` cached under ``key = (backend name, program key or None for fn)``.

    An unhashable key compiles without caching.
    """
    full = (key[0], fn if key[1] is None else key[1])
    try:
        hash(full)
    except TypeError:  # e.g. a method of an unhashable object: compiled, not cached
        return compiler(fn)
    with _COMPILED_LOCK:
        compiled = _COMPILED.get(full)
        if compiled is not None:
            _COMPILED.move_to_end(full)
            return compiled
    compiled = compiler(fn)
    with _COMPILED_LOCK:
        compiled = _COMPILED.setdefault(full, compiled)
        while len(_COMPILED) > COMPILE_CACHE_SIZE:
            _COMPILED.popitem(last=False)
    return compiled
