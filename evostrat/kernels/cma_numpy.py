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
numpy and scipy each bring their own OpenBLAS: from d of about 150 the two ``syevd`` calls
agree only when both libraries run the same number of threads (limiting one of them with
``threadpoolctl`` before the other is loaded flips eigenvector signs; the runs are then
equally valid CMA-ES runs, not the same one). ``OMP_NUM_THREADS`` or
``OPENBLAS_NUM_THREADS`` set before start-up, or ``threadpool_limits`` once both are loaded,
keep them identical.
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
from functools import partial
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import array_api_compat.numpy as xp_numpy
import numpy as np
from scipy.linalg.lapack import dsyevd

from evostrat.backends.trees import replace
from evostrat.kernels import Kernel, cma_factor
from evostrat.kernels.cma_steps import (context, draw, host_read_out, host_sigma, host_sigmas, rank_weights, sigma,
                                        sigma_parts, step_size, stop_bounds)
from evostrat.strategies.cma_base import RESCALE_RANGE, STOP_NAMES
from evostrat.strategies.cma_es import CMAFactorState
from evostrat.strategies.cma_params import moved_mean

if TYPE_CHECKING:  # pragma: no cover
    from evostrat.strategies.cma_es import CMAES, CMAESState

__all__ = ["kernel", "ask", "tell", "stop", "eigh"]

# np.vecdot is numpy >= 2; the generic code's xp.vecdot is the same function there
_vecdot = getattr(np, "vecdot", None) or xp_numpy.vecdot



def kernel(strategy: CMAES) -> Kernel:
    """The kernel bound to ``strategy`` (what the built-in plugin returns): this module's
    functions on :class:`~evostrat.strategies.cma_es.CMAESState`, those of
    :mod:`evostrat.kernels.cma_factor` on :class:`~evostrat.strategies.cma_es.CMAFactorState`."""
    ctx = context(strategy)
    return Kernel(ask=partial(_by_model, cma_factor.ask, ask, ctx),
                  tell=partial(_by_model, cma_factor.tell, tell, ctx),
                  sigma=partial(sigma, ctx), stop=partial(_by_model, cma_factor.stop, stop, ctx),
                  host_sigma=host_sigma, sigma_parts=sigma_parts, host_sigmas=host_sigmas)


def _by_model(factor: Any, eigen: Any, ctx: SimpleNamespace, state: Any, *args: Any) -> Any:
    return (factor if type(state) is CMAFactorState else eigen)(ctx, state, *args)


_NO_STOP = dict.fromkeys(STOP_NAMES, False)




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
    host, diag = host_read_out(ctx, state), state.diag_C
    if host is None:
        return _stop_arrays(ctx.strategy, state)
    (s, high), D, low = host, state.D.tolist(), diag.item(diag.argmin())
    ranked = sorted(D)  # one pass over a sorted D (eigenvalues come sorted); the sum finds NaN
    d_min, d_max = ranked[0], ranked[-1]
    if not (d_min > 0.0 and sum(D) < math.inf and low >= 0.0 and 0.0 < s < math.inf):
        return _stop_arrays(ctx.strategy, state)  # NaN, inf or 0 in D, a negative C_jj...
    if ctx.bounds[0] is not state.std0 or ctx.bounds[1] is not state.log_scale:
        ctx.bounds = (state.std0, state.log_scale, stop_bounds(ctx.strategy, state))
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



def ask(ctx: SimpleNamespace, state: CMAESState) -> tuple[np.ndarray, CMAESState]:
    """``CMAES.sample`` on numpy arrays: ``x_k = m + sigma B (D * z_k)``."""
    mean = state.mean
    n = mean.shape[0]
    K = ctx.factors(n, mean.dtype)
    key, z = draw(state.key, (K.popsize, n), mean.dtype)
    y = (z * state.D).dot(state.B.T)
    return mean + state.sigma * y, replace(state, key=key)




def tell(ctx: SimpleNamespace, state: CMAESState, X: np.ndarray, fitness: Any) -> CMAESState:
    """``CMAES.generic_tell`` on numpy arrays (the same operations, in the same order)."""
    mean0 = state.mean
    n = mean0.shape[0]
    K = ctx.factors(n, mean0.dtype)
    w_mean, w_cov, keep = rank_weights(fitness, K)

    sigma, B = state.sigma, state.B
    Y = (X - mean0) / sigma
    flat = Y.reshape(-1)
    if not flat.dot(flat) <= K.ymax2:  # NaN, inf or some |y| > ymax: finite_rows
        Y = np.where(np.abs(Y) <= K.ymax, Y, 0.0)
    Zt = Y.dot(B) / state.D
    y_w = w_mean.dot(Y)
    mean = moved_mean(K.cmean, mean0, sigma, y_w)
    ps = K.ps_decay * state.ps + K.ps_coef * B.dot(w_mean.dot(Zt))

    new_sigma, h = step_size(K, sigma, ps, state.generation)
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
