"""Example evostrat plugin package."""

from evostrat_plugin_example.laplace import Laplace
from evostrat_plugin_example.strategy import OnePlusLambdaES

__all__ = ["Laplace", "OnePlusLambdaES"]
