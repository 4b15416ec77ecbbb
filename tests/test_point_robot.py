"""The point-robot behaviour task (:mod:`evostrat.problems.point_robot`).

Checked against hand-computed trajectories: a policy whose output layer is
zero except its bias drives at a constant velocity, so the final position is
``reach * tanh(c)`` (or the unit-disk clip of ``tanh(b2)``); every backend
computes the same rollouts; the sector count follows its definition.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import to_numpy

from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.problems.point_robot import PointRobot, distance, sector_coverage


def constant_velocity_params(robot: PointRobot, b2: tuple[float, float]) -> np.ndarray:
    """Parameters whose policy outputs ``tanh(b2)`` whatever it observes."""
    theta = robot.init_params(seed=3)
    theta[-2 * robot.hidden - 2 : -2] = 0.0  # W2 = 0
    theta[-2:] = b2
    return theta


def test_constant_velocity_policy_ends_where_the_formula_says() -> None:
    robot = PointRobot(steps=40, hidden=5, reach=2.0)
    theta = constant_velocity_params(robot, (0.3, -0.2))
    a = np.tanh([0.3, -0.2])  # |a| < 1: no clipping
    np.testing.assert_allclose(robot(theta), 2.0 * a, rtol=1e-12)
    path = robot.rollout(theta)
    assert path.shape == (1, 41, 2)
    np.testing.assert_allclose(path[0, 10], 10 / 40 * 2.0 * a, rtol=1e-12)
    # a saturated action is clipped to the unit disk: the robot ends exactly at `reach`
    fast = constant_velocity_params(robot, (5.0, 5.0))
    np.testing.assert_allclose(robot(fast), [math.sqrt(2.0), math.sqrt(2.0)], rtol=1e-9)


def test_population_is_batched_row_by_row_and_bounded() -> None:
    robot = PointRobot(steps=30, hidden=8)
    rng = np.random.default_rng(0)
    X = robot.init_params(seed=1) + 2.0 * rng.standard_normal((64, robot.dim))
    B = robot(X)
    assert B.shape == (64, 2)
    for i in (0, 17, 63):
        np.testing.assert_allclose(B[i], robot(X[i]), rtol=1e-12, atol=1e-15)
    assert np.all(distance(B) <= robot.reach + 1e-12)
    assert len({tuple(np.round(b, 9)) for b in B}) == 64  # perturbations go different places


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_every_backend_simulates_the_same_robot(backend: str) -> None:
    robot = PointRobot(steps=25, hidden=6)
    X = robot.init_params(seed=2) + 0.5 * np.random.default_rng(1).standard_normal((16, robot.dim))
    ref = robot(X)
    if backend == "torch":
        torch = pytest.importorskip("torch")
        got = robot(torch.tensor(X, dtype=torch.float64))
        assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
        np.testing.assert_allclose(to_numpy(got), ref, rtol=1e-10, atol=1e-12)
    else:
        jax = pytest.importorskip("jax")
        got = jax.jit(robot)(jax.numpy.asarray(X, dtype=jax.numpy.float32))  # traceable
        assert isinstance(got, jax.Array)
        np.testing.assert_allclose(to_numpy(got), ref, rtol=2e-4, atol=2e-5)


def test_sector_coverage_counts_points_beyond_the_radius() -> None:
    angles = np.deg2rad([10, 100, 190, 200, 350, 80])
    radii = np.array([1.0, 1.0, 1.0, 1.0, 0.2, 1.0])
    B = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    fraction, counts = sector_coverage(B, radius=0.5, sectors=4)
    assert counts.tolist() == [2, 1, 2, 0]  # the point at 350 degrees is inside the radius
    assert fraction == 0.75
    fraction, _ = sector_coverage(B, radius=0.5, sectors=4, min_count=2)
    assert fraction == 0.5
    fraction, counts = sector_coverage(B, radius=0.0, sectors=8)
    assert counts.tolist() == [1, 1, 1, 0, 2, 0, 0, 1]
    assert fraction == 5 / 8


def test_bad_input_raises_clear_errors() -> None:
    with pytest.raises(InvalidArgumentError, match="steps must be a positive int"):
        PointRobot(steps=0)
    with pytest.raises(InvalidArgumentError, match="reach must be a positive number"):
        PointRobot(reach=-1.0)
    robot = PointRobot(hidden=4)
    with pytest.raises(InvalidArgumentError, match=rf"X must have shape \(n, {robot.dim}\)"):
        robot(np.zeros((3, robot.dim + 1)))
    with pytest.raises(InvalidTypeError, match="X must be an array"):
        robot("not an array")
    with pytest.raises(InvalidArgumentError, match=r"B must have shape \(n, 2\)"):
        sector_coverage(np.zeros((4, 3)), radius=0.5)
    with pytest.raises(InvalidArgumentError, match="min_count must be a positive int"):
        sector_coverage(np.zeros((4, 2)), radius=0.5, min_count=0)
