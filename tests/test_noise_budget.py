"""``max_evals`` with repeated evaluations and noise handling: the count of objective calls.

A generation may pass ``max_evals`` by less than one population (as pycma's ``maxfevals``,
checked after each generation); repeated evaluations and the noise handler's reevaluations must
not add to that.
"""

from __future__ import annotations

import numpy as np
import pytest

from evostrat import ES


def run(max_evals, **options):
    calls = [0]
    rng = np.random.default_rng(max_evals)

    def f(X):
        calls[0] += len(X)
        return (X ** 2).sum(axis=1) + rng.standard_normal(len(X))

    es = ES("cma_es", sigma0=1.0, max_evals=max_evals, random_state=0, evaluator="vectorized",
            tolflatfitness=None, **options).fit(f, np.ones(3))
    return es, calls[0]


@pytest.mark.parametrize("options", [dict(noise_handling=True), dict(noise_handling=dict(max_evaluations=5)),
                                     dict(reevaluations=3, noise_handling=True), dict(reevaluations=3)])
def test_reevaluations_pass_max_evals_by_less_than_a_population(options):
    """max_evals=37, popsize 7, noise_handling=True: 46 calls (9 over: the last generation evaluated its 7
    candidates and then reevaluated 2 more, though 1 evaluation was left). Now the reevaluations that do
    not fit are skipped (no measurement that generation)."""
    for max_evals in range(7, 60):
        es, calls = run(max_evals, **options)
        lam = es.strategy_.popsize
        assert calls == es.n_evals_
        assert max_evals <= calls < max_evals + lam, (max_evals, calls, lam)
        assert es.stop_reason_ == "maxfevals"


def test_a_generation_without_room_to_reevaluate_keeps_the_measure():
    es, calls = run(37, noise_handling=True)
    last, before = es.history_[-1], es.history_[-2]
    assert calls == last["n_evals"] < 37 + 7
    assert last["n_evals"] - before["n_evals"] == 7  # the population only: no room left to reevaluate
    assert last["noise"] == before["noise"] and last["evals_per_candidate"] == 1
