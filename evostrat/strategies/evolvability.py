"""Evolvability ES: MaxVar and MaxEnt (Gajewski, Clune, Stanley, Lehman, GECCO 2019,
"Evolvability ES: Scalable and Direct Optimization of Evolvability", arXiv 1907.06077).

With ``p = N(mu, diag(sigma^2))`` (fixed sigma, mirrored pairs), a population
``x_i ~ p`` and its behaviours ``B`` ``(n, k)`` normalised per dimension into ``Z``,
the strategies ascend in ``mu`` the diversity of the behaviours:

- **MaxVar**: the total variance ``J = sum_k E[(Z_k - E[Z_k])^2]``; the gradient is
  ``mean_i (v_i - b_i) grad log p(x_i)`` with ``v_i = ||z_i - zbar||^2``.
- **MaxEnt**: the entropy of a Gaussian kernel density estimate,
  ``P_i = mean_j exp(-||z_i - z_j||^2 / h^2)``, ``J = -mean_i log P_i``; with
  ``s_j = grad log p(x_j)``, ``grad J = mean_j [(-log P_j - b_j) - mean_i K_ij / P_i] s_j``.

``b_i`` is the leave-one-out mean baseline (``baseline="mean"``; Mao et al., ICML 2019;
with mirrored pairs the pair is left out, see :func:`evostrat.expectation`).

**MaxVar's plug-in bias** (the paper's estimator, kept: the factors are constants, which Adam
ignores and which rescale ``lr`` of SGD). With ``n`` independent draws the variance has mean
``(1 - 1/n) Var`` and its gradient ``(1 - 1/n)^2 grad Var`` (``tests/test_expectation_statistics.py``).
With ``n = 2m`` mirrored draws ``mu +- eps_k`` write a behaviour's pair as its even part
``e_k = (b(mu + eps_k) + b(mu - eps_k)) / 2`` and odd part ``a_k = b(mu + eps_k) - b(mu - eps_k)``,
and ``s_k = grad log p(mu + eps_k) = -grad log p(mu - eps_k)``. Then ``Var = Var(e) + E[a^2] / 4``
and ``grad Var = E[b^2 s] - 2 E[b] E[b s] = Cov(a s, e)``, while the estimate is
``mean_i (b_i - bbar)^2 s_i = (1/m) sum_k a_k s_k (e_k - ebar)``, ``ebar = bbar`` the mean of the
``e_k``: its mean is ``(1 - 1/m) Cov(a s, e)``, so the gradient has mean ``(1 - 2/n) grad Var``
(0.75 at n = 8, vs 0.77 for independent draws); the leave-pair-out baseline, the same for both
members of a pair, adds nothing to it. The value ``(1/m) sum_k ((e_k - ebar)^2 + a_k^2 / 4)`` has
mean ``Var - 2 Var(e) / n`` (the even part's variance alone is shrunk). Both are for raw
behaviours (``behaviour_shaping="none"``); ``"zscore"`` divides them by the sample variance.
On torch and JAX autodiff differentiates the statistic written with
:func:`evostrat.expectation`; numpy uses the closed forms above (the two agree,
``tests/test_evolvability.py``). The paper's locomotion settings: popsize 10,000,
sigma 0.02, Adam with lr 0.01 and L2 coefficient 0.005 (``weight_decay``: the authors' code
applies it as Adam's weight decay to the same score-function gradient, ``(x - mu) / sigma^2``,
so the value carries over unchanged, unlike OpenAI-ES's ``l2coeff``).

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> def behaviour(X):                       # the EvoGrad toy: 5 sin(0.2 x) sin(20 x)
...     return 5 * np.sin(0.2 * X[:, 0]) * np.sin(20 * X[:, 0])
>>> es = ES("maxvar_es", sigma0=0.5, popsize=500, max_generations=300, random_state=0,
...         strategy_options=dict(lr=0.03, optimizer="sgd", behaviour_shaping="none"))
>>> es = es.fit(behaviour, np.array([1.0]))
>>> float(es.x_[0]) > 5.0                   # moving towards 5 pi / 2 = 7.854
True
"""

from __future__ import annotations

from numbers import Real
from typing import Any, NamedTuple

