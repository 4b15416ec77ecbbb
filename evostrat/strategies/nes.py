"""Generic natural evolution strategy over any registered search distribution.

``NES(distribution=name)`` looks the family up in the ``evostrat_distributions``
registry (:func:`evostrat.distributions.registry.distribution_class`: built-ins and
installed plugins alike) and ascends the expected utility ``J = sum_k u_k log p(x_k)``
(utilities ``u_k`` by rank, best first; Wierstra et al., "Natural Evolution Strategies",
JMLR 15 (2014), eq. 8 and sec. 3.1). Its gradient in the family's parameters comes from
the closed-form scores on numpy (:meth:`~evostrat.distributions.base.Distribution.weighted_score`)
and from autodiff through :func:`evostrat.expectation` on torch and JAX. When the family
gives its Fisher information (:meth:`~evostrat.distributions.base.Distribution.natural_gradient`)
the step follows the *natural* gradient, otherwise the plain one, through an optimiser of
:mod:`evostrat.strategies.optimizers`, and the family's :meth:`retract` applies it::

    theta <- retract(theta, lr * F^{-1} grad J)        (natural; plain SGD step)
    theta <- retract(theta, -adam(-grad J))            (no Fisher: Adam, by default)

With ``"diag_normal"`` (or ``"normal"``) this is SNES and with ``"multivariate_normal"``
xNES (Glasmachers et al., GECCO 2010) with one rate for ``sigma`` and ``B``: given the
same noise they make the same update (``tests/test_nes_generic.py``).

**Sign convention.** ``tell`` minimises: lower told fitness is better (``ES(maximize=True)``
negates the objective's values before they reach ``tell``, so maximising ``-f`` runs the same
trajectory as minimising ``f``). The utilities are the opposite, higher is better: ``u_k =
-shape(fitness)_k``, and ``J`` (or ``statistic(utilities, X, p)``) is *ascended*. (ExpectationES's
``statistic`` receives the shaped values themselves, lower better, and ascends too.)

Options reach the strategy through ``ES``'s ``strategy_options`` (or ``set_params(strategy__...)``):
``ES("nes", strategy_options=dict(distribution="student_t", distribution_options={"df": 3}))``.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.problems import sphere
>>> es = ES("nes", strategy_options=dict(distribution="diag_normal"), max_generations=300,
...         random_state=0).fit(sphere, np.ones(5))
>>> bool(es.fun_ < 1e-8)
True
"""

from __future__ import annotations

import collections
import math
from numbers import Real
from typing import Any, Callable, NamedTuple

import numpy as np

from evostrat.backends import Backend, get_backend
from evostrat.backends.trees import replace
from evostrat.distributions.base import Distribution
from evostrat.distributions.registry import distribution_class
from evostrat.distributions.seed import DistributionSeed
from evostrat.errors import InvalidArgumentError
from evostrat.expectation import expectation, require_autodiff, scalar_statistic
from evostrat.params import Interval, StrOptions
from evostrat.strategies.base import Strategy
from evostrat.strategies.optimizers import Optimizer, make_optimizer
from evostrat.strategies.readout import GaussianReadout, distribution_readout
from evostrat.strategies.shaping import SHAPINGS, shape_fitness

Array = Any

__all__ = ["NES", "NESState"]


class NESState(NamedTuple):
    mean: Array  # the location parameter (the family's first parameter), (d,)
    params: Any  # NamedTuple of the family's other parameters, by name
    opt: Any  # NamedTuple of the optimiser's state for every parameter, by name
    key: Array


_TUPLES: dict[tuple[str, ...], type] = {}
_STATIC: dict[Any, tuple] = {}


def _tuple_class(fields: tuple[str, ...]) -> type:
    """A NamedTuple class with ``fields``, one per field list, importable (pickles, checkpoints)."""
    if fields not in _TUPLES:
        name = "Params_" + "_".join(fields) if fields else "Params_"
        cls = collections.namedtuple(name, fields)
        cls.__module__ = __name__
        globals()[name] = _TUPLES[fields] = cls
    return _TUPLES[fields]


