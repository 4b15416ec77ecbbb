"""The state type of a strategy: ``ask``, ``tell`` and the read-outs refuse another strategy's state.

A strategy declares the ``NamedTuple`` class of its states in the class attribute ``state_type``
(a class, or a tuple of classes when it makes several: CMA-ES's decomposed and factor models).
:class:`~evostrat.strategies.base.Strategy` wraps the ``ask`` (and ``ask_seed``) and the read-outs
(:data:`READ_OUTS`: ``mean``, ``sigma``, ``stop``, ``population_seed``, ``evolvability`` and
``gaussian_readout``) a subclass defines or inherits from a mixin with :func:`checking_state`
(``tell`` and ``tell_seed`` in :func:`~evostrat.strategies.told.checking_tell`, with their shape
checks), so that the functional API refuses a state another strategy made, such as
``SNES().ask(CMAES().init(x0))``, with an :class:`~evostrat.errors.InvalidTypeError` naming the
argument ``state``, the type expected and the type given, instead of running silently (states
with the same fields) or failing deep inside (a missing field).

What passes: a state of the declared class (its fields may hold anything: tracers under
``jax.jit`` and ``vmap``, arrays mapped by ``jax.tree_util.tree_map``, a checkpoint's rebuilt
arrays), of a subclass of it, or of a class of the same module, name and fields (the class
defined again: a reloaded module). Strategies that share a state class accept each other's
states (MaxVar-ES and MaxEnt-ES; a subclass of a strategy that keeps its ``initial_state``), and
a method takes the states of the class that defines it too (a subclass with a state class of its
own calls ``super().tell(parent_state, X, f)``).
A subclass that overrides ``initial_state`` (or the legacy ``_init``) without declaring
``state_type`` again is not checked (``state_type`` ``None``): its states may be of its own
class; ``None`` is also the default for a plugin that declares nothing.

The check reads the state's type only: under a JAX trace it runs once, at trace time, and
costs nothing in the compiled program; on the host a call pays about 0.1 us. Runs
(:class:`~evostrat.run.asktell.AskTell`) call ``ask`` and ``tell`` without it
(:func:`unchecked`): their state is their own.

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies.cma_es import CMAES
>>> from evostrat.strategies.snes import SNES
>>> SNES().ask(CMAES().init(np.zeros(3), random_state=0))
Traceback (most recent call last):
...
evostrat.errors.InvalidTypeError: state given to ask of strategy 'snes' must be a SNESState (the state type of SNES; its init makes one), got a CMAESState
"""

from __future__ import annotations

import functools
import inspect
import types
from typing import Any, Callable

from evostrat.errors import InvalidTypeError

__all__ = ["CHECKED_METHODS", "READ_OUTS", "accepts_state", "check_state_type", "checking_state", "declare_state_type",
           "state_type_name", "unchecked"]

#: The read-outs of a strategy state that :func:`checking_state` checks (the base's defaults included).
READ_OUTS = ("mean", "sigma", "stop", "population_seed", "evolvability", "gaussian_readout")
#: The methods of a strategy whose first argument ``state`` :func:`checking_state` checks (``tell``
#: and ``tell_seed`` are checked by :func:`~evostrat.strategies.told.checking_tell`).
CHECKED_METHODS = ("ask", "ask_seed") + READ_OUTS


def state_type_name(expected: Any) -> str:
    """``"a SNESState"``, ``"a CMAESState or a CMAFactorState"``: the declared ``state_type`` in words."""
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(_a(getattr(k, "__qualname__", repr(k))) for k in kinds)


def _a(name: str) -> str:
    """``name`` after its article: ``"a SNESState"``, ``"an XNESState"``."""
    return f"{'an' if name[:1] in 'AEIOUX' else 'a'} {name}"


def _same_class(kind: type, declared: type) -> bool:
    """Whether ``kind`` is ``declared`` or stands for it: a subclass, or a class of the same module,
    name and fields (defined again, as a reloaded module does)."""
    try:
        if issubclass(kind, declared):
            return True
    except TypeError:
        return False
    return (getattr(kind, "__module__", None) == getattr(declared, "__module__", 0)
            and getattr(kind, "__qualname__", None) == getattr(declared, "__qualname__", 0)
            and getattr(kind, "_fields", None) == getattr(declared, "_fields", 0))


def accepts_state(expected: Any, state: Any) -> bool:
    """Whether a strategy of ``state_type`` ``expected`` (``None``: any) takes ``state``."""
    if expected is None:
        return True
    kind = type(state)
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return any(kind is k or _same_class(kind, k) for k in kinds)


