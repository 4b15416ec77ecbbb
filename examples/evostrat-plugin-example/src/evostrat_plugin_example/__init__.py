"""Example evostrat plugin package."""

from evostrat_plugin_example.strategy import OnePlusLambdaES

__all__ = ["OnePlusLambdaES"]
