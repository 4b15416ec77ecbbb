"""The module the ``evostrat`` entry point names: hook implementations only."""

from __future__ import annotations

from evostrat import hookimpl


@hookimpl
def evostrat_strategies() -> dict[str, type]:
    from evostrat_plugin_example.strategy import OnePlusLambdaES

    return {"one_plus_lambda_es": OnePlusLambdaES}


@hookimpl
def evostrat_distributions() -> dict[str, type]:
    from evostrat_plugin_example.laplace import Laplace

    return {"laplace": Laplace}
