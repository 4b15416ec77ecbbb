"""Benchmark problems (see :mod:`evostrat.problems.functions`)."""

from evostrat.problems.functions import (
    FUNCTIONS,
    ackley,
    ellipsoid,
    rastrigin,
    rosenbrock,
    sphere,
)

__all__ = ["FUNCTIONS", "ackley", "ellipsoid", "rastrigin", "rosenbrock", "sphere"]
