"""What both numpy CMA-ES kernels share: per-strategy constants, the draw, ranks and step size.

:mod:`evostrat.kernels.cma_numpy` (C eigendecomposed) and :mod:`evostrat.kernels.cma_factor`
(C as a factor) take a *context* (:func:`context`) as their first argument: the strategy,
its constants per (dim, dtype), made once (:func:`factors`, each the generic code's
Python expression evaluated once: the same value and type), and the last state's read-out.
Every function here gives what the generic steps of
:mod:`evostrat.strategies.cma_base` give, bit for bit.

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies.cma_es import CMAES
>>> K = context(CMAES()).factors(10, np.dtype(np.float64))
>>> K.popsize, draw(np.array([1, 2], dtype=np.uint64), (K.popsize, 10), np.float64)[1].shape
(10, (10, 10))
"""

from __future__ import annotations

import math
from functools import lru_cache, partial
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import array_api_compat.numpy as xp_numpy
import numpy as np

from evostrat.backends import get_backend
from evostrat.backends.host_keys import DRAW_CHILD, SPLIT_CHILD, splitmix64
from evostrat.backends.numpy import seeded_generator
from evostrat.strategies.cma_base import candidate_weights

if TYPE_CHECKING:  # pragma: no cover
    from evostrat.strategies.cma_es import CMAES

__all__ = ["context", "factors", "draw", "rank_weights", "step_size", "host_read_out", "host_sigma",
           "host_sigmas", "diag_sigma", "sigma", "sigma_parts", "stop_bounds"]

_SPLIT0, _SPLIT1 = SPLIT_CHILD[0], SPLIT_CHILD[1]
_F64 = np.dtype(np.float64)
#: from this many states on, :func:`host_sigmas` reads them in one vectorised expression
_BATCH_FROM = 8


def context(strategy: CMAES) -> SimpleNamespace:
    """What the kernel's functions keep for ``strategy``: the strategy, its factors per
    (dim, dtype), made once, the last state's sigma and max C_jj (``sigma`` then ``stop``
    read them), what ``stop`` compares with for the last (std0, log_scale), and the factor
    model's matrix buffers (:mod:`evostrat.kernels.cma_factor`)."""
    return SimpleNamespace(strategy=strategy, factors=lru_cache(maxsize=None)(partial(factors, strategy)),
                           last=(None, None), bounds=(None, None, None), pool=[])


def factors(strategy: CMAES, n: int, dtype: Any) -> SimpleNamespace:
    """Each factor is the generic code's Python expression evaluated once: same value and type."""
    c = strategy.constants(get_backend("numpy"), n, dtype, None)
    p = c.p
    by_rank = c.cumulative[:, 1:] - c.cumulative[:, :-1]
    one, zero = dtype.type(1.0), dtype.type(0.0)
    pc_coef = math.sqrt(p.cc * (2.0 - p.cc) * p.mueff)
    decay0, decay1 = (1.0 - p.c1 - p.cmu * p.sum_weights), (p.c1 * p.cc * (2.0 - p.cc))
    unit = np.ones((), dtype)

    def arr(value: Any) -> np.ndarray:
        # ``value * x`` with x of this dtype as ``arr(value) * x``: the same dtype and
        # value (a 0-d array of the product's type), and a faster multiplication
        return np.asarray(value * unit)

    decay = (decay0 + decay1 * (1.0 - zero), decay0 + decay1 * (1.0 - one))
    rate = p.cs / p.damps
    return SimpleNamespace(
        c=c, popsize=p.popsize, rw_mean=by_rank[0].copy(), rw_cov=by_rank[1].copy(),
        cmean=float(strategy.lr_mean),  # c_m (moved_mean)
        keep=~(by_rank[1] < 0),  # by rank: where np.where(w_cov < 0, ...) keeps w_cov
        cmu=arr(p.cmu), c1=arr(p.c1), half=arr(0.5), n=arr(n),
        ymax=c.ymax, ymax2=c.ymax**2,
        ps_decay=arr(1.0 - p.cs), ps_coef=arr(math.sqrt(p.cs * (2.0 - p.cs) * p.mueff)),
        rate=rate, rate_chi=rate / p.chi_n, one=one,
        # np.maximum(x, lo) compares x with lo cast to x's dtype
        lo=dtype.type(c.sigma_range[0]), hi=dtype.type(c.sigma_range[1]),
        threshold2=p.hsig_threshold2,
        log_cs2=2.0 * math.log(1.0 - p.cs), pc_decay=arr(1.0 - p.cc),
        # (hsig * pc_coef) and the decay of C for hsig = 0 and hsig = 1
        pc_gain=(arr(zero * pc_coef), arr(one * pc_coef)),
        decay=decay, decay_arr=(np.asarray(decay[0]), np.asarray(decay[1])),
        zero=zero, tiny_n=arr(c.tiny * n), eps=c.eps, tiny=c.tiny,
    )


