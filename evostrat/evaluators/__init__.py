"""Evaluators that send candidates to other processes or machines.

:class:`ExecutorEvaluator` (``evaluator="executor"``, any
``concurrent.futures.Executor``) and :class:`RayEvaluator` (``evaluator="ray"``)
are :class:`ChunkedEvaluator` s (:mod:`evostrat.evaluators.remote`). The
in-process evaluators live in :mod:`evostrat.evaluators.local`.

Examples
--------
>>> from evostrat.evaluators import ExecutorEvaluator
>>> ExecutorEvaluator(max_workers=2, timeout=10.0)
ExecutorEvaluator(max_workers=2, timeout=10.0)
"""

from __future__ import annotations

from evostrat.evaluators.executor import ExecutorEvaluator
from evostrat.evaluators.ray import RayEvaluator  # imports Ray only when it runs
from evostrat.evaluators.remote import ChunkedEvaluator

__all__ = ["ChunkedEvaluator", "ExecutorEvaluator", "RayEvaluator"]
