"""Full CMA-ES without a decomposition: C = A A^T updated as a factor (numpy).

Above a few hundred dimensions the eigendecomposition of C (``O(n^3)``, every
``ceil(1 / (10 n (c_1 + c_mu)))`` generations) is most of a CMA-ES generation. This model
never decomposes C: it keeps a factor ``A`` with ``C = A A^T`` and its inverse, and
applies the update of C (tutorial eq. 47) to them directly, as the multiplicative factor
updates of Suttorp, Hansen and Igel ("Efficient covariance matrix update for variable
metric evolution strategies", Machine Learning 75, 2009; the rank-one case is Igel,
Suttorp and Hansen, GECCO 2006) and the Cholesky-CMA-ES of Krause, Arbones and Igel
(NeurIPS 2016) do. With ``w_i = A^{-1} y_i`` (the whitened steps the generation computes
anyway) and ``w_0 = A^{-1} p_c``::

    C' = decay C + c_1 p_c p_c^T + sum_i c_i y_i y_i^T = A M A^T,
    M  = decay I + W^T diag(c) W                          (identity plus rank k = lambda + 1)

and ``A' = A M^{1/2}``, ``A'^{-1} = M^{-1/2} A^{-1}``. With the thin QR ``W^T = Q R`` the
square roots are ``sqrt(decay) (I + Q G Q^T)`` and its inverse, ``G`` from the
eigendecomposition of the ``k x k`` matrix ``decay I + R diag(c) R^T``: all products are
matrix products of ``n x n`` by ``n x k`` arrays, ``O(lambda n^2)`` per generation, as the
sampling is. ``M^{1/2}`` is symmetric, so the frame of ``A^{-1}`` (the ``C^{-1/2}`` of the
step-size path ``p_sigma``) changes without rotating, as xNES's ``A exp(G / 2)`` does.
The scalar ``sqrt(decay)`` is kept apart in ``scale`` (``A = scale * A_stored``) and
folded in when it leaves ``[2^-30, 2^30]``.

Eigenvalues of the small matrix below ``eps`` times the largest eigenvalue of ``M`` are
lifted (C stays positive definite), C's scale moves into sigma when its largest diagonal
entry leaves ``RESCALE_RANGE``, and ``diag(C)`` is updated in ``O(lambda n)`` and
recomputed from the factor every ``eigen_every`` generations. The extreme eigenvalues
that the termination criteria read (``D`` = their square roots, ascending) come from one
step of warm-started power iteration on ``C`` and ``C^{-1}`` every ``eigen_every``
generations: an estimate from inside (``tolconditioncov`` reads a condition number that
is not above the true one). ``noeffectaxis`` tests the columns of ``A`` as the axes.

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies.cma_es import CMAES
>>> s = CMAES(sigma0=0.5, covariance="factor")
>>> state = s.init(np.ones(6), random_state=0)
>>> for _ in range(30):
...     X, state = s.ask(state)
...     state = s.tell(state, X, (X ** 2).sum(axis=1))
>>> C = state.scale ** 2 * state.A @ state.A.T
>>> bool(np.allclose(np.linalg.inv(C), (state.A_inv.T @ state.A_inv) / state.scale ** 2))
True
"""

from __future__ import annotations

import math
import sys
import threading
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.linalg import get_blas_funcs, solve_triangular

from evostrat.backends.trees import replace
from evostrat.kernels import cma_steps
from evostrat.strategies.cma_base import RESCALE_RANGE, STOP_NAMES
from evostrat.strategies.cma_params import moved_mean

if TYPE_CHECKING:  # pragma: no cover
    from evostrat.strategies.cma_es import CMAFactorState

__all__ = ["ask", "tell", "stop"]

#: ``scale`` is folded into the stored factors when it leaves ``[1 / FOLD, FOLD]``.
FOLD = 2.0**30
#: Results of the factor update kept for reuse once their states are gone (two per generation).
POOL = 4
_POOL_LOCK = threading.Lock()


def ask(ctx: SimpleNamespace, state: CMAFactorState) -> tuple[np.ndarray, CMAFactorState]:
    """``x_k = m + sigma A z_k`` with ``z_k ~ N(0, I)`` (the key split as the generic code does)."""
    mean = state.mean
    n = mean.shape[0]
    K = ctx.factors(n, mean.dtype)
    key, z = cma_steps.draw(state.key, (K.popsize, n), mean.dtype)
    y = z.dot(state.A.T)
    X = mean + (state.sigma * state.scale) * y
    return X, replace(state, key=key, z=z, asked=X.copy())


