"""Policy Gradients with Parameter-based Exploration (PGPE), symmetric sampling.

Sehnke, Osendorfer, Rueckstiess, Graves, Peters, Schmidhuber,
"Parameter-exploring policy gradients", Neural Networks 23(4), 2010, sec. 2.3-2.4;
the mean follows ClipUp (Toklu, Liskowski, Srivastava, PPSN 2020) by default, with
EvoTorch's and pgpelib's defaults. The population is ``m = popsize / 2`` mirrored
pairs, interleaved: ``X[2j] = mu + eps_j``, ``X[2j+1] = mu - eps_j``,
``eps_j ~ N(0, diag(sigma^2))``. With pair coefficients ``t_j`` and ``s_j`` the loss
gradients and the update are::

    g_mu    = sum_j t_j eps_j / m
    g_sigma = sum_j s_j (eps_j^2 - sigma^2) / sigma / m
    mu    <- mu - optimizer_step(g_mu)          # ClipUp, Adam or SGD
    sigma <- sigma - stdev_learning_rate * g_sigma
    sigma <- clip(sigma, (1 - c) sigma_old, (1 + c) sigma_old)   # c = stdev_max_change

A shaping ``w = shape(f)`` of :data:`~evostrat.strategies.shaping.SHAPINGS` gives
``t_j = (w+ - w-) / 2`` and ``s_j = (w+ + w-) / 2 - b`` with Sehnke et al.'s baseline
``b``, here the population's mean of ``w`` (as evosax's and EvoTorch's PGPE; centered
ranks, the default, NES utilities and z-scores have ``b = 0``; with ``"raw"`` it keeps
the sigma update from following the objective's offset); ``"normalized"`` is Sehnke et
al.'s reward normalisation, :func:`normalized_coefficients`.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.problems import sphere
>>> es = ES("pgpe", max_generations=300, random_state=0,
...         strategy_options=dict(center_learning_rate=0.05)).fit(sphere, np.ones(5))
>>> bool(es.fun_ < 1e-2)
True
"""

from __future__ import annotations

from numbers import Real
from typing import Any, NamedTuple

from array_api_compat import array_namespace

from evostrat.backends import Backend, get_backend
from evostrat.errors import InvalidArgumentError
from evostrat.params import Interval, StrOptions
from evostrat.strategies.base import MirroredPopsize, Strategy, clamp_sigma
from evostrat.strategies.gaussian_ask import GaussianAsk
from evostrat.strategies.optimizers import ClipUp, Optimizer, make_optimizer
from evostrat.strategies.shaping import SHAPINGS, downscale_factor, shape_fitness
from evostrat.backends.trees import replace

Array = Any

__all__ = ["PGPE", "PGPEState", "FITNESS_SHAPINGS", "normalized_coefficients"]

#: The shapings of :mod:`~evostrat.strategies.shaping` and Sehnke et al.'s ``"normalized"``.
FITNESS_SHAPINGS = (*SHAPINGS, "normalized")


class PGPEState(NamedTuple):
    mean: Array  # (d,)
    sigma: Array  # (d,) per-coordinate standard deviations
    opt: Any  # optimiser state NamedTuple
    key: Array


