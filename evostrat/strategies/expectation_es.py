"""ExpectationES: gradient ascent on any differentiable population statistic.

Each generation samples ``X ~ p = family(mean, exp(log_sigma))`` (``distribution``, a name of the
``evostrat_distributions`` registry with a location and one positive scale: ``"diag_normal"`` by
default, ``"normal"``, ``"student_t"`` or a plugin's), and ``tell``
ascends, through an optimiser of :mod:`evostrat.strategies.optimizers`, the gradient
in ``mean`` and ``log_sigma`` of a statistic ``J = statistic(values, X, p)`` written
with :func:`evostrat.expectation` (the DiCE magic box, Foerster et al., ICML 2018), so
that it is the score-function estimator (Wierstra et al., JMLR 2014, eq. 8). ``values``
are the told fitness (lower is better) after ``fitness_shaping``. The default is NES's
``expectation(-values, X, p, baseline="mean")``; others plug in unchanged, e.g. the
variance of a behaviour (MaxVar, Gajewski et al. 2019)::

    def maxvar(values, X, p):
        m = expectation(values, X, p)
        return expectation((values - m) ** 2, X, p)

**Sign convention.** ``tell`` minimises the told fitness (``ES(maximize=True)`` negates the
objective's values first: the same trajectory as minimising ``-f``), and the statistic is
ascended, so it must grow as the values fall (the default takes ``-values``). NES's ``statistic``
receives utilities instead, higher better (:mod:`evostrat.strategies.nes`).

torch and JAX differentiate with autodiff; numpy uses the closed-form score
(:func:`evostrat.expectation.expectation_grad`) of the default statistic only.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.problems import sphere
>>> es = ES("expectation_es", sigma0=0.5, max_generations=300, random_state=0,
...         strategy_options=dict(lr=0.05)).fit(sphere, np.ones(4))
>>> bool(es.fun_ < 1e-3)
True
"""

from __future__ import annotations

from numbers import Real
from typing import Any, Callable, NamedTuple

from evostrat.backends import Backend, get_backend
from evostrat.distributions.base import Distribution
from evostrat.distributions.registry import distribution_class
from evostrat.errors import InvalidArgumentError
from evostrat.expectation import expectation, require_autodiff, expectation_grad, scalar_statistic
from evostrat.params import Interval, StrOptions
from evostrat.strategies.base import MirroredPopsize, Strategy, clamp_sigma
from evostrat.strategies.optimizers import Optimizer, make_optimizer
from evostrat.strategies.readout import GaussianReadout, distribution_readout
from evostrat.strategies.shaping import SHAPINGS, finite_fitness, shape_fitness
from evostrat.backends.trees import replace

Array = Any


class ExpectationESState(NamedTuple):
    mean: Array
    log_sigma: Array
    opt_mean: Any  # optimiser state NamedTuple
    opt_sigma: Any
    key: Array


