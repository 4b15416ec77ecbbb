"""evostrat.minimize (issue 20 item 6): scipy's OptimizeResult contract, scipy's argument forms."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

scipy_optimize = pytest.importorskip("scipy.optimize")

import evostrat  # noqa: E402
from evostrat.errors import InvalidArgumentError, InvalidTypeError, OptimizeWarning, UnknownNameError  # noqa: E402


def rosen(x, a=1.0):
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (a - x[:-1]) ** 2))


def check_contract(res, n: int) -> None:
    """The fields and types scipy.optimize.minimize's result has."""
    assert isinstance(res, scipy_optimize.OptimizeResult)
    assert isinstance(res.x, np.ndarray) and res.x.shape == (n,) and res.x.dtype == np.float64
    assert isinstance(res.fun, float) and isinstance(res.nfev, int) and isinstance(res.nit, int)
    assert isinstance(res.success, bool) and isinstance(res.status, int) and isinstance(res.message, str)
    assert res.success == (res.status == 0) and res.message
    assert res.x is res["x"]  # a dict with attribute access, as scipy's


def test_unconstrained_result_and_counts() -> None:
    calls = []

    def f(x, a):
        calls.append(1)
        return rosen(x, a)

    res = evostrat.minimize(f, np.zeros(4), args=(1.0,), options={"seed": 3, "sigma0": 0.5, "ftarget": 1e-10})
    check_contract(res, 4)
    assert res.success and res.status == 0 and res.stop_reason == "ftarget" and res.fun <= 1e-10
    assert res.nfev == len(calls) == res.es.n_evals_ and res.nit == res.es.n_generations_
    np.testing.assert_allclose(res.x, np.ones(4), atol=1e-4)
    assert res.fun == rosen(res.x)


def test_budget_and_callback_statuses() -> None:
    res = evostrat.minimize(rosen, np.zeros(4), options={"maxfev": 200, "seed": 0, "disp": False})
    check_contract(res, 4)
    assert res.status == 1 and not res.success and "function evaluations" in res.message
    assert 200 <= res.nfev < 208
    res = evostrat.minimize(rosen, np.zeros(4), options={"maxiter": 5, "seed": 0})
    assert res.status == 1 and res.nit == 5 and "iterations" in res.message
    seen = []

    def stop_after_three(intermediate_result):
        seen.append(intermediate_result.fun)
        if len(seen) == 3:
            raise StopIteration

    res = evostrat.minimize(rosen, np.zeros(4), callback=stop_after_three, options={"seed": 0})
    assert res.status == 3 and res.nit == 3 and not res.success and seen[-1] == res.fun
    points = []
    res = evostrat.minimize(rosen, np.zeros(4), callback=lambda xk: points.append(xk.copy()),
                            options={"maxiter": 4, "seed": 0})
    assert len(points) == 4 and np.array_equal(points[-1], res.x)  # scipy's old style: xk
    loose = evostrat.minimize(rosen, np.zeros(4), tol=1e-2, options={"seed": 0})
    tight = evostrat.minimize(rosen, np.zeros(4), tol=1e-12, options={"seed": 0})
    assert loose.es.tolfun == 1e-2 and loose.nfev < tight.nfev


def test_bounds_as_pairs_and_scipy_bounds() -> None:
    f = lambda x: float(np.sum((x - 2.0) ** 2))  # noqa: E731 - optimum outside the box
    for bounds in ([(-1, 1), (None, 1), (0, 3)], scipy_optimize.Bounds([-1, -np.inf, 0], [1, 1, 3])):
        res = evostrat.minimize(f, np.zeros(3) + 0.5, bounds=bounds, options={"seed": 0})
        check_contract(res, 3)
        np.testing.assert_allclose(res.x, [1, 1, 2], atol=1e-4)


@pytest.mark.parametrize("form", ["dict", "nonlinear", "linear", "list", "callable"])
def test_constraint_forms_reach_the_slsqp_optimum(form: str) -> None:
    f = lambda x: float(np.sum((x - 1.0) ** 2))  # noqa: E731
    c = lambda x: 1.0 - x[0] - x[1]  # noqa: E731  scipy: c(x) >= 0  (x0 + x1 <= 1)
    cons = {
        "dict": {"type": "ineq", "fun": c},
        "nonlinear": scipy_optimize.NonlinearConstraint(lambda x: x[0] + x[1], -np.inf, 1.0),
        "linear": scipy_optimize.LinearConstraint([[1.0, 1.0, 0.0]], -np.inf, 1.0),
        "list": [{"type": "ineq", "fun": c}, scipy_optimize.NonlinearConstraint(lambda x: x[2], -5.0, 0.5)],
        "callable": lambda x: [x[0] + x[1] - 1.0],
    }[form]
    res = evostrat.minimize(f, np.zeros(3), constraints=cons, options={"seed": 0})
    check_contract(res, 3)
    ref = scipy_optimize.minimize(f, np.zeros(3), method="SLSQP", tol=1e-12,
                                  constraints=cons if form not in ("callable",) else {"type": "ineq", "fun": c})
    assert res.success and res.maxcv == 0.0
    assert abs(res.fun - ref.fun) < 1e-6
    np.testing.assert_allclose(res.x, ref.x, atol=1e-3)


