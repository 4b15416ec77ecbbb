"""The numpy kernel of :class:`~evostrat.strategies.sep_cma_es.SepCMAES`.

sep-CMA-ES's generation is O(popsize x d) work in a few dozen array operations; at
d = 100 their fixed cost through the Array API namespace (``xp.clip`` and ``xp.where``
on 0-d arrays, the 0-d ``hsig`` array, ``candidate_weights``' sort-based tie spans) was
over half the time. On numpy states the built-in plugin :mod:`evostrat.plugins.kernels`
hands :class:`SepCMAES` this kernel: numpy called directly, the factors made once per
(dim, dtype), scalar clips as comparisons, and a tie-free population ranked by one
``argsort`` (:func:`rank_weights`; ties and NaN go to the generic ``candidate_weights``).

The arithmetic is the generic steps' (:meth:`CMABase.generic_tell
<evostrat.strategies.cma_base.CMABase.generic_tell>` with the diagonal model of
:mod:`evostrat.strategies.sep_cma_es`), operation for operation and in the same order,
so both paths give bit-identical states; ``tests/test_sep_cma_numpy.py`` checks that
over whole runs, float32 and float64, with ties, NaN and out-of-range candidates. Set
``SepCMAES.numpy_kernel = False`` (on the class or an instance) for the generic steps.

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies.sep_cma_es import SepCMAES
>>> fast, generic = SepCMAES(sigma0=0.5), SepCMAES(sigma0=0.5)
>>> generic.numpy_kernel = False
>>> a = b = fast.init(np.ones(5), random_state=0)
>>> for _ in range(20):
...     Xa, a = fast.ask(a)
...     Xb, b = generic.ask(b)
...     a = fast.tell(a, Xa, (Xa ** 2).sum(axis=1))
...     b = generic.tell(b, Xb, (Xb ** 2).sum(axis=1))
>>> bool((a.mean == b.mean).all() and (a.C == b.C).all() and a.sigma == b.sigma)
True
"""

from __future__ import annotations

import math
from functools import lru_cache, partial
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import array_api_compat.numpy as xp_numpy
import numpy as np

from evostrat.backends import get_backend
from evostrat.backends.host_keys import generator_words, split_uint64
from evostrat.backends.numpy import seeded_generator
from evostrat.backends.trees import replace
from evostrat.kernels import Kernel
from evostrat.kernels.cma_steps import diag_sigma, host_sigmas, stop_bounds
from evostrat.strategies.cma_base import RESCALE_RANGE, STOP_NAMES, CMABase, candidate_weights
from evostrat.strategies.cma_params import moved_mean

if TYPE_CHECKING:  # pragma: no cover
    from evostrat.strategies.sep_cma_es import SepCMAES, SepCMAESState

__all__ = ["ask", "factors", "host_sigma", "kernel", "rank_weights", "sigma_parts", "stop", "stop_arrays", "tell"]

_F64 = np.dtype(np.float64)

# np.vecdot is numpy >= 2; the generic code's xp.vecdot is the same function there
_vecdot = getattr(np, "vecdot", None) or xp_numpy.vecdot


def kernel(strategy: SepCMAES) -> Kernel:
    """The kernel bound to ``strategy`` (``sigma``: the strategy's own; a history row's
    sigma read on Python floats, :func:`~evostrat.kernels.cma_steps.diag_sigma`)."""
    made = lru_cache(maxsize=None)(partial(factors, strategy))
    ctx = SimpleNamespace(strategy=strategy, bounds=(None, None, None))
    return Kernel(ask=partial(ask, made), tell=partial(tell, made), stop=partial(stop, ctx),
                  host_sigma=host_sigma, sigma_parts=sigma_parts, host_sigmas=host_sigmas)


def host_sigma(state: SepCMAESState) -> float:
    """``float(SepCMAES.sigma(state))``: ``sigma * sqrt(max C)`` as a Python float."""
    return diag_sigma(state.sigma, state.C)


def sigma_parts(state: SepCMAESState) -> tuple[Any, np.ndarray]:
    """What :func:`~evostrat.kernels.cma_steps.host_sigmas` reads of ``state`` (its ``sigma``
    and ``C``, which no step changes in place) while a run defers its history rows."""
    return state.sigma, state.C