def draw(key: np.ndarray, shape: tuple[int, int], dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """``key, sub = backend.split(key)`` and ``backend.normal(sub, shape, dtype)`` of the
    numpy backend, derived in Python (the same words and the same draws)."""
    # key, sub = split_uint64(key); normal(sub): generator_words(sub) -> PCG64 (backends/base.py)
    k0, k1 = key.tolist()
    a = splitmix64(k0 ^ _SPLIT0)
    key = np.array([a, splitmix64(k1 ^ splitmix64(a))], dtype=np.uint64)
    a = splitmix64(k0 ^ _SPLIT1)
    b = splitmix64(k1 ^ splitmix64(a))
    a = splitmix64(a ^ DRAW_CHILD)
    b = splitmix64(b ^ splitmix64(a))
    c = splitmix64(a ^ b)
    return key, seeded_generator(a, b, c, splitmix64(c)).standard_normal(shape, dtype=dtype)


def rank_weights(fitness: Any, K: SimpleNamespace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`~evostrat.strategies.cma_base.candidate_weights`, fast without ties.

    Without ties (the usual case) candidate ``k`` of rank ``r`` gets
    ``cumulative[:, r + 1] - cumulative[:, r]``, exactly what the generic
    formula gives for a tie group of one (its division by 1 is exact); ties
    and NaN are found on the Python floats (for ten values a fraction of
    numpy's call overhead) and left to the generic function. The third array
    is ``~(cov_weights < 0)``.
    """
    fitness = np.asarray(fitness)
    if fitness.dtype.kind == "f" and fitness.shape == K.rw_mean.shape:
        values = fitness.tolist()
        total = sum(values)  # NaN if some value is NaN (or if both infinities occur)
        if total == total and len(set(values)) == len(values):  # no NaN, no ties
            # (-0.0 == 0.0 is a tie, as in numpy); distinct values have one order
            rank = fitness.argsort().argsort()
            return K.rw_mean[rank], K.rw_cov[rank], K.keep[rank]
    w_mean, w_cov = candidate_weights(fitness, K.c.cumulative, xp_numpy)
    return w_mean, w_cov, ~(w_cov < 0)


def step_size(K: SimpleNamespace, sigma: Any, ps: np.ndarray, generation: Any) -> tuple[Any, int]:
    """New sigma and ``h_sigma`` (0 or 1), as :meth:`CMABase.step_size
    <evostrat.strategies.cma_base.CMABase.step_size>` computes them.

    ``np.minimum``/``np.maximum`` of numpy scalars as comparisons (the same result, NaN
    included: a false comparison keeps it).
    """
    norm2 = ps.dot(ps)
    exponent = np.sqrt(norm2) * K.rate_chi - K.rate
    if exponent > 1.0:
        exponent = K.one
    new_sigma = sigma * np.exp(exponent)
    if new_sigma < K.lo:
        new_sigma = K.lo
    elif new_sigma > K.hi:
        new_sigma = K.hi
    g = ps.dtype.type(int(generation) + 1)
    h = 1 if norm2 < K.threshold2 * (1.0 - np.exp(g * K.log_cs2)) else 0
    return new_sigma, h


def host_read_out(ctx: SimpleNamespace, state: Any) -> tuple[float, float] | None:
    """``(sigma, max diag C)`` of a float64 ``state`` as Python floats (the same IEEE
    doubles: ``+``, ``*``, ``sqrt`` and comparisons give numpy's results), or ``None`` for
    float32 and for a NaN or negative ``diag C`` (``argmax`` finds a NaN as ``max`` does)."""
    if ctx.last[0] is state:
        return ctx.last[1]
    diag, host = state.diag_C, None
    if diag.dtype is _F64:
        high = diag.item(diag.argmax())
        if high >= 0.0:
            host = float(state.sigma), high
    ctx.last = (state, host)
    return host


def host_sigma(state: Any) -> float:
    """``float(sigma(ctx, state))`` without the read-out cache: for a float64 state with a
    non-negative ``max diag C`` the product of the same Python floats, else numpy's."""
    return diag_sigma(state.sigma, state.diag_C)


def diag_sigma(sigma: Any, diag: np.ndarray) -> float:
    """``float(sigma * sqrt(max(diag)))`` as numpy computes it: on Python floats for a float64
    ``diag`` whose maximum is not NaN or negative (the same IEEE doubles), else in numpy.

    >>> diag_sigma(np.float64(0.5), np.array([1.0, 4.0]))
    1.0
    """
    if diag.dtype is _F64:
        high = diag.item(diag.argmax())
        if high >= 0.0:
            return float(sigma) * math.sqrt(high)
    return float(sigma * np.sqrt(diag.max()))


def sigma_parts(state: Any) -> tuple[Any, np.ndarray]:
    """What :func:`host_sigmas` reads of ``state``: its ``sigma`` and ``diag_C`` (arrays that no
    step changes in place once the state is made), kept instead of the float while a run
    defers its history rows (:meth:`~evostrat.run.state.RunState.add_generation`)."""
    return state.sigma, state.diag_C


def host_sigmas(parts: list[tuple[Any, np.ndarray]]) -> list[float]:
    """:func:`host_sigma` of the states whose :func:`sigma_parts` are ``parts``, in order, as
    Python floats. Many at once (rows of one run: one dim and dtype) take one vectorised
    ``sigma * sqrt(max diag C)``: IEEE products and square roots are correctly rounded, and a
    maximum is exact (NaN when a row has one), so each equals the one-state read bit for bit.

    Examples
    --------
    >>> import numpy as np
    >>> parts = [(np.float64(0.5), np.array([1.0, 4.0]))] * 9
    >>> host_sigmas(parts)[0], host_sigma(type("S", (), {"sigma": 0.5, "diag_C": np.array([1.0, 4.0])}))
    (1.0, 1.0)
    """
    if len(parts) < _BATCH_FROM:  # a few (a host loop signs each generation): one by one
        return [diag_sigma(sigma, diag) for sigma, diag in parts]
    sigmas, diags = zip(*parts)  # one concatenation, not np.stack's view per row (2.5x faster)
    return (np.array(sigmas) * np.sqrt(np.concatenate(diags).reshape(len(diags), -1).max(axis=1))).tolist()


def sigma(ctx: SimpleNamespace, state: Any) -> np.ndarray:
    """``sigma * sqrt(max diag C)``, as :meth:`CMABase.sigma <evostrat.strategies.cma_base.CMABase.sigma>`."""
    host = host_read_out(ctx, state)
    if host is None:
        return state.sigma * np.sqrt(state.diag_C.max())
    return np.float64(host[0] * math.sqrt(host[1]))


def stop_bounds(strategy: Any, state: Any) -> tuple[Any, ...]:
    """What the numpy kernels' ``stop`` compares with, for ``strategy``'s thresholds and the
    state's ``std0`` and ``log_scale``: ``(sqrt(tolconditioncov), noeffectaxis, noeffectcoord,
    up, up_lo, up_hi, std0 * tolfacupx as floats, their minimum)``. ``tolupsigma`` holds when
    ``log(sigma) - log(max D) - log_scale > up``; a ratio ``sigma / max D`` above ``up_hi``
    decides it true and one below ``up_lo`` false (``exp(up + log_scale)`` widened by 1e-9),
    between them numpy's logarithms decide."""
    cond = math.inf if strategy.tolconditioncov is None else math.sqrt(strategy.tolconditioncov)
    up = up_lo = up_hi = None
    if strategy.tolupsigma is not None:
        up = np.log(state.std0.max()) + math.log(strategy.tolupsigma)
        exponent = float(up) + float(state.log_scale)
        up_lo, up_hi = 0.0, math.inf  # no bound: numpy's logarithms decide
        if abs(exponent) < 700.0 and abs(float(state.log_scale)) < 1e5:
            up_lo, up_hi = math.exp(exponent - 1e-9), math.exp(exponent + 1e-9)
    fac, fac_min = [], math.inf
    if strategy.tolfacupx is not None:
        fac = (state.std0 * strategy.tolfacupx).tolist()
        fac_min = min(fac)
    return cond, strategy.noeffectaxis, strategy.noeffectcoord, up, up_lo, up_hi, fac, fac_min
