"""The search distribution as a Gaussian: :meth:`Strategy.gaussian_readout` and its consumers' view.

A strategy declares how its state describes the Gaussian ``N(mean, sigma^2 C)`` it samples
from by returning a :class:`GaussianReadout` from ``gaussian_readout(state)``; the
Mahalanobis clipping of injected candidates (:mod:`evostrat.run.inject`) and the
distribution recorder (:func:`evostrat.callbacks.recorder.distribution_summary`) read it.
Nothing is guessed from state field names: a strategy that declares no read-out (``None``,
the default) is seen through the contract's ``sigma`` alone (:func:`resolve_readout`).

Examples
--------
xNES samples ``mean + sigma B z``: its read-out is the factor ``A = B``:

>>> import numpy as np
>>> from evostrat.strategies.xnes import XNES
>>> xnes = XNES(sigma0=0.5)
>>> r = resolve_readout(xnes, xnes.init(np.zeros(2), random_state=0))
>>> float(r.sigma), r.A.tolist(), r.cma_clip
(0.5, [[1.0, 0.0], [0.0, 1.0]], False)
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from evostrat.backends import get_backend
from evostrat.distributions.low_rank_normal import LowRankNormal
from evostrat.distributions.multivariate_normal import MultivariateNormal
from evostrat.distributions.normal import Normal
from evostrat.distributions.student_t import StudentT
from evostrat.errors import InvalidTypeError

__all__ = ["GaussianReadout", "host_readout", "readout_covariance", "readout_variances", "resolve_readout",
           "distribution_readout"]


class GaussianReadout(NamedTuple):
    """The search distribution ``N(mean, sigma^2 C)`` as a state holds it (backend arrays).

    ``C`` is given by the first of these forms that is set (none: ``C = I``):

    - ``B`` and ``D``: ``C = B diag(D^2) B^T`` (an eigen-decomposition, CMA-ES's), with
      ``diagonal`` then the current diagonal of ``C`` if it differs from the decomposition's;
    - ``A``: ``C = A A^T`` (a factor, xNES's ``B``), with its inverse ``A_inv`` if kept;
    - ``covariance``: the dense ``(dim, dim)`` matrix ``C``;
    - ``U`` and ``s`` (with ``diagonal``): ``C = diag(diagonal) + U diag(s) U^T``, a diagonal
      plus ``k`` directions, ``U`` of shape ``(dim, k)`` and ``s`` of shape ``(k,)`` (VkD-CMA,
      LM-MA-ES, a low-rank normal): ``O(dim k)`` to hold and read, never a dense matrix
      (:func:`readout_covariance` builds one when asked). ``s`` may hold zeros or negative
      entries as long as ``C`` is positive definite;
    - ``diagonal``: ``(dim,)``, the diagonal of a diagonal ``C`` (sep-CMA-ES).

    Attributes
    ----------
    mean : array, shape (dim,)
    sigma : array, shape () or (dim,)
        The step size, or per-coordinate standard deviations (then ``C`` is a correlation
        factor or ``I``).
    diagonal, B, D, A, A_inv, covariance, U, s : array or None
        The covariance ``C``, in one of the forms above.
    cma_clip : bool
        Injected and repaired steps are clipped to the Mahalanobis length
        ``sqrt(n) + 2n / (n + 2)`` (the CMA family, whose negative updates are normalised,
        Hansen 2011) instead of ``sqrt(n)`` (:mod:`evostrat.run.inject`).
    """

    mean: Any
    sigma: Any
    diagonal: Any = None
    B: Any = None
    D: Any = None
    A: Any = None
    A_inv: Any = None
    covariance: Any = None
    U: Any = None
    s: Any = None
    cma_clip: bool = False


def resolve_readout(strategy: Any, state: Any) -> GaussianReadout:
    """``strategy.gaussian_readout(state)``, or the contract's view when it declares none.

    Undeclared (``None``): a method ``covariance(state)`` returning the dense covariance
    ``sigma^2 C`` (the recorder's former read-out by name, still honoured for plugins that
    define it); else the state's ``sigma`` field when it holds per-coordinate standard
    deviations (shape ``(dim,)``, what the default ``sigma(state)`` reads); else the isotropic
    ``sigma(state)``. A state's other fields are never read.

    Raises
    ------
    InvalidTypeError
        When ``gaussian_readout`` returns something other than a ``GaussianReadout`` or ``None``.
    """
    declared = strategy.gaussian_readout(state)
    if isinstance(declared, GaussianReadout):
        return declared
    if declared is not None:
        raise InvalidTypeError(f"gaussian_readout(state) of strategy {type(strategy).__name__!r} must return a "
                               f"GaussianReadout or None, got {type(declared).__name__}")
    mean = strategy.mean(state)
    legacy = getattr(strategy, "covariance", None)  # CMA-ES's covariance option is a string
    if callable(legacy):
        be = get_backend(mean)
        one = be.xp.ones((), dtype=mean.dtype, device=be.device(mean))
        return GaussianReadout(mean, one, covariance=legacy(state))
    sigma = getattr(state, "sigma", None)  # the contract's field, per coordinate when (dim,)
    if sigma is not None and len(getattr(sigma, "shape", ())) == 1:
        return GaussianReadout(mean, sigma)
    return GaussianReadout(mean, strategy.sigma(state))


def host_readout(readout: GaussianReadout, backend: Any) -> GaussianReadout:
    """``readout`` with its arrays as host float64 numpy arrays (``None`` kept)."""
    def host(value: Any) -> Any:
        return None if value is None else np.asarray(backend.to_numpy(value), dtype=np.float64)

    *arrays, cma_clip = readout
    return GaussianReadout(*(host(value) for value in arrays), cma_clip=cma_clip)


def readout_covariance(readout: GaussianReadout) -> np.ndarray | None:
    """The dense covariance ``sigma^2 C`` of a host ``readout`` (:func:`host_readout`), or ``None``
    when it declares no ``C`` (``C = I``: its ``sigma`` alone describes it).

    Examples
    --------
    >>> r = GaussianReadout(np.zeros(2), np.asarray(2.0), diagonal=np.array([1.0, 4.0]))
    >>> readout_covariance(r).tolist()
    [[4.0, 0.0], [0.0, 16.0]]
    >>> low_rank = GaussianReadout(np.zeros(2), np.asarray(1.0), diagonal=np.ones(2),
    ...                            U=np.array([[1.0], [1.0]]), s=np.array([3.0]))
    >>> readout_covariance(low_rank).tolist()
    [[4.0, 3.0], [3.0, 4.0]]
    """
    r = readout
    if r.B is not None and r.D is not None:
        C = (r.B * r.D**2) @ r.B.T
    elif r.A is not None:
        C = r.A @ r.A.T
    elif r.covariance is not None:
        C = r.covariance
    elif r.U is not None:
        C = (r.U * r.s) @ r.U.T
        C[np.diag_indices_from(C)] += 1.0 if r.diagonal is None else r.diagonal
    elif r.diagonal is not None:
        C = np.diag(r.diagonal)
    else:
        return None
    return (np.outer(r.sigma, r.sigma) if r.sigma.ndim else r.sigma**2) * C



def readout_variances(readout: GaussianReadout) -> np.ndarray | None:
    """The diagonal of ``C`` (not scaled by ``sigma``) of a host ``readout``, ``(dim,)``, in
    ``O(dim k)`` for the low-rank form and ``O(dim^2)`` at most otherwise; ``None`` when
    ``C = I``.

    Examples
    --------
    >>> r = GaussianReadout(np.zeros(2), np.asarray(1.0), diagonal=np.ones(2),
    ...                     U=np.array([[1.0], [2.0]]), s=np.array([3.0]))
    >>> readout_variances(r).tolist()
    [4.0, 13.0]
    """
    r = readout
    if r.B is not None and r.D is not None:  # the decomposition's diagonal, unless the current one is given
        return r.diagonal if r.diagonal is not None else np.einsum("ij,j,ij->i", r.B, r.D**2, r.B)
    if r.A is not None:
        return np.sum(r.A**2, axis=1)
    if r.covariance is not None:
        return np.diag(r.covariance).copy()
    if r.U is not None:
        return (1.0 if r.diagonal is None else r.diagonal) + np.einsum("ij,j,ij->i", r.U, r.s, r.U)
    return r.diagonal


def distribution_readout(p: Any) -> GaussianReadout | None:
    """The read-out of a search distribution of :mod:`evostrat.distributions` when it is Gaussian,
    or a Student-t's moment-matched Gaussian (``None`` for a plugin's family: none to read).

    :class:`~evostrat.distributions.normal.Normal` and ``DiagNormal``: per-coordinate ``sigma``;
    :class:`~evostrat.distributions.multivariate_normal.MultivariateNormal`: the factor
    ``A = L`` (its Cholesky factor); :class:`~evostrat.distributions.low_rank_normal.LowRankNormal`:
    ``diag(sigma^2) + V V^T`` as the low-rank form (never dense).
    :class:`~evostrat.distributions.student_t.StudentT`: its standard deviations
    ``sigma sqrt(df / (df - 2))`` per coordinate (the Gaussian with its covariance, so ``ES.stds_``
    is the spread of its draws); for ``df <= 2`` the variance is infinite and the read-out is the
    scale ``sigma`` (the spread of the t's core: its quartiles are ``mu +- q sigma``, ``q = 1`` for
    Cauchy, ``df = 1``, and ``0.82`` for ``df = 2``).

    Examples
    --------
    >>> from evostrat.distributions.normal import DiagNormal
    >>> r = distribution_readout(DiagNormal(np.zeros(2), np.array([1.0, 3.0])))
    >>> r.sigma.tolist(), r.A
    ([1.0, 3.0], None)
    """
    if isinstance(p, Normal):
        return GaussianReadout(p.mean, p.stddev)
    if isinstance(p, StudentT):  # Var = sigma^2 df / (df - 2), infinite for df <= 2 (then its scale)
        return GaussianReadout(p.mean, p.sigma * math.sqrt(p.df / (p.df - 2)) if p.df > 2 else p.sigma)
    if not isinstance(p, (MultivariateNormal, LowRankNormal)):
        return None
    xp = p.xp
    one = xp.ones((), dtype=p.dtype, device=p.device)
    if isinstance(p, MultivariateNormal):
        return GaussianReadout(p.mean, one, A=p.scale_tril)
    return GaussianReadout(p.mean, one, diagonal=p.sigma * p.sigma, U=p.V,
                           s=xp.ones((p.V.shape[1],), dtype=p.dtype, device=p.device))
