"""A search distribution from a third party: independent Laplace coordinates.

``Laplace(mu, b)`` has density ``prod_i exp(-|x_i - mu_i| / b_i) / (2 b_i)``. It fulfils
evostrat's distribution contract (the ``evostrat_distributions`` hookspec):

- parameters ``mu`` and ``b`` (``b`` positive), ``search_init(mean, sigma)`` with the
  standard deviation ``sqrt(2) b`` equal to ``sigma``;
- addressable draws from standard normals: a Laplace variable is a Gaussian scale
  mixture, ``b z0 sqrt(z1^2 + z2^2)`` (``(z1^2 + z2^2) / 2`` is exponential), so a draw
  consumes ``3 d`` normals (``noise_dim``);
- ``log_prob``, ``entropy`` (``sum 1 + log 2 b``), ``marginal_scale`` and closed-form
  scores for numpy: ``d/dmu = sign(x - mu) / b``, ``d/db = |x - mu| / b^2 - 1 / b``;
- its Fisher information, ``diag(1 / b^2)`` for ``mu`` and ``1`` per coordinate for
  ``log b`` (``|x - mu| / b`` is exponential, of variance 1), so evostrat's NES takes
  natural-gradient steps with it.

>>> import numpy as np
>>> p = Laplace(np.zeros(2), np.ones(2))
>>> round(float(p.log_prob(np.array([1.0, -1.0]))), 4)   # -2 - 2 log 2
-3.3863
"""

from __future__ import annotations

import math
from typing import Any

from evostrat.distributions import Distribution
from evostrat.errors import InvalidArgumentError

__all__ = ["Laplace"]


class Laplace(Distribution):
    """Independent Laplace coordinates with location ``mu`` and scale ``b``."""

    param_names = ("mu", "b")
    event_ndim = 1
    positive = frozenset({"b"})

    def __init__(self, mu: Any, b: Any, *, mirrored: bool = False) -> None:
        self.mu, self.b = self.convert_params(mirrored, mu=mu, b=b)
        if self.mu.ndim != 1:
            raise InvalidArgumentError(f"mu must have shape (d,), got {tuple(self.mu.shape)}")
        if self.b.ndim == 0:
            self.b = self.xp.ones_like(self.mu) * self.b
        self.validate(("b must be positive and finite", self.finite_condition(b, self.b, positive=True)))

    @classmethod
    def search_init(cls, mean: Any, sigma: Any, **options: Any) -> "Laplace":
        if options:
            raise InvalidArgumentError(f"Laplace takes no distribution_options, got {sorted(options)}")
        return cls(mean, sigma / math.sqrt(2.0))

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return ()

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (int(self.mu.shape[0]),)

    @property
    def noise_dim(self) -> int:
        return 3 * int(self.mu.shape[0])

    def marginal_scale(self) -> Any:
        return math.sqrt(2.0) * self.b

    def transform_noise(self, eps: Any) -> Any:
        d = self.mu.shape[0]
        z0, z1, z2 = eps[..., :d], eps[..., d:2 * d], eps[..., 2 * d:]
        return self.mu + self.b * z0 * self.xp.sqrt(z1 * z1 + z2 * z2)

    def log_prob(self, x: Any) -> Any:
        x = self.asarray(x)
        self.sample_ndim(x)
        xp = self.xp
        return xp.sum(-xp.abs(x - self.mu) / self.b - xp.log(2.0 * self.b), axis=-1)

    def entropy(self) -> Any:
        return self.xp.sum(1.0 + self.xp.log(2.0 * self.b))

    def score(self, x: Any) -> dict[str, Any]:
        x = self.asarray(x)
        self.sample_ndim(x)
        r = x - self.mu
        return {"mu": self.xp.sign(r) / self.b, "b": self.xp.abs(r) / (self.b * self.b) - 1.0 / self.b}

    def natural_gradient(self, grads: dict[str, Any]) -> dict[str, Any]:
        """``b^2 g_mu`` and, in log units of ``b``, ``b g_b``."""
        return {"mu": self.b * self.b * grads["mu"], "b": self.b * grads["b"]}
