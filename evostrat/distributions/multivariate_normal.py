"""Full-covariance Gaussian ``N(mu, Sigma)`` parameterised by its Cholesky factor.

``MultivariateNormal(mu, scale_tril=L)`` or ``MultivariateNormal(mu, covariance=Sigma)``
(``L`` = ``cholesky(Sigma)``, lower triangular with a positive diagonal), as in
``torch.distributions.MultivariateNormal``. Draws are ``mu + L eps``.

Formulas, with ``r = x - mu``, ``z = L^{-1} r`` and ``w = Sigma^{-1} r = L^{-T} z``
(Petersen & Pedersen, "The Matrix Cookbook", 2012, eqs. 57, 61 and 346; the
``L`` score follows from ``dz = -L^{-1} dL z``)::

    log p(x)            = -|z|^2 / 2 - sum_i log L_ii - d log(2 pi) / 2
    d log p / d mu      = w
    d log p / d L       = tril(w z^T) - diag(1 / L_ii)
    d log p / d Sigma   = (w w^T - Sigma^{-1}) / 2
    entropy             = d (1 + log 2 pi) / 2 + sum_i log L_ii

Only the lower triangle of ``scale_tril`` is read, so its gradient vanishes
above the diagonal.

Examples
--------
>>> import numpy as np
>>> from evostrat.distributions import MultivariateNormal
>>> p = MultivariateNormal(np.zeros(2), covariance=np.array([[4.0, 0.0], [0.0, 1.0]]))
>>> p.sample(3, key=0).shape
(3, 2)
>>> round(float(p.log_prob(np.zeros(2))), 4)  # -log 2 - log 2 pi
-2.531
>>> p.score(np.array([[2.0, 0.0]]))["mu"].tolist()
[[0.5, 0.0]]
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat

from evostrat.distributions.base import LOG_2PI, Array, Distribution
from evostrat.errors import InvalidArgumentError

__all__ = ["MultivariateNormal"]


def _tril(a: Array, xp: Any) -> Array:
    """Lower triangle (diagonal included) of a square matrix or a stack of them."""
    d = a.shape[-1]
    i = xp.arange(d, device=array_api_compat.device(a))
    mask = xp.reshape(i, (d, 1)) >= xp.reshape(i, (1, d))
    return xp.where(mask, a, xp.zeros_like(a))


def _positive_definite(a: Array, xp: Any) -> Any:
    """Whether ``a`` has a Cholesky factor in floating point: a 0-d bool array, or ``False``
    where the factorisation raises (numpy, torch; JAX gives NaN instead)."""
    try:
        L = xp.linalg.cholesky(a)
    except Exception:  # numpy.linalg.LinAlgError, torch.linalg.LinAlgError
        return False
    return xp.all(xp.isfinite(xp.linalg.diagonal(L)))


class MultivariateNormal(Distribution):
    """Gaussian with a full covariance matrix.

    Parameters
    ----------
    mu : array, shape (d,)
        Mean.
    scale_tril : array, shape (d, d), optional
        Lower Cholesky factor of the covariance (positive diagonal).
    covariance : array, shape (d, d), optional
        Symmetric positive definite covariance. Give exactly one of
        ``scale_tril`` and ``covariance``; that one is the parameter
        :meth:`score` differentiates with respect to.
    mirrored : bool
        Antithetic sampling.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat.distributions import MultivariateNormal
    >>> L = np.array([[1.0, 0.0], [0.5, 2.0]])
    >>> p = MultivariateNormal(np.zeros(2), scale_tril=L)
    >>> bool(np.allclose(p.covariance_matrix, L @ L.T))
    True
    """

    event_ndim = 1
    param_names: tuple[str, ...] = ("mu", "scale_tril")  # type: ignore[misc]
    # JAX pytree: the parameterisation (param_names) is part of the static structure.
    leaf_attrs = ("mu", "_matrix")
    static_attrs = ("mirrored", "param_names")

    def __init__(
        self,
        mu: Any,
        scale_tril: Any = None,
        covariance: Any = None,
        *,
        mirrored: bool = False,
    ) -> None:
        if (scale_tril is None) == (covariance is None):
            raise InvalidArgumentError(
                "give exactly one of scale_tril (lower Cholesky factor) and covariance"
            )
        name = "scale_tril" if scale_tril is not None else "covariance"
        matrix = scale_tril if scale_tril is not None else covariance
        self.param_names = ("mu", name)
        self.mu, self._matrix = self.convert_params(mirrored, mu=mu, **{name: matrix})
        if self.mu.ndim != 1:
            raise InvalidArgumentError(f"mu must have shape (d,), got {tuple(self.mu.shape)}")
        d = self.mu.shape[0]
        if tuple(self._matrix.shape) != (d, d):
            raise InvalidArgumentError(
                f"{name} must have shape ({d}, {d}) to match mu, got {tuple(self._matrix.shape)}"
            )
        finite = [
            ("mu must be finite (it contains NaN or inf)", self.finite_condition(mu, self.mu)),
            (f"{name} must be finite (it contains NaN or inf)", self.finite_condition(matrix, self._matrix)),
        ]
        if name == "scale_tril":
            diag = self.xp.linalg.diagonal(self._matrix)
            self.validate(*finite, ("the diagonal of scale_tril must be positive", diag > 0))
            return
        # Cholesky reads one triangle on numpy and torch, the symmetric part on JAX: an
        # asymmetric matrix would be a different distribution on each backend.
        M, xp = self._matrix, self.xp
        tol = math.sqrt(float(xp.finfo(self.dtype).eps)) * xp.max(xp.abs(M))
        self.validate(*finite, ("covariance must be symmetric (it differs from its transpose)",
                                 xp.abs(M - M.T) <= tol))
        try:
            diag = self.xp.linalg.diagonal(self._L())
        except Exception as err:  # LinAlgError (numpy), RuntimeError (torch)
            raise InvalidArgumentError(
                f"covariance must be symmetric positive definite ({type(err).__name__}: {err})"
            ) from err
        self.validate(
            ("covariance must be positive definite (its Cholesky diagonal is not positive)",
             self.finite_condition(None, diag, positive=True)),
        )

    # -- parameters ----------------------------------------------------------------------
    @property
    def scale_tril(self) -> Array:
        """Lower Cholesky factor ``L`` of the covariance."""
        return self._L()

    @property
    def covariance(self) -> Array:
        """The covariance ``Sigma = L L^T`` (the parameter itself when given as such)."""
        if self.param_names[1] == "covariance":
            return self._matrix
        L = self._L()
        return self.xp.matmul(L, L.T)

    covariance_matrix = covariance  # torch.distributions' name

    def _L(self) -> Array:
        if self.param_names[1] == "scale_tril":
            return _tril(self._matrix, self.xp)
        return self.xp.linalg.cholesky(self._matrix)

    @property
    def mean(self) -> Array:
        return self.mu

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return ()

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (int(self.mu.shape[0]),)

    # -- sampling and densities --------------------------------------------------------------
    def transform_noise(self, eps: Array) -> Array:
        return self.mu + self.xp.matmul(eps, self._L().T)

    def _whiten(self, x: Array) -> tuple[Array, Array, int]:
        """``(z, L, n_sample_axes)`` with ``z = L^{-1} (x - mu)`` of x's shape."""
        xp = self.xp
        n_sample = self.sample_ndim(x)
        d = self.mu.shape[0]
        L = self._L()
        r = xp.reshape(x - self.mu, (-1, d))
        z = xp.linalg.solve(L, r.T).T
        return xp.reshape(z, tuple(x.shape)), L, n_sample

    def log_prob(self, x: Any) -> Array:
        """Log density of each draw, shape ``sample_shape``."""
        xp = self.xp
        z, L, _ = self._whiten(self.asarray(x))
        d = self.mu.shape[0]
        half_log_det = xp.sum(xp.log(xp.linalg.diagonal(L)))
        return -0.5 * xp.sum(z * z, axis=-1) - half_log_det - 0.5 * d * LOG_2PI

    def entropy(self) -> Array:
        """``d (1 + log 2 pi) / 2 + sum log L_ii`` (0-d)."""
        xp = self.xp
        d = self.mu.shape[0]
        return xp.sum(xp.log(xp.linalg.diagonal(self._L()))) + 0.5 * d * (1.0 + LOG_2PI)

    def score(self, x: Any) -> dict[str, Array]:
        xp = self.xp
        x = self.asarray(x)
        z, L, n_sample = self._whiten(x)
        d = self.mu.shape[0]
        sample_shape = tuple(x.shape[:n_sample])
        z2 = xp.reshape(z, (-1, d))
        w2 = xp.linalg.solve(L.T, z2.T).T  # Sigma^{-1} r
        out = {"mu": xp.reshape(w2, sample_shape + (d,))}
        eye = xp.eye(d, dtype=self.dtype, device=self.device)
        if self.param_names[1] == "scale_tril":
            outer = xp.reshape(w2, (-1, d, 1)) * xp.reshape(z2, (-1, 1, d))
            inv_diag = 1.0 / xp.linalg.diagonal(L)
            g = _tril(outer, xp) - eye * xp.reshape(inv_diag, (1, d))
            out["scale_tril"] = xp.reshape(g, sample_shape + (d, d))
        else:
            precision = xp.linalg.solve(L.T, xp.linalg.solve(L, eye))
            outer = xp.reshape(w2, (-1, d, 1)) * xp.reshape(w2, (-1, 1, d))
            out["covariance"] = xp.reshape(0.5 * (outer - precision), sample_shape + (d, d))
        return out

    # -- searching (xNES geometry) -------------------------------------------------------------
    @classmethod
    def search_init(cls, mean: Array, sigma: Array, **options: Any) -> "MultivariateNormal":
        """``cls(mean, covariance=diag(sigma^2))``: the search moves the covariance."""
        if options:
            raise InvalidArgumentError(f"{cls.__name__} takes no distribution_options, got {sorted(options)}")
        xp = array_api_compat.array_namespace(mean)
        return cls(mean, covariance=xp.eye(mean.shape[0], dtype=mean.dtype,
                                           device=array_api_compat.device(mean)) * (sigma * sigma))

    def marginal_scale(self) -> Array:
        """``sqrt(diag(Sigma))``."""
        L = self._L()
        return self.xp.sqrt(self.xp.sum(L * L, axis=1))

    def _sandwich(self, g: Array) -> Array:
        """``A^T sym(g) A`` with ``A = L``: a covariance gradient in the local coordinates
        ``S`` of ``Sigma(S) = A expm(S) A^T`` (Glasmachers et al., GECCO 2010, xNES)."""
        L = self._L()
        return self.xp.matmul(L.T, self.xp.matmul(0.5 * (g + g.T), L))

    def local_gradient(self, grads: dict[str, Array]) -> dict[str, Array]:
        if self.param_names[1] != "covariance":
            return dict(grads)
        return {"mu": grads["mu"], "covariance": self._sandwich(grads["covariance"])}

    def natural_gradient(self, grads: dict[str, Array]) -> dict[str, Array] | None:
        """``Sigma g_mu`` and ``2 A^T g_Sigma A``: the Fisher information of a Gaussian is
        ``Sigma^{-1}`` for the mean and, in xNES's exponential coordinates, ``I / 2`` for
        ``S`` (Glasmachers et al. 2010; Wierstra et al., JMLR 2014, sec. 4.2). ``None``
        for the ``scale_tril`` parameterisation."""
        if self.param_names[1] != "covariance":
            return None
        return {"mu": self.xp.matmul(self._matrix, grads["mu"]),
                "covariance": 2.0 * self._sandwich(grads["covariance"])}

    def retract(self, steps: dict[str, Array]) -> "MultivariateNormal":
        """``mu + s_mu`` and ``A expm(S) A^T`` (positive definite for every symmetric ``S``).

        In floating point the product stops being positive definite once its condition
        nears ``1 / eps`` (a search stretched along a slope); the covariance then stays
        as it is, so every later Cholesky factorisation still succeeds.
        """
        if self.param_names[1] != "covariance":
            return super().retract(steps)
        leaves, aux = self.tree_flatten()
        mu, cov = leaves
        if "covariance" in steps:
            S = steps["covariance"]
            L = self._L()
            E = self._backend.expm_symmetric(0.5 * (S + S.T))
            new = self.xp.matmul(L, self.xp.matmul(E, L.T))
            new = 0.5 * (new + new.T)
            ok = _positive_definite(new, self.xp)
            cov = cov if ok is False else self.xp.where(ok, new, cov)
        return type(self).tree_unflatten(aux, (mu + steps.get("mu", 0.0), cov))

