"""When uncertainty handling helps and when it costs (docs/guides/noise.md, "Which noise").

The measure ``s`` compares rank changes of reevaluated candidates with the rank distances the
theta percentile tolerates. Under multiplicative noise ``f (1 + e N(0, 1))`` the ranking noise does
not shrink with ``f``: ``s`` settles where the step size makes the fitness differences just
outweigh the noise. Weak noise (``e = 0.03`` in 10-D) never gets there at CMA-ES's own step size
and the handler stays quiet; noise plain CMA-ES still tolerates (``e = 0.3``) keeps ``s`` near 0,
so sigma is raised in about half the generations and the run converges, but more slowly than
plain CMA-ES (pycma's ``NoiseHandler`` does the same); additive noise, which plain CMA-ES cannot
get below, is where the handler wins. These checks fail if the handler stops reacting, reacts to
weak noise, or stops converging on moderate noise.
"""

from __future__ import annotations

import numpy as np

from evostrat import ES

OFF = dict(tolfun=None, tolx=None, tolfunhist=None, tolstagnation=None, tolflatfitness=None,
           strategy_options=dict(tolfacupx=None))


def true_f(level, handling, seed, dim=10, budget=3000, additive=False):
    """The true ``||m||^2`` of the final mean, and the share of generations with ``s > 0``."""
    rng = np.random.default_rng([seed, 11])

    def f(X):
        s = (X ** 2).sum(axis=1)
        if additive:
            return s + level * rng.random(len(X))
        return s * (1 + level * rng.standard_normal(len(X)))

    es = ES("cma_es", sigma0=1.0, max_evals=budget, noise_handling=handling, random_state=seed,
            evaluator="vectorized", **OFF).fit(f, np.ones(dim))
    m = np.asarray(es.strategy_.mean)
    share = np.mean([row["noise"] > 0 for row in es.history_]) if handling else None
    return float(m @ m), share


def medians(level, handling, seeds=3, **kw):
    runs = [true_f(level, handling, seed, **kw) for seed in range(seeds)]
    return float(np.median([r[0] for r in runs])), (None if not handling else float(np.mean([r[1] for r in runs])))


def test_weak_multiplicative_noise_leaves_the_handler_quiet():
    plain, _ = medians(0.03, False)
    handled, share = medians(0.03, True)
    assert share == 0.0  # s <= 0 throughout: sigma never raised
    # both converge (1e-19 and 1e-15): the handler costs only its reevaluations (2.5 per 10 candidates)
    assert plain < 1e-17 and handled < 1e-13


def test_moderate_multiplicative_noise_costs_convergence_speed():
    """e = 0.3 in 10-D, 6000 evaluations: plain CMA-ES reached 1e-25, with the handler 3e-9 (sigma
    raised in half the generations). The last assertion records this known cost (the guide's
    table): a handler that no longer pays it should update the guide."""
    plain, _ = medians(0.3, False, budget=6000)
    handled, share = medians(0.3, True, budget=6000)
    assert 0.25 < share < 0.75  # s hovers around 0
    assert plain < 1e-20 and handled < 1e-6  # both converge
    assert handled > 1e6 * plain


def test_additive_noise_is_where_the_handler_wins():
    """||x||^2 + 0.1 U(0, 1) in 4-D, 60,000 evaluations, 9 seeds: plain CMA-ES ends near 7e-3 (the
    noise swamps its steps' differences; the seeds spread from 7e-4 to 2e-2, so 3 seeds do not
    decide), the handler with more evaluations per candidate near 2e-3, and the default handler
    (only sigma reacts) no better than plain."""
    plain, _ = medians(0.1, False, seeds=9, dim=4, budget=60_000, additive=True)
    handled, share = medians(0.1, dict(max_evaluations=1000), seeds=9, dim=4, budget=60_000, additive=True)
    sigma_only, _ = medians(0.1, True, seeds=9, dim=4, budget=60_000, additive=True)
    assert share > 0.3
    assert handled < plain / 2
    assert sigma_only > plain
