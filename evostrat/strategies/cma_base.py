"""What CMA-ES and sep-CMA-ES share: hyper-parameters, weights, paths, stop criteria.

The pieces here follow Hansen, "The CMA Evolution Strategy: A Tutorial",
arXiv 1604.00772, sec. 4 ("Summary", eqs. 39-47) with the default parameters of
its Table 1 (see :mod:`evostrat.strategies.cma_params`):

- ranking: candidate ``k`` gets the weight of its rank, ties share the mean of
  the weights of the ranks they occupy, NaN ranks worst;
- cumulative step-size adaptation (CSA, eqs. 43-44), with the exponent capped
  at 1 (sigma grows by at most a factor ``e`` per generation);
- the ``h_sigma`` stall of the rank-one path (the indicator below eq. 45);
- the termination criteria pycma names ``tolconditioncov``, ``noeffectaxis``,
  ``noeffectcoord``, ``tolupsigma`` and ``tolfacupx``, computed with arrays so
  they work on states of every backend (also under ``jax.jit``).

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
import numbers
from functools import lru_cache
from typing import Any

import numpy as np

from evostrat.backends import Backend, get_backend
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.strategies.shaping import tie_span
from evostrat.strategies.cma_params import CMAParameters, cma_parameters
from evostrat.strategies.base import Strategy

Array = Any

__all__ = ["CMABase", "candidate_weights", "clamp", "finite_rows", "RESCALE_RANGE"]

#: Compiled read-outs shared by instances with equal settings (see CMABase._compiled).
_COMPILED: dict[tuple, Any] = {}

#: C is renormalised (its scale moved into sigma) when its largest eigenvalue
#: leaves this range, so C stays far from overflow and underflow in float32 too.
RESCALE_RANGE = (1e-10, 1e10)


@lru_cache(maxsize=256)
def _parameters(dim: int, popsize: int, active: bool, separable: bool) -> CMAParameters:
    return cma_parameters(dim, popsize, active=active, separable=separable)


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
    """
    f = xp.where(xp.isnan(fitness), xp.inf, fitness)
    lo, hi = tie_span(xp, xp.sort(f), f)
    total = xp.take(cumulative, hi, axis=1) - xp.take(cumulative, lo, axis=1)
    w = total / xp.astype(hi - lo, cumulative.dtype)
    return w[0, ...], w[1, ...]


