"""Convergence within stated budgets, on every backend.

Budgets (10-D sphere, x0 = 3 * ones, sigma0 = 1, ftarget 1e-6), measured on
numpy, torch float32 and JAX float32 with seeds 0-2 when this file was written:

- SNES with its defaults (popsize 10): 1430-1600 evaluations; budget 3000.
- OpenAI-ES, popsize 40, Adam lr 0.2, lr_decay = sigma_decay = 0.99:
  28040-29200 evaluations; budget 40000.

Runs stop with ``stop_reason_ == "ftarget"`` well inside the budget; hitting
``maxfevals`` instead fails the test.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import LIBRARY_CASES, BackendCase, to_numpy

from evostrat import ES
from evostrat.problems import ellipsoid, sphere

DIM = 10
FTARGET = 1e-6
SNES_MAX_EVALS = 3_000
OPENAI_ES_MAX_EVALS = 40_000
OPENAI_ES_OPTIONS = dict(lr=0.2, lr_decay=0.99, sigma_decay=0.99)


def check_solved(es: ES, case: BackendCase, max_evals: int, objective=sphere) -> None:
    assert es.stop_reason_ == "ftarget", (es.stop_reason_, es.fun_, es.n_evals_)
    assert es.fun_ < FTARGET
    assert es.n_evals_ <= max_evals
    assert es.n_evals_ == es.n_generations_ * es.strategy_.popsize
    assert case.is_native(es.x_)
    assert case.dtype_of(es.x_) == case.dtype
    # fun_ is the objective at x_ (up to the dtype's rounding)
    assert float(to_numpy(objective(es.x_))) == pytest.approx(es.fun_, rel=1e-4)


@pytest.mark.parametrize("case", LIBRARY_CASES)
def test_snes_solves_sphere_10d_within_3000_evals(case: BackendCase) -> None:
    es = ES("snes", sigma0=1.0, ftarget=FTARGET, max_evals=SNES_MAX_EVALS, random_state=0)
    es.fit(sphere, case.array(np.full(DIM, 3.0)))
    check_solved(es, case, SNES_MAX_EVALS)


@pytest.mark.parametrize("case", LIBRARY_CASES)
def test_openai_es_solves_sphere_10d_within_40000_evals(case: BackendCase) -> None:
    es = ES(
        "openai_es",
        sigma0=1.0,
        popsize=40,
        ftarget=FTARGET,
        max_evals=OPENAI_ES_MAX_EVALS,
        strategy_options=OPENAI_ES_OPTIONS,
        random_state=0,
    )
    es.fit(sphere, case.array(np.full(DIM, 3.0)))
    check_solved(es, case, OPENAI_ES_MAX_EVALS)


@pytest.mark.filterwarnings("ignore::evostrat.errors.PerCandidateWarning")  # a one-candidate objective
def test_maximize_negative_sphere() -> None:
    """maximize=True: values are maximised, ftarget is reached from below, fun_ <= 0."""
    es = ES("snes", sigma0=1.0, ftarget=-FTARGET, max_evals=SNES_MAX_EVALS, maximize=True, random_state=0)
    es.fit(lambda X: -sphere(X), np.full(DIM, 3.0))
    assert es.stop_reason_ == "ftarget"
    assert -FTARGET <= es.fun_ <= 0.0
    assert float(-sphere(es.x_)) == es.fun_
    best = [h["best"] for h in es.history_]
    assert best == sorted(best), "the best-so-far must never decrease when maximising"
    assert best[0] < -1.0  # it really started far from the optimum
    assert np.max(np.abs(es.x_)) < 1e-2


@pytest.mark.filterwarnings("ignore::evostrat.errors.PerCandidateWarning")  # one-candidate objectives
def test_maximize_matches_minimize_on_negated_objective() -> None:
    """Maximising -f is the same run as minimising f, bit for bit."""
    kw = dict(sigma0=1.0, max_generations=30, random_state=4)
    low = ES("snes", **kw).fit(sphere, np.full(DIM, 3.0))
    high = ES("snes", maximize=True, **kw).fit(lambda X: -sphere(X), np.full(DIM, 3.0))
    np.testing.assert_array_equal(low.x_, high.x_)
    np.testing.assert_array_equal(low.strategy_.mean, high.strategy_.mean)
    assert high.fun_ == -low.fun_


def test_snes_solves_axis_aligned_ellipsoid_10d_within_4000_evals() -> None:
    """Diagonal adaptation handles the separable ellipsoid (condition 1e6): 2780-2890 evals, seeds 0-4."""
    es = ES("snes", sigma0=1.0, ftarget=1e-8, max_evals=4_000, random_state=0)
    es.fit(ellipsoid, np.full(DIM, 3.0))
    assert es.stop_reason_ == "ftarget", (es.stop_reason_, es.fun_)
    # sigma adapted per coordinate: the steepest axis ends with the smallest step size
    sigma = es.strategy_.state.sigma
    assert sigma[-1] < sigma[0] / 100


@pytest.mark.slow
@pytest.mark.parametrize("case", LIBRARY_CASES)
@pytest.mark.parametrize("seed", range(1, 5))
def test_sphere_budgets_hold_for_more_seeds_slow(case: BackendCase, seed: int) -> None:
    """The two sphere budgets above, over seeds 1-4 on each library."""
    x0 = case.array(np.full(DIM, 3.0))
    es = ES("snes", sigma0=1.0, ftarget=FTARGET, max_evals=SNES_MAX_EVALS, random_state=seed).fit(sphere, x0)
    check_solved(es, case, SNES_MAX_EVALS)
    es = ES(
        "openai_es",
        sigma0=1.0,
        popsize=40,
        ftarget=FTARGET,
        max_evals=OPENAI_ES_MAX_EVALS,
        strategy_options=OPENAI_ES_OPTIONS,
        random_state=seed,
    ).fit(sphere, x0)
    check_solved(es, case, OPENAI_ES_MAX_EVALS)