def normalized_coefficients(fitness: Array) -> tuple[Array, Array]:
    """Sehnke et al. (2010) reward normalisation of mirrored pairs, for minimisation.

    Parameters
    ----------
    fitness : array, shape (2m,)
        Interleaved pair values ``f+_0, f-_0, f+_1, f-_1, ...`` (minimised).

    Returns
    -------
    t, s : arrays, shape (m,)
        ``t_j = (f+ - f-) / (f+ + f- - 2 f*)`` and
        ``s_j = ((f+ + f-) / 2 - b) / (b - f*)`` with the best value ``f*`` and
        the mean ``b`` of the finite values. A zero denominator gives 0, and so
        does a pair with a non-finite member (non-finite values are also left
        out of ``f*`` and ``b``).

    Examples
    --------
    >>> import numpy as np
    >>> t, s = normalized_coefficients(np.array([2.0, 5.0, 1.0, 3.0]))
    >>> np.round(t, 6).tolist(), np.round(s * 7, 6).tolist()
    ([-0.6, -1.0], [3.0, -3.0])
    """
    xp = array_namespace(fitness)
    finite = xp.isfinite(fitness)
    f = xp.where(finite, fitness, xp.zeros_like(fitness))
    # t and s are ratios of differences, so scale-free: scaling f down first keeps the
    # sums below finite for values near the dtype's maximum (float32 3e38 gave NaN).
    f = f * downscale_factor(xp.max(xp.abs(f)), 1.0)
    count = xp.sum(xp.astype(finite, fitness.dtype))
    huge = xp.full_like(fitness, float(xp.finfo(fitness.dtype).max))
    best = xp.min(xp.where(finite, f, huge))
    best = xp.where(count > 0, best, xp.zeros_like(best))
    baseline = xp.sum(f) / xp.maximum(count, xp.ones_like(count))
    f_plus, f_minus = f[0::2], f[1::2]
    valid = finite[0::2] & finite[1::2]
    zero, one = xp.zeros_like(f_plus), xp.ones_like(f_plus)
    den_t = f_plus + f_minus - 2 * best
    ok_t = valid & (den_t > 0)
    t = xp.where(ok_t, (f_plus - f_minus) / xp.where(ok_t, den_t, one), zero)
    den_s = one * (baseline - best)
    ok_s = valid & (den_s > 0)
    s = xp.where(ok_s, ((f_plus + f_minus) / 2 - baseline) / xp.where(ok_s, den_s, one), zero)
    return t, s


