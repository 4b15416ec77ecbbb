"""OpenAI-ES: Salimans, Ho, Chen, Sidor, Sutskever, "Evolution Strategies as a
Scalable Alternative to Reinforcement Learning", arXiv 1703.03864 (2017).

Isotropic perturbations with a fixed (optionally decaying) sigma, mirrored sampling,
centered ranks ``r_i`` in [-0.5, 0.5] (best -0.5) and Adam with L2 weight decay
(:mod:`evostrat.strategies.optimizers`); with ``z_i = (x_i - theta) / sigma``::

    g     = sum_i r_i z_i / (n sigma) + weight_decay * theta
    theta <- theta - Adam(g)

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.problems import sphere
>>> es = ES("openai_es", sigma0=0.5, popsize=20, max_generations=300, random_state=0,
...         strategy_options=dict(lr=0.1, lr_decay=0.99, sigma_decay=0.99)).fit(sphere, np.ones(5))
>>> es.fun_ < 1e-3
True
"""

from __future__ import annotations

from numbers import Real
from typing import Any, NamedTuple

import numpy as np

from evostrat.backends import Backend, get_backend
from evostrat.errors import InvalidArgumentError
from evostrat.evaluators.seeded import GaussianSeed
from evostrat.params import Interval, StrOptions
from evostrat.strategies.base import MirroredPopsize, Strategy, clamp_sigma, host_value
from evostrat.strategies.gaussian_ask import GaussianAsk
from evostrat.strategies.optimizers import Optimizer, make_optimizer
from evostrat.strategies.seeded_tell import weighted_noise_sums
from evostrat.strategies.shaping import SHAPINGS, shape_fitness
from evostrat.backends.trees import replace

Array = Any


class OpenAIESState(NamedTuple):
    mean: Array
    sigma: Array  # 0-d
    lr: Array  # 0-d
    opt: Any  # optimiser state NamedTuple
    key: Array


