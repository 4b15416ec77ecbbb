"""The numpy kernel of :class:`~evostrat.strategies.cma_es.CMAES`.

At d = 10 a CMA-ES generation is some eighty array operations on ten numbers, and
their fixed cost (the Array API namespace, 0-d arrays for scalars, branches as
function calls) is most of the time. On numpy states the built-in plugin
:mod:`evostrat.plugins.kernels` hands :class:`CMAES` this kernel: numpy called
directly (products through ``ndarray.dot``, constant factors per (dim, dtype) made
once, clips as comparisons), the key derived in Python with the numpy backend's
public helpers, a tie-free population ranked in Python, and C decomposed by LAPACK's
``syevd`` (:func:`scipy.linalg.lapack.dsyevd`, what ``np.linalg.eigh`` calls). The
read-outs ``sigma`` and ``stop`` of float64 states run on Python floats.

The arithmetic is the generic steps', operation for operation and in the same order
(:mod:`evostrat.strategies.cma_base`), so both paths give bit-identical states and
read-outs; ``tests/test_cma_numpy.py`` checks that over whole runs, lazy and
every-generation, float32 and float64, with ties, NaN and out-of-range candidates.
Set ``CMAES.numpy_kernel = False`` (on the class or an instance) for the generic steps.

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies.cma_es import CMAES
>>> fast, generic = CMAES(sigma0=0.5), CMAES(sigma0=0.5)
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
from scipy.linalg.lapack import dsyevd

from evostrat.backends import get_backend
from evostrat.backends.base import DRAW_CHILD, SPLIT_CHILD, splitmix64
from evostrat.backends.numpy import seeded_generator
from evostrat.kernels import Kernel
from evostrat.strategies.cma_base import RESCALE_RANGE, STOP_NAMES, candidate_weights
from evostrat.backends.trees import replace

if TYPE_CHECKING:  # pragma: no cover
    from evostrat.strategies.cma_es import CMAES, CMAESState

__all__ = ["kernel", "ask", "tell", "eigh"]

# np.vecdot is numpy >= 2; the generic code's xp.vecdot is the same function there
_vecdot = getattr(np, "vecdot", None) or xp_numpy.vecdot
_SPLIT0, _SPLIT1 = SPLIT_CHILD[0], SPLIT_CHILD[1]


def kernel(strategy: CMAES) -> Kernel:
    """The kernel bound to ``strategy`` (what the built-in plugin returns)."""
    # what the kernel keeps: the strategy, its factors per (dim, dtype), made once, the last
    # state's sigma and max C_jj (``sigma`` then ``stop`` read them) and what ``stop``
    # compares with for the last (std0, log_scale)
    ctx = SimpleNamespace(strategy=strategy, factors=lru_cache(maxsize=None)(partial(_factors, strategy)),
                          last=(None, None), bounds=(None, None, None))
    return Kernel(ask=partial(ask, ctx), tell=partial(tell, ctx), sigma=partial(sigma, ctx),
                  stop=partial(stop, ctx))


_F64 = np.dtype(np.float64)
_NO_STOP = dict.fromkeys(STOP_NAMES, False)


def _host(ctx: SimpleNamespace, state: CMAESState) -> tuple[float, float] | None:
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


def sigma(ctx: SimpleNamespace, state: CMAESState) -> np.ndarray:
    """``sigma * sqrt(max diag C)``, as :meth:`CMABase.sigma <evostrat.strategies.cma_base.CMABase.sigma>`."""
    host = _host(ctx, state)
    if host is None:
        return state.sigma * np.sqrt(state.diag_C.max())
    return np.float64(host[0] * math.sqrt(host[1]))


def stop(ctx: SimpleNamespace, state: CMAESState) -> dict[str, Any]:
    """pycma's CMA criteria, as :meth:`CMABase.stop <evostrat.strategies.cma_base.CMABase.stop>`
    computes them, on Python floats for float64 states.

    Bounds decide the usual answer, the element-wise test runs only where they do not:
    ``std_j`` is at least its value at the least ``C_jj`` (``sqrt`` and products with
    ``sigma > 0`` are monotone), and an addend of at least ``||mean|| 2^-51`` exceeds
    the float spacing around every ``mean_j``; ``noeffectaxis`` fails once axis ``i``
    moves ``mean_i`` (the axis is column ``i`` of ``B`` times ``D_i``: the generic
    ``B @ where(pick, D, 0)`` adds exact zeros); ``tolupsigma`` compares ``sigma / max D``
    with the exponential of its threshold widened by 1e-9, and numpy's logarithms within.
    """
    host, diag = _host(ctx, state), state.diag_C
    if host is None:
        return _stop_arrays(ctx.strategy, state)
    (s, high), D, low = host, state.D.tolist(), diag.item(diag.argmin())
    ranked = sorted(D)  # one pass over a sorted D (eigenvalues come sorted); the sum finds NaN
    d_min, d_max = ranked[0], ranked[-1]
    if not (d_min > 0.0 and sum(D) < math.inf and low >= 0.0 and 0.0 < s < math.inf):
        return _stop_arrays(ctx.strategy, state)  # NaN, inf or 0 in D, a negative C_jj...
    if ctx.bounds[0] is not state.std0 or ctx.bounds[1] is not state.log_scale:
        ctx.bounds = (state.std0, state.log_scale, _bounds(ctx.strategy, state))
    cond, axis_on, coord_on, up, up_lo, up_hi, fac, fac_min = ctx.bounds[2]
    out = _NO_STOP
    if d_max > cond * d_min:
        out = dict(out, tolconditioncov=True)
    if axis_on:
        i = int(state.generation) % len(D)
        step, d_i, m_i = 0.1 * s, D[i], state.mean.item(i)
        if m_i + step * (state.B.item(i, i) * d_i) == m_i:
            col = state.B[:, i].tolist()
            if all(m + step * (b * d_i) == m for m, b in zip(state.mean.tolist(), col)):
                out = dict(out, noeffectaxis=True)
    if coord_on:
        norm2 = state.mean.dot(state.mean)  # NaN, inf or below 2^-1000 (underflow): no bound
        if not (0.2 * (s * math.sqrt(low)) >= math.sqrt(norm2) * 2.0**-51 and norm2 >= 2.0**-1000):
            if any(m + 0.2 * (s * math.sqrt(x)) == m for m, x in zip(state.mean.tolist(), diag.tolist())):
                out = dict(out, noeffectcoord=True)
    if up is not None:
        ratio = s / d_max  # numpy's logarithms decide between up_lo and up_hi
        if ratio > up_hi or ratio >= up_lo and np.log(s) - np.log(state.D.max()) - state.log_scale > up:
            out = dict(out, tolupsigma=True)
    if s * math.sqrt(high) > fac_min and any(s * math.sqrt(x) > t for x, t in zip(diag.tolist(), fac)):
        out = dict(out, tolfacupx=True)
    return out if out is not _NO_STOP else dict(_NO_STOP)


def _bounds(strategy: CMAES, state: CMAESState) -> tuple[Any, ...]:
    """What :func:`stop` compares with, for the strategy's thresholds, ``std0`` and ``log_scale``."""
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


