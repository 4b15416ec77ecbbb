"""Answers kept by plain keys: work that only a run's settings decide, done once per settings.

A fit repeats checks and look-ups whose answers depend only on plain settings (numbers,
strings, ``None``): its parameters' validation, the strategy's termination defaults, the
names of its stop criteria. Right after a compiled chunk, host Python runs with cold caches
(2-5x its warm cost), so each such step costs a fit tens of microseconds (issue 15). A
:class:`Memo` keeps their answers by :func:`plain_key`, which tells ``1``, ``1.0`` and
``True`` apart and refuses anything else (lists, dicts, arrays, objects: those are checked
every time, as they may change in place).

Examples
--------
>>> plain_key((1, "a", None)) == plain_key((1, "a", None)) != plain_key((1.0, "a", None))
True
>>> plain_key((1, [2])) is None, plain_key((-0.0,)) is None
(True, True)
"""

from __future__ import annotations

import math
from typing import Any, Hashable

__all__ = ["PLAIN_TYPES", "Memo", "plain_key"]

#: The types whose values key a :class:`Memo` (immutable, hashed and compared by value).
PLAIN_TYPES = frozenset({type(None), bool, int, float, str})


def plain_key(values: tuple[Any, ...], owner: Hashable = None, zeros: bool = True) -> Hashable | None:
    """``values`` with their types (and ``owner``), a key of equal plain values; ``None`` when one is
    not plain or, unless ``zeros`` is false (answers that the sign of a zero cannot change), is ``-0.0``
    (equal to ``0.0``, but another setting)."""
    types = tuple(map(type, values))
    if not PLAIN_TYPES.issuperset(types):
        return None
    if zeros and float in types and any(v == 0.0 and math.copysign(1.0, v) < 0 for v in values if type(v) is float):
        return None
    return owner, types, values


class Memo(dict):
    """A dict of at most ``size`` answers (emptied when full: the keys are few in practice)."""

    def __init__(self, size: int = 256) -> None:
        super().__init__()
        self.size = size

    def holds(self, key: Hashable | None, answer: Any) -> bool:
        """Whether ``key`` (``None``: no key) holds ``answer`` itself."""
        return key is not None and self.get(key) is answer

    def keep(self, key: Hashable | None, answer: Any) -> Any:
        """Store ``answer`` under ``key`` (``None``: nothing stored) and return it."""
        if key is not None:
            if len(self) >= self.size:
                self.clear()
            self[key] = answer
        return answer