def _check_tolerance(name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidTypeError(f"{name} must be a positive number or None, got {value!r}")
    if not value > 0:
        raise InvalidArgumentError(f"{name} must be a positive number or None, got {value!r}")


def _check_flag(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidTypeError(f"{name} must be True or False, got {value!r}")


class CMABase(Strategy):
    """Shared hyper-parameters and machinery of the CMA-ES family.

    Parameters
    ----------
    popsize : int, optional
        ``lambda``; default ``4 + floor(3 ln n)``.
    sigma0 : float or array of shape (dim,)
        Initial step size. An array gives per-coordinate standard deviations:
        ``sigma = max(sigma0)`` and ``C = diag((sigma0 / sigma)^2)``.
    active : bool
        Negative (active) weights of Table 1 for the covariance update.
    tolconditioncov : float or None
        Stop when the condition number of C exceeds it (pycma: 1e14).
    tolupsigma : float or None
        Stop when ``sigma / max(sqrt(eig(C))) > sigma0 * tolupsigma`` (pycma: 1e20).
    tolfacupx : float or None
        Stop when a coordinate's standard deviation exceeds ``sigma0`` times
        this factor (pycma: 1e3; indicates a diverging run or a too small sigma0).
    noeffectaxis, noeffectcoord : bool
        Stop when adding 0.1 standard deviations along a principal axis
        (0.2 along a coordinate) no longer changes the mean in floating point.
    """

    min_popsize = 2
    #: pycma's fitness-history criteria, used by the estimator for this family.
    termination_defaults: dict[str, Any] = {
        "tolfunhist": 1e-12,
        "tolstagnation": "auto",
        "tolflatfitness": 1,
    }
    separable = False

    def __init__(
        self,
        popsize: int | None = None,
        sigma0: Any = 1.0,
        active: bool = True,
        tolconditioncov: float | None = 1e14,
        tolupsigma: float | None = 1e20,
        tolfacupx: float | None = 1e3,
        noeffectaxis: bool = True,
        noeffectcoord: bool = True,
    ) -> None:
        super().__init__(popsize=popsize, sigma0=sigma0)
        self.active = active
        self.tolconditioncov = tolconditioncov
        self.tolupsigma = tolupsigma
        self.tolfacupx = tolfacupx
        self.noeffectaxis = noeffectaxis
        self.noeffectcoord = noeffectcoord

    # -- hyper-parameters ----------------------------------------------------------------
    def validate(self) -> None:
        """Raise a clear error for a malformed hyper-parameter."""
        _check_flag("active", self.active)
        _check_flag("noeffectaxis", self.noeffectaxis)
        _check_flag("noeffectcoord", self.noeffectcoord)
        for name in ("tolconditioncov", "tolupsigma", "tolfacupx"):
            _check_tolerance(name, getattr(self, name))

    def parameters(self, dim: int) -> CMAParameters:
        """Table 1 parameters for ``dim`` and this strategy's population size."""
        return _parameters(int(dim), self.resolved_popsize(dim), bool(self.active), self.separable)

    def constants(self, backend: Backend, dim: int, dtype: Any, device: Any) -> dict[str, Any]:
        """:meth:`parameters` and the backend arrays derived from them.

        Cached on the instance per (dim, popsize, active, backend, dtype,
        device) so a generation costs one dictionary look-up. Under a tracing
        compiler (JAX) the arrays are rebuilt at each trace instead: a constant
        created inside a trace and kept would leak the tracer.
        """
        key = (dim, self.popsize, self.active, backend.name, dtype, device)
        cache = self.__dict__.setdefault("_constants_cache", {})
        hit = cache.get(key)
        if hit is not None:
            return hit
        p = self.parameters(dim)
        sorted_w = np.stack([p.mean_weights, p.weights])
        cumulative = np.concatenate([np.zeros((2, 1)), np.cumsum(sorted_w, axis=1)], axis=1)
        out = {
            "p": p,
            "cumulative": backend.asarray(cumulative, dtype=dtype, device=device),
            "eye": backend.xp.eye(dim, dtype=dtype, device=device) if not self.separable else None,
            "c1": backend.asarray(np.full((1,), p.c1), dtype=dtype, device=device),
        }
        info = np.finfo(_np_dtype(backend, dtype))
        out.update(
            # |y| beyond this is not a sample of the model (NaN, inf, overflow): ignored
            ymax=math.sqrt(float(info.max) / (100.0 * (p.popsize + 1) * dim)),
            eps=float(info.eps),
            tiny=float(info.smallest_normal),
            sigma_range=(math.sqrt(float(info.smallest_normal)), math.sqrt(float(info.max))),
        )
        if not backend.traceable:
            if len(cache) > 8:
                cache.clear()
            cache[key] = out
        return out

    # -- the shared pieces of tell --------------------------------------------------------
    def _step_size(
        self, consts: dict[str, Any], xp: Any, sigma: Array, ps: Array, generation: Array
    ) -> tuple[Array, Array]:
        """CSA (tutorial eq. 44, exponent capped at 1) and the ``h_sigma`` indicator.

        ``h_sigma = 1`` when ``||p_s|| / sqrt(1 - (1 - c_s)^(2 (g + 1)))`` is below
        ``(1.4 + 2 / (n + 1)) E||N(0, I)||``, returned as 0/1 in sigma's dtype.
        """
        p = consts["p"]
        norm2 = ps @ ps
        ps_norm = xp.sqrt(norm2)
        rate = p.cs / p.damps
        exponent = xp.clip(ps_norm * (rate / p.chi_n) - rate, max=1.0)
        lo, hi = consts["sigma_range"]
        new_sigma = xp.clip(xp.clip(sigma * xp.exp(exponent), min=lo), max=hi)
        g = xp.astype(generation + 1, sigma.dtype)
        threshold2 = ((1.4 + 2.0 / (p.dim + 1.0)) * p.chi_n) ** 2
        moving = norm2 < threshold2 * (1.0 - xp.exp(g * (2.0 * math.log(1.0 - p.cs))))
        return new_sigma, xp.astype(moving, sigma.dtype)

    @staticmethod
    def _active_factors(consts: dict[str, Any], xp: Any, w_cov: Array, Zt: Array) -> Array:
        """``w_i^o`` of eq. 46: ``w_i n / ||C^{-1/2} y_i||^2`` for negative weights, else ``w_i``.

        ``Zt`` holds the rows ``C^{-1/2} y_i`` (in the eigenbasis). The squared
        norm is floored at ``n * smallest_normal``: a (nearly) zero ``y_i`` then
        contributes (nearly) nothing instead of ``0 * inf``.
        """
        n = consts["p"].dim
        norm2 = xp.clip(xp.vecdot(Zt, Zt, axis=-1), min=consts["tiny"] * n)
        return xp.where(w_cov < 0, w_cov * (n / norm2), w_cov)

    # -- read-outs -------------------------------------------------------------------------
    def sigma(self, state: Any) -> Array:
        """Largest coordinate standard deviation ``sigma * sqrt(max diag C)`` (0-d)."""
        return self._compiled("_sigma_array", state)(state)

    def _sigma_array(self, state: Any) -> Array:
        xp = get_backend(state.mean).xp
        return state.sigma * xp.sqrt(xp.max(self._diag_cov(state)))

    def _diag_cov(self, state: Any) -> Array:
        raise NotImplementedError

    def _axes(self, state: Any) -> tuple[Array | None, Array]:
        """Eigenvectors (``None`` for a diagonal model) and ``sqrt(eigenvalues)`` of C."""
        raise NotImplementedError

    def _compiled(self, method: str, state: Any) -> Any:
        """``getattr(self, method)``, compiled on JAX once per process and settings.

        Read-outs run once per generation outside ``tell``; eagerly on JAX they
        would cost one dispatch per array operation. They depend only on the
        state and on the criteria's settings, so instances with equal settings
        share one compiled function (a new ``ES.fit`` compiles nothing new).
        """
        be = get_backend(state.mean)
        if not be.traceable:
            return getattr(self, method)
        key = (type(self), method, be.name, self.tolconditioncov, self.tolupsigma,
               self.tolfacupx, bool(self.noeffectaxis), bool(self.noeffectcoord))
        fn = _COMPILED.get(key)
        if fn is None:
            fn = _COMPILED[key] = be.compile(getattr(self, method))
        return fn

    def stop(self, state: Any) -> dict[str, Any]:
        """pycma's CMA-specific criteria as 0-d boolean arrays (name -> triggered).

        - ``tolconditioncov``: ``max(D) > sqrt(tolconditioncov) * min(D)``.
        - ``noeffectaxis``: ``mean + 0.1 sigma D_i b_i == mean`` for the axis
          ``i = generation mod n`` (one axis per generation, as pycma).
        - ``noeffectcoord``: ``mean_j + 0.2 sigma sqrt(C_jj) == mean_j`` for some ``j``.
        - ``tolupsigma``: ``sigma / max(D) > sigma0 * tolupsigma``.
        - ``tolfacupx``: ``sigma sqrt(C_jj) > sigma0_j * tolfacupx`` for some ``j``.

        A disabled criterion (threshold ``None`` or flag ``False``) is always false.
        """
        flags = self._compiled("_stop_arrays", state)(state)
        return dict(zip(STOP_NAMES, flags))

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
            pick = xp.arange(n, device=_device(mean)) == (state.generation % n)
            scaled = xp.where(pick, D, 0.0)
            axis = scaled if B is None else B @ scaled
            noeffectaxis = xp.all(mean == mean + 0.1 * sigma * axis)
        noeffectcoord = xp.any(mean == mean + 0.2 * std) if self.noeffectcoord else false
        upsigma = false
        if self.tolupsigma is not None:
            # sigma / max(D) in the units of an unrescaled C (see log_scale)
            lhs = xp.log(sigma) - xp.log(xp.max(D)) - state.log_scale
            upsigma = lhs > xp.log(xp.max(state.std0)) + math.log(self.tolupsigma)
        facupx = xp.any(std > state.std0 * self.tolfacupx) if self.tolfacupx is not None else false
        return conditioncov, noeffectaxis, noeffectcoord, upsigma, facupx


#: Names of the criteria :meth:`CMABase.stop` reports, in its order.
STOP_NAMES = ("tolconditioncov", "noeffectaxis", "noeffectcoord", "tolupsigma", "tolfacupx")


def clamp(sigma: Array, xp: Any) -> Array:
    """``sigma`` clipped to ``[sqrt(smallest normal), sqrt(max)]`` of its dtype."""
    info = xp.finfo(sigma.dtype)
    lo, hi = math.sqrt(float(info.smallest_normal)), math.sqrt(float(info.max))
    return xp.clip(xp.clip(sigma, min=lo), max=hi)


def _device(x: Array) -> Any:
    from array_api_compat import device

    return device(x)


def finite_rows(Y: Array, ymax: float, xp: Any) -> Array:
    """``Y`` with entries that are NaN, infinite or beyond ``ymax`` set to 0.

    Steps of the model are far below ``ymax``; anything else (a NaN or an
    overflow in a candidate handed to the pure ``tell``) then has no effect
    instead of poisoning the state, and C cannot overflow.
    """
    return xp.where(xp.abs(Y) <= ymax, Y, 0.0)


def _np_dtype(backend: Backend, dtype: Any) -> Any:
    return np.dtype(backend.dtype_name(dtype))
