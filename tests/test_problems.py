"""Benchmark functions: known optima and values, batching, every backend."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import CPU_CASES, BackendCase, to_numpy

from evostrat.problems import FUNCTIONS, ackley, ellipsoid, rastrigin, rosenbrock, sphere

OPTIMA = {
    "sphere": 0.0,
    "ellipsoid": 0.0,
    "rosenbrock": 1.0,
    "rastrigin": 0.0,
    "ackley": 0.0,
    "step_ellipsoid": 0.0,
}


def test_every_function_has_a_stated_optimum() -> None:
    assert set(FUNCTIONS) == set(OPTIMA)


@pytest.mark.parametrize("name", sorted(OPTIMA))
@pytest.mark.parametrize("dim", [2, 7])
def test_value_at_optimum_is_zero(name: str, dim: int) -> None:
    value = float(FUNCTIONS[name](np.full(dim, OPTIMA[name])))
    assert value == pytest.approx(0.0, abs=1e-14)


@pytest.mark.parametrize("name", sorted(OPTIMA))
def test_optimum_is_a_minimum(name: str) -> None:
    rng = np.random.default_rng(3)
    x = OPTIMA[name] + 0.1 * rng.standard_normal((50, 5))
    assert np.all(FUNCTIONS[name](x) > 0)


def test_known_values() -> None:
    assert float(sphere(np.ones(3))) == 3.0
    assert float(ellipsoid(np.array([1.0, 1.0]))) == pytest.approx(1.0 + 1e6)
    assert float(ellipsoid(np.array([1.0, 1.0, 1.0]))) == pytest.approx(1.0 + 1e3 + 1e6)
    assert float(ellipsoid(np.array([0.0, 2.0]), condition=100.0)) == pytest.approx(400.0)
    assert float(rosenbrock(np.zeros(4))) == 3.0  # (1 - 0)^2 per pair
    assert float(rosenbrock(np.array([0.0, 1.0]))) == 101.0
    assert float(rastrigin(np.ones(4))) == pytest.approx(4.0)  # cos(2 pi) = 1
    assert float(rastrigin(np.full(3, 0.5))) == pytest.approx(3 * 20.25)  # cos(pi) = -1
    assert float(ackley(np.ones(3))) == pytest.approx(20.0 - 20.0 * math.exp(-0.2))


@pytest.mark.parametrize("name", sorted(OPTIMA))
def test_batched_over_leading_axes(name: str) -> None:
    f = FUNCTIONS[name]
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    out = f(x)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out[1, 2], f(x[1, 2]), rtol=1e-14)
    assert f.vectorized is True


@pytest.mark.parametrize("name", sorted(OPTIMA))
def test_python_lists_accepted(name: str) -> None:
    x = [0.3, -1.2, 2.0]
    assert float(FUNCTIONS[name](x)) == float(FUNCTIONS[name](np.array(x)))


@pytest.mark.parametrize("case", CPU_CASES)
@pytest.mark.parametrize("name", sorted(OPTIMA))
def test_matches_numpy_on_every_backend(case: BackendCase, name: str) -> None:
    f = FUNCTIONS[name]
    x = np.random.default_rng(1).uniform(-2.0, 2.0, size=(6, 5))
    ref = f(x.astype(case.dtype).astype(np.float64))
    got = f(case.array(x))
    assert case.is_native(got)
    assert case.dtype_of(got) == case.dtype
    assert tuple(got.shape) == (6,)
    rtol = 1e-12 if case.dtype == "float64" else 2e-5
    np.testing.assert_allclose(to_numpy(got), ref, rtol=rtol, atol=rtol)
    at_opt = f(case.array(np.full(5, OPTIMA[name])))
    assert float(to_numpy(at_opt)) == pytest.approx(0.0, abs=1e-5)