def _stop_arrays(strategy: CMAES, state: CMAESState) -> dict[str, Any]:
    """:func:`stop` in numpy (float32, NaN...)."""
    mean, s, D = state.mean, state.sigma, state.D
    std = s * np.sqrt(state.diag_C)
    d_max = D.max()
    out = dict.fromkeys(STOP_NAMES, False)
    if strategy.tolconditioncov is not None:
        out["tolconditioncov"] = d_max > math.sqrt(strategy.tolconditioncov) * D.min()
    if strategy.noeffectaxis:
        i = int(state.generation) % mean.shape[0]
        out["noeffectaxis"] = (mean == mean + 0.1 * s * (state.B[:, i] * D[i])).all()
    if strategy.noeffectcoord:
        out["noeffectcoord"] = (mean == mean + 0.2 * std).any()
    if strategy.tolupsigma is not None:
        lhs = np.log(s) - np.log(d_max) - state.log_scale
        out["tolupsigma"] = lhs > np.log(state.std0.max()) + math.log(strategy.tolupsigma)
    if strategy.tolfacupx is not None:
        out["tolfacupx"] = (std > state.std0 * strategy.tolfacupx).any()
    return out


def _factors(strategy: CMAES, n: int, dtype: Any) -> SimpleNamespace:
    """Each factor is the generic code's Python expression evaluated once: same value and type."""
    c = strategy.constants(get_backend("numpy"), n, dtype, None)
    p = c.p
    rank_weights = c.cumulative[:, 1:] - c.cumulative[:, :-1]
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
        c=c, popsize=p.popsize, rw_mean=rank_weights[0].copy(), rw_cov=rank_weights[1].copy(),
        keep=~(rank_weights[1] < 0),  # by rank: where np.where(w_cov < 0, ...) keeps w_cov
        cmu=arr(p.cmu), c1=arr(p.c1), half=arr(0.5), n=arr(n),
        ymax=c.ymax, ymax2=c.ymax**2,
        ps_decay=arr(1.0 - p.cs), ps_coef=arr(math.sqrt(p.cs * (2.0 - p.cs) * p.mueff)),
        rate=rate, rate_chi=rate / p.chi_n, one=one,
        # np.maximum(x, lo) compares x with lo cast to x's dtype
        lo=dtype.type(c.sigma_range[0]), hi=dtype.type(c.sigma_range[1]),
        threshold2=((1.4 + 2.0 / (p.dim + 1.0)) * p.chi_n) ** 2,
        log_cs2=2.0 * math.log(1.0 - p.cs), pc_decay=arr(1.0 - p.cc),
        # (hsig * pc_coef) and the decay of C for hsig = 0 and hsig = 1
        pc_gain=(arr(zero * pc_coef), arr(one * pc_coef)),
        decay=decay, decay_arr=(np.asarray(decay[0]), np.asarray(decay[1])),
        zero=zero, tiny_n=arr(c.tiny * n), eps=c.eps, tiny=c.tiny,
    )


