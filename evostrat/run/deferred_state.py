"""The ``state`` of an ask/tell runner built when first read (a batch's run).

:class:`DeferredStateSlot` is a non-data descriptor: once a runner's ``state`` is in its
``__dict__`` (the usual case), Python reads it from there and never calls the descriptor;
only while it is missing does the descriptor resolve the deferred one (``_deferred``, an
object with ``resolve()``: :mod:`evostrat.run.batch_init`). A descriptor for this one name,
rather than a ``__getattr__`` hook on the class, keeps every other attribute of the runner on
CPython's specialised (fast) attribute look-up, which a ``__getattr__`` turns off for all of
them (about 15 ns an attribute read, some 25 reads a generation of ``ES.ask``/``ES.tell``).

Examples
--------
>>> class Runner:
...     state = DeferredStateSlot()
>>> class Later:
...     def resolve(self):
...         return "built"
>>> r = Runner()
>>> r._deferred = Later()
>>> r.state, "_deferred" in vars(r), vars(r)["state"]
('built', False, 'built')
>>> Runner().state
Traceback (most recent call last):
...
AttributeError: 'Runner' object has no attribute 'state'
"""

from __future__ import annotations

from typing import Any

__all__ = ["DeferredStateSlot"]


class DeferredStateSlot:
    """``runner.state`` when it is not set: the deferred state (``runner._deferred``) resolved
    and stored in the runner's ``__dict__`` (read from there from then on), else ``AttributeError``."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, runner: Any, owner: type | None = None) -> Any:
        if runner is None:
            return self
        held = runner.__dict__
        deferred = held.pop("_deferred", None)
        if deferred is None:
            raise AttributeError(f"{type(runner).__name__!r} object has no attribute {self.name!r}")
        held[self.name] = value = deferred.resolve()
        return value
