"""Built-in evaluator plugin."""

from __future__ import annotations

from evostrat.hookspecs import hookimpl


@hookimpl
def evostrat_evaluators() -> dict[str, type]:
    from evostrat.evaluation import AutoEvaluator, SerialEvaluator, VectorizedEvaluator

    return {"auto": AutoEvaluator, "vectorized": VectorizedEvaluator, "serial": SerialEvaluator}