class NES(Strategy):
    """Natural evolution strategy searching with any registered distribution.

    Parameters
    ----------
    popsize : int, optional
        Default ``4 + floor(3 ln d)``.
    sigma0 : float or array
        Initial per-coordinate scale, given to the family's ``search_init``.
    distribution : str or Distribution subclass
        A name of the ``evostrat_distributions`` registry (``"diag_normal"``, ``"normal"``,
        ``"multivariate_normal"``, ``"low_rank_normal"``, ``"student_t"`` or a plugin's).
    distribution_options : dict, optional
        Passed to the family's ``search_init`` (``{"df": 3}``, ``{"rank": 8}``).
    lr_mean : float, optional
        Step size of the location; default 1 with natural gradients, 0.05 otherwise.
    lr_scale : float, optional
        Step size of the other parameters; default SNES's ``(3 + ln d) / (5 sqrt d)``
        with natural gradients (xNES's ``(9 + 3 ln d) / (5 d sqrt d)`` when they hold
        ``d^2`` values or more, a matrix at ``d = 1``), ``lr_mean`` otherwise.
    gradient : {"auto", "natural", "plain"}
        ``"auto"``: natural when the family gives its Fisher information.
    optimizer : "auto", "sgd", "adam", "clipup" or Optimizer
        ``"auto"``: plain steps (``"sgd"``) along a natural gradient, ``"adam"`` otherwise.
    optimizer_options : dict, optional
    fitness_shaping : str
        A name of :data:`~evostrat.strategies.shaping.SHAPINGS` (default NES utilities).
    statistic : callable, optional
        ``statistic(utilities, X, p) -> scalar`` to ascend instead of
        ``len(X) * expectation(utilities, X, p)``; the utilities are higher for better
        candidates (``-shape(fitness)``, the told fitness being minimised); needs torch or JAX
        (autodiff).

    References
    ----------
    Wierstra, Schaul, Glasmachers, Sun, Peters, Schmidhuber, "Natural Evolution
    Strategies", JMLR 15 (2014), eq. 8 and sec. 3.1.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.problems import sphere
    >>> from evostrat.strategies import NES
    >>> es = ES(NES(distribution="diag_normal"), max_generations=300, random_state=0).fit(sphere, np.ones(4))
    >>> bool(es.fun_ < 1e-10)
    True
    """

    initial_only_params = frozenset({"sigma0"})  # read by initial_state alone

    State = NESState
    state_type = NESState  # the states ask, tell and the read-outs take
    parameter_constraints = {
        "distribution": [str, type],
        "distribution_options": [dict, None],
        "lr_mean": [Interval(Real, 0, None, closed="neither"), None],
        "lr_scale": [Interval(Real, 0, None, closed="neither"), None],
        "gradient": [StrOptions({"auto", "natural", "plain"})],
        "optimizer": [str, Optimizer],
        "optimizer_options": [dict, None],
        "fitness_shaping": [StrOptions(SHAPINGS)],
        "statistic": [callable, None],
    }

    def __init__(self, popsize: int | None = None, sigma0: Any = 1.0, distribution: Any = "diag_normal",
                 distribution_options: dict | None = None, lr_mean: float | None = None,
                 lr_scale: float | None = None, gradient: str = "auto", optimizer: Any = "auto",
                 optimizer_options: dict | None = None, fitness_shaping: str = "nes_utilities",
                 statistic: Callable[..., Any] | None = None) -> None:
        super().__init__(popsize=popsize, sigma0=sigma0)
        self.distribution, self.distribution_options = distribution, distribution_options
        self.lr_mean, self.lr_scale, self.gradient = lr_mean, lr_scale, gradient
        self.optimizer, self.optimizer_options = optimizer, optimizer_options
        self.fitness_shaping, self.statistic = fitness_shaping, statistic

    # -- the family ----------------------------------------------------------------------------
    def family(self) -> type[Distribution]:
        """The distribution class ``distribution`` names (looked up in the registry)."""
        return distribution_class(self.distribution)

    def _static(self, cls: type, dim: int) -> tuple:
        """The family's static pytree part for these options (built once, on numpy)."""
        options = self.distribution_options or {}
        key = (cls, repr(sorted(options.items())), dim)
        if key not in _STATIC:
            _STATIC[key] = cls.search_init(np.zeros(dim), np.ones(dim), **options).tree_flatten()[1][1]
        return _STATIC[key]

    def search_distribution(self, state: NESState) -> Distribution:
        """The current search distribution (rebuilt from the state, not validated again)."""
        cls = self.family()
        be = get_backend(state.mean)
        return cls.tree_unflatten((be, self._static(cls, state.mean.shape[0])), (state.mean, *state.params))

    def _natural(self, p: Distribution) -> bool:
        has = type(p).natural_gradient is not Distribution.natural_gradient
        if self.gradient == "natural" and not has:
            raise InvalidArgumentError(
                f"gradient='natural' needs the Fisher information, which {type(p).__name__} does not "
                "give (natural_gradient); use gradient='auto' or 'plain'")
        return has and self.gradient != "plain"

    def _optimizer(self, natural: bool) -> Optimizer:
        name = ("sgd" if natural else "adam") if self.optimizer == "auto" else self.optimizer
        return make_optimizer(name, **(self.optimizer_options or {}))

    def resolved_lrs(self, p: Distribution) -> dict[str, float]:
        """The step size of every parameter of ``p``."""
        natural = self._natural(p)
        dim = math.prod(p.batch_shape + p.event_shape)
        lr_mean = float(self.lr_mean if self.lr_mean is not None else 1.0 if natural else 0.05)
        if self.lr_scale is not None:
            lr = float(self.lr_scale)
        elif not natural:
            lr = lr_mean
        else:
            others = [v for k, v in p.params().items() if k != p.param_names[0]]
            # d^2 values or more: a full matrix (at d = 1 a (1, 1) matrix, not a (1,) scale)
            full = sum(math.prod(v.shape) for v in others) >= dim * dim and \
                (dim > 1 or any(len(v.shape) >= 2 for v in others))
            lr = (9 + 3 * math.log(dim)) / (5 * dim * math.sqrt(dim)) if full else \
                (3 + math.log(dim)) / (5 * math.sqrt(dim))
        names = p.param_names
        return {names[0]: lr_mean, **{k: lr for k in names[1:]}}

    # -- the strategy ----------------------------------------------------------------------------
    def initial_state(self, x0: Array, key: Any, backend: Backend) -> NESState:
        require_autodiff(self.statistic, backend)
        cls = self.family()
        p = cls.search_init(x0, self.initial_sigma(x0, backend), **(self.distribution_options or {}))
        if p.batch_shape + p.event_shape != tuple(x0.shape):
            raise InvalidArgumentError(
                f"distribution {self.distribution!r} must draw vectors of shape {tuple(x0.shape)}, "
                f"its search_init gave batch_shape {p.batch_shape} and event_shape {p.event_shape}")
        values = p.params()
        names = p.param_names
        opt = self._optimizer(self._natural(p))
        opt.validate_params()
        rest = _tuple_class(names[1:])(*(values[k] for k in names[1:]))
        opt_state = _tuple_class(names)(*(opt.init(values[k]) for k in names))
        return NESState(mean=values[names[0]], params=rest, opt=opt_state, key=key)

    def ask(self, state: NESState) -> tuple[Array, NESState]:
        be = get_backend(state.mean)
        key, sub = be.split(state.key)
        n = self.resolved_popsize(state.mean.shape[0])
        return self.search_distribution(state).sample_rows(sub, range(n)), replace(state, key=key)

    def population_seed(self, state: NESState) -> DistributionSeed | None:
        """The population ``ask(state)`` returns, as a seed (rows addressable: seed compression)."""
        be = get_backend(state.mean)
        _, sub = be.split(state.key)
        n = self.resolved_popsize(state.mean.shape[0])
        return DistributionSeed.from_distribution(self.search_distribution(state), sub, n)

    def gradient_of(self, state: NESState, X: Array, fitness: Array) -> dict[str, Array]:
        """Gradient of ``J`` in the family's parameters (closed form on numpy, autodiff otherwise)."""
        be = get_backend(state.mean)
        p = self.search_distribution(state)
        u = -shape_fitness(fitness, self.fitness_shaping)  # NaN ranks worst, as in SNES and xNES
        u = be.xp.astype(u, state.mean.dtype, copy=False)
        if not be.has_autodiff:
            return p.weighted_score(X, u)
        leaves, aux = p.tree_flatten()
        n = X.shape[0]
        statistic = self.statistic or (lambda v, x, q: n * expectation(v, x, q))

        what = f"statistic of strategy {self.name or type(self).__name__!r}"

        def J(*params: Array) -> Array:
            return scalar_statistic(statistic(u, X, type(p).tree_unflatten(aux, params)), what)

        return dict(zip(p.param_names, be.grad(J, leaves, what=what)))

    def tell(self, state: NESState, X: Array, fitness: Array) -> NESState:
        p = self.search_distribution(state)
        grads = self.gradient_of(state, X, fitness)
        natural = self._natural(p)
        direction = p.natural_gradient(grads) if natural else p.local_gradient(grads)
        if direction is None:
            raise InvalidArgumentError(
                f"{type(p).__name__}.natural_gradient returned None for these parameters; search it with "
                "gradient='plain'")
        opt, lrs = self._optimizer(natural), self.resolved_lrs(p)
        steps, opt_states = {}, []
        for name, opt_state in zip(p.param_names, state.opt):
            step, new = opt.update(-direction[name], opt_state, lrs[name])
            steps[name] = -step
            opt_states.append(new)
        q = p.retract(steps)
        new_values, old_values = q.params(), p.params()
        xp = get_backend(state.mean).xp
        ok = xp.all(xp.stack([xp.all(xp.isfinite(v)) for v in new_values.values()]))
        keep = [xp.where(ok, new_values[k], old_values[k]) for k in p.param_names]  # a degenerate step: none
        return replace(state, mean=keep[0], params=type(state.params)(*keep[1:]),
                       opt=type(state.opt)(*opt_states))

    def gaussian_readout(self, state: NESState) -> GaussianReadout | None:
        """The family's Gaussian (:func:`~evostrat.strategies.readout.distribution_readout`: per-coordinate
        ``sigma``, a Cholesky factor or a diagonal plus ``V V^T``; a Student-t's standard deviations
        ``sigma sqrt(df / (df - 2))``, its scale for ``df <= 2``), ``None`` for a plugin's family."""
        return distribution_readout(self.search_distribution(state))

    def sigma(self, state: NESState) -> Array:
        """Largest per-coordinate scale of the search distribution (0-d)."""
        xp = get_backend(state.mean).xp
        return xp.max(self.search_distribution(state).marginal_scale())
