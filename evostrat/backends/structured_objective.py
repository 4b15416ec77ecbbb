"""The objective of a run with a structured ``x0``: the user's, over flat candidates.

A strategy asks flat candidates; :class:`StructuredObjective` hands them to the user's
objective in ``x0``'s structure (:mod:`evostrat.backends.structured`). It is an object,
not a closure, so that

- it pickles (by reference to the user's objective, as that one alone would), and runs in
  any process pool the user's objective runs in;
- the objective's own protocols reach the user's objective: the generation protocol of
  learning objectives (``generation_start``/``collect``/``merge``,
  :mod:`evostrat.evaluators.sync`; ``GymProblem(obs_norm=True)``'s statistics) and
  ``close``;
- it does not keep the user's objective alive: :func:`structured_objective` makes one per
  objective and layout (so that compiled programs are reused across fits) and holds it
  only while the user's objective lives.

Examples
--------
>>> import pickle
>>> import numpy as np
>>> from evostrat.backends.structured import as_structure
>>> f = as_structure({"w": np.ones(2), "b": np.zeros(1)}).objective(len)  # a candidate's leaves
>>> f(np.arange(3.0)), f.vectorized, pickle.loads(pickle.dumps(f))(np.ones(3))
(2, False, 2)
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

from evostrat.errors import ObjectiveError

__all__ = ["FORWARDED", "MODULE_CANDIDATES", "StructuredObjective", "structured_objective"]

#: What an objective that called or read a module's candidate as a module is told (added to its error).
MODULE_CANDIDATES = ("an nn.Module x0's candidates are {name: tensor} dicts of its parameters, not modules: "
                     "evaluate one with torch.func.functional_call(module, params, args)")

#: How Python's errors of a dict used as a module begin (called, or an attribute read: ``.forward``).
_DICT_MISUSED = ("'dict' object", "'ModuleParameters' object")

#: What the wrapper passes on to the user's objective (the generation protocol and ``close``).
FORWARDED = frozenset({"generation_start", "collect", "merge", "close"})


class StructuredObjective:
    """``fn`` over structured candidates, called with flat ones.

    Parameters
    ----------
    fn : callable
        The user's objective: one candidate in the structure, or (``mode="batched"``) the
        population as one structure whose leaves have a leading population axis.
    structure : Structure
        ``x0``'s (:class:`~evostrat.backends.structured.Structure`).
    mode : {"single", "batched", "mapped"}
        ``"single"``: one candidate a call; ``"batched"``: the population
        (``fn.vectorized``); ``"mapped"``: ``jax.vmap`` of ``fn`` over the population (JAX
        structures whose ``fn`` is not marked either way, so the run stays compiled).
    weak : bool
        Hold ``fn`` through a weak reference (the cache of :func:`structured_objective`).

    Attributes
    ----------
    vectorized : bool
        Whether a call takes the whole population ``(n, dim)``.
    """

    def __init__(self, fn: Callable, structure: Any, mode: str, weak: bool = False) -> None:
        if mode not in ("single", "batched", "mapped"):
            raise ValueError(f"mode must be 'single', 'batched' or 'mapped', got {mode!r}")
        self._fn: Any = weakref.ref(fn) if weak else (lambda: fn)
        self.structure, self.mode = structure, mode
        self.vectorized = mode != "single"

    @property
    def fn(self) -> Callable:
        """The user's objective."""
        fn = self._fn()
        if fn is None:  # only a run whose objective was dropped can get here
            raise ObjectiveError("the objective of this structured run no longer exists")
        return fn

    def __call__(self, X: Any) -> Any:
        fn, structure = self.fn, self.structure
        if self.mode == "mapped":
            import jax

            return jax.vmap(lambda x: fn(structure.unflatten(x)))(X)
        try:
            return fn(structure.unflatten(X) if self.mode == "single" else structure.unflatten_batch(X))
        except (TypeError, AttributeError) as err:  # Python's own, of a module's candidate used as a module: a hint
            if structure.kind == "module" and type(err) in (TypeError, AttributeError) and str(err).startswith(
                    _DICT_MISUSED):
                raise type(err)(f"{err} ({MODULE_CANDIDATES})") from err
            raise

    def __getattr__(self, name: str) -> Any:  # only what is not set here: the forwarded protocol
        if name in FORWARDED and "_fn" in self.__dict__:
            return getattr(self.fn, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:  # a copy holds the objective itself
        return StructuredObjective, (self.fn, self.structure, self.mode)

    def __repr__(self) -> str:
        return f"StructuredObjective({self.fn!r}, {self.structure!r}, mode={self.mode!r})"


#: The wrappers per user objective and layout; an entry goes with its objective.
_WRAPPED: "weakref.WeakKeyDictionary[Callable, dict[Any, StructuredObjective]]" = weakref.WeakKeyDictionary()


def structured_objective(structure: Any, fn: Callable) -> StructuredObjective:
    """``fn`` over ``structure``'s candidates as an objective over flat ones, one per ``fn`` and
    layout (``structure.key``), so compiled programs are reused across fits.

    ``fn.vectorized`` true: the population as one structure; JAX structures with ``fn``
    not marked: ``jax.vmap`` of ``fn``; otherwise one candidate a call.
    """
    marked = getattr(fn, "vectorized", None)
    mode = "batched" if marked else "mapped" if structure.kind == "jax" and marked is None else "single"
    try:
        cache = _WRAPPED.setdefault(fn, {})
    except TypeError:  # not weakly referable (or not hashable): a wrapper of its own
        return StructuredObjective(fn, structure, mode)
    key = (structure.key, mode)
    if key not in cache:
        cache[key] = StructuredObjective(fn, structure, mode, weak=True)
    return cache[key]
