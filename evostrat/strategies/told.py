"""The shapes a strategy's pure ``tell`` receives, checked once for every strategy.

:class:`~evostrat.strategies.base.Strategy` wraps each ``tell`` (and ``tell_seed``) a subclass
defines with :func:`checking_tell`, so that the functional API used directly (``state =
strategy.tell(state, X, fitness)``, as evosax users write it) refuses a population ``X`` whose
shape is not ``(popsize, dim)`` or a ``fitness`` whose shape is not ``(popsize,)`` with an
:class:`~evostrat.errors.InvalidArgumentError` naming the argument, the expected and the actual
shape, instead of a broadcasting error of the backend (JAX's ``dot_general requires contracting
dimensions``) or, worse, a silent broadcast. Strategies with ``needs_behaviours`` take
behaviours of shape ``(popsize, k)`` or ``(popsize,)``.

A ``(popsize, 1)`` column of values is refused, not flattened: the stateful ``ES.tell`` refuses
it too, and evosax's ``tell`` documents a ``(popsize,)`` fitness; ``fitness.ravel()`` (or
``fitness[:, 0]``) states the intent.

The state itself is checked first: a state of another type than the strategy's ``state_type``
(another strategy's, such as a CMA-ES state given to SNES) is refused with an
:class:`~evostrat.errors.InvalidTypeError` naming ``state`` (:mod:`~evostrat.strategies.state_type`).
Not checked, by design: a state whose arrays come from another backend than ``X``'s (the state's
``mean`` picks the namespace; JAX and torch convert or refuse host arrays themselves). ``init``
refuses a 2-D ``x0`` itself (``x0 must have shape (dim,)``).

The check reads shapes only (static under ``jax.jit`` and ``vmap``: it runs at trace time and
costs nothing in the compiled program) and a few hundred nanoseconds on the host.

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies.snes import SNES
>>> s = SNES()
>>> X, state = s.ask(s.init(np.zeros(3), random_state=0))
>>> s.tell(state, X, (X ** 2).sum(axis=1)[:, None])
Traceback (most recent call last):
...
evostrat.errors.InvalidArgumentError: fitness told to strategy 'snes' must have shape (popsize,) = (7,) (one value per candidate), got shape (7, 1)
"""

from __future__ import annotations

import functools
import types
from typing import Any, Callable

import numpy as np

from evostrat.errors import InvalidArgumentError
from evostrat.strategies.state_type import check_state_type

__all__ = ["check_told", "checking_tell", "refuse_told", "told_popsize", "unchecked_tell"]


def told_popsize(strategy: Any, dim: int) -> int:
    """The population ``strategy`` tells for dimension ``dim``: ``popsize``, else its default.

    Unvalidated (``init`` validated it) and cheaper than ``resolved_popsize`` (0.2 against 0.5 us).
    """
    lam = strategy.popsize
    return strategy.default_popsize(dim) if lam is None else lam


def check_told(strategy: Any, state: Any, X: Any, fitness: Any) -> None:
    """Refuse ``X`` (``None``: a seeded tell) or ``fitness`` of the wrong shape for ``strategy``'s ``state``.

    The usual case (arrays of the expected shapes) costs about 0.4 us on the host; any other
    goes to :func:`refuse_told`.

    Raises
    ------
    InvalidArgumentError
        Naming ``X``, ``fitness`` (``behaviours`` for ``needs_behaviours``) and the shapes.
    """
    try:
        dim = state.mean.shape[0]
        lam = strategy.popsize
        if lam is None:
            lam = strategy.default_popsize(dim)
        if (X is None or X.shape == (lam, dim)) and fitness.shape == (lam,):
            return
    except (AttributeError, IndexError, TypeError):
        pass
    refuse_told(strategy, state, X, fitness)


def _label(strategy: Any) -> str:
    """The strategy's name in a message (read only there: ``name`` looks the registry up)."""
    return strategy.name or type(strategy).__name__


def _shape(a: Any) -> tuple[int, ...] | None:
    """``a``'s shape, that of a nested list read by numpy, or ``None`` if it has none."""
    shape = getattr(a, "shape", None)
    if shape is not None:
        return tuple(shape)
    try:
        return tuple(np.shape(a))
    except (TypeError, ValueError, RuntimeError):
        return None


def refuse_told(strategy: Any, state: Any, X: Any, fitness: Any) -> None:
    """:func:`check_told` past its usual case: refuse what is not of the expected shapes.

    Lets pass a state that is not a strategy state (no ``(dim,)`` ``mean``: the strategy's own
    error), values without a shape, a list of the right length and the behaviours
    ``(popsize, k)`` of a strategy with ``needs_behaviours``.
    """
    mean = getattr(state, "mean", None)
    if getattr(mean, "ndim", None) != 1:
        return
    dim = mean.shape[0]
    lam = told_popsize(strategy, dim)
    if X is not None:
        shape = _shape(X)
        if shape is not None and shape != (lam, dim):
            raise InvalidArgumentError(f"X told to strategy {_label(strategy)!r} must have shape (popsize, dim) = "
                                       f"{(lam, dim)}, got shape {shape}")
    shape = _shape(fitness)
    if shape is None or shape == (lam,):
        return
    if strategy.needs_behaviours:
        if len(shape) != 2 or shape[0] != lam:
            raise InvalidArgumentError(f"behaviours told to strategy {_label(strategy)!r} must have shape "
                                       f"(popsize, k) or (popsize,) with popsize = {lam}, got shape {shape}")
        return
    raise InvalidArgumentError(f"fitness told to strategy {_label(strategy)!r} must have shape (popsize,) = "
                               f"({lam},) (one value per candidate), got shape {shape}")


def checking_tell(tell: Callable[..., Any], seeded: bool = False, owner: type | None = None) -> Callable[..., Any]:
    """``tell`` (``tell(self, state, X, fitness, ...)``; ``seeded``: ``tell_seed(self, state, seed,
    fitness, ...)``; of the strategy class ``owner``) preceded by the check of the state's type
    (:func:`~evostrat.strategies.state_type.check_state_type`) and :func:`check_told`; the original
    is its ``__wrapped__``."""
    if getattr(tell, "__told_checked__", False):
        return tell

    if seeded:
        @functools.wraps(tell)
        def checked(self: Any, state: Any, seed: Any, fitness: Any, *args: Any, **kwargs: Any) -> Any:
            check_state_type(self, state, "tell_seed", owner)  # returns at once for the strategy's own type
            check_told(self, state, None, fitness)
            return tell(self, state, seed, fitness, *args, **kwargs)
    else:
        @functools.wraps(tell)
        def checked(self: Any, state: Any, X: Any, fitness: Any, *args: Any, **kwargs: Any) -> Any:
            check_state_type(self, state, "tell", owner)  # returns at once for the strategy's own type
            check_told(self, state, X, fitness)
            return tell(self, state, X, fitness, *args, **kwargs)

    checked.__told_checked__ = True  # type: ignore[attr-defined]
    return checked


def unchecked_tell(strategy: Any) -> Callable[..., Any]:
    """``strategy.tell`` without the outer checks of :func:`checking_tell` (a bound method, keyed by
    :func:`~evostrat.backends.programs.program_key` as ``strategy.tell``), for callers that checked
    ``X`` and the values themselves (:class:`~evostrat.run.asktell.AskTell`: 0.4 us a generation)."""
    tell = strategy.tell
    raw = getattr(getattr(tell, "__func__", None), "__wrapped__", None)
    return tell if raw is None else types.MethodType(raw, strategy)
