"""Exponential Natural Evolution Strategy (xNES), full covariance.

Glasmachers, Schaul, Sun, Wierstra, Schmidhuber, "Exponential Natural
Evolution Strategies", GECCO 2010; Wierstra, Schaul, Glasmachers, Sun, Peters,
Schmidhuber, "Natural Evolution Strategies", JMLR 15 (2014), Algorithm 5 and
Table 1.

The search distribution is ``N(mu, A A^T)`` with ``A = sigma * B`` and
``det(B) = 1``. With ``z_k ~ N(0, I)``, ``x_k = mu + sigma B z_k`` and rank-based
utilities ``u_k`` (best first, summing to zero)::

    G_delta = sum_k u_k z_k
    G_M     = sum_k u_k (z_k z_k^T - I)
    G_sigma = tr(G_M) / d
    G_B     = G_M - G_sigma I
    mu    <- mu + eta_mu * sigma * B G_delta
    sigma <- sigma * exp(eta_sigma / 2 * G_sigma)
    B     <- B expm(eta_B / 2 * G_B)

The defaults are those of Table 1; ``expm`` is :func:`expm_symmetric`.

``tell`` recovers ``z_k = B^-1 (x_k - mu) / sigma`` from the candidates. When
``sigma B`` nears the rounding of ``mu`` (float32 near an optimum), the rounding
of ``x_k`` comes back amplified by ``B^-1``: one such generation on Rosenbrock
recovered ``||z||^2 = 3610`` at d = 5 and multiplied sigma by 4e14. Each ``z_k``
is therefore shortened to at most ``z_max`` (:func:`z_norm_bound`), a bound
that a normal draw exceeds with probability below ``e^-30``; an injected or
repaired candidate is shortened the same way (Hansen 2011, "Injecting external
solutions into CMA-ES", clips the Mahalanobis length of injected steps).

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.problems import ellipsoid
>>> es = ES("xnes", sigma0=1.0, max_evals=20000, ftarget=1e-8,
...         random_state=0).fit(ellipsoid, np.ones(4))
>>> es.stop_reason_
'ftarget'
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, NamedTuple

from evostrat.backends import Backend, get_backend
from evostrat.backends.namespaces import solve
from evostrat.params import Interval, StrOptions
from evostrat.strategies.base import Strategy, clamp_sigma
from evostrat.strategies.readout import GaussianReadout
from evostrat.strategies.shaping import SHAPINGS, downscale_factor, shape_fitness
from evostrat.backends.trees import replace

Array = Any

__all__ = ["XNES", "XNESState", "expm_symmetric", "z_norm_bound"]

#: ``-ln`` of the probability that a normal ``z`` is shortened by :func:`z_norm_bound`
Z_TAIL = 30.0


class XNESState(NamedTuple):
    mean: Array  # (d,)
    sigma: Array  # 0-d global step size, |det A|^(1/d)
    B: Array  # (d, d) shape matrix, det(B) = 1
    key: Array


def expm_symmetric(S: Array, backend: Backend) -> Array:
    """Matrix exponential ``V diag(exp(w)) V^T`` of a symmetric ``S = V diag(w) V^T``.

    Formed as ``I + V diag(expm1(w)) V^T`` so that small updates lose no digits
    (:meth:`~evostrat.backends.base.Backend.expm_symmetric`; JAX off the CPU uses Pade).

    Parameters
    ----------
    S : array, shape (d, d)
        Symmetric (it is symmetrised as ``(S + S^T) / 2`` first).
    backend : Backend

    Returns
    -------
    array, shape (d, d)
        Symmetric positive definite ``expm(S)``.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat.backends import get_backend
    >>> E = expm_symmetric(np.diag([0.0, np.log(2.0)]), get_backend("numpy"))
    >>> np.round(E, 12).tolist()
    [[1.0, 0.0], [0.0, 2.0]]
    """
    return backend.expm_symmetric(0.5 * (S + S.T))


def z_norm_bound(dim: int, tail: float = Z_TAIL) -> float:
    """``d + 2 sqrt(d t) + 2 t``: ``||z||^2`` of ``z ~ N(0, I_d)`` exceeds it with probability ``<= e^-t``.

    The chi-square tail bound of Laurent and Massart, "Adaptive estimation of a
    quadratic functional by model selection", Annals of Statistics 28 (2000),
    Lemma 1.

    Examples
    --------
    >>> round(z_norm_bound(5), 1)
    89.5
    """
    return dim + 2.0 * math.sqrt(dim * tail) + 2.0 * tail


def shorten_rows(Z: Array, max_sq_norm: float, xp: Any) -> tuple[Array, Array]:
    """``Z`` with each row longer than ``sqrt(max_sq_norm)`` scaled down to that length, and the
    rows' squared lengths (``max_sq_norm`` for the shortened ones).

    Rows that are not finite stay as they are (the caller's finiteness check sees them).

    Examples
    --------
    >>> import numpy as np
    >>> Z, sq = shorten_rows(np.array([[3.0, 4.0], [0.3, 0.4]]), 1.0, np)
    >>> Z.tolist(), sq.tolist()
    ([[0.6000000000000001, 0.8], [0.3, 0.4]], [1.0, 0.25])
    """
    sq = xp.sum(Z * Z, axis=1)
    long = sq > max_sq_norm
    scale = xp.where(long, xp.sqrt(max_sq_norm / xp.where(long, sq, 1.0)), 1.0)
    return Z * scale[:, None], xp.where(long, max_sq_norm, sq)


class XNES(Strategy):
    """Exponential NES with a full covariance matrix.

    Parameters
    ----------
    popsize : int, optional
        Default ``4 + floor(3 ln d)``.
    sigma0 : float or array
        Initial standard deviation; an array of shape ``(d,)`` gives
        ``A = diag(sigma0)``, split into ``sigma = prod(sigma0)^(1/d)`` and
        ``B = diag(sigma0) / sigma``.
    lr_mean : float
        ``eta_mu``, default 1.
    lr_sigma : float, optional
        ``eta_sigma``; default ``(9 + 3 ln d) / (5 d sqrt(d))``.
    lr_B : float, optional
        ``eta_B``; default equal to the default ``eta_sigma``.
    fitness_shaping : str
        A name of :data:`~evostrat.strategies.shaping.SHAPINGS`; default ``"nes_utilities"``.

    Notes
    -----
    Each recovered ``z_k`` is shortened to at most ``sqrt(z_norm_bound(d))``
    (see the module notes): a guard against rounding, which normal draws
    practically never reach. A generation whose update would make the state
    non-finite (a degenerate population, overflow) leaves the state unchanged.
    Constant fitness gives all-zero utilities and therefore no change at all.

    References
    ----------
    Glasmachers, Schaul, Sun, Wierstra, Schmidhuber, "Exponential Natural Evolution
    Strategies", GECCO 2010; Wierstra et al., "Natural Evolution Strategies", JMLR 15 (2014),
    Algorithm 5.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.problems import rosenbrock
    >>> from evostrat.strategies import XNES
    >>> es = ES(XNES(), max_generations=200, random_state=0).fit(rosenbrock, np.zeros(3))
    >>> bool(es.fun_ < 1e-6)
    True
    """

    initial_only_params = frozenset({"sigma0"})  # read by initial_state alone

    State = XNESState
    state_type = XNESState  # the states ask, tell and the read-outs take
    #: ``tell`` is array code alone: fused by ``torch.compile`` on CUDA (backends.torch_fused)
    fusable_methods = frozenset({"tell"})
    parameter_constraints = {
        "lr_mean": [Interval(Real, 0, None, closed="neither")],
        "lr_sigma": [Interval(Real, 0, None, closed="neither"), None],
        "lr_B": [Interval(Real, 0, None, closed="neither"), None],
        "fitness_shaping": [StrOptions(SHAPINGS)],
    }

    def __init__(self, popsize: int | None = None, sigma0: Any = 1.0, lr_mean: float = 1.0,
                 lr_sigma: float | None = None, lr_B: float | None = None,
                 fitness_shaping: str = "nes_utilities") -> None:
        super().__init__(popsize=popsize, sigma0=sigma0)
        self.lr_mean, self.lr_sigma, self.lr_B = lr_mean, lr_sigma, lr_B
        self.fitness_shaping = fitness_shaping

    @staticmethod
    def default_lr(dim: int) -> float:
        """``(9 + 3 ln d) / (5 d sqrt(d))`` (Wierstra et al. 2014, Table 1)."""
        return (9 + 3 * math.log(dim)) / (5 * dim * math.sqrt(dim))

    def resolved_lr_sigma(self, dim: int) -> float:
        return self.default_lr(dim) if self.lr_sigma is None else float(self.lr_sigma)

    def resolved_lr_B(self, dim: int) -> float:
        return self.default_lr(dim) if self.lr_B is None else float(self.lr_B)

    def initial_state(self, x0: Array, key: Any, backend: Backend) -> XNESState:
        xp = backend.xp
        dim = x0.shape[0]
        s = self.initial_sigma(x0, backend)
        sigma = xp.exp(xp.mean(xp.log(s)))
        eye = xp.eye(dim, dtype=x0.dtype, device=backend.device(x0))
        B = eye * (s / sigma)
        return XNESState(mean=x0, sigma=sigma, B=B, key=key)

    def ask(self, state: XNESState) -> tuple[Array, XNESState]:
        be = get_backend(state.mean)
        dim = state.mean.shape[0]
        key, sub = be.split(state.key)
        shape = (self.resolved_popsize(dim), dim)
        z = be.normal(sub, shape, state.mean.dtype, be.device(state.mean))
        X = state.mean + state.sigma * be.xp.matmul(z, state.B.T)
        return X, replace(state, key=key)

    def tell(self, state: XNESState, X: Array, fitness: Array) -> XNESState:
        be = get_backend(state.mean)
        xp = be.xp
        dim = X.shape[1]
        dtype, device = state.mean.dtype, be.device(state.mean)
        # Local coordinates: x = mu + sigma B z  =>  z = B^{-1} (x - mu) / sigma.
        Z = solve(xp, state.B, ((X - state.mean) / state.sigma).T).T  # non-finite if B is singular
        Z, sq = shorten_rows(Z, z_norm_bound(dim), xp)  # rounding of X amplified by B^-1 (module notes)
        u = xp.astype(-shape_fitness(fitness, self.fitness_shaping), dtype, copy=False)
        eye = xp.eye(dim, dtype=dtype, device=device)
        u_sum = xp.sum(u)
        g_delta = xp.matmul(u, Z)
        G_M = xp.matmul(Z.T * u, Z) - u_sum * eye
        g_sigma = (xp.matmul(u, sq) - dim * u_sum) / dim
        G_B = G_M - g_sigma * eye
        # A degenerate population (non-finite z) must not reach eigh, which raises on NaN.
        finite = xp.all(xp.isfinite(G_B)) & xp.all(xp.isfinite(g_delta))
        G_B = xp.where(finite, G_B, xp.zeros_like(G_B))

        mean = state.mean + self.lr_mean * state.sigma * xp.matmul(state.B, g_delta)
        sigma = clamp_sigma(state.sigma * xp.exp(0.5 * self.resolved_lr_sigma(dim) * g_sigma))
        B = xp.matmul(state.B, expm_symmetric(0.5 * self.resolved_lr_B(dim) * G_B, be))

        ok = finite & xp.isfinite(xp.sum(mean)) & xp.isfinite(sigma) & xp.isfinite(xp.sum(B))
        return replace(state, mean=xp.where(ok, mean, state.mean),
                       sigma=xp.where(ok, sigma, state.sigma), B=xp.where(ok, B, state.B))

    def sigma(self, state: XNESState) -> Array:
        """Largest per-coordinate standard deviation, ``sigma * max_i ||B_i,:||``."""
        xp = get_backend(state.mean).xp
        # B scaled by an exact power of two first: squares of entries beyond 1.8e19
        # overflow float32 (a finite state read as sigma = inf)
        f = downscale_factor(xp.max(xp.abs(state.B)), 1.0)
        Bf = state.B * f
        return (state.sigma / f) * xp.sqrt(xp.max(xp.sum(Bf * Bf, axis=1)))

    def host_sigma(self, state: XNESState) -> float:
        """:meth:`sigma` as a Python float, read eagerly on the host (a run's history rows), with
        the downscale factor (an exact power of two, 1 unless an entry of ``B`` exceeds 1) found
        on the host from ``max |B|``: the same operations on the same values, without the dozen
        that compute the factor. Near a power of two (where ``log2`` may round up) or not finite:
        :meth:`sigma` itself."""
        xp = get_backend(state.mean).xp
        B, sigma = state.B, state.sigma
        top = float(xp.max(xp.abs(B)))
        if top > 1.0:
            fraction, exponent = math.frexp(top)  # floor(log2(top)) = exponent - 1 unless top is 2^k
            if not (math.isfinite(top) and 0.5 < fraction < 1.0 - 1e-4):
                return float(get_backend(state.mean).to_numpy(self.sigma(state)))
            f = 2.0 ** (4 - exponent)  # downscale_factor's 2^-(floor(log2 top) - 3)
            B, sigma = B * f, sigma / f
        elif not top <= 1.0:  # NaN
            return float(get_backend(state.mean).to_numpy(self.sigma(state)))
        return float(sigma * xp.sqrt(xp.max(xp.sum(B * B, axis=1))))

    def gaussian_readout(self, state: XNESState) -> GaussianReadout:
        """``x = mean + sigma B z``: the factor ``A = B`` of ``C``."""
        return GaussianReadout(state.mean, state.sigma, A=state.B)

    def covariance(self, state: XNESState) -> Array:
        """The covariance matrix ``sigma^2 B B^T`` of the search distribution."""
        xp = get_backend(state.mean).xp
        return state.sigma**2 * xp.matmul(state.B, state.B.T)
