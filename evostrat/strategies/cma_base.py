"""CMA-ES written once: the generation of the CMA family as named pure steps.

Hansen, "The CMA Evolution Strategy: A Tutorial", arXiv 1604.00772, sec. 4 (eqs. 39-47),
with the parameters of :mod:`evostrat.strategies.cma_params`. :meth:`CMABase.generic_tell`
ranks (:func:`candidate_weights`), forms the steps ``y_k = (x_k - m) / sigma``
(:func:`finite_rows`), moves the mean and then runs :meth:`~CMABase.sigma_path`,
:meth:`~CMABase.step_size`, :meth:`~CMABase.cov_path`, :meth:`~CMABase.active_factors`
and :meth:`~CMABase.cov_decay`. A model of C (full in :mod:`~evostrat.strategies.cma_es`,
diagonal in :mod:`~evostrat.strategies.sep_cma_es`) supplies ``sample``, ``whiten``
(``C^{-1/2} y``) and ``update_covariance``. Where a plugin answers the ``evostrat_kernel``
hook (:mod:`evostrat.kernels`), ``ask`` and ``tell`` run that kernel instead.

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies.cma_es import CMAES
>>> s = CMAES(sigma0=0.5)
>>> state = s.init(np.ones(4), random_state=0)
>>> sorted(s.stop(state))
['noeffectaxis', 'noeffectcoord', 'tolconditioncov', 'tolfacupx', 'tolupsigma']
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np
from array_api_compat import device as _device

from evostrat.backends import Backend, get_backend
from evostrat.backends.namespaces import host_cached
from evostrat.kernels import dispatches, resolve_kernel
from evostrat.params import Interval
from evostrat.strategies.base import Strategy, clamp_sigma
from evostrat.strategies.cma_params import CMAConstants, CMAParameters, cma_constants, cma_parameters, moved_mean
from evostrat.strategies.shaping import tie_apply
from evostrat.backends.trees import replace

Array = Any

__all__ = ["CMABase", "CMAConstants", "candidate_weights", "finite_rows", "RESCALE_RANGE"]

#: C is renormalised (its scale moved into sigma) when its largest eigenvalue
#: leaves this range, so C stays far from overflow and underflow in float32 too.
RESCALE_RANGE = (1e-10, 1e10)
#: Names of the criteria :meth:`CMABase.stop` reports, in its order (and of their settings).
STOP_NAMES = ("tolconditioncov", "noeffectaxis", "noeffectcoord", "tolupsigma", "tolfacupx")


@host_cached(maxsize=32)  # keyed by plain values: torch.compile reads the entry as a constant
def _cached_constants(dim: int, popsize: int, active: bool, separable: bool, mu: int | None,
                      backend: Backend, dtype: Any, device: Any) -> CMAConstants:
    return cma_constants(cma_parameters(dim, popsize, active, separable, mu), separable, backend,
                         dtype, device)


def candidate_weights(fitness: Array, cumulative: Array, xp: Any) -> tuple[Array, Array]:
    """Per-candidate mean and covariance weights from sorted weights.

    Parameters
    ----------
    fitness : array, shape (popsize,)
        Values to minimise; NaN ranks worst (as ``+inf``); tied candidates share
        the mean of the weights of the ranks they occupy.
    cumulative : array, shape (2, popsize + 1)
        Cumulative sums (starting at 0) of the sorted mean weights (row 0) and
        covariance weights (row 1).
    xp : namespace
        The Array API namespace of both arrays.

    Returns
    -------
    mean_weights, cov_weights : arrays, shape (popsize,)

    Examples
    --------
    >>> import array_api_compat.numpy as xp
    >>> cum = xp.asarray([[0.0, 0.5, 1.0, 1.0], [0.0, 0.5, 1.0, 0.0]])
    >>> [w.tolist() for w in candidate_weights(xp.asarray([2.0, 1.0, 2.0]), cum, xp)]
    [[0.25, 0.5, 0.25], [-0.25, 0.5, -0.25]]
    """
    f = xp.where(xp.isnan(fitness), xp.inf, fitness)

    def mean_weights(lo: Array, hi: Array) -> Array:
        total = xp.take(cumulative, hi, axis=1) - xp.take(cumulative, lo, axis=1)
        return total / xp.astype(hi - lo, cumulative.dtype)

    w = tie_apply(f, mean_weights)
    return w[0, ...], w[1, ...]


def finite_rows(Y: Array, ymax: float, xp: Any) -> Array:
    """``Y`` with entries that are NaN, infinite or beyond ``ymax`` set to 0.

    Steps of the model are far below ``ymax``; anything else (a NaN or an
    overflow in a candidate handed to the pure ``tell``) then has no effect
    instead of poisoning the state, and C cannot overflow.
    """
    return xp.where(xp.abs(Y) <= ymax, Y, 0.0)


class CMABase(Strategy):
    """Shared hyper-parameters, steps and read-outs of the CMA-ES family.

    Parameters
    ----------
    popsize : int, optional
        ``lambda``; default ``4 + floor(3 ln n)``.
    sigma0 : float or array of shape (dim,)
        Initial step size. An array gives per-coordinate standard deviations:
        ``sigma = max(sigma0)`` and ``C = diag((sigma0 / sigma)^2)``.
    active : bool
        Negative (active) weights of Table 1 for the covariance update.
    tolconditioncov, tolupsigma, tolfacupx : float or None
        Thresholds of pycma's criteria of these names, with pycma's defaults (:meth:`stop`).
    noeffectaxis, noeffectcoord : bool
        Whether to stop when 0.1 standard deviations along a principal axis (0.2 along a
        coordinate) no longer change the mean in floating point.
    lr_mean : float
        ``c_m``, the learning rate of the mean: ``m <- m + c_m sigma <y>_w`` (Hansen's
        tutorial, eq. 9; pycma's ``CMA_cmean``, evosax's ``c_m``); the evolution paths take
        ``<y>_w`` whatever ``c_m``. Default 1.
    elite_ratio : float or None
        The share of the population that are parents, ``0 < elite_ratio <= 0.5``:
        ``mu = max(1, floor(elite_ratio * popsize))`` with pycma's weights for its ``CMA_mu``
        (:func:`~evostrat.strategies.cma_params.cma_parameters`); ``None`` (default):
        ``mu = popsize // 2`` with Table 1's weights. Restarts that grow the population keep
        the ratio.
    """

    initial_only_params = frozenset({"sigma0"})  # read by initial_state alone

    parameter_constraints = {
        **{flag: [bool, np.bool_] for flag in ("active", "noeffectaxis", "noeffectcoord")},
        **{tol: [Interval(Real, 0, None, closed="neither"), None]
           for tol in ("tolconditioncov", "tolupsigma", "tolfacupx")},
        "lr_mean": [Interval(Real, 0, None, closed="neither")],
        "elite_ratio": [Interval(Real, 0, 0.5, closed="right"), None],
    }
    #: pycma's fitness-history criteria, used by the estimator for this family.
    termination_defaults: dict[str, Any] = {"tolfunhist": 1e-12, "tolstagnation": "auto",
                                            "tolflatfitness": 1}
    separable = False
    torch_kernel = True  #: let :mod:`evostrat.kernels.cma_torch` decide a torch run's :meth:`stop` on the host

    def __init__(self, popsize: int | None = None, sigma0: Any = 1.0, active: bool = True,
                 tolconditioncov: float | None = 1e14, tolupsigma: float | None = 1e20,
                 tolfacupx: float | None = 1e3, noeffectaxis: bool = True,
                 noeffectcoord: bool = True, lr_mean: float = 1.0, elite_ratio: float | None = None) -> None:
        super().__init__(popsize=popsize, sigma0=sigma0)
        self.active, self.tolconditioncov, self.tolupsigma = active, tolconditioncov, tolupsigma
        self.tolfacupx, self.noeffectaxis, self.noeffectcoord = tolfacupx, noeffectaxis, noeffectcoord
        self.lr_mean, self.elite_ratio = lr_mean, elite_ratio

    # -- hyper-parameters and kernels ----------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__.pop("_kernels", None)  # any change (set_params too): resolve again
        super().__setattr__(name, value)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_kernels"}

    def parameters(self, dim: int) -> CMAParameters:
        """Table 1 parameters for ``dim`` and this strategy's population size."""
        popsize = self.resolved_popsize(dim)
        return cma_parameters(int(dim), popsize, bool(self.active), self.separable, self.parents(popsize))

    def unrounded_popsize(self, dim: int) -> float:
        """``4 + 3 ln d`` unrounded when ``popsize`` is the default (pycma evaluates its
        defaults with it: at d = 10, ``tolstagnation`` 389 and ``maxiter`` 7775 instead of 416
        and 8116, and IPOP's populations 21, 43, 87 instead of 20, 40, 80), else ``popsize``."""
        self.resolved_popsize(dim)  # validated
        return 4.0 + 3.0 * math.log(dim) if self.popsize is None else float(self.popsize)

    def parents(self, popsize: int) -> int | None:
        """``mu`` for ``elite_ratio`` at ``popsize`` (``None``: the default ``popsize // 2``)."""
        return None if self.elite_ratio is None else max(1, int(self.elite_ratio * popsize))

    def constants(self, backend: Backend, dim: int, dtype: Any, device: Any) -> CMAConstants:
        """:meth:`parameters` and the backend arrays derived from them.

        Cached per (parameters, backend, dtype, device), except under a tracing
        compiler (JAX), where arrays made inside a trace must not outlive it.
        """
        if backend.traceable:
            return cma_constants(self.parameters(dim), self.separable, backend, dtype, device)
        popsize = self.resolved_popsize(dim)
        return _cached_constants(int(dim), popsize, bool(self.active), bool(self.separable),
                                 self.parents(popsize), backend, dtype, device)

    def kernel(self, state: Any) -> Any:
        """The kernel for ``state``'s backend, or ``None`` for the generic steps.

        Resolved through :func:`evostrat.kernels.resolve_kernel` on first use per
        array type and kept until an attribute (a hyper-parameter) changes.
        """
        try:
            return self._kernels[type(state.mean)]
        except (AttributeError, KeyError):
            kernels = self.__dict__.setdefault("_kernels", {})
            kernels[type(state.mean)] = resolve_kernel(self, get_backend(state.mean))
            return kernels[type(state.mean)]

    @dispatches  # the kernel's ask alone: a runner may call it directly (kernels.kernel_program)
    def ask(self, state: Any) -> tuple[Array, Any]:
        kernel = self.kernel(state)
        return self.sample(state) if kernel is None else kernel.ask(state)

    @dispatches
    def tell(self, state: Any, X: Array, fitness: Array) -> Any:
        kernel = self.kernel(state)
        return (self.generic_tell if kernel is None else kernel.tell)(state, X, fitness)

    # -- the generation as named steps -----------------------------------------------------
    def generic_tell(self, state: Any, X: Array, fitness: Array) -> Any:
        """One generation over the Array API namespace (the steps in the module docstring)."""
        be = get_backend(state.mean)
        xp = be.xp
        c = self.constants(be, state.mean.shape[0], state.mean.dtype, be.device(state.mean))
        w_mean, w_cov = candidate_weights(fitness, c.cumulative, xp)
        Y = X - state.mean
        Y /= state.sigma
        Y = finite_rows(Y, c.ymax, xp)
        y_w = w_mean @ Y
        Zt, z_w = self.whiten(state, Y, w_mean, y_w)
        mean = moved_mean(self.lr_mean, state.mean, state.sigma, y_w)
        ps = self.sigma_path(c, state.ps, z_w)
        sigma, hsig = self.step_size(c, xp, state.sigma, ps, state.generation)
        pc = self.cov_path(c, state.pc, hsig, y_w)
        coef_mu = c.p.cmu * self.active_factors(c, be, w_cov, Zt)
        new = replace(state, mean=mean, sigma=sigma, ps=ps, pc=pc, generation=state.generation + 1)
        return self.update_covariance(c, new, Y, coef_mu, self.cov_decay(c, hsig))

    @staticmethod
    def sigma_path(c: CMAConstants, ps: Array, z_w: Array) -> Array:
        """``p_s <- (1 - c_s) p_s + sqrt(c_s (2 - c_s) mu_eff) C^{-1/2} <y>_w`` (eq. 43)."""
        p = c.p
        return (1.0 - p.cs) * ps + math.sqrt(p.cs * (2.0 - p.cs) * p.mueff) * z_w

    @staticmethod
    def step_size(c: CMAConstants, xp: Any, sigma: Array, ps: Array,
                  generation: Array) -> tuple[Array, Array]:
        """CSA (tutorial eq. 44, exponent capped at 1) and the ``h_sigma`` indicator.

        ``h_sigma = 1`` when ``||p_s||^2 / (1 - (1 - c_s)^(2 (g + 1)))`` is below
        ``n (2 + 4 / (n + 1))`` (pycma's test; ``CMAParameters.hsig_threshold2``), returned as
        0/1 in sigma's dtype.
        """
        return CMABase.csa(c, xp, sigma, ps @ ps, xp.astype(generation + 1, sigma.dtype))

    @staticmethod
    def csa(c: CMAConstants, xp: Any, sigma: Array, norm2: Array, g: Array) -> tuple[Array, Array]:
        """:meth:`step_size` from ``norm2 = ||p_s||^2`` and ``g``, the generations told so far
        (this one included) in sigma's dtype; elementwise, so also for many runs' arrays at once."""
        p = c.p
        rate = p.cs / p.damps
        exponent = xp.clip(xp.sqrt(norm2) * (rate / p.chi_n) - rate, max=1.0)
        lo, hi = c.sigma_range
        new_sigma = xp.clip(xp.clip(sigma * xp.exp(exponent), min=lo), max=hi)
        moving = norm2 < p.hsig_threshold2 * (1.0 - xp.exp(g * (2.0 * math.log(1.0 - p.cs))))
        return new_sigma, xp.astype(moving, sigma.dtype)

    @staticmethod
    def cov_path(c: CMAConstants, pc: Array, hsig: Array, y_w: Array) -> Array:
        """``p_c <- (1 - c_c) p_c + h_s sqrt(c_c (2 - c_c) mu_eff) <y>_w`` (eq. 45)."""
        p = c.p
        return (1.0 - p.cc) * pc + (hsig * math.sqrt(p.cc * (2.0 - p.cc) * p.mueff)) * y_w

    @staticmethod
    def active_factors(c: CMAConstants, be: Backend, w_cov: Array, Zt: Array) -> Array:
        """``w_i^o`` of eq. 46: ``w_i n / ||C^{-1/2} y_i||^2`` for negative weights, else ``w_i``.

        The squared norm is floored at ``n * smallest_normal``: a (nearly) zero
        ``y_i`` then contributes (nearly) nothing instead of ``0 * inf``.
        """
        n, xp = c.p.dim, be.xp
        norm2 = xp.clip(be.vecdot(Zt, Zt), min=c.tiny * n)
        return xp.where(w_cov < 0, w_cov * (n / norm2), w_cov)

    @staticmethod
    def cov_decay(c: CMAConstants, hsig: Array) -> Array:
        """Factor of the old C: ``1 - c_1 - c_mu sum w + c_1 (1 - h_s) c_c (2 - c_c)`` (eq. 47)."""
        p = c.p
        return (1.0 - p.c1 - p.cmu * p.sum_weights) + (p.c1 * p.cc * (2.0 - p.cc)) * (1.0 - hsig)

    @staticmethod
    def rescale(state: Any, scale: Array, xp: Any) -> Any:
        """Move the factor ``scale`` of C (already divided out of C) into sigma.

        The distribution is unchanged: ``sigma sqrt(scale)``, ``p_c / sqrt(scale)``;
        ``log_scale`` keeps the units of an unrescaled C for ``tolupsigma``. Elementwise over a
        leading runs axis too (``scale`` of shape ``(runs,)``, as a torch batch's stack kernel has it).
        """
        root = xp.sqrt(scale)
        return replace(state, sigma=clamp_sigma(state.sigma * root), pc=state.pc / root[..., None],
                              log_scale=state.log_scale + xp.log(scale))

    # -- what a model of C supplies ----------------------------------------------------------
    def sample(self, state: Any) -> tuple[Array, Any]:
        """``ask`` over the Array API namespace: ``x_k = m + sigma C^{1/2} z_k``."""
        raise NotImplementedError

    def whiten(self, state: Any, Y: Array, w_mean: Array, y_w: Array) -> tuple[Array, Array]:
        """Rows ``C^{-1/2} y_k`` (any orthonormal basis) and ``C^{-1/2} <y>_w``."""
        raise NotImplementedError

    def update_covariance(self, c: CMAConstants, state: Any, Y: Array, coef_mu: Array,
                          decay: Array) -> Any:
        """``C <- decay C + c_1 p_c p_c^T + sum_i coef_mu_i y_i y_i^T`` (eq. 47), kept valid."""
        raise NotImplementedError

    def _diag_cov(self, state: Any) -> Array:
        raise NotImplementedError

    def _axes(self, state: Any) -> tuple[Array | None, Array]:
        """Eigenvectors (``None`` for a diagonal model) and ``sqrt(eigenvalues)`` of C."""
        raise NotImplementedError

    # -- read-outs -------------------------------------------------------------------------
    def _compiled(self, method: str, state: Any) -> Any:
        """``getattr(self, method)``, compiled on JAX once per process and criteria."""
        key = (type(self), method, *(getattr(self, name) for name in STOP_NAMES))
        return get_backend(state.mean).compile(getattr(self, method), key)

    def sigma(self, state: Any) -> Array:
        """Largest coordinate standard deviation ``sigma * sqrt(max diag C)`` (0-d)."""
        kernel = self.kernel(state)
        return self.generic_sigma(state) if kernel is None or kernel.sigma is None else kernel.sigma(state)

    def generic_sigma(self, state: Any) -> Array:
        """:meth:`sigma` over the Array API namespace (what a kernel's must equal)."""
        return self._compiled("_sigma_array", state)(state)

    def _sigma_array(self, state: Any) -> Array:
        xp = get_backend(state.mean).xp
        return state.sigma * xp.sqrt(xp.max(self._diag_cov(state)))

    @staticmethod
    def tolx_parts(state: Any) -> tuple[Array, Array]:
        """What :meth:`tolx_path` reads of ``state``, ``(sigma, p_c)``, kept in its place while a
        run defers its criteria (the arrays, not the state and its C)."""
        return state.sigma, state.pc

    @staticmethod
    def tolx_path(parts: tuple[Array, Array]) -> Array:
        """``max_j sigma p_c_j`` (0-d) of :meth:`tolx_parts`: ``tolx`` also needs it below the
        threshold, as pycma's ``all(sigma * pc < tolx)`` (signed: negative entries pass)."""
        sigma, pc = parts
        return get_backend(pc).xp.max(sigma * pc)

    def stop(self, state: Any) -> dict[str, Any]:
        """pycma's CMA-specific criteria as 0-d boolean arrays (name -> triggered).

        - ``tolconditioncov``: ``max(D) > sqrt(tolconditioncov) * min(D)``.
        - ``noeffectaxis``: ``mean + 0.1 sigma D_i b_i == mean`` for the axis
          ``i = generation mod n`` (one axis per generation, as pycma).
        - ``noeffectcoord``: ``mean_j + 0.2 sigma sqrt(C_jj) == mean_j`` for some ``j``.
        - ``tolupsigma``: ``sigma / max(D) > sigma0 * tolupsigma``.
        - ``tolfacupx``: ``sigma sqrt(C_jj) > sigma0_j * tolfacupx`` for some ``j`` (a
          diverging run or a too small sigma0).

        A disabled criterion (threshold ``None`` or flag ``False``) is always false.
        """
        kernel = self.kernel(state)
        return self.generic_stop(state) if kernel is None or kernel.stop is None else kernel.stop(state)

    def generic_stop(self, state: Any) -> dict[str, Any]:
        """:meth:`stop` over the Array API namespace, 0-d boolean arrays (what a kernel's must equal)."""
        return dict(zip(STOP_NAMES, self._compiled("_stop_arrays", state)(state)))

    def _stop_arrays(self, state: Any) -> tuple[Array, ...]:
        xp = get_backend(state.mean).xp
        B, D = self._axes(state)
        mean, sigma = state.mean, state.sigma
        std = sigma * xp.sqrt(self._diag_cov(state))
        false = xp.zeros((), dtype=xp.bool, device=_device(mean))
        cond = self.tolconditioncov
        conditioncov = xp.max(D) > math.sqrt(cond) * xp.min(D) if cond is not None else false
        noeffectaxis = false
        if self.noeffectaxis:
            n = mean.shape[0]
            i = state.generation % n
            if B is None:  # the axis is the coordinate i
                axis = xp.where(xp.arange(n, device=_device(mean)) == i, D, 0.0)
            else:  # column i of B scaled: B @ (D e_i) without the product, as the numpy kernel's
                axis = B[:, i] * D[i]
            noeffectaxis = xp.all(mean == mean + 0.1 * sigma * axis)
        noeffectcoord = xp.any(mean == mean + 0.2 * std) if self.noeffectcoord else false
        upsigma = false
        if self.tolupsigma is not None:
            # sigma / max(D) in the units of an unrescaled C (see log_scale)
            lhs = xp.log(sigma) - xp.log(xp.max(D)) - state.log_scale
            upsigma = lhs > xp.log(xp.max(state.std0)) + math.log(self.tolupsigma)
        facupx = xp.any(std > state.std0 * self.tolfacupx) if self.tolfacupx is not None else false
        return conditioncov, noeffectaxis, noeffectcoord, upsigma, facupx

