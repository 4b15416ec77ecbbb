"""Weak back-references inside a run, which pickle and deep-copy as strong ones.

A run holds the objects that serve it (its termination criteria, its integer space, its
noise-handling evaluator), and some of them must reach back: the criteria call the run state's
``sign`` before they check, the integer space reads the driver's current runner. A strong
reference back makes a reference cycle, so that a fitted estimator and every array of its run
(device memory on a GPU) wait for Python's cyclic garbage collector instead of going with the last
reference. :class:`BackRef` and :class:`WeakCall` refer back weakly. A fitted estimator pickles and
deep-copies (joblib, ``copy.deepcopy``): both store what they refer to as a strong reference,
so the copy refers to its own run (the copy's object, not the original's), and weakly again once
rebuilt.

Examples
--------
>>> import copy
>>> class Owner:
...     def __init__(self) -> None:
...         self.count, self.part = 0, Part(self)
...     def step(self) -> None:
...         self.count += 1
>>> class Part:
...     def __init__(self, owner: Owner) -> None:
...         self.owner, self.step = BackRef(owner), WeakCall(owner.step)
>>> owner = Owner(); owner.part.step(); owner.part.owner() is owner, owner.count
(True, 1)
>>> twin = copy.deepcopy(owner); twin.part.step(); twin.count, owner.count, twin.part.owner() is twin
(2, 1, True)
>>> part = owner.part; del owner, twin
>>> part.owner() is None, copy.deepcopy(part).owner() is None, part.step()  # the owner is gone
(True, True, None)
"""

from __future__ import annotations

from typing import Any, Callable
from weakref import WeakMethod, ref

__all__ = ["BackRef", "WeakCall"]


class BackRef:
    """A weak reference to ``target``: calling it gives ``target`` (``None`` once that is gone).

    Pickled and deep-copied as ``target`` itself, so that a copy of the whole refers to the
    copy of ``target`` made with it.
    """

    __slots__ = ("_ref", "__weakref__")

    def __init__(self, target: Any) -> None:
        self._ref = _gone if target is None else ref(target)  # None: a copy made after target went

    def __call__(self) -> Any:
        return self._ref()

    def __reduce__(self) -> tuple[type, tuple[Any]]:
        return BackRef, (self._ref(),)


class WeakCall:
    """The bound method ``method``, called through a weak reference to its object (a no-op once
    that is gone); pickled and deep-copied as the bound method, as :class:`BackRef`."""

    __slots__ = ("_method", "__weakref__")

    def __init__(self, method: Callable[[], None] | None) -> None:
        self._method = _gone if method is None else WeakMethod(method)

    def __call__(self) -> None:
        method = self._method()
        if method is not None:
            method()

    def __reduce__(self) -> tuple[type, tuple[Any]]:
        return WeakCall, (self._method(),)


def _gone() -> None:
    """What a reference to an object that is gone gives (a copy of it made after it went)."""
    return None