def tell(ctx: SimpleNamespace, state: CMAFactorState, X: np.ndarray, fitness: Any) -> CMAFactorState:
    """One generation (tutorial eqs. 41-47) with ``C^{-1/2}`` replaced by ``A^{-1}``."""
    mean0 = state.mean
    n, dtype = mean0.shape[0], mean0.dtype
    K = ctx.factors(n, dtype)
    w_mean, w_cov, keep = cma_steps.rank_weights(fitness, K)

    sigma, scale = state.sigma, state.scale
    Y = (X - mean0) / sigma
    flat = Y.reshape(-1)
    finite = flat.dot(flat) <= K.ymax2
    if not finite:  # NaN, inf or some |y| > ymax: finite_rows
        Y = np.where(np.abs(Y) <= K.ymax, Y, 0.0)
    if finite and np.array_equal(X, state.asked):
        Zt = state.z  # the asked population: A^-1 y_k is the z_k it was drawn from
    else:
        Zt = Y.dot(state.A_inv.T) / scale
    y_w, z_w = w_mean.dot(Y), w_mean.dot(Zt)
    mean = moved_mean(K.cmean, mean0, sigma, y_w)
    ps = K.ps_decay * state.ps + K.ps_coef * z_w
    new_sigma, h = cma_steps.step_size(K, sigma, ps, state.generation)
    pc = K.pc_decay * state.pc + K.pc_gain[h] * y_w
    pz = K.pc_decay * state.pz + K.pc_gain[h] * z_w  # A^{-1} p_c before the update of A
    active = w_cov * (K.n / np.maximum(np.einsum("ij,ij->i", Zt, Zt), K.tiny_n))
    np.putmask(active, keep, w_cov)
    coef_mu = K.cmu * active
    decay = max(float(K.decay[h]), K.eps)  # 0 only where c_1 + c_mu = 1 without active weights
    diag_C = decay * state.diag_C + coef_mu.dot(Y * Y) + K.c1 * (pc * pc)

    W = np.concatenate([Zt, pz[None, :]])
    A, A_inv, pz = _update_factor(K, ctx.pool, state, W, np.append(coef_mu, K.c1), decay, Y, pc, pz)
    root_decay = math.sqrt(decay)
    pz = pz / root_decay
    scale = scale * root_decay
    generation = state.generation + 1
    new = replace(state, mean=mean, sigma=new_sigma, A=A, A_inv=A_inv, scale=scale, diag_C=diag_C,
                  ps=ps, pc=pc, pz=pz, generation=generation)
    if not 1.0 / FOLD <= scale <= FOLD:
        new = replace(new, A=A * scale, A_inv=A_inv / scale, scale=np.ones_like(scale))
    if int(generation) % ctx.strategy.eigen_every(n) == 0:
        new = _refresh(new)
    top = new.diag_C.max()
    low, high = RESCALE_RANGE
    if not low <= top <= high:  # C's scale into sigma (CMABase.rescale); NaN: left to stop
        new = _rescale(new, top) if top == top else new
    return new


