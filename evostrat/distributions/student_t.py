"""Multivariate Student-t search distribution with a diagonal scale.

``StudentT(mu, sigma, df)`` is the elliptical t (Kotz & Nadarajah, "Multivariate t
Distributions and Their Applications", 2004, eq. 1.1) with scale matrix
``diag(sigma^2)`` and an integer number of degrees of freedom ``df`` (``df = 1``:
multivariate Cauchy). A draw is ``mu + sigma * z * sqrt(df / w)`` with ``z ~ N(0, I_d)``
and ``w`` a sum of ``df`` squared standard normals, so every draw consumes ``d + df``
normal values (:attr:`noise_dim`) and rows stay addressable. With ``r = x - mu``,
``q = sum (r / sigma)^2``::

    log p(x)          = lgamma((df + d)/2) - lgamma(df/2) - d/2 log(df pi)
                        - sum log sigma - (df + d)/2 log(1 + q/df)
    d log p / d mu    = (df + d) / (df + q) * r / sigma^2
    d log p / d sigma = (df + d) / (df + q) * r^2 / sigma^3 - 1 / sigma
    entropy           = sum log sigma - lgamma((df + d)/2) + lgamma(df/2) + d/2 log(df pi)
                        + (df + d)/2 (psi((df + d)/2) - psi(df/2))

Its Fisher information (Lange, Little & Taylor, JASA 1989, sec. 3) has no location-scale
cross term; the location block is ``(df + d) / (df + d + 2) diag(sigma^-2)`` and, in log
units ``s = log sigma``, the scale block is ``alpha I - beta 1 1^T`` with
``alpha = 2 (df + d) / (df + d + 2)``, ``beta = 2 / (df + d + 2)`` (inverted by
Sherman-Morrison in :meth:`StudentT.natural_gradient`; ``df -> inf`` gives the Gaussian's).

Examples
--------
>>> import numpy as np
>>> from evostrat.distributions.student_t import StudentT
>>> p = StudentT(np.zeros(3), np.ones(3), df=4)
>>> p.sample(5, key=0).shape, p.noise_dim
((5, 3), 7)
>>> round(float(p.log_prob(np.zeros(3))), 4)
-2.5956
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from evostrat.distributions.base import Array, Distribution
from evostrat.errors import InvalidArgumentError

__all__ = ["StudentT", "digamma_half_integer"]

_EULER = 0.57721566490153286061


def digamma_half_integer(a: float) -> float:
    """``psi(a)`` for ``a`` a positive integer or half-integer (closed forms, Abramowitz &
    Stegun 6.3.2 and 6.3.4).

    >>> round(digamma_half_integer(1.0), 6), round(digamma_half_integer(0.5), 6)
    (-0.577216, -1.96351)
    """
    n = int(math.floor(a))
    if a == n:
        return -_EULER + sum(1.0 / k for k in range(1, n))
    return -_EULER - 2 * math.log(2.0) + sum(2.0 / (2 * k - 1) for k in range(1, n + 1))


class StudentT(Distribution):
    """Multivariate Student-t with location ``mu``, diagonal scale ``sigma`` and ``df`` degrees of freedom.

    Parameters
    ----------
    mu : array, shape (d,)
    sigma : number or array, shape (d,)
        Positive scale per coordinate (the standard deviation is
        ``sigma * sqrt(df / (df - 2))`` for ``df > 2``).
    df : int
        Degrees of freedom, a positive int (a static hyper-parameter, not searched).
    mirrored : bool
        Antithetic sampling (``z`` mirrored, ``w`` shared).

    References
    ----------
    Kotz, Nadarajah, "Multivariate t Distributions and Their Applications", Cambridge
    University Press, 2004, eq. 1.1.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat.distributions import StudentT
    >>> p = StudentT(np.zeros(2), np.ones(2), df=3)
    >>> p.sample(4, key=0).shape
    (4, 2)
    >>> bool(np.isclose(p.log_prob(np.zeros((1, 2)))[0], -np.log(2 * np.pi)))  # d = 2, df = 3 at the mode
    True
    """

    param_names = ("mu", "sigma")
    event_ndim = 1
    positive = frozenset({"sigma"})
    static_attrs = ("mirrored", "df")

    def __init__(self, mu: Any, sigma: Any, df: int = 5, *, mirrored: bool = False) -> None:
        if isinstance(df, bool) or not isinstance(df, numbers.Integral) or df < 1:
            raise InvalidArgumentError(f"df must be a positive int (degrees of freedom), got {df!r}")
        self.df = int(df)
        self.mu, self.sigma = self.convert_params(mirrored, mu=mu, sigma=sigma)
        if self.mu.ndim != 1:
            raise InvalidArgumentError(f"mu must have shape (d,), got {tuple(self.mu.shape)}")
        if self.sigma.ndim == 0:
            self.sigma = self.xp.ones_like(self.mu) * self.sigma
        if tuple(self.sigma.shape) != tuple(self.mu.shape):
            raise InvalidArgumentError(
                f"sigma must be a number or have shape {tuple(self.mu.shape)} like mu, got {tuple(self.sigma.shape)}")
        self.validate(
            ("mu must be finite (it contains NaN or inf)", self.finite_condition(mu, self.mu)),
            ("sigma must be positive and finite everywhere", self.finite_condition(sigma, self.sigma, positive=True)),
        )

    @classmethod
    def search_init(cls, mean: Array, sigma: Array, **options: Any) -> "StudentT":
        """``cls(mean, sigma, df=options.get("df", 5))``."""
        unknown = sorted(set(options) - {"df"})
        if unknown:
            raise InvalidArgumentError(f"StudentT's distribution_options are ['df'], got {unknown}")
        return cls(mean, sigma, **options)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return ()

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (int(self.mu.shape[0]),)

    @property
    def noise_dim(self) -> int:
        return int(self.mu.shape[0]) + self.df

    @property
    def mean(self) -> Array:
        return self.mu

    def marginal_scale(self) -> Array:
        """``sigma`` (the scale; the standard deviation is infinite for ``df <= 2``)."""
        return self.sigma

    def transform_noise(self, eps: Array) -> Array:
        d, xp = self.mu.shape[0], self.xp
        w = xp.sum(eps[..., d:] * eps[..., d:], axis=-1, keepdims=True)
        return self.mu + self.sigma * eps[..., :d] * xp.sqrt(self.df / w)

    def _const(self) -> float:
        d, nu = int(self.mu.shape[0]), self.df
        return math.lgamma((nu + d) / 2) - math.lgamma(nu / 2) - 0.5 * d * math.log(nu * math.pi)

    def _parts(self, x: Any) -> tuple[Array, Array, Array]:
        """``(r, q, (df + d) / (df + q))`` with a trailing axis on the last two."""
        x = self.asarray(x)
        self.sample_ndim(x)
        r = x - self.mu
        y = r / self.sigma
        q = self.xp.sum(y * y, axis=-1, keepdims=True)
        return r, q, (self.df + self.mu.shape[0]) / (self.df + q)

    def log_prob(self, x: Any) -> Array:
        """Log density of each draw, shape ``sample_shape``."""
        _, q, _ = self._parts(x)
        xp, d = self.xp, self.mu.shape[0]
        return (self._const() - xp.sum(xp.log(self.sigma))
                - 0.5 * (self.df + d) * xp.log1p(q[..., 0] / self.df))

    def entropy(self) -> Array:
        d, nu = int(self.mu.shape[0]), self.df
        psi = digamma_half_integer((nu + d) / 2) - digamma_half_integer(nu / 2)
        return self.xp.sum(self.xp.log(self.sigma)) - self._const() + 0.5 * (nu + d) * psi

    def score(self, x: Any) -> dict[str, Array]:
        r, _, c = self._parts(x)
        var = self.sigma * self.sigma
        return {"mu": c * r / var, "sigma": c * r * r / (var * self.sigma) - 1.0 / self.sigma}

    def natural_gradient(self, grads: dict[str, Array]) -> dict[str, Array]:
        """``F^{-1} g``: location ``(df + d + 2) / (df + d) sigma^2 g_mu``; log-scale
        ``g_s / alpha + beta sum(g_s) / (alpha (alpha - beta d))`` with ``g_s = sigma g_sigma``."""
        d, nu = int(self.mu.shape[0]), self.df
        alpha, beta = 2.0 * (nu + d) / (nu + d + 2), 2.0 / (nu + d + 2)
        g_s = self.sigma * grads["sigma"]
        nat_s = g_s / alpha + beta * self.xp.sum(g_s) / (alpha * (alpha - beta * d))
        return {"mu": (nu + d + 2) / (nu + d) * self.sigma * self.sigma * grads["mu"], "sigma": nat_s}