def check_state_type(strategy: Any, state: Any, method: str, owner: type | None = None) -> None:
    """Refuse ``state``, given to ``strategy``'s ``method``, if it is not of the strategy's ``state_type``
    nor of that of ``owner``, the class whose ``method`` this is (a subclass with a state class of its
    own calls its parent's methods with the parent's states: ``super().tell(parent_state, X, f)``).

    Raises
    ------
    InvalidTypeError
        Naming the argument ``state``, the method, the strategy, the type expected and the type given.
    """
    expected = strategy.state_type
    if expected is None or type(state) is expected or (type(expected) is tuple and type(state) in expected):
        return
    if accepts_state(expected, state) or (owner is not None and owner.state_type is not None
                                          and accepts_state(owner.state_type, state)):
        return
    label = strategy.name or type(strategy).__name__
    given = type(state).__qualname__
    hint = "" if getattr(type(state), "_fields", None) is not None else " (not a strategy state)"
    raise InvalidTypeError(f"state given to {method} of strategy {label!r} must be {state_type_name(expected)} "
                           f"(the state type of {type(strategy).__name__}; its init makes one), got {_a(given)}{hint}")


def checking_state(fn: Callable[..., Any], method: str, owner: type | None = None) -> Callable[..., Any]:
    """``fn`` (``fn(self, state, ...)``, the ``method`` of the strategy class ``owner``) preceded by the
    check of ``state``'s type (:func:`check_state_type`); the original is its ``__wrapped__``."""
    if getattr(fn, "__state_checked__", False):
        return fn

    if len(inspect.signature(fn).parameters) == 2:  # (self, state): no packing of arguments (0.1 us of 0.2)
        def checked(self: Any, state: Any) -> Any:
            expected, kind = self.state_type, type(state)
            if kind is not expected and expected is not None and not (type(expected) is tuple and kind in expected):
                check_state_type(self, state, method, owner)
            return fn(self, state)
    else:
        def checked(self: Any, state: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            expected, kind = self.state_type, type(state)
            if kind is not expected and expected is not None and not (type(expected) is tuple and kind in expected):
                check_state_type(self, state, method, owner)
            return fn(self, state, *args, **kwargs)

    checked = functools.wraps(fn)(checked)
    checked.__state_checked__ = True  # type: ignore[attr-defined]
    return checked


def declare_state_type(cls: type, base: type) -> None:
    """Settle ``cls.state_type`` and wrap ``cls``'s :data:`CHECKED_METHODS` (from ``__init_subclass__``
    of ``base``, the :class:`~evostrat.strategies.base.Strategy` class).

    A ``state_type`` declared in ``cls`` is checked (a class or a tuple of classes); an inherited one
    is dropped (``None``) when ``cls`` builds its states with another ``initial_state`` (or ``_init``)
    than the class that declared it.

    Raises
    ------
    InvalidTypeError
        For a ``state_type`` that is neither ``None``, a class nor a tuple of classes.
    """
    declared = vars(cls).get("state_type", base)
    if declared is not base:
        kinds = declared if isinstance(declared, tuple) else (declared,)
        if declared is not None and not (kinds and all(isinstance(k, type) for k in kinds)):
            raise InvalidTypeError(f"state_type of {cls.__qualname__} must be None, the NamedTuple class of its "
                                   f"states or a tuple of such classes, got {declared!r}")
    else:
        owner = next(c for c in cls.__mro__ if "state_type" in vars(c))
        if any(getattr(cls, name, None) is not getattr(owner, name, None) for name in ("initial_state", "_init")):
            cls.state_type = None  # type: ignore[attr-defined]
    for method in CHECKED_METHODS:
        fn = getattr(cls, method, None)
        if inspect.isfunction(fn) and fn is not getattr(base, method, None) and not getattr(fn, "__state_checked__", False):
            setattr(cls, method, checking_state(fn, method, cls))


def unchecked(strategy: Any, method: str) -> Callable[..., Any]:
    """``strategy``'s ``method`` without the outer state check (a bound method, keyed by
    :func:`~evostrat.backends.programs.program_key` as the checked one), for callers whose state
    is the strategy's own (:class:`~evostrat.run.asktell.AskTell`)."""
    bound = getattr(strategy, method)
    fn = getattr(bound, "__func__", None)
    if fn is None or not getattr(fn, "__state_checked__", False):
        return bound
    return types.MethodType(fn.__wrapped__, strategy)
