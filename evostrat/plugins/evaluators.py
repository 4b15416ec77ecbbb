"""Built-in evaluator plugin: ``auto``, ``vectorized``, ``serial``, ``executor``, ``ray``."""

from __future__ import annotations

from evostrat.evaluators.local import AutoEvaluator, SerialEvaluator, VectorizedEvaluator
from evostrat.hookspecs import hookimpl


@hookimpl
def evostrat_evaluators() -> dict[str, type]:
    from evostrat.evaluators.executor import ExecutorEvaluator
    from evostrat.evaluators.ray import RayEvaluator  # Ray is imported on use

    return {
        "auto": AutoEvaluator,
        "vectorized": VectorizedEvaluator,
        "serial": SerialEvaluator,
        "executor": ExecutorEvaluator,
        "ray": RayEvaluator,
    }