def stop(ctx: SimpleNamespace, state: SepCMAESState) -> dict[str, Any]:
    """:meth:`CMABase.stop <evostrat.strategies.cma_base.CMABase.stop>` for the diagonal
    model, on Python floats for a float64 state with a positive finite ``C`` and ``sigma``.

    ``D = sqrt(C)`` is monotone, so ``max D = sqrt(max C)``; with ``sigma`` finite the
    ``noeffectaxis`` sum adds exact zeros off axis ``i`` (equal unless NaN); the other
    criteria are decided by bounds as the CMA-ES kernel's
    (:func:`evostrat.kernels.cma_numpy.stop`), element by element only near a threshold.
    Anything else takes the element-wise numpy operations (:func:`stop_arrays`).
    """
    mean, C, s = state.mean, state.C, state.sigma
    if C.dtype is not _F64 or mean.dtype is not _F64:
        return stop_arrays(ctx.strategy, state)
    low, high, s = C.item(C.argmin()), C.item(C.argmax()), float(s)  # argmin/argmax find a NaN
    if not (low > 0.0 and high < math.inf and 0.0 < s < math.inf):
        return stop_arrays(ctx.strategy, state)
    if ctx.bounds[0] is not state.std0 or ctx.bounds[1] is not state.log_scale:
        ctx.bounds = (state.std0, state.log_scale, stop_bounds(ctx.strategy, state))
    cond, axis_on, coord_on, up, up_lo, up_hi, fac, fac_min = ctx.bounds[2]
    d_max = math.sqrt(high)
    out = dict.fromkeys(STOP_NAMES, False)
    if d_max > cond * math.sqrt(low):
        out["tolconditioncov"] = True
    norm2 = mean.dot(mean)  # NaN iff some mean_j is NaN
    if axis_on and norm2 == norm2:
        i = int(state.generation) % mean.shape[0]
        m_i = mean.item(i)
        out["noeffectaxis"] = m_i + (0.1 * s) * math.sqrt(C.item(i)) == m_i
    if coord_on:  # NaN, inf or below 2^-1000 (underflow): no bound
        if not (0.2 * (s * math.sqrt(low)) >= math.sqrt(norm2) * 2.0**-51 and norm2 >= 2.0**-1000):
            out["noeffectcoord"] = any(m + 0.2 * (s * math.sqrt(x)) == m for m, x in zip(mean.tolist(), C.tolist()))
    if up is not None:
        ratio = s / d_max
        if ratio > up_hi or ratio >= up_lo and np.log(s) - np.log(d_max) - state.log_scale > up:
            out["tolupsigma"] = True
    if s * d_max > fac_min and any(s * math.sqrt(x) > t for x, t in zip(C.tolist(), fac)):
        out["tolfacupx"] = True
    return out


def stop_arrays(strategy: SepCMAES, state: SepCMAESState) -> dict[str, Any]:
    """:meth:`CMABase.stop <evostrat.strategies.cma_base.CMABase.stop>` for the diagonal
    model, the same element-wise operations in numpy (a disabled criterion: ``False``)."""
    mean, sigma, C = state.mean, state.sigma, state.C
    D = np.sqrt(C)
    std = sigma * np.sqrt(C)
    out = dict.fromkeys(STOP_NAMES, np.False_)
    if strategy.tolconditioncov is not None:
        out["tolconditioncov"] = D.max() > math.sqrt(strategy.tolconditioncov) * D.min()
    if strategy.noeffectaxis:
        n = mean.shape[0]
        axis = np.where(np.arange(n) == (state.generation % n), D, 0.0)
        out["noeffectaxis"] = (mean == mean + 0.1 * sigma * axis).all()
    if strategy.noeffectcoord:
        out["noeffectcoord"] = (mean == mean + 0.2 * std).any()
    if strategy.tolupsigma is not None:
        lhs = np.log(sigma) - np.log(D.max()) - state.log_scale
        out["tolupsigma"] = lhs > np.log(state.std0.max()) + math.log(strategy.tolupsigma)
    if strategy.tolfacupx is not None:
        out["tolfacupx"] = (std > state.std0 * strategy.tolfacupx).any()
    return out


def factors(strategy: SepCMAES, n: int, dtype: Any) -> SimpleNamespace:
    """The constants of a generation at (``n``, ``dtype``), each the generic code's
    expression evaluated once (the same value and type)."""
    dtype = np.dtype(dtype)
    c = strategy.constants(get_backend("numpy"), n, dtype, None)
    p = c.p
    by_rank = c.cumulative[:, 1:] - c.cumulative[:, :-1]
    one, zero = dtype.type(1.0), dtype.type(0.0)
    unit = np.ones((), dtype)

    def arr(value: Any) -> np.ndarray:
        # ``value * x`` (a Python float times an array of this dtype) as ``arr(value) * x``
        return np.asarray(value * unit)

    pc_coef = math.sqrt(p.cc * (2.0 - p.cc) * p.mueff)
    decay0, decay1 = (1.0 - p.c1 - p.cmu * p.sum_weights), (p.c1 * p.cc * (2.0 - p.cc))
    hsig = (np.asarray(zero), np.asarray(one))
    return SimpleNamespace(
        c=c, popsize=p.popsize, rw_mean=by_rank[0].copy(), rw_cov=by_rank[1].copy(),
        cmean=float(strategy.lr_mean),  # c_m (moved_mean)
        keep=~(by_rank[1] < 0), ymax=c.ymax, ymax2=c.ymax ** 2,
        ps_decay=arr(1.0 - p.cs), ps_coef=arr(math.sqrt(p.cs * (2.0 - p.cs) * p.mueff)),
        rate=p.cs / p.damps, chi_n=p.chi_n, one=one,
        lo=dtype.type(c.sigma_range[0]), hi=dtype.type(c.sigma_range[1]),
        threshold2=p.hsig_threshold2, log_cs2=2.0 * math.log(1.0 - p.cs),
        pc_decay=arr(1.0 - p.cc),
        pc_gain=tuple(np.asarray(h * pc_coef) for h in hsig),
        decay=tuple(np.asarray(decay0 + decay1 * (1.0 - h)) for h in hsig),
        cmu=arr(p.cmu), c1=arr(p.c1), n_arr=arr(n), tiny_n=arr(c.tiny * n),
        floor=(c.eps, c.tiny), rescale=RESCALE_RANGE,
    )