from evostrat.backends import Backend, get_backend
from evostrat.distributions.normal import DiagNormal
from evostrat.expectation import expectation, expectation_grad
from evostrat.params import Interval, StrOptions
from evostrat.strategies.base import MirroredPopsize, Strategy
from evostrat.strategies.openai_es import OpenAIES
from evostrat.strategies.optimizers import OPTIMIZERS, Optimizer
from evostrat.strategies.readout import GaussianReadout
from evostrat.strategies.shaping import SHAPINGS, shape_fitness, zscore
from evostrat.backends.trees import replace

Array = Any

__all__ = ["MaxVarES", "MaxEntES", "normalise_behaviours", "kernel_matrix"]


class EvolvabilityState(NamedTuple):
    mean: Array
    sigma: Array  # (dim,), fixed
    opt: Any  # optimiser state NamedTuple
    objective: Array  # 0-d: the statistic J of the last told population
    key: Array


def normalise_behaviours(B: Array, how: str) -> Array:
    """Per-dimension normalisation of behaviours ``B`` of shape ``(n, k)``.

    ``how`` names a shaping of :data:`~evostrat.strategies.shaping.SHAPINGS`,
    applied per column: ``"zscore"``: ``(B - mean) / (std + 1e-8)`` (constant
    columns give zeros); ``"centered_ranks"``: ranks in ``[-0.5, 0.5]``, ties
    averaged (Salimans et al. 2017); ``"raw"`` or ``"none"``: ``B`` unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> normalise_behaviours(np.array([[1.0, 10.0], [3.0, 0.0], [2.0, 5.0]]), "centered_ranks")
    array([[-0.5,  0.5],
           [ 0.5, -0.5],
           [ 0. ,  0. ]])
    """
    if how == "zscore":
        return zscore(B, axis=0)
    if how in ("raw", "none"):
        return B
    xp = get_backend(B).xp
    return xp.stack([shape_fitness(B[:, j], how) for j in range(B.shape[1])], axis=1)


def kernel_matrix(Z: Array, h: float) -> Array:
    """Gaussian kernel ``K_ij = exp(-||z_i - z_j||^2 / h^2)``, shape ``(n, n)``."""
    xp = get_backend(Z).xp
    diff = Z[:, None, :] - Z[None, :, :]
    return xp.exp(-xp.sum(diff * diff, axis=-1) / (h * h))


