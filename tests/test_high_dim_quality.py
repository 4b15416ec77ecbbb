"""Slow quality studies (issue 21): LM-MA-ES learns a rotated ellipsoid that the separable
strategies cannot; LM-MA-ES, the low-rank NES and VkD-CMA run at d = 100,000 within O(k d) memory.
BENCHMARKS.md ("High dimension") has the d = 1000 and d = 100,000 numbers
(``benchmarks/high_dim_rotated.py``)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from evostrat import ES
from evostrat.strategies.lm_ma_es import LMMAES
from evostrat.strategies.vkd_cma import VkDCMA
from evostrat.strategies.nes import NES
from rotated_problems import OFF, rotated_ellipsoid

pytestmark = pytest.mark.slow


def test_lm_ma_es_reaches_1e_8_on_a_rotated_ellipsoid_where_separable_strategies_do_not() -> None:
    f, x0 = rotated_ellipsoid(100)
    lm = ES("lm_ma_es", sigma0=1.0, ftarget=1e-8, max_evals=400_000, random_state=0, evaluator="vectorized",
            **OFF).fit(f, x0)
    assert lm.stop_reason_ == "ftarget"  # ~230k evaluations
    budget = int(1.3 * lm.n_evals_)
    for name in ("sep_cma_es", "snes"):
        es = ES(name, sigma0=1.0, ftarget=1e-8, max_evals=budget, random_state=0, evaluator="vectorized",
                **OFF).fit(f, x0)
        assert es.stop_reason_ == "maxfevals" and es.fun_ > 1e-3, (name, es.fun_)


@pytest.mark.parametrize("strategy", [LMMAES(sigma0=0.5), NES(sigma0=0.5, distribution="low_rank_normal",
                                                              distribution_options={"rank": 4}),
                                      VkDCMA(sigma0=0.5)])
def test_runs_at_d_100000_in_o_kd_memory(strategy) -> None:
    dim = 100_000
    x0 = np.ones(dim)
    state = strategy.init(x0, random_state=0)
    lam = strategy.resolved_popsize(dim)
    tracemalloc.start()
    for _ in range(3):
        X, state = strategy.ask(state)
        state = strategy.tell(state, X, np.sum(X * X, axis=1))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # a generation holds a few population-sized arrays, never (d, d) or (lambda, d, k)
    assert peak < 8 * lam * dim * 8, peak / 2**20
    assert np.all(np.isfinite(strategy.mean(state)))
