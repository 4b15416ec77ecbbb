"""Evaluators that send candidates to other processes or machines.

- :class:`ExecutorEvaluator` (``evaluator="executor"``): any
  ``concurrent.futures.Executor``; a process pool by default.
- :class:`RayEvaluator` (``evaluator="ray"``): Ray tasks with retries of
  chunks whose worker died; needs the ``ray`` extra (imported on first use).

Both cut the population into chunks (:mod:`evostrat.evaluators.remote`), run
:func:`evostrat.evaluators.worker.run_chunk` on workers and ship Gaussian
populations as seeds (:mod:`evostrat.evaluators.seeded`). The in-process evaluators
(``"auto"``, ``"vectorized"``, ``"serial"``) live in :mod:`evostrat.evaluators.local`.

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
