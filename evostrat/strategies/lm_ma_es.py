"""Limited-memory matrix adaptation evolution strategy (LM-MA-ES).

Loshchilov, Glasmachers, Beyer, "Large Scale Black-Box Optimization by Limited-Memory
Matrix Adaptation", IEEE TEVC 23(2), 2019, Algorithm 1. The search direction of a
candidate is its noise ``z ~ N(0, I)`` passed through ``m`` rank-one factors,

    d = prod_{j=1..min(t, m)} ((1 - c_d,j) I + c_d,j M_j M_j^T) z,

where the ``m`` vectors ``M_j`` are evolution paths of the weighted steps with
learning rates ``c_c,j = lambda / (4^(j-1) n)``, and ``c_d,j = 1 / (1.5^(j-1) n)``;
``O(m n)`` memory and ``O(m n lambda)`` time per generation, no matrix. With the best
``mu = lambda / 2`` candidates weighted as in CMA-ES (``w_i`` from ``ln(mu + 1/2) - ln i``)::

    y     <- y + sigma sum_i w_i d_i:lambda
    p     <- (1 - c_s) p + sqrt(mu_w c_s (2 - c_s)) sum_i w_i z_i:lambda
    M_j   <- (1 - c_c,j) M_j + sqrt(mu_w c_c,j (2 - c_c,j)) sum_i w_i z_i:lambda
    sigma <- sigma exp(min(1, c_s / 2 (|p|^2 / n - 1)))

with ``c_s = 2 lambda / n`` (the paper's; capped at 1 for small ``n``, where the paper's
value exceeds 1). The clip of the exponent at 1 is not the paper's (pycma's CSA clips
``|log sigma change|`` at 1 likewise): with ``lambda`` near ``n`` or above (IPOP restarts)
the selected ``z_w`` is much longer than ``N(0, I / mu_w)`` and the rule alone multiplied sigma
by ``e^7`` and more a generation, diverging (5-D sphere, ``lambda = 128``); below ``c_s = 1``
the exponent is above ``-1/2``, so only increases are clipped. ``lambda = 4 + floor(3 ln n)``
and ``m = 4 + floor(3 ln n)``. ``tell`` recovers ``z`` from ``x`` by inverting each factor (Sherman-Morrison), so the state holds
no population.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.problems import sphere
>>> es = ES("lm_ma_es", sigma0=1.0, ftarget=1e-8, max_evals=5000,
...         random_state=0).fit(sphere, np.ones(10))
>>> es.stop_reason_
'ftarget'
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, NamedTuple

import numpy as np

from evostrat.backends import Backend, get_backend
from evostrat.backends.points import check_allocation
from evostrat.backends.trees import replace
from evostrat.params import Interval
from evostrat.errors import InvalidArgumentError
from evostrat.strategies.base import Strategy, clamp_sigma, host_value
from evostrat.strategies.readout import GaussianReadout
from evostrat.strategies.shaping import rank_weights

Array = Any

__all__ = ["LMMAES", "LMMAESState"]


class LMMAESState(NamedTuple):
    mean: Array  # (n,)
    sigma: Array  # 0-d
    p_sigma: Array  # (n,) evolution path of the step size
    M: Array  # (m, n) the memory vectors
    t: Array  # 0-d generation count (which factors are active)
    key: Array


class LMMAES(Strategy):
    """LM-MA-ES: matrix adaptation with ``m`` rank-one memory vectors, ``O(m n)`` per candidate.

    Parameters
    ----------
    popsize : int, optional
        Default ``4 + floor(3 ln n)``; the paper warns against much larger populations.
    sigma0 : float
        Initial step size (a number, or an array of equal values; LM-MA-ES has one global step size,
        so per-coordinate values are refused).
    memory : int, optional
        ``m``, the number of memory vectors; default ``4 + floor(3 ln n)``.
    c_sigma : float, optional
        Step-size path rate ``c_s``; default ``min(2 lambda / n, 1)``.

    References
    ----------
    Loshchilov, Glasmachers, Beyer, "Large Scale Black-Box Optimization by Limited-Memory
    Matrix Adaptation", IEEE Transactions on Evolutionary Computation 23(2), 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.problems import sphere
    >>> from evostrat.strategies import LMMAES
    >>> es = ES(LMMAES(), ftarget=1e-10, random_state=0).fit(sphere, np.ones(10))
    >>> bool(es.fun_ < 1e-9)
    True
    """

    initial_only_params = frozenset({"sigma0"})  # read by initial_state alone

    State = LMMAESState
    state_type = LMMAESState  # the states ask, tell and the read-outs take
    parameter_constraints = {
        "memory": [Interval(Integral, 1, None, closed="left"), None],
        "c_sigma": [Interval(Real, 0, 1, closed="right"), None],
    }

    def __init__(self, popsize: int | None = None, sigma0: Any = 1.0, memory: int | None = None,
                 c_sigma: float | None = None) -> None:
        super().__init__(popsize=popsize, sigma0=sigma0)
        self.memory, self.c_sigma = memory, c_sigma

    # -- constants (host numbers, computed from the dimension) -------------------------------
    def resolved_memory(self, dim: int) -> int:
        return 4 + int(math.floor(3 * math.log(dim))) if self.memory is None else int(self.memory)

    def constants(self, dim: int) -> dict[str, Any]:
        """``weights`` (sorted, best first, zero beyond ``mu``), ``mu_w``, ``c_s``, ``c_d``, ``c_c``."""
        lam = self.resolved_popsize(dim)
        mu = lam // 2
        w = np.zeros(lam)
        w[:mu] = np.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
        w /= w.sum()
        m = self.resolved_memory(dim)
        j = np.arange(m)
        c_s = min(2.0 * lam / dim, 1.0) if self.c_sigma is None else float(self.c_sigma)
        c_c = np.minimum(lam / (4.0**j * dim), 1.0)
        return {"weights": w, "mu_w": 1.0 / float(np.sum(w * w)), "c_s": c_s,
                "c_d": np.minimum(1.0 / (1.5**j * dim), 0.5), "c_c": c_c, "m": m}  # 0.5: n = 1 only

    def initial_state(self, x0: Array, key: Any, backend: Backend) -> LMMAESState:
        xp = backend.xp
        sigma = xp.max(self.initial_sigma(x0, backend))
        if np.ptp(np.asarray(host_value(self.sigma0), dtype=np.float64)) != 0:  # not max(sigma0) silently
            raise InvalidArgumentError(f"sigma0 must be a number for lm_ma_es (one global step size; "
                                       f"per-coordinate values need cma_es, sep_cma_es or vkd_cma), got {self.sigma0!r}")
        m, dim = self.resolved_memory(x0.shape[0]), x0.shape[0]
        check_allocation(f"a state of {m} x {dim} memory values", m * dim * x0.dtype.itemsize, f"memory={m}")
        M = xp.zeros((m, dim), dtype=x0.dtype, device=backend.device(x0))
        t = xp.zeros((), dtype=x0.dtype, device=backend.device(x0))
        return LMMAESState(mean=x0, sigma=sigma, p_sigma=xp.zeros_like(x0), M=M, t=t, key=key)

    def _factors(self, state: LMMAESState) -> tuple[list[Array], Any]:
        """The active ``c_d,j`` (0 for ``j >= t``) as 0-d arrays, and the namespace."""
        xp = get_backend(state.mean).xp
        c_d = self.constants(state.mean.shape[0])["c_d"]
        return [xp.where(state.t > j, float(c), 0.0 * state.t) for j, c in enumerate(c_d)], xp

    def directions(self, state: LMMAESState, Z: Array) -> Array:
        """``d`` for noise rows ``Z`` (lambda, n): the factors applied for ``j = 1 .. m``."""
        cs, xp = self._factors(state)
        D = Z
        for j, c in enumerate(cs):
            Mj = state.M[j]
            D = (1 - c) * D + c * xp.matmul(D, Mj)[:, None] * Mj
        return D

    def noise(self, state: LMMAESState, D: Array) -> Array:
        """Inverse of :meth:`directions`: ``((1 - c) I + c m m^T)^-1 = (I - c m m^T / (1 - c + c |m|^2)) / (1 - c)``."""
        cs, xp = self._factors(state)
        Z = D
        for j in reversed(range(len(cs))):
            c, Mj = cs[j], state.M[j]
            a = 1 - c
            Z = (Z - (c / (a + c * xp.sum(Mj * Mj))) * xp.matmul(Z, Mj)[:, None] * Mj) / a
        return Z

    def gaussian_readout(self, state: LMMAESState) -> GaussianReadout:
        """``d = P^T z`` with ``P = F_1 ... F_m``, ``F_j = (1 - c_j) I + c_j M_j M_j^T``: ``C = P^T P``
        as ``alpha^2 I + U diag(s) U^T`` (``k = m`` directions), in ``O(m^2 n + m^3)``, never dense.

        ``P = alpha I + M^T K M`` (``K`` of shape ``(m, m)``): ``P F_j`` has ``alpha' = (1 - c_j) alpha``
        and ``K' = (1 - c_j) K + c_j (alpha e_j + K G e_j) e_j^T``, ``G = M M^T``. Then
        ``P^T P = alpha^2 I + M^T S M``, ``S = alpha (K + K^T) + K^T G K = Q diag(s) Q^T``, so
        ``U = M^T Q``.
        """
        cs, xp = self._factors(state)
        M = state.M
        m = M.shape[0]
        G = xp.matmul(M, M.T)
        eye = xp.eye(m, dtype=M.dtype, device=get_backend(M).device(M))
        alpha, K = 1.0 + 0.0 * state.t, 0.0 * G
        for j, c in enumerate(cs):
            column = alpha * eye[j] + xp.matmul(K, G[:, j])
            K = (1 - c) * K + c * column[:, None] * eye[j][None, :]
            alpha = (1 - c) * alpha
        S = alpha * (K + K.T) + xp.matmul(K.T, xp.matmul(G, K))
        s, Q = xp.linalg.eigh(0.5 * (S + S.T))
        return GaussianReadout(state.mean, state.sigma, diagonal=alpha * alpha + 0.0 * state.mean,
                               U=xp.matmul(M.T, Q), s=s)

    def ask(self, state: LMMAESState) -> tuple[Array, LMMAESState]:
        be = get_backend(state.mean)
        dim = state.mean.shape[0]
        key, sub = be.split(state.key)
        Z = be.normal_rows(sub, range(self.resolved_popsize(dim)), dim, state.mean.dtype, be.device(state.mean))
        return state.mean + state.sigma * self.directions(state, Z), replace(state, key=key)

    def tell(self, state: LMMAESState, X: Array, fitness: Array) -> LMMAESState:
        be = get_backend(state.mean)
        xp = be.xp
        dim = state.mean.shape[0]
        k = self.constants(dim)
        dtype, device = state.mean.dtype, be.device(state.mean)
        D = (X - state.mean) / state.sigma
        Z = self.noise(state, D)
        w = rank_weights(fitness, be.asarray(k["weights"], dtype=dtype, device=device))
        mean = state.mean + state.sigma * xp.matmul(w, D)
        zw = xp.matmul(w, Z)
        c_s, mu_w = k["c_s"], k["mu_w"]
        p_sigma = (1 - c_s) * state.p_sigma + math.sqrt(mu_w * c_s * (2 - c_s)) * zw
        c_c = be.asarray(k["c_c"], dtype=dtype, device=device)[:, None]
        M = (1 - c_c) * state.M + xp.sqrt(mu_w * c_c * (2 - c_c)) * zw
        sigma = clamp_sigma(state.sigma * xp.exp(xp.clip(0.5 * c_s * (xp.sum(p_sigma * p_sigma) / dim - 1), max=1.0)))
        ok = xp.isfinite(xp.sum(mean)) & xp.isfinite(sigma) & xp.isfinite(xp.sum(M))
        return replace(state, mean=xp.where(ok, mean, state.mean), sigma=xp.where(ok, sigma, state.sigma),
                       p_sigma=xp.where(ok, p_sigma, state.p_sigma), M=xp.where(ok, M, state.M),
                       t=state.t + 1)
