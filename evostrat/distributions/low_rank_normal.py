"""Low-rank-plus-diagonal Gaussian: ``N(mu, diag(sigma^2) + V V^T)`` with ``V`` of shape (d, k).

The covariance model of VkD-CMA (Akimoto & Hansen, "Projection-based restricted
covariance matrix adaptation for high dimension", GECCO 2016) and of R1-NES (Sun,
Schaul, Gomez, Schmidhuber, GECCO 2013, for ``k = 1`` and isotropic ``sigma``): ``k``
learnt directions on top of a diagonal, in ``O(k d)`` memory and ``O(k d + k^3)``
time per draw. A draw is ``mu + sigma * z + V w`` with ``(z, w) ~ N(0, I_{d + k})``
(``noise_dim = d + k``, rows addressable). Everything else goes through Woodbury's
identity with the ``k x k`` capacitance ``K = I + V^T diag(sigma^-2) V``::

    Sigma^-1       = D^-2 - D^-2 V K^-1 V^T D^-2,    D = diag(sigma)
    log det Sigma  = 2 sum log sigma + log det K
    score, with s = Sigma^-1 (x - mu):
        mu:    s
        sigma: sigma * (s^2 - diag(Sigma^-1))
        V:     s (s^T V) - Sigma^-1 V

:meth:`LowRankNormal.natural_gradient` applies the inverse Fisher information in ``O(d k^2)``
per conjugate-gradient iteration (:mod:`evostrat.distributions.low_rank_fisher`), so the generic
NES follows the natural gradient (damped: see ``damping``). :meth:`LowRankNormal.weighted_score`
sums scores over a sample without the ``(n, d, k)`` per-draw array.

Examples
--------
>>> import numpy as np
>>> from evostrat.distributions.low_rank_normal import LowRankNormal
>>> V = np.array([[1.0], [1.0]])
>>> p = LowRankNormal(np.zeros(2), np.ones(2), V)
>>> np.round(p.covariance, 6).tolist()
[[2.0, 1.0], [1.0, 2.0]]
>>> round(float(p.log_prob(np.zeros(2))), 4)   # -log(2 pi) - log(det) / 2, det = 3
-2.3872
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

from evostrat.distributions.base import LOG_2PI, Array, Distribution
from evostrat.distributions.low_rank_fisher import fisher_parts, solve_fisher
from evostrat.errors import InvalidArgumentError

__all__ = ["LowRankNormal"]


class LowRankNormal(Distribution):
    """Gaussian with covariance ``diag(sigma^2) + V V^T``.

    Parameters
    ----------
    mu : array, shape (d,)
    sigma : number or array, shape (d,)
        Positive diagonal standard deviations.
    V : array, shape (d, k)
        The ``k`` low-rank directions (any real matrix; ``k >= 1``).
    mirrored : bool
        Antithetic sampling.
    damping : float
        :meth:`natural_gradient` solves ``(F + damping B) x = g``, ``B`` the Fisher of
        ``diag(sigma^2)`` in ``log sigma`` plus ``Sigma^-1 (x) I`` in ``V`` (scale-free
        Levenberg-Marquardt damping); 0 (the default) is the exact ``F^+ g``. Searches start
        with 1 (:meth:`search_init`).

    References
    ----------
    Akimoto, Hansen, "Projection-based restricted covariance matrix adaptation for high
    dimension", GECCO 2016; Sun, Schaul, Gomez, Schmidhuber, "A Linear Time Natural Evolution
    Strategy for Non-Separable Functions", GECCO 2013.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat.distributions import LowRankNormal
    >>> V = np.ones((3, 1))
    >>> q = LowRankNormal(np.zeros(3), 0.5, V)
    >>> q.sample(4, key=0).shape
    (4, 3)
    >>> C, x = 0.25 * np.eye(3) + V @ V.T, np.ones(3)             # the dense covariance
    >>> dense = -0.5 * (x @ np.linalg.solve(C, x) + np.linalg.slogdet(2 * np.pi * C)[1])
    >>> bool(np.isclose(q.log_prob(x[None])[0], dense))
    True
    """

    param_names = ("mu", "sigma", "V")
    event_ndim = 1
    positive = frozenset({"sigma"})
    static_attrs = ("mirrored", "damping")

    def __init__(self, mu: Any, sigma: Any, V: Any, *, mirrored: bool = False, damping: float = 0.0) -> None:
        if isinstance(damping, bool) or not isinstance(damping, Real) or not 0 <= damping < math.inf:
            raise InvalidArgumentError(f"damping must be a finite number >= 0, got {damping!r}")
        self.damping = float(damping)
        self.mu, self.sigma, self.V = self.convert_params(mirrored, mu=mu, sigma=sigma, V=V)
        if self.mu.ndim != 1:
            raise InvalidArgumentError(f"mu must have shape (d,), got {tuple(self.mu.shape)}")
        d = self.mu.shape[0]
        if self.sigma.ndim == 0:
            self.sigma = self.xp.ones_like(self.mu) * self.sigma
        if tuple(self.sigma.shape) != (d,):
            raise InvalidArgumentError(f"sigma must be a number or have shape ({d},), got {tuple(self.sigma.shape)}")
        if self.V.ndim != 2 or self.V.shape[0] != d or self.V.shape[1] < 1:
            raise InvalidArgumentError(f"V must have shape ({d}, k) with k >= 1, got {tuple(self.V.shape)}")
        self.validate(
            ("mu must be finite (it contains NaN or inf)", self.finite_condition(mu, self.mu)),
            ("sigma must be positive and finite everywhere", self.finite_condition(sigma, self.sigma, positive=True)),
            ("V must be finite (it contains NaN or inf)", self.finite_condition(V, self.V)),
        )

    @classmethod
    def search_init(cls, mean: Array, sigma: Array, **options: Any) -> "LowRankNormal":
        """Options ``rank`` (k, default ``min(4, d)``), ``init_scale`` (default 0.1): ``V[i, i mod k] =
        init_scale * sigma_i``, small directions to grow from (``V = 0`` is a stationary point
        of every gradient in ``V``), and ``damping`` of the natural gradient (default 1: the
        undamped step, with a population of ``O(log d)`` estimating ``d (k + 1)`` parameters,
        amplifies noise along the Fisher's small eigenvalues and diverges)."""
        unknown = sorted(set(options) - {"rank", "init_scale", "damping"})
        if unknown:
            raise InvalidArgumentError(
                f"LowRankNormal's distribution_options are ['damping', 'init_scale', 'rank'], got {unknown}")
        d = mean.shape[0]
        k, scale = options.get("rank", min(4, d)), options.get("init_scale", 0.1)
        damping = options.get("damping", 1.0)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= d:
            raise InvalidArgumentError(f"rank must be an int in [1, d={d}], got {k!r}")
        p = cls(mean, sigma, mean[:, None] * 0.0 + sigma[:, None] * 0.0, damping=damping)  # validated
        xp = p.xp
        cols = xp.arange(k, device=p.device)
        rows = xp.arange(d, device=p.device) % k
        pick = xp.astype(rows[:, None] == cols[None, :], p.dtype)
        return cls(p.mu, p.sigma, scale * pick * p.sigma[:, None], damping=damping)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return ()

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (int(self.mu.shape[0]),)

    @property
    def noise_dim(self) -> int:
        return int(self.mu.shape[0] + self.V.shape[1])

    @property
    def mean(self) -> Array:
        return self.mu

    @property
    def covariance(self) -> Array:
        """``diag(sigma^2) + V V^T`` as a dense (d, d) matrix (small d only)."""
        xp = self.xp
        return xp.matmul(self.V, self.V.T) + xp.eye(self.mu.shape[0], dtype=self.dtype, device=self.device) * (
            self.sigma * self.sigma)

    def marginal_scale(self) -> Array:
        """``sqrt(sigma^2 + rowsum(V^2))``."""
        return self.xp.sqrt(self.sigma * self.sigma + self.xp.sum(self.V * self.V, axis=1))

    def transform_noise(self, eps: Array) -> Array:
        d = self.mu.shape[0]
        return self.mu + self.sigma * eps[..., :d] + self.xp.matmul(eps[..., d:], self.V.T)

    # -- Woodbury pieces ---------------------------------------------------------------------
    def _capacitance(self) -> tuple[Array, Array]:
        """``(P, L_K)``: ``P = D^-2 V`` (d, k) and the Cholesky factor of ``K = I + V^T P``."""
        xp = self.xp
        P = self.V / (self.sigma * self.sigma)[:, None]
        k = self.V.shape[1]
        K = xp.eye(k, dtype=self.dtype, device=self.device) + xp.matmul(self.V.T, P)
        return P, xp.linalg.cholesky(K)

    def _solve(self, r: Array, P: Array, LK: Array) -> Array:
        """``Sigma^-1 r`` for rows ``r`` of shape (n, d)."""
        xp = self.xp
        t = xp.matmul(r, P)  # (n, k) = r D^-2 V
        t = xp.linalg.solve(LK.T, xp.linalg.solve(LK, t.T)).T  # K^-1
        return r / (self.sigma * self.sigma) - xp.matmul(t, P.T)

    def _flat(self, x: Any) -> tuple[Array, tuple[int, ...]]:
        x = self.asarray(x)
        n = self.sample_ndim(x)
        d = self.mu.shape[0]
        return self.xp.reshape(x - self.mu, (-1, d)), tuple(x.shape[:n])

    def log_prob(self, x: Any) -> Array:
        """Log density of each draw, shape ``sample_shape``."""
        xp = self.xp
        r, shape = self._flat(x)
        P, LK = self._capacitance()
        s = self._solve(r, P, LK)
        log_det = 2 * xp.sum(xp.log(self.sigma)) + 2 * xp.sum(xp.log(xp.linalg.diagonal(LK)))
        d = self.mu.shape[0]
        return xp.reshape(-0.5 * xp.sum(r * s, axis=-1) - 0.5 * log_det - 0.5 * d * LOG_2PI, shape)

    def entropy(self) -> Array:
        xp = self.xp
        _, LK = self._capacitance()
        d = self.mu.shape[0]
        return xp.sum(xp.log(self.sigma)) + xp.sum(xp.log(xp.linalg.diagonal(LK))) + 0.5 * d * (1 + LOG_2PI)

    def _precision_parts(self, P: Array, LK: Array) -> tuple[Array, Array]:
        """``diag(Sigma^-1)`` (d,) and ``Sigma^-1 V`` (d, k)."""
        xp = self.xp
        Q = xp.linalg.solve(LK, P.T).T  # P L_K^-T: diag(P K^-1 P^T) = rowsum(Q^2)
        diag = 1.0 / (self.sigma * self.sigma) - xp.sum(Q * Q, axis=1)
        return diag, self._solve(self.V.T, P, LK).T

    def score(self, x: Any) -> dict[str, Array]:
        xp = self.xp
        r, shape = self._flat(x)
        P, LK = self._capacitance()
        s = self._solve(r, P, LK)
        diag, SV = self._precision_parts(P, LK)
        d, k = self.V.shape
        g_V = s[:, :, None] * xp.matmul(s, self.V)[:, None, :] - SV
        return {"mu": xp.reshape(s, shape + (d,)),
                "sigma": xp.reshape(self.sigma * (s * s - diag), shape + (d,)),
                "V": xp.reshape(g_V, shape + (d, k))}

    def weighted_score(self, x: Any, weights: Array) -> dict[str, Array]:
        """``sum_i weights_i score(x_i)`` in ``O(n d k)`` time and ``O(n d + d k)`` memory."""
        xp = self.xp
        r, _ = self._flat(x)
        P, LK = self._capacitance()
        s = self._solve(r, P, LK)
        diag, SV = self._precision_parts(P, LK)
        total = xp.sum(weights)
        ws = weights[:, None] * s
        return {"mu": xp.sum(ws, axis=0),
                "sigma": self.sigma * (xp.sum(ws * s, axis=0) - total * diag),
                "V": xp.matmul(ws.T, xp.matmul(s, self.V)) - total * SV}

    def natural_gradient(self, grads: dict[str, Array]) -> dict[str, Array]:
        """``F^+ g`` in ``(mu, log sigma, V)``: ``Sigma g_mu`` for the mean (``O(d k)``) and the
        covariance block solved by preconditioned conjugate gradients on ``O(d k^2)`` Fisher-vector
        products (:mod:`evostrat.distributions.low_rank_fisher`; the Gaussian Fisher
        ``1/2 tr(Sigma^-1 dSigma_a Sigma^-1 dSigma_b)``, Wierstra et al., JMLR 2014, sec. 2.3). For
        ``k >= 2`` the Fisher is singular along ``V -> V R`` (``R`` orthogonal), and the step is the
        minimum-norm solution (the pseudo-inverse). With ``damping > 0`` the covariance block
        solves ``(F + damping B) x = g`` instead (see the class); the mean block stays exact.

        Examples
        --------
        >>> import numpy as np
        >>> p = LowRankNormal(np.zeros(3), np.ones(3), np.ones((3, 1)))
        >>> step = p.natural_gradient({"mu": np.array([1.0, 0.0, 0.0]), "sigma": np.zeros(3),
        ...                            "V": np.zeros((3, 1))})
        >>> step["mu"].tolist()   # Sigma g_mu: the first column of I + 1 1^T
        [2.0, 1.0, 1.0]
        >>> bool(np.allclose(step["sigma"], 0.0) and np.allclose(step["V"], 0.0))
        True
        """
        xp, be = self.xp, self._backend
        g_mu = grads["mu"]
        mu_step = self.sigma * self.sigma * g_mu + xp.matmul(self.V, xp.matmul(self.V.T, g_mu))
        lam = self.damping
        parts = fisher_parts(self.sigma, self.V, xp, lam)
        s_step, V_step = solve_fisher(parts, self.sigma * grads["sigma"], grads["V"], xp, eigh=be.eigh,
                                      traceable=be.traceable, damping=lam)
        return {"mu": mu_step, "sigma": s_step, "V": V_step}
