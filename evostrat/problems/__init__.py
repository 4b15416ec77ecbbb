"""Benchmark problems (see :mod:`evostrat.problems.functions`)."""

from evostrat.problems.functions import (FUNCTIONS, ackley, ellipsoid, rastrigin, rosenbrock, sphere,
                                         step_ellipsoid)
from evostrat.problems.point_robot import PointRobot

__all__ = ["FUNCTIONS", "PointRobot", "ackley", "ellipsoid", "rastrigin", "rosenbrock", "sphere", "step_ellipsoid"]
