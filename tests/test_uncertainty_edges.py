"""Uncertainty handling (UH-CMA-ES) at its edges: the measure for small populations, the
adaptation at ``s = 0`` and the documented ranges of its options.

The measure is Hansen et al.'s (2009, "A Method for Handling Uncertainty in Evolutionary
Optimization", IEEE TEC 13(1)) as pycma's ``NoiseHandler.update_measure`` computes it; the
adaptation is pycma's (``evaluations`` grow by ``alpha`` while ``s > 0``, else shrink by
``alpha ** -0.25``). Written from mutating ``evostrat/run/uncertainty.py``: with the populations
of the other tests every rank-change limit exceeded 2, so the floor of 1 on the limit, the
strict ``s > 0``, the options' interval ends and the aggregate of two evaluations (or of one
candidate's) had no test that could fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from evostrat.errors import InvalidArgumentError
from evostrat.run.uncertainty import MAX_EVALUATIONS, UncertaintyHandling, aggregate_values, rank_change_measure


@pytest.mark.parametrize("lam", [3, 4, 5, 6, 8])
def test_the_measure_is_pycmas_for_small_populations(lam: int) -> None:
    """Rank-change limits below 2 occur for small populations; the measure floors them at 1, as pycma's."""
    cma = pytest.importorskip("cma")
    rng = np.random.default_rng(lam)
    for trial in range(40):
        fit = rng.standard_normal(lam)
        idx = np.sort(rng.choice(lam, size=rng.integers(1, lam + 1), replace=False))
        refit = fit.copy()
        refit[idx] = fit[idx] + rng.standard_normal(idx.size) * (0.1 if trial % 2 else 3.0)
        theirs = cma.NoiseHandler(5)
        theirs.fit, theirs.fitre, theirs.idx = list(fit), list(refit), idx  # lists: + concatenates
        _, expected = theirs.update_measure()
        ours = rank_change_measure(fit, refit, idx, theirs.theta)
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("how", ["median", "mean"])
def test_two_evaluations_aggregate_to_their_mean(how: str) -> None:
    """The median of two evaluations is their mean (numpy's, pycma's ``np.median``), not the first."""
    np.testing.assert_array_equal(aggregate_values(np.array([[1.0, 10.0], [3.0, 20.0]]), how), [2.0, 15.0])


def test_one_candidate_aggregates_over_its_evaluations() -> None:
    np.testing.assert_array_equal(aggregate_values(np.array([[1.0], [5.0], [3.0]])), [3.0])
    np.testing.assert_array_equal(aggregate_values(np.array([[1.0], [5.0], [3.0]]), "mean"), [3.0])
    np.testing.assert_array_equal(aggregate_values(np.array([[7.0, 8.0]])), [7.0, 8.0])  # one evaluation each


def test_at_s_zero_the_evaluations_shrink_and_sigma_stays() -> None:
    """pycma: ``if self.noiseS > 0`` raise the evaluations and sigma, else lower the evaluations."""
    h = UncertaintyHandling(max_evaluations=8)
    h.s, h.evaluations = 0.0, 4.0
    alpha = 1.0 + 2.0 / (5 + 10.0)
    assert h.adapt(5, 1) == 1.0
    assert h.evaluations == pytest.approx(4.0 * alpha**-0.25, rel=1e-15)
    h.s = 1e-300
    assert h.adapt(5, 1) == pytest.approx(alpha)
    assert h.evaluations == pytest.approx(4.0 * alpha**-0.25 * alpha, rel=1e-15)


ACCEPTED = [("reevals", 0.5), ("reevals", None), ("epsilon", 0.0), ("theta", 1.999), ("theta", 1e-9),
            ("cum", 1.0), ("cum", 1e-9), ("alpha_sigma", 1.0), ("alpha_sigma", None), ("max_evaluations", 1),
            ("max_evaluations", MAX_EVALUATIONS)]
REFUSED = [("reevals", 0.0), ("epsilon", -1e-12), ("theta", 2.0), ("theta", 0.0), ("cum", 1.0 + 1e-12),
           ("cum", 0.0), ("alpha_sigma", 1.0 - 1e-12), ("max_evaluations", 0),
           ("max_evaluations", MAX_EVALUATIONS + 1)]


@pytest.mark.parametrize("name,value", ACCEPTED)
def test_values_at_the_ends_of_the_ranges_are_accepted(name: str, value: object) -> None:
    UncertaintyHandling(**{name: value}).validate_params()


@pytest.mark.parametrize("name,value", REFUSED)
def test_values_past_the_ends_of_the_ranges_are_refused_by_name(name: str, value: object) -> None:
    with pytest.raises(InvalidArgumentError, match=rf"\b{name}\b"):
        UncertaintyHandling(**{name: value}).validate_params()


def test_a_fit_refuses_an_option_out_of_range_by_name() -> None:
    from evostrat import ES
    from evostrat.problems import sphere

    with pytest.raises(InvalidArgumentError, match=r"\btheta\b"):
        ES("cma_es", noise_handling={"theta": 2.0}, max_generations=2, random_state=0).fit(sphere, np.ones(3))