def test_infeasible_problem_reports_status_2() -> None:
    res = evostrat.minimize(rosen, np.zeros(2), constraints={"type": "ineq", "fun": lambda x: -1.0},
                            options={"maxfev": 120, "seed": 0})
    assert res.status == 2 and not res.success and res.fun == np.inf and res.maxcv == 1.0


def test_an_x0_outside_the_bounds_is_clipped_into_them_with_a_warning_as_scipy() -> None:
    # scipy's Nelder-Mead and Powell warn and clip (L-BFGS-B clips); evostrat.minimize refused it,
    # with ES.fit's "x0 must lie inside bounds"
    f = lambda x: float(np.sum((x - 1.0) ** 2))  # noqa: E731
    bounds = [(2.0, 3.0), (None, 0.5), (-1.0, 1.0)]
    with pytest.warns(OptimizeWarning, match=r"x0 is not within the bounds: clipped into them \(\[0\. 4\. 0\.\] to "
                                             r"\[2\.  0\.5 0\. \]\)"):
        res = evostrat.minimize(f, np.array([0.0, 4.0, 0.0]), bounds=bounds, options={"seed": 3, "maxiter": 30})
    with warnings.catch_warnings():
        warnings.simplefilter("error", OptimizeWarning)  # inside (on the edge): no warning
        inside = evostrat.minimize(f, np.array([2.0, 0.5, 0.0]), bounds=bounds, options={"seed": 3, "maxiter": 30})
    assert np.array_equal(res.x, inside.x) and (res.fun, res.nfev) == (inside.fun, inside.nfev)
    with pytest.raises(InvalidArgumentError, match="bounds: a lower bound is above its upper bound"):
        evostrat.minimize(f, np.zeros(2), bounds=[(1.0, 0.0), (0.0, 1.0)])


def test_bad_inputs_name_the_argument() -> None:
    with pytest.raises(InvalidArgumentError, match=r"constraints\[0\]: equality"):
        evostrat.minimize(rosen, np.zeros(2), constraints={"type": "eq", "fun": lambda x: x[0]})
    with pytest.raises(InvalidArgumentError, match=r"constraints\[1\] must be"):
        evostrat.minimize(rosen, np.zeros(2), constraints=[{"type": "ineq", "fun": len}, {"type": "ineq"}])
    with pytest.raises(InvalidArgumentError, match="lb == ub"):
        evostrat.minimize(rosen, np.zeros(2), constraints=scipy_optimize.NonlinearConstraint(lambda x: x[0], 0, 0))
    with pytest.raises(InvalidArgumentError, match="one \\(min, max\\) pair per coordinate"):
        evostrat.minimize(rosen, np.zeros(2), bounds=[(0, 1)])
    with pytest.raises(InvalidTypeError, match="options must be a dict"):
        evostrat.minimize(rosen, np.zeros(2), options=[("maxfev", 3)])
    with pytest.raises(InvalidArgumentError, match="'max_evals' twice"):
        evostrat.minimize(rosen, np.zeros(2), options={"maxfev": 3, "max_evals": 4})
    with pytest.raises(InvalidArgumentError, match="x0 must be a 1-D array"):
        evostrat.minimize(rosen, np.zeros((2, 2)))
    with pytest.raises(InvalidTypeError, match=r"x0 must be a 1-D array of numbers, got list"):  # was ValueError
        evostrat.minimize(rosen, ["a", "b"])
    with pytest.raises(InvalidTypeError, match=r"got function \(a callable x0, .* is ES\(\.\.\.\)\.fit's\)"):
        evostrat.minimize(rosen, lambda: np.zeros(2))  # pycma's callable x0: was a bare TypeError from float()
    with pytest.raises(InvalidTypeError, match="fun must be callable"):
        evostrat.minimize(3.0, np.zeros(2))
    with pytest.raises(UnknownNameError):
        evostrat.minimize(rosen, np.zeros(2), method="nelder-mead")


def test_a_number_x0_is_a_one_dimensional_point_as_scipy_takes_it() -> None:
    seen = []

    def f(x):
        seen.append(np.shape(x))
        return float((x[0] - 2.0) ** 2)

    res = evostrat.minimize(f, 0.0, options={"seed": 0, "ftarget": 1e-12})
    check_contract(res, 1)
    assert set(seen) == {(1,)} and res.success and abs(res.x[0] - 2.0) < 1e-5


def test_gradient_arguments_are_taken_and_warned_about_as_scipy_derivative_free_methods_do() -> None:
    def grad(x):
        raise AssertionError("an evolution strategy must not call the gradient")

    with pytest.warns(RuntimeWarning, match="does not use gradient information \\(jac\\)"):
        res = evostrat.minimize(rosen, np.zeros(2), jac=grad, options={"seed": 0, "maxiter": 3})
    assert res.nit == 3
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        evostrat.minimize(rosen, np.zeros(2), jac=None, hess=None, hessp=None, options={"seed": 0, "maxiter": 3})


@pytest.mark.parametrize("callback", [3, "stop"])
def test_callback_not_callable_is_named(callback) -> None:
    """Was a TypeError "'int' object is not callable" from inside the first generation."""
    message = f"callback must be None or a callable, got {type(callback).__name__}"
    with pytest.raises(evostrat.InvalidTypeError, match=message):
        evostrat.minimize(rosen, np.zeros(2), callback=callback, options={"max_generations": 2})
