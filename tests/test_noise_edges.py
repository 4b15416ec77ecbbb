"""Repeated evaluations (``reevaluations``, ``noise_handling``) at their limits.

Written from mutating ``evostrat/run/noise.py``: the budget a short last generation spends,
``reevaluations`` exactly at ``MAX_EVALUATIONS`` and at ``max_evals``, which strategies
``noise_handling`` refuses, a checkpoint's infinite noise state and a restart's fresh measure had
no test that could fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from evostrat import ES
from evostrat.errors import CheckpointError, InvalidArgumentError
from evostrat.problems import sphere
from evostrat.run.noise import NoisyEvaluator, aggregation
from evostrat.run.uncertainty import MAX_EVALUATIONS


def test_a_short_last_generation_evaluates_each_candidate_as_often_as_ends_the_budget() -> None:
    """popsize 6, 3 evaluations each: 18 a generation. With ``max_evals=43`` two generations
    spend 36; the third has 7 left, so each candidate is evaluated ``ceil(7 / 6) = 2`` times
    (passing the budget by less than one population, as a plain generation does)."""
    es = ES("cma_es", popsize=6, reevaluations=3, max_evals=43, random_state=0).fit(sphere, np.ones(3))
    assert [row["n_evals"] for row in es.history_] == [18, 36, 48]
    assert es.stop_reason_ == "maxfevals"


def test_reevaluations_at_their_limits_are_accepted() -> None:
    """At most ``MAX_EVALUATIONS`` a candidate, and at most ``max_evals``: both ends included."""
    top = ES("cma_es", popsize=6, reevaluations=MAX_EVALUATIONS, max_evals=MAX_EVALUATIONS,
             random_state=0).fit(sphere, np.ones(3))
    assert top.n_generations_ == 1 and top.n_evals_ >= MAX_EVALUATIONS
    same = ES("cma_es", popsize=6, reevaluations=5, max_evals=5, random_state=0).fit(sphere, np.ones(3))
    assert same.n_generations_ == 1 and same.n_evals_ == 6  # each candidate once: the budget ends


def test_reevaluations_past_their_limits_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=rf"reevaluations must be at most {MAX_EVALUATIONS}"):
        ES("cma_es", reevaluations=MAX_EVALUATIONS + 1, max_generations=1).fit(sphere, np.ones(3))
    with pytest.raises(InvalidArgumentError, match=r"reevaluations=6 exceeds max_evals=5"):
        ES("cma_es", reevaluations=6, max_evals=5).fit(sphere, np.ones(3))


def test_noise_handling_needs_a_sigma_but_reevaluations_do_not() -> None:
    """ExpectationES has no step size in its state: the uncertainty handling (which scales sigma)
    is refused by name, plain repeated evaluations run."""
    with pytest.raises(InvalidArgumentError, match=r"noise_handling needs a strategy with a step size sigma .*"
                                                   r"'expectation_es'"):
        ES("expectation_es", noise_handling=True, max_generations=2, random_state=0).fit(sphere, np.ones(3))
    es = ES("expectation_es", reevaluations=2, max_generations=2, random_state=0).fit(sphere, np.ones(3))
    assert es.n_evals_ == 2 * 2 * es.strategy_.popsize


def _noise_state() -> dict:
    """A valid checkpointed noise-handling state (``NoisyEvaluator.state_values``'s form)."""
    return {"s": 0.5, "evaluations": 2.0, "rng": np.random.default_rng(0), "pending": 1.2}


@pytest.mark.parametrize("field", ["s", "evaluations", "pending"])
@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_a_checkpointed_noise_state_must_be_finite(field: str, bad: float) -> None:
    """A forged checkpoint's measure, evaluations or pending factor that is not finite is refused
    by name (each is a finite number; ``evaluations`` and ``pending`` at least 1)."""
    values = _noise_state()
    assert NoisyEvaluator.check_state_values(values) == values
    with pytest.raises(CheckpointError, match=rf"\b{field}\b"):
        NoisyEvaluator.check_state_values({**values, field: bad})


def test_a_restart_measures_the_noise_afresh() -> None:
    """As pycma's ``fmin`` makes a new ``NoiseHandler`` for each restart: the measure back to 0,
    the evaluations per candidate back to ``reevaluations``, no sigma factor pending."""
    es = ES("cma_es", noise_handling=True, reevaluations=2, max_generations=12, random_state=0).fit(
        lambda X: sphere(X) * (1.0 + np.random.default_rng(1).standard_normal(len(X))), np.ones(3))
    noise = es.run_.noise
    noise.handler.s, noise.handler.evaluations, noise.pending = 0.7, 5.0, (es.run_.runner, 1.3)
    noise.restart()
    assert (noise.handler.s, noise.handler.evaluations, noise.pending) == (0.0, 2.0, None)


@pytest.mark.parametrize("field", ["evaluations", "pending"])
def test_a_checkpointed_count_or_factor_below_one_is_refused(field: str) -> None:
    values = _noise_state()
    assert NoisyEvaluator.check_state_values({**values, field: 1.0})[field] == 1.0
    with pytest.raises(CheckpointError, match=rf"\b{field}\b.*>= 1"):
        NoisyEvaluator.check_state_values({**values, field: 0.5})


@pytest.mark.parametrize("options,expected", [
    ({}, None), ({"reevaluations": 2}, "median"), ({"noise_handling": True}, "median"),
    ({"noise_handling": np.True_}, "median"), ({"noise_handling": np.False_}, None),
    ({"noise_handling": False, "reevaluations": 3}, "median"), ({"noise_handling": {"aggregate": "mean"}}, "mean"),
    ({"noise_handling": {"theta": 0.4}}, "median")])
def test_what_a_run_aggregates_before_its_fit_begins(options: dict, expected: str | None) -> None:
    """A run evaluated once per candidate aggregates nothing; repeated evaluations aggregate with
    the ``noise_handling`` option's ``aggregate``, else the median (what a checkpoint records)."""
    run = ES("cma_es", random_state=0, **options).initialize(np.ones(3)).run_
    assert aggregation(run) == expected


@pytest.mark.parametrize("max_evals", [300, 457, 1001])
def test_after_restarts_the_budget_is_passed_by_less_than_one_population(max_evals: int) -> None:
    """IPOP restarts on a flat objective (one generation a run, the population doubling) with three
    evaluations a candidate: the last generation counts the evaluations of every run before it
    and evaluates each candidate only as often as ends the budget."""
    es = ES("cma_es", restarts="ipop", reevaluations=3, max_evals=max_evals, random_state=0).fit(
        lambda X: np.zeros(len(X)), np.ones(3))
    assert len(es.restarts_) >= 4 and es.stop_reason_ == "maxfevals"
    assert 0 <= es.n_evals_ - max_evals < es.run_.runner.popsize


def test_a_pending_sigma_factor_applies_to_the_run_that_measured_it_only() -> None:
    """The factor the last measurement chose scales sigma at the next ``ask`` of the same run; a
    restart that began since starts untouched (pycma's new ``NoiseHandler`` per restart)."""
    es = ES("cma_es", noise_handling=True, max_generations=5, random_state=0).fit(sphere, np.ones(3))
    noise, runner = es.run_.noise, es.run_.runner
    sigma = float(runner.state.sigma)
    noise.pending = (object(), 1.5)  # measured by a run a restart has replaced
    noise.before_ask(runner)
    assert float(runner.state.sigma) == sigma and noise.pending is None
    noise.pending = (runner, 1.5)
    noise.before_ask(runner)
    assert float(runner.state.sigma) == sigma * 1.5 and noise.pending is None
