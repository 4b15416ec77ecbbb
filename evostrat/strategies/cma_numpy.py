"""The numpy fast path of :class:`~evostrat.strategies.cma_es.CMAES`.

At small dimensions a CMA-ES generation does almost no arithmetic: at d = 10
it is some eighty array operations on vectors of ten numbers, and their fixed
cost (dispatch through the Array API namespace, 0-d arrays for the scalars,
``lax.cond``-style branching written as function calls, several ``NamedTuple``
copies) is most of the time. On numpy arrays :class:`CMAES` therefore runs the
same generation through the two functions below, which

- call numpy directly (no namespace wrapper), with Python branches for the
  lazy decomposition and the repair; products through ``ndarray.dot`` (the
  BLAS call of ``@``, without the gufunc's overhead) and constant factors as
  0-d arrays of the state's dtype (same value, cheaper broadcasting);
- derive the key and seed the generator in Python, as the numpy backend does;
- rank a tie-free population in Python and keep the scalar part (step size,
  ``h_sigma``, decay) on numpy scalars, with the per-(dim, dtype) factors
  computed once (:func:`_kernel`) and the clips written as comparisons;
- call LAPACK's ``eigh`` gufunc as ``np.linalg.eigh`` does, without its checks;
- build the new state once.

The arithmetic is the generic code's, operation for operation and in the same
order (tutorial eqs. 39-47, see :mod:`evostrat.strategies.cma_es`), so both
paths give bit-identical states; ``tests/test_cma_numpy.py`` checks that over
whole runs, lazy and every-generation, float32 and float64, with ties, NaN and
out-of-range candidates. Set ``CMAES.numpy_kernel = False`` (on the class or an
instance) to run the generic code instead.

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
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import array_api_compat.numpy as xp_numpy
import numpy as np

from evostrat.backends import get_backend
from evostrat.backends.base import _DRAW_CHILD, _SPLIT_CHILD, _splitmix64
from evostrat.backends.numpy import _seeded_generator
from evostrat.strategies.cma_base import RESCALE_RANGE

try:  # the gufunc behind np.linalg.eigh (numpy 1.x and 2.x)
    from numpy.linalg._umath_linalg import eigh_lo as _EIGH_LO
except ImportError:  # pragma: no cover
    _EIGH_LO = None

if TYPE_CHECKING:  # pragma: no cover
    from evostrat.strategies.cma_es import CMAES, CMAESState

__all__ = ["ask", "tell"]

_BACKEND = None
# np.vecdot is numpy >= 2; the generic code's xp.vecdot is the same function there
_vecdot = getattr(np, "vecdot", None) or xp_numpy.vecdot
_new_tuple = tuple.__new__
_SPLIT0, _SPLIT1 = _SPLIT_CHILD[0], _SPLIT_CHILD[1]


def _numpy_backend() -> Any:
    global _BACKEND
    if _BACKEND is None:
        _BACKEND = get_backend("numpy")
    return _BACKEND


def _kernel(strategy: CMAES, n: int, dtype: Any) -> tuple[dict[str, Any], SimpleNamespace]:
    """The strategy's constants and, cached in them, this module's derived factors.

    Every factor is the generic code's Python expression evaluated once, so
    using it gives the same value (and type) as evaluating it each generation.
    """
    consts = strategy.constants(_BACKEND or _numpy_backend(), n, dtype, None)
    K = consts.get("numpy_kernel")
    if K is not None:
        return consts, K
    p = consts["p"]
    cumulative = consts["cumulative"]
    rank_weights = cumulative[:, 1:] - cumulative[:, :-1]
    one, zero = dtype.type(1.0), dtype.type(0.0)
    pc_coef = math.sqrt(p.cc * (2.0 - p.cc) * p.mueff)
    decay0, decay1 = (1.0 - p.c1 - p.cmu * p.sum_weights), (p.c1 * p.cc * (2.0 - p.cc))
    lo, hi = consts["sigma_range"]
    rate = p.cs / p.damps
    unit = np.ones((), dtype)

    def arr(c: Any) -> np.ndarray:
        # ``c * x`` with x of this dtype as ``arr(c) * x``: the same dtype and value
        # (a 0-d array of the product's type), and a faster multiplication
        return np.asarray(c * unit)

    decay = (decay0 + decay1 * (1.0 - zero), decay0 + decay1 * (1.0 - one))
    K = SimpleNamespace(
        p=p,
        popsize=p.popsize,
        rw_mean=rank_weights[0].copy(),
        rw_cov=rank_weights[1].copy(),
        keep=~(rank_weights[1] < 0),  # by rank: where np.where(w_cov < 0, ...) keeps w_cov
        cmu=arr(p.cmu),
        c1=arr(p.c1),
        half=arr(0.5),
        n=arr(n),
        ymax=consts["ymax"],
        ymax2=consts["ymax"] ** 2,
        ps_decay=arr(1.0 - p.cs),
        ps_coef=arr(math.sqrt(p.cs * (2.0 - p.cs) * p.mueff)),
        rate=rate,
        rate_chi=rate / p.chi_n,
        one=one,
        lo=dtype.type(lo),  # np.maximum(x, lo) compares x with lo cast to x's dtype
        hi=dtype.type(hi),
        threshold2=((1.4 + 2.0 / (p.dim + 1.0)) * p.chi_n) ** 2,
        log_cs2=2.0 * math.log(1.0 - p.cs),
        pc_decay=arr(1.0 - p.cc),
        # (hsig * pc_coef) and the decay of C for hsig = 0 and hsig = 1
        pc_gain=(arr(zero * pc_coef), arr(one * pc_coef)),
        decay=decay,
        decay_arr=(np.asarray(decay[0]), np.asarray(decay[1])),
        zero=zero,
        tiny_n=arr(consts["tiny"] * n),
        eps=consts["eps"],
        tiny=consts["tiny"],
    )
    consts["numpy_kernel"] = K
    return consts, K


def ask(strategy: CMAES, state: CMAESState) -> tuple[np.ndarray, CMAESState]:
    """:meth:`CMAES.ask` on numpy arrays: ``x_k = m + sigma B (D * z_k)``."""
    mean = state.mean
    n = mean.shape[0]
    _, K = _kernel(strategy, n, mean.dtype)
    # key, sub = split_uint64(key); normal(sub): generator_words(sub) -> PCG64 (backends/base.py)
    k0, k1 = state.key.tolist()
    a = _splitmix64(k0 ^ _SPLIT0)
    key = np.array([a, _splitmix64(k1 ^ _splitmix64(a))], dtype=np.uint64)
    a = _splitmix64(k0 ^ _SPLIT1)
    b = _splitmix64(k1 ^ _splitmix64(a))
    a = _splitmix64(a ^ _DRAW_CHILD)
    b = _splitmix64(b ^ _splitmix64(a))
    c = _splitmix64(a ^ b)
    z = _seeded_generator(a, b, c, _splitmix64(c)).standard_normal(
        (K.popsize, n), dtype=mean.dtype)
    # ndarray.dot: the BLAS call of ``@`` (same results) without the gufunc's overhead
    y = (z * state.D).dot(state.B.T)
    return mean + state.sigma * y, _new_tuple(type(state), (*state[:-1], key))  # key is last


def _weights(
    fitness: Any, consts: dict[str, Any], K: SimpleNamespace
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`~evostrat.strategies.cma_base.candidate_weights` in plain numpy.

    Without ties (the usual case) candidate ``k`` of rank ``r`` gets
    ``cumulative[:, r + 1] - cumulative[:, r]``, exactly what the generic
    formula gives for a tie group of one (its division by 1 is exact); ties
    and NaN are found on the Python floats (for ten values a fraction of
    numpy's call overhead). The third array is ``~(cov_weights < 0)``.
    """
    fitness = np.asarray(fitness)
    if fitness.dtype.kind == "f" and fitness.shape == K.rw_mean.shape:
        values = fitness.tolist()
        total = sum(values)  # NaN if some value is NaN (or if both infinities occur)
        if total == total and len(set(values)) == len(values):  # no NaN, no ties
            # (-0.0 == 0.0 is a tie, as in numpy); distinct values have one order
            rank = fitness.argsort().argsort()
            return K.rw_mean[rank], K.rw_cov[rank], K.keep[rank]
    f = np.where(np.isnan(fitness), np.inf, fitness)
    s = np.sort(f)
    cumulative = consts["cumulative"]
    lo = np.searchsorted(s, f, side="left")
    hi = np.searchsorted(s, f, side="right")
    # take (not fancy indexing, whose result is column-major): BLAS rounds a strided
    # vector differently, and the generic code's rows are contiguous
    total = np.take(cumulative, hi, axis=1) - np.take(cumulative, lo, axis=1)
    w = total / (hi - lo).astype(cumulative.dtype)
    return w[0], w[1], ~(w[1] < 0)


