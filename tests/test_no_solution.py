"""Runs that found nothing, and the values a float32 run reports.

With every value NaN (or ``inf``), or no feasible candidate, ``fun_`` stays ``inf`` and ``x_``
is the initial mean, never evaluated (pycma's ask/tell: ``fbest`` ``inf``, ``xbest`` ``None``;
scipy: ``success=False``). ``fit`` ended silently past the per-generation NaN warnings and
``evostrat.minimize`` reported ``success=True`` ("terminated successfully (tolflatfitness)");
now a :class:`~evostrat.NoSolutionWarning` names the result and ``minimize`` status 2.

In a float32 run ``fun_`` is the objective's value rounded to float32 on every path (the
documented rule of docs/guides/backends.md).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import evostrat
from evostrat import ES, NoSolutionWarning
from evostrat.errors import NonFiniteFitnessWarning

X0 = np.array([1.0, 2.0, 3.0])


def all_nan(X: Any) -> Any:
    return np.full(len(X), np.nan)


def fit_quietly(es: ES, *args: Any, **kwargs: Any) -> tuple[ES, list]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", NonFiniteFitnessWarning)
        es.fit(*args, **kwargs)
    return es, [w for w in seen if issubclass(w.category, NoSolutionWarning)]


@pytest.mark.parametrize("options", [{}, {"maximize": True}, {"restarts": "ipop", "max_generations": 20},
                                     {"bounds": (0.0, 4.0)}])
def test_a_fit_without_a_finite_value_warns_and_reports_x0(options: dict) -> None:
    es, seen = fit_quietly(ES("cma_es", max_evals=500, random_state=0, **options), all_nan, X0)
    assert len(seen) == 1 and "never evaluated" in str(seen[0].message)
    assert str(es.stop_reason_) in str(seen[0].message)
    assert es.fun_ == (-np.inf if options.get("maximize") else np.inf)
    np.testing.assert_allclose(es.x_, X0, atol=1e-12)


def test_all_infinite_values_and_no_feasible_candidate_warn_too() -> None:
    _, seen = fit_quietly(ES("snes", max_generations=5, random_state=0), lambda X: np.full(len(X), np.inf), X0)
    assert len(seen) == 1
    es, seen = fit_quietly(ES("cma_es", max_generations=5, random_state=0), lambda X: (X ** 2).sum(1), X0,
                           constraints=lambda x: [1.0])
    assert len(seen) == 1 and "no feasible candidate" in str(seen[0].message) and es.fun_ == np.inf


def test_a_run_that_found_a_value_does_not_warn() -> None:
    def some_nan(X: Any) -> Any:
        v = (np.asarray(X) ** 2).sum(1)
        v[::2] = np.nan
        return v

    _, seen = fit_quietly(ES("cma_es", max_generations=5, random_state=0), some_nan, X0)
    assert seen == []


def test_compiled_jax_run_without_a_finite_value_warns() -> None:
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    es, seen = fit_quietly(ES("cma_es", max_generations=5, random_state=0),
                           lambda X: jnp.full(X.shape[0], jnp.nan), jnp.asarray(X0))
    assert es.fast_path_ == "compiled_loop" and len(seen) == 1 and es.fun_ == np.inf


def test_minimize_reports_no_finite_value_as_a_failure_as_scipy_does() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evostrat.minimize(lambda x: float("nan"), X0, options={"seed": 0})
    assert not res.success and res.status == 2  # before: success True, "terminated successfully (tolflatfitness)"
    assert res.message.startswith("No finite function value was found")
    assert res.fun == np.inf and np.array_equal(res.x, X0)


def _float64_objective(X: Any) -> Any:
    return ((np.asarray(X, dtype=np.float64) - 1 / 3) ** 2).sum(-1) + 1 / 3


@pytest.mark.parametrize("evaluator", ["vectorized", "serial"])
def test_a_float32_run_reports_the_objective_value_rounded_to_float32(evaluator: str) -> None:
    returned: list[float] = []

    def f(X: Any) -> Any:
        v = _float64_objective(X)
        returned.extend(np.atleast_1d(v).tolist())
        return v if evaluator == "vectorized" else float(v)

    es = ES("cma_es", max_generations=3, random_state=0, evaluator=evaluator).fit(f, np.zeros(3, np.float32))
    exact = float(_float64_objective(np.asarray(es.x_, dtype=np.float64)))
    assert min(returned) == exact != es.fun_  # the objective's own value is float64
    assert es.fun_ == float(np.float32(exact))  # the documented value: rounded to the run's dtype
