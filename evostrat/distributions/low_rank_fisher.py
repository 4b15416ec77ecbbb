"""Fisher information of the low-rank-plus-diagonal Gaussian, applied and inverted in ``O(d k^2)``.

:class:`~evostrat.distributions.low_rank_normal.LowRankNormal` is ``N(mu, Sigma)`` with
``Sigma = diag(sigma^2) + V V^T`` (``V`` of shape (d, k)). In the coordinates its ``retract`` moves
in, ``(mu, s = log sigma, V)``, the Fisher information of a Gaussian (Amari; Wierstra et al.,
"Natural Evolution Strategies", JMLR 15 (2014), sec. 2.3) is block diagonal, ``Sigma^-1`` for the
mean and, for the covariance parameters ``theta = (s, V)``::

    F_ab = 1/2 tr(Sigma^-1 dSigma_a Sigma^-1 dSigma_b),
    dSigma[ds, dV] = diag(2 sigma^2 ds) + dV V^T + V dV^T.

With ``M = S A S``, ``S = Sigma^-1`` and ``A = dSigma[ds, dV]``, the product is
``F [ds, dV] = (sigma^2 * diag(M), M V)``. Woodbury gives ``S = diag(sigma^-2) - Q Q^T`` with
``Q`` of shape (d, k), so ``diag(M)`` and ``M V`` cost ``O(d k^2)`` and no ``(d, d)`` or
``(d (k + 1))^2`` matrix is ever formed. :func:`solve_fisher` solves ``F x = g`` by preconditioned
conjugate gradients (Hestenes & Stiefel 1952); the preconditioner is ``diag(F_ss)^-1`` for ``s``
and ``dV -> Sigma dV (V^T S V)^-1`` for ``V``, the inverse of the ``S dV (V^T S V)`` part of
``F_VV``, under which the ``V`` block has eigenvalues in ``{0, 1, 2}``: the iteration count does
not grow with the conditioning of ``Sigma`` or the scale of ``V``.

``F`` is singular for ``k >= 2``: ``V -> V R`` with ``R`` orthogonal leaves ``V V^T`` unchanged, so
``dV = V W`` with ``W`` antisymmetric is a null direction (``k (k - 1) / 2`` of them when ``V`` has
full column rank). A gradient of a function of ``Sigma`` has no component along them, the system
is consistent, and the solution returned is the minimum-norm one, ``F^+ g`` (the pseudo-inverse):
the conjugate-gradient answer with its null-space part projected out. No damping is added.

Examples
--------
>>> import numpy as np
>>> from evostrat.distributions.low_rank_fisher import fisher_parts, fisher_product, solve_fisher
>>> rng = np.random.default_rng(0)
>>> sigma, V = rng.uniform(0.5, 2.0, 4), rng.normal(size=(4, 2))
>>> parts = fisher_parts(sigma, V, np)
>>> ds, dV = rng.normal(size=4), rng.normal(size=(4, 2))
>>> gs, gV = fisher_product(parts, ds, dV, np)
>>> xs, xV = solve_fisher(parts, gs, gV, np)
>>> ws, wV = fisher_product(parts, xs, xV, np)   # F x = g again (x = ds + a null direction)
>>> bool(np.allclose(ws, gs) and np.allclose(wV, gV))
True
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import array_api_compat

Array = Any

__all__ = ["FisherParts", "fisher_parts", "fisher_product", "solve_fisher", "precision_apply"]


class FisherParts(NamedTuple):
    """The pieces every product reuses (computed once per solve, ``O(d k^2)``)."""

    var: Array  # sigma^2, (d,)
    V: Array  # (d, k)
    Q: Array  # Sigma^-1 = diag(1 / var) - Q Q^T, (d, k)
    G: Array  # Sigma^-1 V, (d, k)
    C: Array  # V^T Sigma^-1 V, (k, k)
    C_inv: Array  # (C + damping I)^-1, lightly regularised: used by the preconditioner only, (k, k)
    s_diag: Array  # diag(Sigma^-1), (d,)


def precision_apply(parts: FisherParts, X: Array, xp: Any) -> Array:
    """``Sigma^-1 X`` for ``X`` of shape (d, m) in ``O(d k m)``."""
    return X / parts.var[:, None] - xp.matmul(parts.Q, xp.matmul(parts.Q.T, X))


def fisher_parts(sigma: Array, V: Array, xp: Any, damping: float = 0.0) -> FisherParts:
    """Woodbury pieces of ``Sigma = diag(sigma^2) + V V^T``: ``K = I + V^T diag(sigma^-2) V = L L^T``
    and ``Q = diag(sigma^-2) V L^-T``, so that ``Sigma^-1 = diag(sigma^-2) - Q Q^T``."""
    var = sigma * sigma
    k = V.shape[1]
    eye = xp.eye(k, dtype=V.dtype, device=array_api_compat.device(V))
    P = V / var[:, None]
    LK = xp.linalg.cholesky(eye + xp.matmul(V.T, P))
    Q = xp.matmul(P, xp.linalg.solve(LK, eye).T)  # k x k solves only (a (k, d) right side is slow on JAX)
    G = V / var[:, None] - xp.matmul(Q, xp.matmul(Q.T, V))  # precision_apply
    C = xp.matmul(V.T, G)
    C = 0.5 * (C + C.T)
    # V with (nearly) dependent columns makes C singular; the preconditioner only needs some SPD matrix
    damp = 1e-12 * xp.sum(xp.linalg.diagonal(C)) / k + xp.finfo(V.dtype).tiny
    LC = xp.linalg.cholesky(C + (damp + damping) * eye)
    LC_inv = xp.linalg.solve(LC, eye)
    C_inv = xp.matmul(LC_inv.T, LC_inv)
    s_diag = 1.0 / var - xp.sum(Q * Q, axis=1)
    return FisherParts(var, V, Q, G, C, C_inv, s_diag)


def fisher_product(parts: FisherParts, ds: Array, dV: Array, xp: Any) -> tuple[Array, Array]:
    """``F [ds, dV]`` in the coordinates ``(s = log sigma, V)``: ``(sigma^2 diag(M), M V)`` with
    ``M = Sigma^-1 dSigma Sigma^-1``, in ``O(d k^2)``."""
    Q, G, V = parts.Q, parts.G, parts.V
    a = 2.0 * parts.var * ds  # dSigma = diag(a) + dV V^T + V dV^T
    SdV = precision_apply(parts, dV, xp)
    # diag(S diag(a) S)_i = sum_j S_ij^2 a_j with S = diag(e) - Q Q^T, e = 1 / var
    q2 = xp.sum(Q * Q, axis=1)
    e = 1.0 / parts.var
    QaQ = xp.matmul(Q.T, a[:, None] * Q)
    diag_M = a * e * (e - 2.0 * q2) + xp.sum(xp.matmul(Q, QaQ) * Q, axis=1) + 2.0 * xp.sum(SdV * G, axis=1)
    # M V = S dSigma G
    AG = a[:, None] * G + xp.matmul(dV, parts.C) + xp.matmul(V, xp.matmul(dV.T, G))
    return parts.var * diag_M, precision_apply(parts, AG, xp)


def damped_product(parts: FisherParts, ds: Array, dV: Array, damping: float, xp: Any) -> tuple[Array, Array]:
    """``(F + damping B) [ds, dV]`` with ``B [ds, dV] = (2 ds, Sigma^-1 dV)``: the Fisher of
    ``diag(sigma^2)`` in ``log sigma`` and the ``Sigma^-1 (x) I`` part of the Fisher in ``V``."""
    fs, fV = fisher_product(parts, ds, dV, xp)
    if not damping:
        return fs, fV
    return fs + (2.0 * damping) * ds, fV + damping * precision_apply(parts, dV, xp)


def _precondition(parts: FisherParts, rs: Array, rV: Array, damping: float,
                  xp: Any) -> tuple[Array, Array]:
    """``diag(F_ss + 2 damping)^-1 rs`` (``F_ss``'s diagonal is ``2 sigma^4 diag(S)^2``) and
    ``Sigma rV (C + damping I)^-1``."""
    floor = xp.finfo(rs.dtype).tiny  # diag(Sigma^-1) loses digits where V V^T dominates sigma^2
    zs = rs / (2.0 * (parts.var * parts.s_diag) ** 2 + 2.0 * damping + floor)
    W = xp.matmul(rV, parts.C_inv)
    zV = parts.var[:, None] * W + xp.matmul(parts.V, xp.matmul(parts.V.T, W))
    return zs, zV


def _remove_gauge(parts: FisherParts, dV: Array, eigh: Callable[[Array], tuple[Array, Array]],
                  xp: Any) -> Array:
    """``dV`` minus its orthogonal projection on the null directions ``V W`` (``W`` antisymmetric):
    ``W`` solves ``(V^T V) W + W (V^T V) = V^T dV - dV^T V`` (in ``V^T V``'s eigenbasis)."""
    V = parts.V
    lam, U = eigh(xp.matmul(V.T, V))
    B = xp.matmul(U.T, xp.matmul(xp.matmul(V.T, dV) - xp.matmul(dV.T, V), U))
    denom = lam[:, None] + lam[None, :]
    W = B / xp.where(denom > 0, denom, xp.ones_like(denom))
    return dV - xp.matmul(V, xp.matmul(U, xp.matmul(W, U.T)))


def solve_fisher(parts: FisherParts, gs: Array, gV: Array, xp: Any, *, rtol: float | None = None,
                 max_iter: int | None = None, eigh: Callable[[Array], tuple[Array, Array]] | None = None,
                 traceable: bool = False, damping: float = 0.0) -> tuple[Array, Array]:
    """``F^+ [gs, gV]`` by preconditioned conjugate gradients.

    Parameters
    ----------
    parts : FisherParts
        From :func:`fisher_parts`.
    gs, gV : arrays, shapes (d,) and (d, k)
        The gradient in ``(log sigma, V)``.
    xp : namespace
        The Array API namespace of the arrays.
    rtol : float, optional
        Stop once the preconditioned residual norm ``sqrt(r^T M^-1 r)`` is ``rtol`` times the
        gradient's; default ``max(1e-12, 30 eps)`` of the dtype.
    max_iter : int, optional
        Default ``min(d (k + 1) + 5, 4 ceil(-log10 rtol) + 2)`` (50 in float64, 26 in float32 for
        large d): conjugate gradients end in at most ``d (k + 1)`` steps in exact arithmetic.
    eigh : callable, optional
        Symmetric eigendecomposition (the backend's); default ``xp.linalg.eigh``.
    traceable : bool
        The backend traces (JAX): under ``jax.jit`` the residual has no value to stop on, so all
        ``max_iter`` iterations run, the iterate frozen once converged.
    damping : float
        Solve ``(F + damping B) x = g`` instead (see :func:`damped_product`); 0: ``F^+ g``.
    """
    d, k = gV.shape
    eps = float(xp.finfo(gs.dtype).eps)
    rtol = max(1e-12, 30.0 * eps) if rtol is None else rtol
    if max_iter is None:  # ~15 iterations per 12 digits were measured (damping 1): room to spare
        max_iter = min(d * (k + 1) + 5, 4 * math.ceil(-math.log10(rtol)) + 2)

    def dot(a: tuple[Array, Array], b: tuple[Array, Array]) -> Array:
        return xp.sum(a[0] * b[0]) + xp.sum(a[1] * b[1])

    x = (xp.zeros_like(gs), xp.zeros_like(gV))
    r = (gs, gV)
    z = _precondition(parts, *r, damping, xp)
    p = z
    rz = dot(r, z)
    stop = (rtol * rtol) * rz
    fixed = False
    for _ in range(max_iter):
        if not fixed:
            try:
                if not bool(rz > stop):
                    break
            except TypeError:  # a JAX tracer (ConcretizationTypeError): run every iteration
                if not traceable:
                    raise
                fixed = True
        Fp = damped_product(parts, *p, damping, xp)
        pFp = dot(p, Fp)
        live = rz > stop
        alpha = xp.where(live, rz / xp.where(live, pFp, xp.ones_like(pFp)), xp.zeros_like(rz))
        x = (x[0] + alpha * p[0], x[1] + alpha * p[1])
        r = (r[0] - alpha * Fp[0], r[1] - alpha * Fp[1])
        z = _precondition(parts, *r, damping, xp)
        rz_new = dot(r, z)
        beta = xp.where(live, rz_new / xp.where(live, rz, xp.ones_like(rz)), xp.zeros_like(rz))
        p = (z[0] + beta * p[0], z[1] + beta * p[1])
        rz = xp.where(live, rz_new, rz)
    if k == 1 or damping:  # damped: F + damping B is positive definite, x is the one solution
        return x
    return x[0], _remove_gauge(parts, x[1], eigh or xp.linalg.eigh, xp)