def tell(strategy: CMAES, state: CMAESState, X: np.ndarray, fitness: Any) -> CMAESState:
    """:meth:`CMAES.tell` on numpy arrays (same operations as the generic code)."""
    mean0 = state.mean
    n = mean0.shape[0]
    consts, K = _kernel(strategy, n, mean0.dtype)
    w_mean, w_cov, keep = _weights(fitness, consts, K)

    sigma, B = state.sigma, state.B
    Y = (X - mean0) / sigma
    flat = Y.reshape(-1)
    if not flat.dot(flat) <= K.ymax2:  # NaN, inf or some |y| > ymax: finite_rows
        Y = np.where(np.abs(Y) <= K.ymax, Y, 0.0)
    # x.dot(y): the BLAS call of x @ y (same results) without the gufunc's overhead
    Zt = Y.dot(B) / state.D
    y_w = w_mean.dot(Y)
    mean = mean0 + sigma * y_w
    ps = K.ps_decay * state.ps + K.ps_coef * B.dot(w_mean.dot(Zt))

    # step size and h_sigma (CMABase._step_size); np.minimum/np.maximum of numpy
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
    # active factors (CMABase._active_factors); putmask on the fresh product is np.where
    norm2_z = np.maximum(_vecdot(Zt, Zt), K.tiny_n)
    active = w_cov * (K.n / norm2_z)
    np.putmask(active, keep, w_cov)
    coef_mu = K.cmu * active
    decay = K.decay_arr[h]
    generation = state.generation + 1
    k = state.queue.shape[0]
    if k == 1:
        C = decay * state.C + (Y.T * coef_mu).dot(Y) + K.c1 * (pc[:, None] * pc)
        return _eigen(strategy, K, state, C, mean, new_sigma, ps, pc, generation)

    diag_C = decay * state.diag_C + coef_mu.dot(Y * Y) + K.c1 * (pc * pc)
    rows = np.concatenate([Y, pc[None, :]], axis=0)
    coef = np.concatenate([coef_mu, consts["c1"]], axis=0)
    slot = int(state.generation) % k
    queue = state.queue.copy()
    queue[slot] = rows
    queue_coef = state.queue_coef * decay
    queue_coef[slot] = coef
    new = state._replace(mean=mean, sigma=new_sigma, ps=ps, pc=pc, diag_C=diag_C, queue=queue,
                         queue_coef=queue_coef, decay=state.decay * K.decay[h],
                         generation=generation)
    if int(generation) % k != 0:
        return new
    V = queue.reshape(-1, n)
    c = queue_coef.reshape(-1)
    C = new.decay * new.C + (V.T * c).dot(V)
    new = new._replace(queue_coef=np.zeros_like(queue_coef), decay=np.ones_like(new.decay))
    return _eigen(strategy, K, new, C, mean, new_sigma, ps, pc, generation)


