"""Benchmark problems (see :mod:`evostrat.problems.functions`) and RL problems.

The test functions and :class:`PointRobot` load with the package; the RL problems and
policies load their module (and gymnasium, torch or JAX) on first access, so
``from evostrat.problems import GymProblem`` works as ``from evostrat.problems.gym
import GymProblem`` does, and ``import evostrat`` stays light.

Examples
--------
>>> import numpy as np
>>> from evostrat.problems import rosenbrock, sphere
>>> float(sphere(np.array([3.0, 4.0]))), float(rosenbrock(np.ones(3)))
(25.0, 0.0)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evostrat.plugins.lazy import lazy_exports
from evostrat.problems.functions import (FUNCTIONS, ackley, ellipsoid, rastrigin, rosenbrock, sphere,
                                         step_ellipsoid)
from evostrat.problems.point_robot import PointRobot, distance, sector_coverage

if TYPE_CHECKING:
    from evostrat.problems.atari import AtariProblem, make_atari
    from evostrat.problems.gym import GymProblem, MLPPolicy
    from evostrat.problems.gymnax import EvolveResult, GymnaxProblem, evolve
    from evostrat.problems.policies import ConvLSTMPolicy, ConvPolicy, make_policy

_HOMES = {  # name -> the submodule that defines it (imported on first access)
    "AtariProblem": "evostrat.problems.atari", "make_atari": "evostrat.problems.atari",
    "GymProblem": "evostrat.problems.gym", "MLPPolicy": "evostrat.problems.gym",
    "GymnaxProblem": "evostrat.problems.gymnax", "evolve": "evostrat.problems.gymnax",
    "EvolveResult": "evostrat.problems.gymnax",
    "ConvPolicy": "evostrat.problems.policies", "ConvLSTMPolicy": "evostrat.problems.policies",
    "make_policy": "evostrat.problems.policies",
}

# __all__ leaves out the names whose modules need an optional library (gymnasium, gymnax,
# JAX, torch), so that ``from evostrat.problems import *`` works on a bare install; dir() lists them.
__all__ = ["FUNCTIONS", "GymProblem", "MLPPolicy", "PointRobot", "ackley", "distance", "ellipsoid", "rastrigin",
           "rosenbrock", "sector_coverage", "sphere", "step_ellipsoid"]

__getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals())