class _EvolvabilityES(MirroredPopsize, Strategy):
    """Shared machinery of MaxVar and MaxEnt (see the module docstring)."""

    initial_only_params = frozenset({"sigma0"})  # read by initial_state alone

    needs_behaviours = True
    State = EvolvabilityState
    state_type = EvolvabilityState  # the states ask, tell and the read-outs take
    parameter_constraints = {
        "lr": [Interval(Real, 0, None, closed="neither")],
        "optimizer": [StrOptions(OPTIMIZERS), Optimizer],
        "optimizer_options": [dict, None],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "behaviour_shaping": [StrOptions(SHAPINGS)],
        "baseline": [None, StrOptions({"mean"})],
        "mirrored": [bool],
    }

    def __init__(self, popsize: int | None = None, sigma0: Any = 0.1, lr: float = 0.01,
                 optimizer: str | Optimizer = "adam", optimizer_options: dict | None = None,
                 weight_decay: float = 0.0, behaviour_shaping: str = "zscore",
                 baseline: Any = "mean", mirrored: bool = True) -> None:
        super().__init__(popsize=popsize, sigma0=sigma0)
        self.lr, self.optimizer, self.optimizer_options = lr, optimizer, optimizer_options
        self.weight_decay, self.behaviour_shaping = weight_decay, behaviour_shaping
        self.baseline, self.mirrored = baseline, mirrored

    configured_optimizer = OpenAIES.configured_optimizer  # same settings: optimizer, options, weight_decay

    def initial_state(self, x0: Array, key: Any, backend: Backend) -> EvolvabilityState:
        opt = self.configured_optimizer()
        opt.validate_params()
        zero = backend.xp.zeros((), dtype=x0.dtype, device=backend.device(x0))
        return EvolvabilityState(mean=x0, sigma=self.initial_sigma(x0, backend), opt=opt.init(x0),
                                 objective=zero, key=key)

    def distribution(self, state: EvolvabilityState, mean: Array | None = None) -> DiagNormal:
        """``DiagNormal(mean, sigma)`` (mirrored as configured), around ``mean`` if given."""
        mu = state.mean if mean is None else mean
        return DiagNormal(mu, state.sigma, mirrored=self.mirrored)

    def gaussian_readout(self, state: EvolvabilityState) -> GaussianReadout:
        """``N(mean, diag(sigma^2))``: ``sigma`` per coordinate, ``C = I``."""
        return GaussianReadout(state.mean, state.sigma)

    def ask(self, state: EvolvabilityState) -> tuple[Array, EvolvabilityState]:
        be = get_backend(state.mean)
        key, sub = be.split(state.key)
        n = self.resolved_popsize(state.mean.shape[0])
        return self.distribution(state).sample(n, key=sub), replace(state, key=key)

    def statistic(self, Z: Array, X: Array, p: DiagNormal) -> Array:
        """The evolvability ``J`` of normalised behaviours ``Z`` (n, k), differentiable in ``p``."""
        raise NotImplementedError

    def closed_form(self, Z: Array, X: Array, p: DiagNormal) -> tuple[Array, Array]:
        """``(J, dJ/dmu)`` without autodiff (the numpy path)."""
        raise NotImplementedError

    def evolvability_gradient(self, state: EvolvabilityState, X: Array,
                              behaviours: Array) -> tuple[Array, Array]:
        """``(J, dJ/dmean)`` for the population ``X`` and its behaviours ``(n, k)``.

        torch/JAX: autodiff through :meth:`statistic`; numpy: :meth:`closed_form`.
        """
        be = get_backend(state.mean)
        if behaviours.ndim == 1:
            behaviours = be.xp.reshape(behaviours, (behaviours.shape[0], 1))
        Z = normalise_behaviours(behaviours, self.behaviour_shaping)
        if not be.has_autodiff:
            return self.closed_form(Z, X, self.distribution(state))

        def objective(mean: Array) -> Array:
            return self.statistic(Z, X, self.distribution(state, mean))

        (g,) = be.grad(objective, (state.mean,), what=f"statistic of strategy {self.name or type(self).__name__!r}")
        return self.value(Z), g

    def value(self, Z: Array) -> Array:
        """The value of :meth:`statistic` (0-d), computed without derivatives."""
        raise NotImplementedError

    def tell(self, state: EvolvabilityState, X: Array, behaviours: Array) -> EvolvabilityState:
        """Ascend the evolvability of ``X``'s behaviours ``(popsize, k)`` (or ``(popsize,)``)."""
        J, g = self.evolvability_gradient(state, X, behaviours)
        # minimise -J (+ wd/2 ||mu||^2, added by the optimiser)
        step, opt_state = self.configured_optimizer().update(-g, state.opt, self.lr, params=state.mean)
        xp = get_backend(state.mean).xp
        objective = xp.reshape(xp.astype(J, state.mean.dtype), ())
        return replace(state, mean=state.mean - step, opt=opt_state, objective=objective)

    def evolvability(self, state: EvolvabilityState) -> Array:
        """The statistic ``J`` of the last told population (0-d; 0 before the first tell)."""
        return state.objective


class MaxVarES(_EvolvabilityES):
    """MaxVar evolvability ES: ascend the total variance of the (normalised) behaviours.

    Parameters
    ----------
    popsize : int, optional
        Even when ``mirrored``; default ``2 * (4 + floor(3 ln d))``.
    sigma0 : float or array
        Fixed perturbation standard deviation (per coordinate when an array).
    lr : float
        Optimiser step size.
    optimizer : {"adam", "sgd", "clipup"} or Optimizer
        ``"sgd"`` with default options is plain gradient ascent.
    optimizer_options : dict, optional
    weight_decay : float
        L2 coefficient: the optimiser subtracts ``weight_decay * mean`` from the ascent direction.
    behaviour_shaping : str
        Per-dimension normalisation of the behaviours before the statistic, a name
        of :data:`~evostrat.strategies.shaping.SHAPINGS` (default ``"zscore"``).
    baseline : None or "mean"
        Leave-one-out baseline of the outer expectation (variance reduction).
    mirrored : bool
        Antithetic pairs ``mean +- sigma eps``.

    References
    ----------
    Gajewski, Clune, Stanley, Lehman, "Evolvability ES: Scalable and Direct Optimization of
    Evolvability", GECCO 2019, arXiv 1907.06077.

    Examples
    --------
    >>> import numpy as np
    >>> s = MaxVarES(popsize=4, sigma0=1.0, optimizer="sgd", lr=1.0, behaviour_shaping="none")
    >>> state = s.init(np.zeros(1), random_state=0)
    >>> X, state = s.ask(state)
    >>> J, g = s.evolvability_gradient(state, X, 2 * X)   # behaviour 2x: J = 4 Var[x]
    >>> bool(np.isclose(J, 4 * X.var()))
    True
    """

    def statistic(self, Z: Array, X: Array, p: DiagNormal) -> Array:
        mean_z = expectation(Z, X, p)  # (k,), carries the inner score terms
        xp = get_backend(Z).xp
        v = xp.sum((Z - mean_z) ** 2, axis=1)
        return expectation(v, X, p, baseline=self.baseline)

    def value(self, Z: Array) -> Array:
        xp = get_backend(Z).xp
        return xp.mean(xp.sum((Z - xp.mean(Z, axis=0)) ** 2, axis=1))

    def closed_form(self, Z: Array, X: Array, p: DiagNormal) -> tuple[Array, Array]:
        xp = get_backend(Z).xp
        v = xp.sum((Z - xp.mean(Z, axis=0)) ** 2, axis=1)
        return xp.mean(v), expectation_grad(v, X, p, baseline=self.baseline)["mu"]


