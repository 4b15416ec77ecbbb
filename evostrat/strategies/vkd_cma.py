"""VkD-CMA: CMA-ES restricted to ``C = D (I + V V^T) D`` (numpy only).

Akimoto and Hansen, "Projection-based restricted covariance matrix adaptation for high
dimension", GECCO 2016. The covariance is a diagonal ``D`` around the identity plus ``k``
orthogonal directions, ``I + V V^T = I + sum_i s_i v_i v_i^T`` (``v_i`` orthonormal,
``s_i >= 0``), so a draw costs ``O(k n)``:

    y = D (z + sum_i sqrt(s_i) z'_i v_i),   z ~ N(0, I_n), z' ~ N(0, I_k),   x = m + sigma y.

After the weighted recombination ``m <- m + sigma sum_i w_i y_i:lambda`` and the path
``p_c``, the CMA-ES target matrix, written in ``D``-normalised coordinates,
``alpha^2 (I + V V^T) + c_mu sum w_i (y_i/D)(y_i/D)^T + c_1 (p_c/D)(p_c/D)^T``, is
projected back onto the model: its ``k`` leading eigenpairs ``(l_j, e_j)`` come from the
Gram matrix of the ``n x (k + mu + 1)`` factor ``U`` (``O(n k^2 + k^3)``), the rest of
its spectrum, averaged, is ``gamma``; then ``s_j = (l_j - gamma) / (alpha^2 + gamma)``,
``v_j = U e_j / sqrt(l_j)``, and ``D`` is rescaled so that the model's diagonal matches
the target's, then normalised to ``det C = 1`` (the scale lives in ``sigma``). The
learning rates are CMA-ES's with ``n (k + 1)`` free parameters,
``c_1 = 2 / (n (k + 1) + n + 2 (k + 2) + mu_w)``, ``c_c = sqrt(c_1)``. The step size
follows the two-point adaptation (TPA, Hansen 2008): two candidates are drawn at
``+-`` the last mean shift (scaled to a typical Mahalanobis length) and
``p_s <- p_s + c_s ((rank(-) - rank(+)) / (lambda - 1) - p_s)``,
``sigma <- sigma exp(p_s / sqrt(n))``, ``c_s = 0.3``.

``k="auto"`` selects ``k`` online (Akimoto and Hansen, "Online model selection for restricted
covariance matrix adaptation", PPSN 2016): from ``k = 0``, once ``2 n - 1`` generations passed since
the last change, every direction is long (``1 + s_i > 30``) and ``sigma`` and the diagonal of ``C``
have settled (their log-changes per generation, in units of their learning rates, below 0.1 and 1),
``k`` grows to ``min(max(ceil(sqrt(2) k), k + 1), n - 1)``; after ``k (2 n - 1)`` generations the
directions that are short (``1 + s_i < 30``) and shrinking are dropped. The log-changes are
averaged over generations with rate ``c_1 + c_mu`` (this rate is our choice). Only the numpy backend runs it; torch and JAX are refused.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.problems import sphere
>>> from evostrat.strategies.vkd_cma import VkDCMA
>>> es = ES(VkDCMA(k=2), sigma0=1.0, ftarget=1e-8, max_evals=20000, random_state=0).fit(sphere, np.ones(10))
>>> es.stop_reason_
'ftarget'
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import Any, NamedTuple

import numpy as np

from evostrat.backends import Backend, get_backend
from evostrat.backends.trees import replace
from evostrat.errors import InvalidArgumentError
from evostrat.params import Interval, StrOptions
from evostrat.strategies.base import Strategy, clamp_sigma

Array = Any

__all__ = ["VkDCMA", "VkDCMAState"]


class VkDCMAState(NamedTuple):
    mean: Array  # (n,)
    sigma: Array  # 0-d
    D: Array  # (n,) the diagonal factor
    V: Array  # (k, n) orthonormal directions
    s: Array  # (k,) their excess variances, >= 0
    p_c: Array  # (n,) evolution path of the covariance
    p_s: Array  # 0-d TPA's smoothed rank difference
    shift: Array  # (n,) the last mean shift over sigma (TPA's direction)
    t: Array  # 0-d generation count
    since: Array  # 0-d generations since k last changed (k="auto")
    logs: Array  # (1 + n + k,) log sigma, log diag C, log(1 + s) of the last generation (k="auto")
    drift: Array  # (1 + n + k,) moving averages of their changes per generation, in learning rates
    key: Array


class VkDCMA(Strategy):
    """VkD-CMA with ``k`` directions: ``C = D (I + V V^T) D``, ``O(k n)`` per candidate.

    Parameters
    ----------
    popsize : int, optional
        Default ``4 + floor(3 ln n)`` (at least 4: TPA takes two candidates).
    sigma0 : float
        Initial step size.
    k : int or "auto", default "auto"
        Number of directions ``V`` (0: a diagonal model; capped at ``n - 1``); ``"auto"``: selected
        online from 0 (PPSN 2016), the paper's recommendation when the problem's structure is
        unknown.
    """

    State = VkDCMAState
    min_popsize = 4
    parameter_constraints = {"k": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})]}

    def __init__(self, popsize: int | None = None, sigma0: Any = 1.0, k: int | str = "auto") -> None:
        super().__init__(popsize=popsize, sigma0=sigma0)
        self.k = k

    def constants(self, dim: int, k: int | None = None) -> dict[str, Any]:
        """Weights (best first, ``mu = lambda // 2``), ``mu_w``, ``k``, ``c_1``, ``c_mu``, ``c_c``
        (for ``k`` directions; default: the initial ``k``, 0 for ``"auto"``)."""
        lam = self.resolved_popsize(dim)
        mu = lam // 2
        w = np.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
        w /= w.sum()
        mu_w = 1.0 / float(np.sum(w * w))
        k = min(int(0 if self.k == "auto" else self.k) if k is None else k, dim - 1)
        c_1 = 2.0 / (dim * (k + 1) + dim + 2.0 * (k + 2) + mu_w)
        c_mu = min(1.0 - c_1, 2.0 * (mu_w - 2.0 + 1.0 / mu_w) / (dim * (k + 1) + 4.0 * (k + 2) + mu_w))
        return {"weights": w, "mu_w": mu_w, "k": k, "c_1": c_1, "c_mu": c_mu, "c_c": math.sqrt(c_1),
                "c_s": 0.3, "d_s": math.sqrt(dim)}

    def initial_state(self, x0: Array, key: Any, backend: Backend) -> VkDCMAState:
        if backend.name != "numpy":
            raise InvalidArgumentError(f"vkd_cma runs on the numpy backend only, got backend {backend.name!r}")
        self.validate_params()
        n = x0.shape[0]
        k = self.constants(n)["k"]
        sigma = np.asarray(np.max(np.asarray(self.initial_sigma(x0, backend))), dtype=x0.dtype)
        zero = np.zeros((), dtype=x0.dtype)
        return VkDCMAState(mean=x0, sigma=sigma, D=np.ones(n, dtype=x0.dtype), V=np.zeros((k, n), dtype=x0.dtype),
                           s=np.zeros(k, dtype=x0.dtype), p_c=np.zeros_like(x0), p_s=zero, shift=np.zeros_like(x0),
                           t=zero, since=zero, logs=np.zeros(1 + n + k, dtype=x0.dtype), drift=np.zeros(1 + n + k, dtype=x0.dtype),
                           key=key)

    def covariance(self, state: VkDCMAState) -> np.ndarray:
        """The dense ``D (I + V^T diag(s) V) D`` (``O(n^2)``: for tests and small ``n``)."""
        inner = np.eye(state.D.shape[0]) + (state.V.T * state.s) @ state.V
        return state.D[:, None] * inner * state.D[None, :]

    def _mahalanobis2(self, state: VkDCMAState, y: np.ndarray) -> np.ndarray:
        """``y^T C^-1 y`` for the unscaled model (Woodbury over the orthonormal ``V``)."""
        u = y / state.D
        proj = state.V @ u
        return np.sum(u * u) - np.sum(proj * proj * state.s / (1.0 + state.s))

    def ask(self, state: VkDCMAState) -> tuple[Array, VkDCMAState]:
        be = get_backend(state.mean)
        n, k = state.mean.shape[0], state.V.shape[0]
        lam = self.resolved_popsize(n)
        key, sub, sub_k = be.split(state.key, 3)
        Z = be.normal_rows(sub, range(lam), n, state.mean.dtype)
        if k:
            Z = Z + (be.normal_rows(sub_k, range(lam), k, state.mean.dtype) * np.sqrt(state.s)) @ state.V
        Y = Z * state.D
        if float(state.t) > 0:  # TPA: the two mirrored candidates along the last mean shift
            m2 = self._mahalanobis2(state, state.shift)
            if m2 > 0:
                y = state.shift * (np.linalg.norm(be.normal_rows(sub, [lam], n, state.mean.dtype)[0])
                                   / math.sqrt(m2))
                Y[0], Y[1] = y, -y
        return state.mean + state.sigma * Y, replace(state, key=key)

    def tell(self, state: VkDCMAState, X: Array, fitness: Array) -> VkDCMAState:
        c = self.constants(state.mean.shape[0], state.V.shape[0])
        n, k = state.mean.shape[0], c["k"]
        lam = X.shape[0]
        Y = (X - state.mean) / state.sigma
        order = np.argsort(np.asarray(fitness), kind="stable")
        w = c["weights"]
        Ysel = Y[order[: w.shape[0]]]
        shift = w @ Ysel
        mean = state.mean + state.sigma * shift
        sigma, p_s, h_s = state.sigma, state.p_s, True
        if float(state.t) > 0:
            rank = np.empty(lam)
            rank[order] = np.arange(lam)
            p_s = p_s + c["c_s"] * ((rank[1] - rank[0]) / (lam - 1.0) - p_s)
            sigma = clamp_sigma(sigma * np.exp(p_s / c["d_s"]))
            h_s = bool(p_s < 0.5)
        c_1, c_mu, c_c = c["c_1"], c["c_mu"], c["c_c"]
        p_c = (1 - c_c) * state.p_c + h_s * math.sqrt(c_c * (2 - c_c) * c["mu_w"]) * shift
        alpha2 = abs(1 - c_1 - c_mu + c_1 * (1 - h_s) * c_c * (2 - c_c))
        U = np.concatenate([(state.V.T * np.sqrt(state.s * alpha2)),
                            (Ysel / state.D).T * np.sqrt(c_mu * w), (math.sqrt(c_1) * p_c / state.D)[:, None]], axis=1)
        V, s = state.V, state.s
        if k:
            ev, E = np.linalg.eigh(U.T @ U)  # the nonzero spectrum of U U^T, ascending
            ev, E = ev[::-1], E[:, ::-1]
            top = np.maximum(ev[:k], 0.0)
            gamma = float(np.sum(np.maximum(ev[k:], 0.0))) / (n - k)
            keep = top > gamma
            s = np.where(keep, (top - gamma) / (alpha2 + gamma), 0.0)
            V = ((U @ E[:, :k]) / np.sqrt(np.where(keep, top, 1.0))).T
            V = np.where(keep[:, None], V, 0.0)
        D = state.D * np.sqrt((alpha2 + np.sum(U * U, axis=1)) / (1.0 + (s @ (V * V) if k else 0.0)))
        scale = np.exp((2 * np.sum(np.log(D)) + np.sum(np.log1p(s))) / (2 * n))
        D, p_c = D / scale, p_c / scale
        ok = np.isfinite(np.sum(mean)) and np.isfinite(sigma) and np.isfinite(np.sum(D)) and np.isfinite(np.sum(V))
        if not ok:
            return replace(state, t=state.t + 1)
        dt = state.mean.dtype
        new = replace(state, mean=mean, sigma=np.asarray(sigma, dtype=dt), D=D.astype(dt), V=V.astype(dt),
                      s=s.astype(dt), p_c=p_c.astype(dt), p_s=np.asarray(p_s, dtype=dt), shift=shift.astype(dt),
                      t=state.t + 1, since=state.since + 1)
        return self._select_k(new, c) if self.k == "auto" else new

    def _select_k(self, state: VkDCMAState, c: dict[str, Any]) -> VkDCMAState:
        """Akimoto and Hansen's (PPSN 2016) online choice of ``k``: grow when every direction is
        long and the rest settled, drop short and shrinking directions."""
        n, k = state.mean.shape[0], state.V.shape[0]
        lam = self.resolved_popsize(n)
        log_diag = 2 * np.log(state.D) + np.log1p(state.s @ (state.V * state.V))
        logs = np.concatenate([[np.log(float(state.sigma))], log_diag, np.log1p(state.s)])
        rate = c["c_1"] + c["c_mu"]
        scale = np.concatenate([[0.5 * min(1.0, lam / n) / 3.0], np.full(n + k, rate)])
        change = np.zeros(1 + n + k) if float(state.t) <= 1 else (logs - state.logs[: 1 + n + k]) / scale
        drift = (1 - rate) * state.drift[: 1 + n + k] + rate * change  # our smoothing: rate c_1 + c_mu
        d_sigma, d_diag, d_s = drift[0], drift[1:1 + n], drift[1 + n:]
        since, wait = float(state.since), 2 * n - 1
        long_dirs = 1.0 + state.s > 30.0
        if since > wait and k < n - 1 and np.all(long_dirs) and abs(d_sigma) < 0.1 and np.all(np.abs(d_diag) < 1.0):
            new_k = min(max(math.ceil(k * math.sqrt(2)), k + 1), n - 1)
            grow = np.zeros((new_k - k, n), dtype=state.V.dtype)
            return replace(state, V=np.concatenate([state.V, grow]), s=np.concatenate([state.s, grow[:, 0]]),
                           since=0 * state.since, logs=np.concatenate([logs, np.zeros(new_k - k)]).astype(state.V.dtype),
                           drift=np.concatenate([drift, np.zeros(new_k - k)]).astype(state.V.dtype))
        drop = ~long_dirs & (d_s < 0.0)
        if k and since > k * wait and np.any(drop):
            keep = ~drop
            return replace(state, V=state.V[keep], s=state.s[keep], since=0 * state.since,
                           logs=np.concatenate([logs[: 1 + n], logs[1 + n:][keep]]).astype(state.V.dtype),
                           drift=np.concatenate([drift[: 1 + n], drift[1 + n:][keep]]).astype(state.V.dtype))
        return replace(state, logs=logs.astype(state.V.dtype), drift=drift.astype(state.V.dtype))

    def sigma(self, state: VkDCMAState) -> Array:
        """The largest per-coordinate standard deviation, ``sigma max sqrt(diag C)`` (0-d)."""
        return np.max(state.sigma * state.D * np.sqrt(1.0 + state.s @ (state.V * state.V)))