def ask(ctx: SimpleNamespace, state: CMAESState) -> tuple[np.ndarray, CMAESState]:
    """``CMAES.sample`` on numpy arrays: ``x_k = m + sigma B (D * z_k)``."""
    mean = state.mean
    n = mean.shape[0]
    K = ctx.factors(n, mean.dtype)
    # key, sub = split_uint64(key); normal(sub): generator_words(sub) -> PCG64 (backends/base.py)
    k0, k1 = state.key.tolist()
    a = splitmix64(k0 ^ _SPLIT0)
    key = np.array([a, splitmix64(k1 ^ splitmix64(a))], dtype=np.uint64)
    a = splitmix64(k0 ^ _SPLIT1)
    b = splitmix64(k1 ^ splitmix64(a))
    a = splitmix64(a ^ DRAW_CHILD)
    b = splitmix64(b ^ splitmix64(a))
    c = splitmix64(a ^ b)
    z = seeded_generator(a, b, c, splitmix64(c)).standard_normal((K.popsize, n), dtype=mean.dtype)
    y = (z * state.D).dot(state.B.T)
    return mean + state.sigma * y, replace(state, key=key)


def _weights(fitness: Any, K: SimpleNamespace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def tell(ctx: SimpleNamespace, state: CMAESState, X: np.ndarray, fitness: Any) -> CMAESState:
    """``CMAES.generic_tell`` on numpy arrays (the same operations, in the same order)."""
    mean0 = state.mean
    n = mean0.shape[0]
    K = ctx.factors(n, mean0.dtype)
    w_mean, w_cov, keep = _weights(fitness, K)

    sigma, B = state.sigma, state.B
    Y = (X - mean0) / sigma
    flat = Y.reshape(-1)
    if not flat.dot(flat) <= K.ymax2:  # NaN, inf or some |y| > ymax: finite_rows
        Y = np.where(np.abs(Y) <= K.ymax, Y, 0.0)
    Zt = Y.dot(B) / state.D
    y_w = w_mean.dot(Y)
    mean = mean0 + sigma * y_w
    ps = K.ps_decay * state.ps + K.ps_coef * B.dot(w_mean.dot(Zt))

    # step size and h_sigma (CMABase.step_size); np.minimum/np.maximum of numpy
    # scalars as comparisons (same result, NaN included: a false comparison keeps it)
    norm2 = ps.dot(ps)
    exponent = np.sqrt(norm2) * K.rate_chi - K.rate
    if exponent > 1.0:
        exponent = K.one
    new_sigma = sigma * np.exp(exponent)
    if new_sigma < K.lo:
        new_sigma = K.lo
    elif new_sigma > K.hi:
        new_sigma = K.hi
    g = mean0.dtype.type(int(state.generation) + 1)
    h = 1 if norm2 < K.threshold2 * (1.0 - np.exp(g * K.log_cs2)) else 0

    pc = K.pc_decay * state.pc + K.pc_gain[h] * y_w
    # active factors (CMABase.active_factors); putmask on the fresh product is np.where
    active = w_cov * (K.n / np.maximum(_vecdot(Zt, Zt), K.tiny_n))
    np.putmask(active, keep, w_cov)
    coef_mu = K.cmu * active
    decay = K.decay_arr[h]
    generation = state.generation + 1
    k = state.queue.shape[0]
    if k == 1:
        C = decay * state.C + (Y.T * coef_mu).dot(Y) + K.c1 * (pc[:, None] * pc)
        return _eigen(ctx.strategy, K, state, C, mean=mean, sigma=new_sigma, ps=ps, pc=pc,
                      generation=generation)

    diag_C = decay * state.diag_C + coef_mu.dot(Y * Y) + K.c1 * (pc * pc)
    slot = int(state.generation) % k
    queue = state.queue.copy()
    queue[slot, :-1] = Y
    queue[slot, -1] = pc
    queue_coef = state.queue_coef * decay
    queue_coef[slot, :-1] = coef_mu
    queue_coef[slot, -1] = K.c.c1[0]
    new = replace(state, mean=mean, sigma=new_sigma, ps=ps, pc=pc, diag_C=diag_C, queue=queue,
                         queue_coef=queue_coef, decay=state.decay * K.decay[h],
                         generation=generation)
    if int(generation) % k != 0:
        return new
    V = queue.reshape(-1, n)
    C = new.decay * new.C + (V.T * queue_coef.reshape(-1)).dot(V)
    return _eigen(ctx.strategy, K, new, C, queue_coef=np.zeros_like(queue_coef),
                  decay=np.ones_like(new.decay))


def eigh(C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.linalg.eigh(C)`` for a symmetric float32/float64 matrix, with less overhead.

    LAPACK ``dsyevd`` on the lower triangle in double precision (as
    ``np.linalg.eigh``; float32 results are cast back), eigenvectors returned
    C-contiguous, :class:`numpy.linalg.LinAlgError` when it does not converge.
    """
    dtype = C.dtype
    # LAPACK's layout, in double precision: the one copy, which LAPACK may overwrite
    evals, B, info = dsyevd(np.array(C, dtype=np.float64, order="F"), lower=1, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError("Eigenvalues did not converge")
    if dtype == np.float64:
        return evals, np.ascontiguousarray(B)
    return evals.astype(dtype), np.ascontiguousarray(B, dtype=dtype)


def _eigen(strategy: CMAES, K: SimpleNamespace, state: CMAESState, C: np.ndarray,
           **fields: Any) -> CMAESState:
    """``CMAES.eigen`` in plain numpy on ``state`` with ``fields`` set in it."""
    C = K.half * (C + C.T)
    evals, B = eigh(C)
    bottom, top = evals[0], evals[-1]
    low, high = RESCALE_RANGE
    # np.maximum(top, 0.0) * eps + tiny; top is never NaN (eigh raises) and the sign of a
    # zero top does not change the sum
    floor = (top if top > 0.0 else K.zero) * K.eps + K.tiny
    if bottom < floor or top > high or top < low:
        return strategy.repair(replace(state, C=C, B=B, diag_C=C.diagonal().copy(), **fields),
                               evals, floor)
    return replace(state, C=C, B=B, D=np.sqrt(evals), diag_C=C.diagonal().copy(), **fields)
