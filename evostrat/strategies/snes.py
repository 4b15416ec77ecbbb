"""Separable Natural Evolution Strategy (SNES).

Wierstra, Schaul, Glasmachers, Sun, Peters, Schmidhuber, "Natural Evolution
Strategies", JMLR 15 (2014), Algorithm 6 (separable NES), with the default
rank-based utilities of sec. 3.1 and default learning rates of Table 1:
``eta_mu = 1``, ``eta_sigma = (3 + ln d) / (5 sqrt(d))``,
``lambda = 4 + floor(3 ln d)``.

One update, with ``z_k = (x_k - mu) / sigma`` and utilities ``u_k`` by rank::

    mu    <- mu + eta_mu * sigma * sum_k u_k z_k
    sigma <- sigma * exp(eta_sigma / 2 * sum_k u_k (z_k^2 - 1))

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.problems import sphere
>>> es = ES("snes", sigma0=1.0, max_generations=400, random_state=0).fit(sphere, np.ones(5))
>>> es.fun_ < 1e-8
True
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, ClassVar, NamedTuple

from evostrat.backends import Backend, get_backend
from evostrat.evaluators.seeded import GaussianSeed
from evostrat.params import Interval
from evostrat.strategies.base import Strategy, clamp_sigma
from evostrat.strategies.gaussian_ask import GaussianAsk
from evostrat.strategies.seeded_tell import weighted_noise_sums
from evostrat.strategies.shaping import shape_fitness
from evostrat.backends.trees import replace

Array = Any


class SNESState(NamedTuple):
    mean: Array
    sigma: Array
    key: Array


class SNES(GaussianAsk, Strategy):
    """Separable NES with diagonal Gaussian search distribution.

    Parameters
    ----------
    popsize : int, optional
        Default ``4 + floor(3 ln d)``.
    sigma0 : float or array
        Initial per-coordinate standard deviation.
    lr_mean : float
        Learning rate of the mean, default 1.
    lr_sigma : float, optional
        Learning rate of the standard deviations; default ``(3 + ln d) / (5 sqrt(d))``.

    Notes
    -----
    Fitness is shaped by ``fitness_shaping`` (:mod:`~evostrat.strategies.shaping`),
    here a class attribute, ``"nes_utilities"``: a subclass may choose another.

    References
    ----------
    Schaul, Glasmachers, Schmidhuber, "High Dimensions and Heavy Tails for Natural Evolution
    Strategies", GECCO 2011; Wierstra, Schaul, Glasmachers, Sun, Peters, Schmidhuber,
    "Natural Evolution Strategies", JMLR 15 (2014), Algorithm 6.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.problems import sphere
    >>> from evostrat.strategies import SNES
    >>> es = ES(SNES(lr_sigma=0.3), max_generations=300, random_state=0).fit(sphere, np.ones(4))
    >>> bool(es.fun_ < 1e-10)
    True
    """

    initial_only_params = frozenset({"sigma0"})  # read by initial_state alone

    State = SNESState
    state_type = SNESState  # the states ask, tell and the read-outs take
    #: ``tell`` is array code alone: fused by ``torch.compile`` on CUDA (backends.torch_fused)
    fusable_methods = frozenset({"tell"})
    parameter_constraints = {
        "lr_mean": [Interval(Real, 0, None, closed="neither")],
        "lr_sigma": [Interval(Real, 0, None, closed="neither"), None],
    }
    fitness_shaping: ClassVar[str] = "nes_utilities"

    def __init__(self, popsize: int | None = None, sigma0: Any = 1.0, lr_mean: float = 1.0,
                 lr_sigma: float | None = None) -> None:
        super().__init__(popsize=popsize, sigma0=sigma0)
        self.lr_mean, self.lr_sigma = lr_mean, lr_sigma

    def resolved_lr_sigma(self, dim: int) -> float:
        default = (3 + math.log(dim)) / (5 * math.sqrt(dim))
        if self.lr_sigma is None:
            return default
        # a traced value (a per-run hyper-parameter of evostrat.fit_batch) stays an array
        return float(self.lr_sigma) if isinstance(self.lr_sigma, Real) else self.lr_sigma

    def initial_state(self, x0: Array, key: Any, backend: Backend) -> SNESState:
        return SNESState(mean=x0, sigma=self.initial_sigma(x0, backend), key=key)

    def tell(self, state: SNESState, X: Array, fitness: Array) -> SNESState:
        be = get_backend(state.mean)
        xp = be.xp
        z = X - state.mean  # a fresh array: updated in place below (no more temporaries)
        z /= state.sigma
        u = self._utilities(state, fitness)
        grad_mean = xp.matmul(u, z)
        z *= z
        z -= 1.0
        return self._update(state, grad_mean, xp.matmul(u, z))

    def tell_seed(self, state: SNESState, seed: GaussianSeed | None, fitness: Array,
                  chunk_size: int | None = None) -> SNESState:
        """As :meth:`OpenAIES.tell_seed <evostrat.strategies.openai_es.OpenAIES.tell_seed>`."""
        u = self._utilities(state, fitness)
        g_mean, g_sigma = weighted_noise_sums(seed, state.mean, state.sigma, u, squares=True,
                                              chunk_size=chunk_size)
        return self._update(state, g_mean, g_sigma)

    def _utilities(self, state: SNESState, fitness: Array) -> Array:
        """Minus the shaped fitness (the best candidate gets the largest utility)."""
        xp = get_backend(state.mean).xp
        u = -shape_fitness(fitness, self.fitness_shaping)
        return xp.astype(u, state.mean.dtype, copy=False)

    def _update(self, state: SNESState, grad_mean: Array, grad_sigma: Array) -> SNESState:
        xp = get_backend(state.mean).xp
        dim = state.mean.shape[0]
        mean = state.mean + self.lr_mean * state.sigma * grad_mean
        sigma = state.sigma * xp.exp(0.5 * self.resolved_lr_sigma(dim) * grad_sigma)
        return replace(state, mean=mean, sigma=clamp_sigma(sigma))
