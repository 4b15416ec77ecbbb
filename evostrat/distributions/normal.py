"""Gaussian search distributions with independent coordinates.

``Normal(mu, sigma)`` is elementwise, like ``torch.distributions.Normal``: a
batch of independent scalar Gaussians of shape ``broadcast(mu, sigma)``, and
``log_prob`` returns one value per element. ``DiagNormal(mu, sigma)`` treats
the last axis as one vector-valued draw (``torch.distributions.Independent(Normal, 1)``),
so ``log_prob`` sums over it. ``sigma`` is a standard deviation in both.

Formulas, with ``r = x - mu``::

    log p(x)          = -r^2 / (2 sigma^2) - log sigma - log(2 pi) / 2
    d log p / d mu    = r / sigma^2
    d log p / d sigma = (r^2 - sigma^2) / sigma^3
    entropy           = 1/2 + log(2 pi) / 2 + log sigma

(Williams 1992, REINFORCE, sec. 6 gives the two scores; Wierstra et al.,
"Natural Evolution Strategies", JMLR 2014, eq. 8 and Algorithm 6 use them.)

Examples
--------
>>> import numpy as np
>>> from evostrat.distributions import Normal, DiagNormal
>>> p = Normal(np.array([1.0]), 0.05)
>>> p.sample(100, key=0).shape
(100, 1)
>>> round(float(p.log_prob(np.array([1.0]))[0]), 6)  # -log(0.05) - log(2 pi) / 2
2.076794
>>> q = DiagNormal(np.zeros(3), np.ones(3))
>>> q.log_prob(np.zeros((5, 3))).shape
(5,)
>>> round(float(q.entropy()), 4)
4.2568
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from evostrat.distributions.base import LOG_2PI, Array, Distribution, sum_to_shape
from evostrat.errors import InvalidArgumentError

__all__ = ["Normal", "DiagNormal"]


class Normal(Distribution):
    """Elementwise Gaussian ``N(mu, sigma^2)``.

    Parameters
    ----------
    mu : number or array
        Mean; any shape. Its backend (numpy, torch, JAX), dtype and device are
        used for ``sigma`` when that is a number.
    sigma : number or array
        Standard deviation, positive, broadcastable with ``mu``.
    mirrored : bool
        Antithetic sampling (see :class:`~evostrat.distributions.base.Distribution`).

    Examples
    --------
    >>> import torch                                        # doctest: +SKIP
    >>> from evostrat.distributions import Normal           # doctest: +SKIP
    >>> mu = torch.tensor([1.0], requires_grad=True)        # doctest: +SKIP
    >>> p = Normal(mu, 0.05)                                # doctest: +SKIP
    >>> p.log_prob(p.sample(10)).sum().backward()           # doctest: +SKIP
    >>> mu.grad.shape                                       # doctest: +SKIP
    torch.Size([1])
    """

    param_names = ("mu", "sigma")
    event_ndim = 0
    positive = frozenset({"sigma"})

    def __init__(self, mu: Any, sigma: Any, *, mirrored: bool = False) -> None:
        if mu is None or sigma is None:
            raise InvalidArgumentError("mu and sigma are required")
        self.mu, self.sigma = self.convert_params(mirrored, mu=mu, sigma=sigma)
        self.validate(
            ("mu must be finite (it contains NaN or inf)", self.finite_condition(mu, self.mu)),
            ("sigma must be positive and finite everywhere", self.finite_condition(sigma, self.sigma, positive=True)),
        )
        if not self._shape and self.event_ndim:
            raise InvalidArgumentError(
                "DiagNormal needs mu (or sigma) of shape (..., d); got scalars. "
                "Use Normal for scalar distributions"
            )

    @functools.cached_property
    def _shape(self) -> tuple[int, ...]:
        """``broadcast(mu.shape, sigma.shape)`` (computed again after a pytree rebuild)."""
        shapes = [tuple(self.mu.shape), tuple(self.sigma.shape)]
        try:
            return tuple(np.broadcast_shapes(*shapes))
        except ValueError:
            raise InvalidArgumentError(f"mu and sigma must broadcast together, got shapes {shapes}") from None

    # torch.distributions names
    @property
    def mean(self) -> Array:
        """``mu`` broadcast to the full shape."""
        return self.mu + 0 * self.sigma

    @property
    def stddev(self) -> Array:
        """``sigma`` broadcast to the full shape."""
        return self.sigma + 0 * self.mu

    @property
    def variance(self) -> Array:
        return self.stddev**2

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def event_shape(self) -> tuple[int, ...]:
        return ()

    def transform_noise(self, eps: Array) -> Array:
        return self.mu + self.sigma * eps

    def _elementwise_log_prob(self, x: Array) -> Array:
        z = (x - self.mu) / self.sigma
        return -0.5 * z * z - self.xp.log(self.sigma) - 0.5 * LOG_2PI

    def log_prob(self, x: Any) -> Array:
        """Elementwise log density; shape ``broadcast(x, batch_shape)``."""
        return self._elementwise_log_prob(self.asarray(x))

    def entropy(self) -> Array:
        """``1/2 + log(2 pi)/2 + log sigma`` for each element, shape ``batch_shape``."""
        return self.xp.log(self.stddev) + 0.5 * (1.0 + LOG_2PI)

    def score(self, x: Any) -> dict[str, Array]:
        x = self.asarray(x)
        n_sample = self.sample_ndim(x)
        r = x - self.mu
        var = self.sigma * self.sigma
        g_mu = r / var
        g_sigma = (r * r - var) / (var * self.sigma)
        xp = self.xp
        return {
            "mu": sum_to_shape(g_mu, n_sample, tuple(self.mu.shape), xp),
            "sigma": sum_to_shape(g_sigma, n_sample, tuple(self.sigma.shape), xp),
        }

    @classmethod
    def search_init(cls, mean: Array, sigma: Array, **options: Any) -> "Normal":
        """``cls(mean, sigma)``; no options."""
        if options:
            raise InvalidArgumentError(f"{cls.__name__} takes no distribution_options, got {sorted(options)}")
        return cls(mean, sigma)

    def marginal_scale(self) -> Array:
        return self.stddev

    def natural_gradient(self, grads: dict[str, Array]) -> dict[str, Array]:
        """The Fisher information of ``N(mu, sigma^2)`` is ``diag(1/sigma^2, 2/sigma^2)`` per
        coordinate (Wierstra et al., JMLR 2014, sec. 3.3 and SNES): ``sigma^2 g_mu`` for
        ``mu`` and, in log units of ``sigma``, ``sigma g_sigma / 2``."""
        return {"mu": self.sigma * self.sigma * grads["mu"], "sigma": 0.5 * self.sigma * grads["sigma"]}


class DiagNormal(Normal):
    """Gaussian with diagonal covariance over vectors: ``N(mu, diag(sigma^2))``.

    Parameters
    ----------
    mu : array, shape (..., d)
        Mean; the last axis is the event (one draw is a vector).
    sigma : number or array
        Per-coordinate standard deviations, broadcastable with ``mu``.
    mirrored : bool
        Antithetic sampling.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat.distributions import DiagNormal
    >>> p = DiagNormal(np.zeros(2), np.array([1.0, 2.0]))
    >>> p.event_shape, p.batch_shape
    ((2,), ())
    >>> s = p.score(np.array([[1.0, 2.0]]))
    >>> s["mu"].tolist(), s["sigma"].tolist()
    ([[1.0, 0.5]], [[0.0, 0.0]])
    """

    event_ndim = 1

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self._shape[:-1]

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self._shape[-1:]

    def log_prob(self, x: Any) -> Array:
        """Log density of each vector draw (summed over the last axis, which must be the event's)."""
        x = self.asarray(x)
        if tuple(x.shape[-1:]) != self.event_shape:  # broadcasting would spread one value over d
            raise InvalidArgumentError(f"x must have shape sample_shape + (..., {self._shape[-1]}), got {tuple(x.shape)}")
        return self.xp.sum(self._elementwise_log_prob(x), axis=-1)

    def entropy(self) -> Array:
        """``d (1 + log 2 pi) / 2 + sum log sigma``, shape ``batch_shape``."""
        d = self._shape[-1]
        return self.xp.sum(self.xp.log(self.stddev), axis=-1) + 0.5 * d * (1.0 + LOG_2PI)
