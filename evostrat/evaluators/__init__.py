"""Evaluators that send candidates to other processes or machines.

:class:`ExecutorEvaluator` (``evaluator="executor"``, any
``concurrent.futures.Executor``) and :class:`RayEvaluator` (``evaluator="ray"``)
are :class:`ChunkedEvaluator` s (:mod:`evostrat.evaluators.remote`). The
in-process evaluators live in :mod:`evostrat.evaluators.local`.

The three classes are loaded on first access (PEP 562), so importing
:mod:`evostrat.evaluators.local` (which ``import evostrat`` does) loads neither
``concurrent.futures`` nor ``multiprocessing``.

Examples
--------
>>> from evostrat.evaluators import ExecutorEvaluator
>>> ExecutorEvaluator(max_workers=2, timeout=10.0)
ExecutorEvaluator(max_workers=2, timeout=10.0)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evostrat.evaluators.executor import ExecutorEvaluator
    from evostrat.evaluators.ray import RayEvaluator
    from evostrat.evaluators.remote import ChunkedEvaluator

__all__ = ["ChunkedEvaluator", "ExecutorEvaluator", "RayEvaluator"]

_HOMES = {  # name -> the submodule that defines it
    "ChunkedEvaluator": "evostrat.evaluators.remote",
    "ExecutorEvaluator": "evostrat.evaluators.executor",
    "RayEvaluator": "evostrat.evaluators.ray",  # imports Ray only when it runs
}


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first access.

    Parameters
    ----------
    name : str
        One of :data:`__all__`.

    Returns
    -------
    type
        The class, also cached in this module's namespace.

    Raises
    ------
    AttributeError
        When ``name`` is not one of :data:`__all__`.
    """
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the lazily loaded classes included."""
    return sorted(set(globals()) | set(__all__))