class MaxEntES(_EvolvabilityES):
    """MaxEnt evolvability ES: ascend the entropy of a kernel density estimate of the behaviours.

    Parameters
    ----------
    kernel_width : float
        ``h`` in ``exp(-||z_i - z_j||^2 / h^2)``, in units of the normalised
        behaviours (``1.0`` on z-scores, as in the EvoGrad demo and the paper's code).
    popsize, sigma0, lr, optimizer, optimizer_options, weight_decay, behaviour_shaping, baseline, mirrored
        As for :class:`MaxVarES`. The kernel matrix is ``(popsize, popsize)``:
        memory grows with ``popsize^2`` (10,000 candidates: 0.4 GB in float32).

    References
    ----------
    Gajewski, Clune, Stanley, Lehman, "Evolvability ES: Scalable and Direct Optimization of
    Evolvability", GECCO 2019, arXiv 1907.06077.

    Examples
    --------
    >>> import numpy as np
    >>> s = MaxEntES(popsize=4, sigma0=1.0, behaviour_shaping="none", kernel_width=1e-3)
    >>> state = s.init(np.zeros(2), random_state=0)
    >>> X, state = s.ask(state)
    >>> J, g = s.evolvability_gradient(state, X, X)   # distinct points, tiny h: J = log n
    >>> bool(np.isclose(J, np.log(4)))
    True
    """

    parameter_constraints = {
        **_EvolvabilityES.parameter_constraints,
        "kernel_width": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, popsize: int | None = None, sigma0: Any = 0.1, lr: float = 0.01,
                 optimizer: str | Optimizer = "adam", optimizer_options: dict | None = None,
                 weight_decay: float = 0.0, behaviour_shaping: str = "zscore",
                 baseline: Any = "mean", mirrored: bool = True, kernel_width: float = 1.0) -> None:
        super().__init__(popsize, sigma0, lr, optimizer, optimizer_options, weight_decay,
                         behaviour_shaping, baseline, mirrored)
        self.kernel_width = kernel_width

    def statistic(self, Z: Array, X: Array, p: DiagNormal) -> Array:
        xp = get_backend(Z).xp
        K = kernel_matrix(Z, float(self.kernel_width))
        density = expectation(K, X, p, dim=1)  # P_i = mean_j K_ij, inner score terms
        return expectation(-xp.log(density), X, p, baseline=self.baseline)

    def value(self, Z: Array) -> Array:
        xp = get_backend(Z).xp
        return xp.mean(-xp.log(xp.mean(kernel_matrix(Z, float(self.kernel_width)), axis=1)))

    def closed_form(self, Z: Array, X: Array, p: DiagNormal) -> tuple[Array, Array]:
        xp = get_backend(Z).xp
        K = kernel_matrix(Z, float(self.kernel_width))
        density = xp.mean(K, axis=1)
        u = -xp.log(density)
        inner = xp.mean(K / density[:, None], axis=0)  # mean_i K_ij / P_i
        g = expectation_grad(u, X, p, baseline=self.baseline)["mu"]
        g = g - expectation_grad(inner, X, p)["mu"]
        return xp.mean(u), g