def _nonconvergence(err: Any, flag: Any) -> None:
    raise np.linalg.LinAlgError("Eigenvalues did not converge")


# np.linalg.eigh's error state (as a decorator: cheaper than entering a new np.errstate)
@np.errstate(call=_nonconvergence, invalid="call", over="ignore", divide="ignore", under="ignore")
def _eigh_lo(C: np.ndarray, signature: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    return _EIGH_LO(C) if signature is None else _EIGH_LO(C, signature=signature)


def _eigh(C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.linalg.eigh(C)`` for a C-contiguous float32/float64 matrix.

    The same gufunc call (LAPACK ``syevd`` in double precision, results cast
    back), error state and error, without the argument checks and wrapping.
    """
    char = C.dtype.char
    if char == "d" and _EIGH_LO is not None:
        return _eigh_lo(C)  # the gufunc's float64 loop: signature "d->dd"
    if char == "f" and _EIGH_LO is not None:
        evals, B = _eigh_lo(C, "d->dd")  # in double precision, as np.linalg.eigh
        return evals.astype(C.dtype), B.astype(C.dtype)
    return np.linalg.eigh(C)  # pragma: no cover


def _eigen(
    strategy: CMAES, K: SimpleNamespace, state: CMAESState, C: np.ndarray,
    mean: np.ndarray, sigma: Any, ps: np.ndarray, pc: np.ndarray, generation: Any,
) -> CMAESState:
    """``CMAES._eigen`` in plain numpy on ``state`` with the other arguments set in it."""
    C = K.half * (C + C.T)
    evals, B = _eigh(C)
    bottom, top = evals[0], evals[-1]
    low, high = RESCALE_RANGE
    # np.maximum(top, 0.0) * eps + tiny; top is never NaN (eigh raises) and the sign of a
    # zero top does not change the sum
    floor = (top if top > 0.0 else K.zero) * K.eps + K.tiny
    if bottom < floor or top > high or top < low:
        state = state._replace(C=C, B=B, diag_C=np.diagonal(C).copy(), mean=mean, sigma=sigma,
                               ps=ps, pc=pc, generation=generation)
        state, evals = strategy._repair(state, evals, floor)
        return state._replace(D=np.sqrt(evals))
    return _new_tuple(type(state), (mean, sigma, C, B, np.sqrt(evals), C.diagonal().copy(), ps,
                                    pc, *state[8:11], generation, *state[12:]))