def ask(made: Any, state: SepCMAESState) -> tuple[np.ndarray, SepCMAESState]:
    """``SepCMAES.sample`` on numpy arrays: ``x_k = m + sigma (sqrt(c) * z_k)``."""
    mean = state.mean
    n = mean.shape[0]
    key, sub = split_uint64(state.key)
    z = seeded_generator(*generator_words(sub)).standard_normal((made(n, mean.dtype).popsize, n),
                                                                 dtype=mean.dtype)
    z *= np.sqrt(state.C)
    z *= state.sigma
    z += mean
    return z, replace(state, key=key)


def rank_weights(fitness: Any, K: SimpleNamespace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`~evostrat.strategies.cma_base.candidate_weights` and ``~(w_cov < 0)``, fast
    without ties: candidate ``k`` of rank ``r`` gets ``cumulative[:, r + 1] - cumulative[:, r]``,
    what the generic formula gives for a tie group of one (its division by 1 is exact)."""
    fitness = np.asarray(fitness)
    if fitness.dtype.kind == "f" and fitness.shape == K.rw_mean.shape:
        order = fitness.argsort()
        ranked = fitness[order]
        # no NaN (NaN sorts last) and no ties (-0.0 == 0.0 is one, as in numpy)
        if not np.isnan(ranked[-1]) and (ranked[1:] != ranked[:-1]).all():
            rank = np.empty_like(order)
            rank[order] = np.arange(order.size)
            return K.rw_mean[rank], K.rw_cov[rank], K.keep[rank]
    w_mean, w_cov = candidate_weights(fitness, K.c.cumulative, xp_numpy)
    return w_mean, w_cov, ~(w_cov < 0)


def step_size(K: SimpleNamespace, sigma: Any, ps: np.ndarray, generation: Any) -> tuple[Any, int]:
    """New sigma and ``h_sigma`` (0 or 1), as :meth:`CMABase.step_size
    <evostrat.strategies.cma_base.CMABase.step_size>` computes them (clips as comparisons:
    the same result, NaN included)."""
    norm2 = ps @ ps
    exponent = np.sqrt(norm2) * (K.rate / K.chi_n) - K.rate
    if exponent > 1.0:
        exponent = K.one
    new_sigma = sigma * np.exp(exponent)
    if new_sigma < K.lo:
        new_sigma = K.lo
    if new_sigma > K.hi:
        new_sigma = K.hi
    g = ps.dtype.type(int(generation) + 1)
    return new_sigma, 1 if norm2 < K.threshold2 * (1.0 - np.exp(g * K.log_cs2)) else 0


def tell(made: Any, state: SepCMAESState, X: np.ndarray, fitness: Any) -> SepCMAESState:
    """``SepCMAES.generic_tell`` on numpy arrays (the same operations, in the same order)."""
    mean0, sigma = state.mean, state.sigma
    n = mean0.shape[0]
    K = made(n, mean0.dtype)
    w_mean, w_cov, keep = rank_weights(fitness, K)
    Y = X - mean0
    Y /= sigma
    flat = Y.reshape(-1)
    if not flat @ flat <= K.ymax2:  # NaN, inf or some |y| > ymax: finite_rows
        Y = np.where(np.abs(Y) <= K.ymax, Y, 0.0)
    y_w = w_mean @ Y
    D = np.sqrt(state.C)
    Zt, z_w = Y / D, y_w / D
    mean = moved_mean(K.cmean, mean0, sigma, y_w)
    ps = K.ps_decay * state.ps + K.ps_coef * z_w
    new_sigma, h = step_size(K, sigma, ps, state.generation)
    pc = K.pc_decay * state.pc + K.pc_gain[h] * y_w
    active = w_cov * (K.n_arr / np.maximum(_vecdot(Zt, Zt), K.tiny_n))
    np.putmask(active, keep, w_cov)  # where(w_cov < 0, ..., w_cov) on the fresh product
    coef_mu = K.cmu * active
    Y *= Y
    C = K.decay[h] * state.C + K.c1 * (pc * pc) + coef_mu @ Y
    top = C.max()
    eps, tiny = K.floor
    C = np.maximum(C, (top if top > 0.0 else xp_numpy.clip(top, min=0.0)) * eps + tiny)
    top = C.max()
    lo, hi = K.rescale
    outside = (top > hi) | (top < lo)
    new = replace(state, mean=mean, sigma=new_sigma, ps=ps, pc=pc, C=C,
                  generation=state.generation + 1)
    if not outside and new_sigma == new_sigma:
        # scale 1: C / 1, pc / 1 and log_scale + 0 are exact, and step_size kept sigma
        # inside clamp_sigma's range
        return new
    scale = np.where(outside, top, 1.0)
    return CMABase.rescale(replace(new, C=C / scale), scale, xp_numpy)