class PGPE(GaussianAsk, MirroredPopsize, Strategy):
    """PGPE with symmetric (mirrored) sampling and per-coordinate sigma.

    Parameters
    ----------
    popsize : int, optional
        Even (pairs); default ``2 * (4 + floor(3 ln d))``.
    sigma0 : float or array
        Initial per-coordinate standard deviation, default 0.1.
    center_learning_rate : float
        Step size of the mean optimiser (ClipUp's ``alpha``, Adam's or SGD's
        learning rate), default 0.15.
    stdev_learning_rate : float
        Plain gradient step on ``sigma``, default 0.1 (0 keeps sigma fixed).
    stdev_max_change : float or None
        Largest relative change of each ``sigma_i`` per generation, in
        (0, 1]; default 0.2. ``None`` disables the limit.
    optimizer : {"clipup", "adam", "sgd"} or Optimizer
        Optimiser of the mean, default ``"clipup"``.
    max_speed : float, optional
        ClipUp's speed limit; default ``2 * center_learning_rate``. Only with
        ``optimizer="clipup"``.
    optimizer_options : dict, optional
        Further optimiser options (``momentum`` for ClipUp and SGD; ``beta1``,
        ``beta2``, ``eps`` for Adam; ``weight_decay`` for any).
    fitness_shaping : str
        ``"normalized"`` or a name of :data:`~evostrat.strategies.shaping.SHAPINGS`
        (see the module docstring). ``"normalized"`` is Sehnke et al.'s normalisation;
        EvoTorch's ``ranking_method="normalized"`` (z-scores) is ``"zscore"`` here.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.problems import sphere
    >>> from evostrat.strategies import PGPE
    >>> es = ES(PGPE(), max_generations=200, random_state=0).fit(sphere, np.ones(4))
    >>> bool(es.fun_ < 0.01)
    True
    """

    initial_only_params = frozenset({"sigma0"})  # read by initial_state alone

    State = PGPEState
    state_type = PGPEState  # the states ask, tell and the read-outs take
    #: ``tell`` is array code alone: fused by ``torch.compile`` on CUDA (backends.torch_fused)
    fusable_methods = frozenset({"tell"})
    layout = "pairs"  # X[2j] = mean + sigma z_j, X[2j+1] = mean - sigma z_j
    mirrored = True  # popsize even (MirroredPopsize)
    parameter_constraints = {
        "center_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "stdev_learning_rate": [Interval(Real, 0, None, closed="left")],
        "stdev_max_change": [Interval(Real, 0, 1, closed="right"), None],
        "optimizer": [str, Optimizer],
        "max_speed": [Interval(Real, 0, None, closed="neither"), None],
        "optimizer_options": [dict, None],
        "fitness_shaping": [StrOptions(FITNESS_SHAPINGS)],
    }

    def __init__(self, popsize: int | None = None, sigma0: Any = 0.1,
                 center_learning_rate: float = 0.15, stdev_learning_rate: float = 0.1,
                 stdev_max_change: float | None = 0.2, optimizer: str | Optimizer = "clipup",
                 max_speed: float | None = None, optimizer_options: dict | None = None,
                 fitness_shaping: str = "centered_ranks") -> None:
        super().__init__(popsize=popsize, sigma0=sigma0)
        self.center_learning_rate = center_learning_rate
        self.stdev_learning_rate, self.stdev_max_change = stdev_learning_rate, stdev_max_change
        self.optimizer, self.max_speed = optimizer, max_speed
        self.optimizer_options, self.fitness_shaping = optimizer_options, fitness_shaping

    def _optimizer(self) -> Optimizer:
        options = dict(self.optimizer_options or {})
        if self.max_speed is not None:
            options["max_speed"] = self.max_speed
        return make_optimizer(self.optimizer, **options)

    def validate_params(self) -> None:
        """The constraints, ``max_speed`` only with ClipUp, and options the optimiser takes."""
        super().validate_params()
        clipup = isinstance(self.optimizer, ClipUp) or self.optimizer == "clipup"
        if self.max_speed is not None and not clipup:
            raise InvalidArgumentError(
                f"max_speed is a ClipUp option; it needs optimizer='clipup', got {self.optimizer!r}"
            )
        self._optimizer().validate_params()

    def initial_state(self, x0: Array, key: Any, backend: Backend) -> PGPEState:
        sigma = self.initial_sigma(x0, backend)
        return PGPEState(mean=x0, sigma=sigma, opt=self._optimizer().init(x0), key=key)

    def _pair_coefficients(self, fitness: Array) -> tuple[Array, Array]:
        """``(t, s)``: mean and sigma coefficients of each pair (loss gradient)."""
        if self.fitness_shaping == "normalized":
            return normalized_coefficients(fitness)
        w = shape_fitness(fitness, self.fitness_shaping)
        w_plus, w_minus = w[0::2], w[1::2]
        baseline = array_namespace(w).mean(w)  # Sehnke et al.'s b; 0 for the centred shapings
        return (w_plus - w_minus) / 2, (w_plus + w_minus) / 2 - baseline

    def tell(self, state: PGPEState, X: Array, fitness: Array) -> PGPEState:
        xp = get_backend(state.mean).xp
        pairs = X.shape[0] // 2
        eps = (X[0::2] - X[1::2]) / 2
        dtype = state.mean.dtype  # float64 values keep a float32 state float32
        t, s = (xp.astype(c, dtype, copy=False) for c in self._pair_coefficients(fitness))
        grad_mean = xp.matmul(t, eps) / pairs
        sigma = state.sigma
        grad_sigma = xp.matmul(s, (eps * eps - sigma * sigma) / sigma) / pairs
        step, opt = self._optimizer().update(grad_mean, state.opt, float(self.center_learning_rate),
                                             params=state.mean)
        new_sigma = sigma - float(self.stdev_learning_rate) * grad_sigma
        if self.stdev_max_change is not None:
            c = float(self.stdev_max_change)
            new_sigma = xp.minimum(xp.maximum(new_sigma, (1 - c) * sigma), (1 + c) * sigma)
        return replace(state, mean=state.mean - step, sigma=clamp_sigma(new_sigma), opt=opt)
