"""The strategy contract checked at run time: what ``ask`` and ``tell`` return.

:func:`~evostrat.strategies.base.check_strategy` checks a strategy's state once, at
``init``; these check the ``ask`` and ``tell`` results where the driver receives them: the
first of each host run (:func:`checked_first`: :class:`~evostrat.run.asktell.AskTell`, the torch
batch) and, at trace time, those of the compiled chunk and
:class:`~evostrat.run.compiled_loop.CompiledLoop`, so a plugin that breaks the contract gets an
:class:`~evostrat.errors.InvalidTypeError` naming
the strategy and the method, not a broadcasting error a generation later. They read shapes and
types only: under a JAX trace they cost nothing in the compiled program.

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies.snes import SNES
>>> from evostrat.strategies.checked import checked_ask
>>> s = SNES()
>>> X, state = checked_ask(s, s.ask(s.init(np.zeros(3), random_state=0)), (s.resolved_popsize(3), 3))
>>> X.shape
(7, 3)
>>> checked_ask(s, X, X.shape)
Traceback (most recent call last):
...
evostrat.errors.InvalidTypeError: ask of strategy 'snes' must return a pair (X, state), got an array of shape (7, 3)
"""

from __future__ import annotations

from typing import Any, Callable

from evostrat.backends.trees import named_leaves
from evostrat.errors import InvalidTypeError

__all__ = ["checked_ask", "checked_state", "checked_first"]


def checked_ask(strategy: Any, out: Any, shape: tuple[int, int], like: Any = None,
                dtype: Any = None) -> tuple[Any, Any]:
    """``out``, what ``strategy.ask`` (a :class:`~evostrat.strategies.base.Strategy`) returned, if it
    keeps the contract: a pair ``(X, state)`` with ``X`` of shape ``shape`` (``(popsize, dim)``) and of
    ``dtype`` (the run's) when given, and a state of the type of ``like`` (the state it was given,
    :func:`checked_state`), else :class:`InvalidTypeError` naming what
    it returned instead (shapes and types only: free under a trace)."""
    if not (isinstance(out, tuple) and len(out) == 2):
        got = f"an array of shape {tuple(out.shape)}" if hasattr(out, "shape") else type(out).__name__
        raise InvalidTypeError(f"ask of strategy {strategy.name or type(strategy).__name__!r} must return "
                               f"a pair (X, state), got {got}")
    got = getattr(out[0], "shape", None)
    if got is None or tuple(got) != tuple(shape):
        raise InvalidTypeError(f"ask of strategy {strategy.name or type(strategy).__name__!r} must return X of "
                               f"shape (popsize, dim) = {tuple(shape)}, got "
                               + (f"shape {tuple(got)}" if got is not None else type(out[0]).__name__))
    checked_state(strategy, out[1], "ask", like)
    if dtype is not None and getattr(out[0], "dtype", dtype) != dtype:
        raise InvalidTypeError(f"ask of strategy {strategy.name or type(strategy).__name__!r} must return X of "
                               f"the run's dtype, {dtype}, got {out[0].dtype}")
    return out


def checked_state(strategy: Any, state: Any, method: str, like: Any = None) -> Any:
    """``state``, what ``strategy``'s ``method`` returned, if it is a state: of the type of ``like``
    (the state it was given) when given, else a ``NamedTuple``; otherwise :class:`InvalidTypeError`
    naming the method and what it returned (a plain tuple such as ``(state, info)`` included), or a
    state whose ``mean`` has another shape or dtype than ``like``'s (the ``(dim,)`` mean of the run), or
    any other array field another shape."""
    expected = None if like is None else type(like)
    if expected is not None:
        kept = type(state) is expected
    else:
        kept = getattr(type(state), "_fields", None) is not None  # a NamedTuple
    if not kept:
        wanted = f"a {expected.__name__}, the type of the state it was given" if expected else "a NamedTuple"
        raise InvalidTypeError(f"{method} of strategy {strategy.name or type(strategy).__name__!r} must return "
                               f"the new state ({wanted}), got {type(state).__name__}")
    mean, was = getattr(state, "mean", None), getattr(like, "mean", None)
    if was is not None and (tuple(getattr(mean, "shape", ())) != tuple(was.shape)
                            or getattr(mean, "dtype", None) != was.dtype):
        got = (f"shape {tuple(mean.shape)} and dtype {mean.dtype}" if hasattr(mean, "shape") and hasattr(mean, "dtype")
               else type(mean).__name__)
        raise InvalidTypeError(f"{method} of strategy {strategy.name or type(strategy).__name__!r} must return a "
                               f"state whose mean has the shape and dtype of the state it was given, "
                               f"{tuple(was.shape)} and {was.dtype}, got {got}")
    if like is not None:
        for (field, new), (_, old) in zip(named_leaves(state), named_leaves(like)):
            if hasattr(old, "shape") and tuple(getattr(new, "shape", ())) != tuple(old.shape):
                raise InvalidTypeError(
                    f"{method} of strategy {strategy.name or type(strategy).__name__!r} must return a state whose "
                    f"field {field!r} keeps its shape {tuple(old.shape)}, got shape {tuple(getattr(new, 'shape', ()))}"
                    " (a state's shapes are fixed: compiled loops and checkpoints rely on them)")
    return state


def checked_first(slots: dict[str, Any], name: str, program: Callable[..., Any],
                  check: Callable[[Any], Any]) -> Callable[..., Any]:
    """``program`` whose first result passes ``check``, after which ``slots[name]`` (the owner's
    cached attribute: ``vars(owner)``) is ``program`` itself, so the generations after the first
    pay nothing for the check (about 1 us a generation on the host, 2 % of CMA-ES's at d = 10).

    Examples
    --------
    >>> slots = {}
    >>> slots["f"] = checked_first(slots, "f", lambda x: x + 1, lambda out: out)
    >>> slots["f"](1), slots["f"](2), slots["f"].__name__
    (2, 3, '<lambda>')
    """

    def first(*args: Any) -> Any:
        out = check(program(*args))
        slots[name] = program  # the contract holds: the program alone from now on
        return out

    return first
