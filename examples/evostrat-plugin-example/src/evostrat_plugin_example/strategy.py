"""A (1+lambda)-ES with the 1/5th success rule (Rechenberg 1973; Kern et al. 2004).

Each generation samples ``lambda`` offspring ``x + sigma z`` around the parent.
The best offspring replaces the parent when it is at least as good. The step
size follows the 1/5th rule: ``sigma <- sigma * exp((p_s - 1/5) / d_s)``, where
``p_s`` is the fraction of offspring better than the parent and the damping
is ``d_s = 1 + dim / 2``.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.problems import sphere
>>> ES("one_plus_lambda_es", ftarget=1e-8, random_state=0).fit(sphere, np.ones(3)).fun_ < 1e-8
True
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from evostrat.backends import Backend, get_backend
from evostrat.strategies.shaping import sanitize_fitness
from evostrat.strategies.base import Strategy, clamp_sigma


class OnePlusLambdaState(NamedTuple):
    mean: Any  # the parent
    parent_fitness: Any  # 0-d, +inf before the first generation
    sigma: Any  # 0-d
    key: Any


class OnePlusLambdaES(Strategy):
    """(1+lambda)-ES with isotropic mutations and the 1/5th success rule.

    Parameters
    ----------
    popsize : int, optional
        Offspring per generation (lambda); default ``4 + floor(3 ln d)``.
    sigma0 : float
        Initial mutation strength.
    """

    name = "one_plus_lambda_es"
    State = OnePlusLambdaState
    state_type = OnePlusLambdaState  # ask, tell and the read-outs refuse another strategy's state

    def initial_state(self, x0: Any, key: Any, backend: Backend) -> OnePlusLambdaState:
        xp = backend.xp
        sigma = self.initial_sigma(x0, backend)[0]
        inf = xp.asarray(math.inf, dtype=x0.dtype, device=backend.device(x0))
        return OnePlusLambdaState(mean=x0, parent_fitness=inf, sigma=sigma, key=key)

    def ask(self, state: OnePlusLambdaState) -> tuple[Any, OnePlusLambdaState]:
        be = get_backend(state.mean)
        dim = state.mean.shape[0]
        key, sub = be.split(state.key)
        z = be.normal(sub, (self.resolved_popsize(dim), dim), state.mean.dtype, be.device(state.mean))
        return state.mean + state.sigma * z, state._replace(key=key)

    def tell(self, state: OnePlusLambdaState, X: Any, fitness: Any) -> OnePlusLambdaState:
        xp = get_backend(state.mean).xp
        dim = state.mean.shape[0]
        f = sanitize_fitness(fitness)
        best = xp.argmin(f)
        best_f = f[best]
        accept = best_f <= state.parent_fitness
        mean = xp.where(accept, X[best], state.mean)
        parent_fitness = xp.where(accept, best_f, state.parent_fitness)
        success = xp.mean(xp.astype(f < state.parent_fitness, f.dtype))
        damping = 1.0 + dim / 2.0
        sigma = state.sigma * xp.exp((success - 0.2) / damping)
        return OnePlusLambdaState(mean, parent_fitness, clamp_sigma(sigma), state.key)

    def sigma(self, state: OnePlusLambdaState) -> Any:
        return state.sigma