class ExpectationES(MirroredPopsize, Strategy):
    """Evolution strategy ascending a user-supplied differentiable population statistic.

    Parameters
    ----------
    popsize : int, optional
        Even when ``mirrored``; default ``2 * (4 + floor(3 ln d))``.
    sigma0 : float or array
        Initial per-coordinate standard deviation.
    statistic : callable, optional
        ``statistic(values, X, p) -> scalar`` to *maximise*, where ``values``
        has shape ``(popsize,)`` (fitness, lower is better, shaped by
        ``fitness_shaping``), ``X`` is the population ``(popsize, dim)`` and
        ``p`` the distribution it was drawn from. Build it with :func:`evostrat.expectation`. ``None`` (default):
        ``expectation(-values, X, p, baseline=baseline)`` (NES). Custom
        statistics need torch or JAX (autodiff); on JAX they must be traceable.
    lr : float
        Optimiser step size for the mean.
    lr_sigma : float, optional
        Step size for ``log_sigma``; default ``lr``.
    optimizer : {"adam", "sgd", "clipup"} or Optimizer
    optimizer_options : dict, optional
        Passed to the optimiser (a ``weight_decay`` there decays the mean only).
    fitness_shaping : str
        A name of :data:`~evostrat.strategies.shaping.SHAPINGS`, applied to the
        fitness before the statistic (default ``"zscore"``). ``"zscore"`` adds an
        epsilon to the standard deviation, so constant fitness gives a zero
        gradient, never NaN. NaN and ``+inf`` count as the worst finite value.
    baseline : None, "mean" or float
        Baseline of the default statistic (see :func:`evostrat.expectation`).
    mirrored : bool
        Antithetic sampling.
    learn_sigma : bool
        Also ascend in ``log_sigma`` (otherwise sigma stays ``sigma0``).
    distribution : str or Distribution subclass
        The search family, built as ``family(mean, exp(log_sigma), mirrored=mirrored,
        **distribution_options)``: two parameters, the second positive (for other families,
        such as ``low_rank_normal``, use :class:`~evostrat.strategies.nes.NES` with a ``statistic``).
    distribution_options : dict, optional
        Further keyword arguments of the family (``{"df": 3}`` for ``student_t``).

    References
    ----------
    Foerster, Farquhar, Al-Shedivat, Rocktaeschel, Xing, Whiteson, "DiCE: The Infinitely
    Differentiable Monte Carlo Estimator", ICML 2018; Gajewski, Clune, Stanley, Lehman,
    "Evolvability ES: Scalable and Direct Optimization of Evolvability", GECCO 2019
    (EvoGrad); Wierstra et al., "Natural Evolution Strategies", JMLR 15 (2014), eq. 8.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.problems import sphere
    >>> from evostrat.strategies import ExpectationES
    >>> es = ES(ExpectationES(), max_generations=200, random_state=0).fit(sphere, np.ones(4))
    >>> bool(es.fun_ < 0.01)
    True
    """

    initial_only_params = frozenset({"sigma0"})  # read by initial_state alone

    State = ExpectationESState
    state_type = ExpectationESState  # the states ask, tell and the read-outs take
    parameter_constraints = {
        "statistic": [callable, None],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "lr_sigma": [Interval(Real, 0, None, closed="neither"), None],
        "optimizer": [str, Optimizer],
        "optimizer_options": [dict, None],
        "fitness_shaping": [StrOptions(SHAPINGS)],
        "baseline": [None, StrOptions({"mean"}), Interval(Real, None, None)],
        "mirrored": [bool],
        "learn_sigma": [bool],
        "distribution": [str, type],
        "distribution_options": [dict, None],
    }

    def __init__(self, popsize: int | None = None, sigma0: Any = 1.0,
                 statistic: Callable[..., Any] | None = None, lr: float = 0.05,
                 lr_sigma: float | None = None, optimizer: str | Optimizer = "adam",
                 optimizer_options: dict | None = None, fitness_shaping: str = "zscore",
                 baseline: Any = "mean", mirrored: bool = True, learn_sigma: bool = True,
                 distribution: Any = "diag_normal", distribution_options: dict | None = None) -> None:
        super().__init__(popsize=popsize, sigma0=sigma0)
        self.statistic, self.lr, self.lr_sigma, self.optimizer = statistic, lr, lr_sigma, optimizer
        self.optimizer_options, self.fitness_shaping = optimizer_options, fitness_shaping
        self.baseline, self.mirrored, self.learn_sigma = baseline, mirrored, learn_sigma
        self.distribution, self.distribution_options = distribution, distribution_options

    def _optimizer(self) -> Optimizer:
        return make_optimizer(self.optimizer, **(self.optimizer_options or {}))

    def initial_state(self, x0: Array, key: Any, backend: Backend) -> ExpectationESState:
        require_autodiff(self.statistic, backend)
        cls = distribution_class(self.distribution)
        if len(cls.param_names) != 2 or cls.param_names[1] not in cls.positive:
            raise InvalidArgumentError(
                f"ExpectationES searches families with a location and one positive scale; "
                f"{cls.__name__} has parameters {cls.param_names} (use NES with a statistic)")
        xp = backend.xp
        log_sigma = xp.log(self.initial_sigma(x0, backend))
        opt = self._optimizer()
        opt.validate_params()
        return ExpectationESState(mean=x0, log_sigma=log_sigma, opt_mean=opt.init(x0),
                                  opt_sigma=opt.init(log_sigma), key=key)

    def _family(self, mean: Array, scale: Array) -> Distribution:
        return distribution_class(self.distribution)(mean, scale, mirrored=self.mirrored,
                                                     **(self.distribution_options or {}))

    def search_distribution(self, state: ExpectationESState) -> Distribution:
        """The current search distribution ``family(mean, exp(log_sigma))``."""
        return self._family(state.mean, get_backend(state.mean).xp.exp(state.log_sigma))

    def gaussian_readout(self, state: ExpectationESState) -> GaussianReadout | None:
        """``N(mean, diag(exp(log_sigma))^2)`` for a normal family (per-coordinate ``sigma``), a
        Student-t's standard deviations ``exp(log_sigma) sqrt(df / (df - 2))`` (its scale for
        ``df <= 2``: no finite variance), ``None`` for a plugin's family."""
        return distribution_readout(self.search_distribution(state))

    def ask(self, state: ExpectationESState) -> tuple[Array, ExpectationESState]:
        be = get_backend(state.mean)
        key, sub = be.split(state.key)
        n = self.resolved_popsize(state.mean.shape[0])
        return self.search_distribution(state).sample(n, key=sub), replace(state, key=key)

    def shape_fitness(self, fitness: Array) -> Array:
        """``fitness`` made finite and shaped by ``fitness_shaping``."""
        return shape_fitness(finite_fitness(fitness), self.fitness_shaping)

    def _default_statistic(self, values: Array, X: Array, p: Distribution) -> Array:
        return expectation(-values, X, p, baseline=self.baseline)

    def statistic_gradient(self, state: ExpectationESState, X: Array,
                           fitness: Array) -> tuple[Array, Array]:
        """Gradient of the statistic w.r.t. ``(mean, log_sigma)`` (to ascend)."""
        be = get_backend(state.mean)
        xp = be.xp
        values = self.shape_fitness(fitness)
        if not be.has_autodiff:  # closed form of the default statistic
            p = self.search_distribution(state)
            g = expectation_grad(-values, X, p, baseline=self.baseline)
            location, scale = p.param_names
            return g[location], g[scale] * getattr(p, scale)
        statistic = self.statistic or self._default_statistic
        what = f"statistic of strategy {self.name or type(self).__name__!r}"

        def objective(mean: Array, log_sigma: Array) -> Array:
            return scalar_statistic(statistic(values, X, self._family(mean, xp.exp(log_sigma))), what)

        return be.grad(objective, (state.mean, state.log_sigma), what=what)

    def tell(self, state: ExpectationESState, X: Array, fitness: Array) -> ExpectationESState:
        xp = get_backend(state.mean).xp
        g_mean, g_log_sigma = self.statistic_gradient(state, X, fitness)
        opt = self._optimizer()
        step, opt_mean = opt.update(-g_mean, state.opt_mean, self.lr, params=state.mean)  # ascent
        state = replace(state, mean=state.mean - step, opt_mean=opt_mean)
        if not self.learn_sigma:
            return state
        lr_sigma = self.lr if self.lr_sigma is None else self.lr_sigma
        step, opt_sigma = opt.update(-g_log_sigma, state.opt_sigma, lr_sigma)
        log_sigma = xp.log(clamp_sigma(xp.exp(state.log_sigma - step)))
        return replace(state, log_sigma=log_sigma, opt_sigma=opt_sigma)

    def sigma(self, state: ExpectationESState) -> Array:
        xp = get_backend(state.mean).xp
        return xp.max(xp.exp(state.log_sigma))
