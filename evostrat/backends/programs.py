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

__all__ = ["COMPILE_CACHE_SIZE", "OUTPUTS_KEPT", "compile_cached", "frozen", "program_key", "program_output"]

#: Compiled programs kept by :meth:`Backend.compile`, shared by all backends (LRU).
COMPILE_CACHE_SIZE = 64
_COMPILED: "OrderedDict[Hashable, Callable]" = OrderedDict()
_COMPILED_LOCK = threading.Lock()


#: Outputs of :func:`program_output` kept (LRU), each of at most :data:`OUTPUT_BYTES`.
OUTPUTS_KEPT, OUTPUT_BYTES = 8, 1 << 20
_OUTPUTS: "OrderedDict[Hashable, tuple[tuple[Any, ...], Any]]" = OrderedDict()

#: Types whose values are their own hashable stand-ins (:func:`frozen`).
_PLAIN = frozenset({int, float, bool, str, type(None)})


def frozen(value: Any) -> Hashable:
    """A hashable stand-in for a hyper-parameter value (lists, dicts, arrays); ``TypeError`` if none.

    >>> frozen({"b": [1, 2], "a": np.zeros(2)})[1]
    ('b', (1, 2))
    """
    if type(value) in _PLAIN:  # the usual hyper-parameter, without the checks below
        return value
    if isinstance(value, (list, tuple)):
        return tuple(frozen(v) for v in value)
    if isinstance(value, dict):
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
            params = owner.get_params(deep=False)
            initial_only = getattr(owner, "initial_only_params", ())
            if initial_only and fn.__name__ != "initial_state":
                params = {k: v for k, v in params.items() if k not in initial_only}
            return (type(owner), fn.__name__, frozen(params)) + extra
        except TypeError:
            pass
    return (fn,) + extra


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


def program_output(key: Hashable, program: Callable, *inputs: Any) -> Any:
    """``program(*inputs)``; where every input is a JAX array (immutable), the output of an earlier call
    under the same program ``key`` with the very same input objects, as long as none of its arrays was
    deleted (donated to another program). A fit again from the same ``x0`` and seed reuses its initial
    state (:meth:`~evostrat.strategies.base.Strategy.init`): no program call, whose cost right after a
    compiled chunk is a few percent of a 320-generation CMA-ES fit at d = 10 on the CPU.

    >>> import jax.numpy as jnp
    >>> x = jnp.ones(2)
    >>> program_output(("demo", "twice"), lambda v: 2 * v, x) is program_output(("demo", "twice"), lambda v: 2 * v, x)
    True
    """
    immutable = all(callable(getattr(x, "is_deleted", None)) for x in inputs)
    slot = (key, *map(id, inputs))
    if immutable:
        with _COMPILED_LOCK:
            known = _OUTPUTS.get(slot)
        if known is not None and all(a is b for a, b in zip(known[0], inputs)) and not _deleted(known[1]):
            return known[1]
    out = program(*inputs)
    if immutable and not _deleted(out) and _nbytes(out) <= OUTPUT_BYTES:
        with _COMPILED_LOCK:  # the inputs are kept with it: their ids are not reused while it is
            _OUTPUTS[slot] = (inputs, out)
            _OUTPUTS.move_to_end(slot)
            while len(_OUTPUTS) > OUTPUTS_KEPT:
                _OUTPUTS.popitem(last=False)
    return out


def _leaves(tree: Any) -> list[Any]:
    import jax

    return jax.tree_util.tree_leaves(tree)


def _deleted(tree: Any) -> bool:
    """Whether an array of ``tree`` was deleted (a donated buffer), or one is no JAX array."""
    return any(not callable(getattr(leaf, "is_deleted", None)) or leaf.is_deleted() for leaf in _leaves(tree))


def _nbytes(tree: Any) -> int:
    return sum(getattr(leaf, "nbytes", 0) for leaf in _leaves(tree))