class OpenAIES(GaussianAsk, MirroredPopsize, Strategy):
    """OpenAI evolution strategy.

    Parameters
    ----------
    popsize : int, optional
        Even when ``mirrored``; default ``2 * (4 + floor(3 ln d))``.
    sigma0 : float
        Perturbation standard deviation (isotropic).
    lr : float
        Optimiser step size.
    optimizer : {"adam", "sgd", "clipup"} or Optimizer
    optimizer_options : dict, optional
        Passed to the optimiser (``beta1``, ``momentum``, ``max_speed``, ...).
    weight_decay : float
        L2 coefficient added to the gradient estimate ``g`` above by the
        optimiser; 0 (default) keeps black-box optima unbiased. ``g`` has the
        paper's ``1 / sigma`` (eq. 1, as evosax), which Salimans et al.'s code
        leaves out before adding its ``l2coeff``: with Adam (scale-free) their
        ``l2coeff`` is ``weight_decay = l2coeff / sigma`` here, so their
        policies' 0.005 at ``sigma = 0.02`` is ``weight_decay=0.25``.
    mirrored : bool
        Antithetic pairs ``theta +- sigma eps``.
    lr_decay, lr_min, sigma_decay, sigma_min : float
        Multiplicative decay per generation and floors.
    fitness_shaping : str
        A name of :data:`~evostrat.strategies.shaping.SHAPINGS`; default ``"centered_ranks"``.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.problems import sphere
    >>> from evostrat.strategies import OpenAIES
    >>> es = ES(OpenAIES(), max_generations=200, random_state=0).fit(sphere, np.ones(4))
    >>> bool(es.fun_ < 0.01)
    True
    """

    initial_only_params = frozenset({"sigma0"})  # read by initial_state alone

    State = OpenAIESState
    state_type = OpenAIESState  # the states ask, tell and the read-outs take
    #: ``tell`` is array code alone: fused by ``torch.compile`` on CUDA (backends.torch_fused)
    fusable_methods = frozenset({"tell"})
    parameter_constraints = {
        "lr": [Interval(Real, 0, None, closed="neither")],
        "optimizer": [str, Optimizer],
        "optimizer_options": [dict, None],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "mirrored": [bool],
        "lr_decay": [Interval(Real, 0, None, closed="neither")],
        "lr_min": [Interval(Real, 0, None, closed="left")],
        "sigma_decay": [Interval(Real, 0, None, closed="neither")],
        "sigma_min": [Interval(Real, 0, None, closed="left")],
        "fitness_shaping": [StrOptions(SHAPINGS)],
    }

    def __init__(self, popsize: int | None = None, sigma0: float = 0.1, lr: float = 0.01,
                 optimizer: str | Optimizer = "adam", optimizer_options: dict | None = None,
                 weight_decay: float = 0.0, mirrored: bool = True, lr_decay: float = 1.0,
                 lr_min: float = 0.0, sigma_decay: float = 1.0, sigma_min: float = 0.0,
                 fitness_shaping: str = "centered_ranks") -> None:
        super().__init__(popsize=popsize, sigma0=sigma0)
        self.lr, self.optimizer, self.optimizer_options = lr, optimizer, optimizer_options
        self.weight_decay, self.mirrored, self.lr_decay = weight_decay, mirrored, lr_decay
        self.lr_min, self.sigma_decay, self.sigma_min = lr_min, sigma_decay, sigma_min
        self.fitness_shaping = fitness_shaping

    def configured_optimizer(self) -> Optimizer:
        """The optimiser these hyper-parameters name (its options, with ``weight_decay``)."""
        options = dict(self.optimizer_options or {})
        if self.weight_decay:
            options["weight_decay"] = self.weight_decay
        return make_optimizer(self.optimizer, **options)

    def initial_state(self, x0: Array, key: Any, backend: Backend) -> OpenAIESState:
        sigma = self.initial_sigma(x0, backend)
        if np.ptp(np.asarray(host_value(self.sigma0), dtype=np.float64)) != 0:
            raise InvalidArgumentError("sigma0 must be a scalar for openai_es (isotropic)")
        lr = backend.asarray(float(self.lr), dtype=x0.dtype, device=backend.device(x0))
        opt = self.configured_optimizer()
        opt.validate_params()
        return OpenAIESState(mean=x0, sigma=sigma[0], lr=lr, opt=opt.init(x0), key=key)

    def noise_layout(self) -> str:
        return "mirrored" if self.mirrored else "independent"

    def tell(self, state: OpenAIESState, X: Array, fitness: Array) -> OpenAIESState:
        xp = get_backend(state.mean).xp
        z = X - state.mean  # a fresh array, scaled in place
        z /= state.sigma
        return self._update(state, xp.matmul(self._weights(state, fitness), z), X.shape[0])

    def tell_seed(self, state: OpenAIESState, seed: GaussianSeed | None, fitness: Array,
                  chunk_size: int | None = None) -> OpenAIESState:
        """``tell`` from the population's seed, rebuilding ``chunk_size`` rows at a time.

        Peak memory O(chunk_size x d) instead of O(popsize x d); agrees with
        ``tell(state, X, fitness)`` up to the order of summation (a few ulps).
        ``seed`` comes from :meth:`ask_seed` (or ``population_seed`` before ``ask``).
        """
        weights = self._weights(state, fitness)
        total, _ = weighted_noise_sums(seed, state.mean, state.sigma, weights,
                                       chunk_size=chunk_size)
        return self._update(state, total, weights.shape[0])

    def _weights(self, state: OpenAIESState, fitness: Array) -> Array:
        """The shaped fitness in the state's dtype (float64 values keep a float32 state float32)."""
        xp = get_backend(state.mean).xp
        return xp.astype(shape_fitness(fitness, self.fitness_shaping), state.mean.dtype, copy=False)

    def _update(self, state: OpenAIESState, weighted_z: Array, n: int) -> OpenAIESState:
        xp = get_backend(state.mean).xp
        grad = weighted_z / (n * state.sigma)
        step, opt = self.configured_optimizer().update(grad, state.opt, state.lr, params=state.mean)
        sigma = xp.clip(state.sigma * self.sigma_decay, min=float(self.sigma_min))
        lr = xp.clip(state.lr * self.lr_decay, min=float(self.lr_min))
        return replace(state, mean=state.mean - step, sigma=clamp_sigma(sigma), lr=lr, opt=opt)

    def sigma(self, state: OpenAIESState) -> Array:
        return state.sigma
