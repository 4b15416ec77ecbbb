"""Evaluators that send candidates to other processes or machines.

:class:`ExecutorEvaluator` (``evaluator="executor"``, any
``concurrent.futures.Executor``) and :class:`RayEvaluator` (``evaluator="ray"``)
are :class:`ChunkedEvaluator` s (:mod:`evostrat.evaluators.remote`). The
in-process evaluators live in :mod:`evostrat.evaluators.local`.

The three classes are loaded on first access (PEP 562, :func:`~evostrat.plugins.lazy.lazy_exports`),
so importing :mod:`evostrat.evaluators.local` (which ``import evostrat`` does) loads neither
``concurrent.futures`` nor ``multiprocessing``; ``dir()`` lists them.

Examples
--------
>>> from evostrat.evaluators import ExecutorEvaluator
>>> ExecutorEvaluator(max_workers=2, timeout=10.0)
ExecutorEvaluator(max_workers=2, timeout=10.0)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evostrat.plugins.lazy import lazy_exports

if TYPE_CHECKING:
    from evostrat.evaluators.executor import ExecutorEvaluator
    from evostrat.evaluators.ray import RayEvaluator
    from evostrat.evaluators.remote import ChunkedEvaluator

__all__ = ["ChunkedEvaluator", "ExecutorEvaluator", "RayEvaluator"]

_HOMES = {  # name -> the submodule that defines it (imported on first access)
    "ChunkedEvaluator": "evostrat.evaluators.remote",
    "ExecutorEvaluator": "evostrat.evaluators.executor",
    "RayEvaluator": "evostrat.evaluators.ray",  # imports Ray only when it runs
}

__getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals())