def _update_factor(K: SimpleNamespace, pool: list[np.ndarray], state: CMAFactorState, W: np.ndarray,
                   coef: np.ndarray,
                   decay: float, Y: np.ndarray, pc: np.ndarray,
                   pz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``A M^{1/2}``, ``M^{-1/2} A^{-1}`` and ``M^{-1/2} pz``, all over ``sqrt(decay)``, for
    ``M = decay I + W^T diag(coef) W`` (the rows of ``W`` are ``A^{-1}`` times ``Y``'s rows
    and ``pc``).

    With ``W^T = Q R``, ``M = decay (I - Q Q^T) + Q S Q^T``, ``S = decay I + R diag(coef) R^T``,
    so ``M^{+-1/2} / sqrt(decay) = I + Q G_+- Q^T`` with ``G_+- = U ((lam / decay)^{+-1/2} - 1)
    U^T`` from ``S = U diag(lam) U^T``. Where ``R`` is well conditioned, ``A Q = [Y; pc]^T
    R^{-1} / scale`` replaces the product ``A Q`` (``O(n k^2)`` instead of ``O(n^2 k)``).
    """
    Q, R = np.linalg.qr(W.T)
    S = (R * coef).dot(R.T)
    S.flat[:: S.shape[0] + 1] += decay
    lam, U = np.linalg.eigh(S)
    floor = max(float(lam[-1]), decay) * K.eps + K.tiny
    root = np.sqrt(np.maximum(lam, floor) / decay)  # eigenvalues of M^{1/2} / sqrt(decay) on Q
    G, G_inv = (U * (root - 1.0)).dot(U.T), (U * (1.0 / root - 1.0)).dot(U.T)
    diag = np.abs(R.diagonal())
    if R.shape[0] == R.shape[1] and diag.min() > 1e-6 * diag.max():
        # A Q = A W^T R^-1 = [Y; pc]^T R^-1 / scale: one triangular solve instead of n^2 k
        V = np.concatenate([Y, pc[None, :]])
        AQ = solve_triangular(R, V, trans="T", lower=False).T / state.scale
    else:
        AQ = state.A.dot(Q)
    A = _add_product(pool, state.A, AQ, G.dot(Q.T))
    A_inv = _add_product(pool, state.A_inv, Q, G_inv.dot(Q.T.dot(state.A_inv)))
    return A, A_inv, pz + Q.dot(G_inv.dot(Q.T.dot(pz)))


def _add_product(pool: list[np.ndarray], M: np.ndarray, left: np.ndarray,
                 right: np.ndarray) -> np.ndarray:
    """``M + left @ right`` in one BLAS ``gemm`` (``beta = 1``) on a copy of ``M``.

    ``M`` is C-contiguous, so ``M^T`` is the Fortran-ordered matrix BLAS updates in place:
    ``(M + L R)^T = R^T L^T + M^T``. The copy goes into a buffer of ``pool`` that nothing
    else references any more (the factor of a state that is gone) when there is one: at
    d = 10,000 a fresh 800 MB array costs the kernel's zeroing of its pages every generation.
    ``pool`` keeps the last few results.
    """
    gemm = get_blas_funcs("gemm", (M,))
    with _POOL_LOCK:  # threads sharing a strategy: one takes a buffer at a time
        buffer = _recycled(pool, M.T.shape, M.dtype)
    if buffer is None:
        out = gemm(1.0, right.T, left.T, beta=1.0, c=M.T, overwrite_c=0)
    else:
        np.copyto(buffer, M.T)
        out = gemm(1.0, right.T, left.T, beta=1.0, c=buffer, overwrite_c=1)
    with _POOL_LOCK:
        pool.append(out)
        del pool[:-POOL]
    return out.T


def _recycled(pool: list[np.ndarray], shape: tuple[int, ...], dtype: Any) -> np.ndarray | None:
    """A Fortran-ordered array of ``pool`` with ``shape`` and ``dtype`` referenced only by
    ``pool`` (no state, view or caller holds it: writing into it is unobservable), or ``None``."""
    for i in range(len(pool)):
        array = pool[i]  # references: pool, this name and getrefcount's argument
        if array.shape == shape and array.dtype == dtype and sys.getrefcount(array) <= 3:
            return pool.pop(i)
    return None


def _refresh(state: CMAFactorState) -> CMAFactorState:
    """``diag(C)`` from the factor and one power-iteration step on ``C`` and ``C^{-1}``."""
    A, A_inv, s2 = state.A, state.A_inv, float(state.scale) ** 2
    diag_C = s2 * np.einsum("ij,ij->i", A, A)
    v_max, v_min = state.axes
    u, w = A.T.dot(v_max), A_inv.dot(v_min)  # v^T C v = s^2 |A^T v|^2, v^T C^-1 v = |A^-1 v|^2 / s^2
    top, inv_low = s2 * u.dot(u), w.dot(w) / s2
    v_max, v_min = A.dot(u), A_inv.T.dot(w)
    axes = np.stack([v_max / np.linalg.norm(v_max), v_min / np.linalg.norm(v_min)])
    if not np.isfinite(axes).all():  # a vector in the kernel of a degenerate factor: start again
        axes = np.full_like(axes, 1.0 / math.sqrt(axes.shape[1]))
    D = np.sqrt(np.stack([1.0 / inv_low, top]).astype(state.D.dtype))
    return replace(state, diag_C=diag_C.astype(state.diag_C.dtype), axes=axes, D=D)


def _rescale(state: CMAFactorState, top: Any) -> CMAFactorState:
    """C / top, sigma sqrt(top): the distribution unchanged (``CMABase.rescale``)."""
    root = np.sqrt(top)
    return replace(state, scale=state.scale / root, diag_C=state.diag_C / top, D=state.D / root,
                   sigma=np.clip(state.sigma * root, *_sigma_range(state)), pc=state.pc / root,
                   log_scale=state.log_scale + np.log(top))


def _sigma_range(state: CMAFactorState) -> tuple[Any, Any]:
    info = np.finfo(state.sigma.dtype)
    return np.sqrt(info.smallest_normal), np.sqrt(info.max)


def stop(ctx: SimpleNamespace, state: CMAFactorState) -> dict[str, Any]:
    """pycma's CMA criteria (:meth:`CMABase.stop <evostrat.strategies.cma_base.CMABase.stop>`)
    with ``D`` the estimated extreme square-root eigenvalues and column ``i`` of the factor
    as axis ``i``."""
    strategy = ctx.strategy
    mean, s, D = state.mean, state.sigma, state.D
    std = s * np.sqrt(state.diag_C)
    out = dict.fromkeys(STOP_NAMES, False)
    if strategy.tolconditioncov is not None:
        out["tolconditioncov"] = bool(D[1] > math.sqrt(strategy.tolconditioncov) * D[0])
    if strategy.noeffectaxis:
        i = int(state.generation) % mean.shape[0]
        out["noeffectaxis"] = bool((mean == mean + (0.1 * s * state.scale) * state.A[:, i]).all())
    if strategy.noeffectcoord:
        out["noeffectcoord"] = bool((mean == mean + 0.2 * std).any())
    if strategy.tolupsigma is not None:
        lhs = np.log(s) - np.log(D[1]) - state.log_scale
        out["tolupsigma"] = bool(lhs > np.log(state.std0.max()) + math.log(strategy.tolupsigma))
    if strategy.tolfacupx is not None:
        out["tolfacupx"] = bool((std > state.std0 * strategy.tolfacupx).any())
    return out
