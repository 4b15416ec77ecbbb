"""Injected and repaired candidates: Mahalanobis length clipping (Hansen 2011).

A candidate the strategy did not sample (one passed to ``inject``, or one the user
repaired before ``tell(..., repaired=True)``) is evaluated as given, but the strategy
learns from a step no longer than one it could have sampled: with
``y = x - m`` and ``||y||_C = ||C^{-1/2} y|| / sigma`` (the Mahalanobis length under
the search distribution),

    x  <-  m + y * min(1, c_y / ||y||_C),     c_y = sqrt(n) + 2 n / (n + 2)

(Hansen, "Injecting External Solutions Into CMA-ES", arXiv:1110.4181, 2011; the
bound pycma's ``repair_genotype`` uses). So a far-off or repaired point moves the
mean and the paths at most as a long sampled step does and the covariance stays
well-conditioned. A non-finite row becomes the mean (no step).

The length is computed from the distribution the strategy declares
(:meth:`~evostrat.strategies.base.Strategy.gaussian_readout`,
:mod:`evostrat.strategies.readout`): ``B`` and ``D`` (CMA-ES), a factor and its inverse
(CMA-ES's ``covariance="factor"``), a diagonal ``C`` (sep-CMA-ES), a factor ``B`` (xNES),
per-coordinate ``sigma`` (SNES, PGPE), a diagonal plus ``k`` directions (VkD-CMA, LM-MA-ES:
``O(n k^2)`` by the Woodbury identity, :func:`low_rank_quadratic`), a dense ``C``; a strategy that declares none is
seen through its ``sigma`` field, per coordinate, or else its largest standard deviation
``sigma(state)`` (an isotropic approximation); a state's fields are never read by name.
The bound ``c_y`` holds where the read-out says so (``cma_clip``, the CMA family); elsewhere
it is ``sqrt(n)``: the natural-gradient strategies weigh every candidate's ``z z^T - I``,
and a step longer than ``sqrt(n)`` told again and again (always ranked last) would shrink
their step size, which active CMA-ES avoids by normalising its negative updates.

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies.cma_es import CMAES
>>> s = CMAES(sigma0=1.0).initialize(np.zeros(4), random_state=0)
>>> far = clip_steps(s.strategy, s.state, np.full((1, 4), 100.0), s.backend)
>>> bool(np.isclose(np.linalg.norm(far), 2 + 8 / 6))
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from evostrat.backends.points import stack_rows
from evostrat.errors import InvalidArgumentError, InvalidTypeError, PopulationMismatchError
from evostrat.strategies.readout import GaussianReadout, host_readout, resolve_readout

__all__ = ["clip_steps", "mahalanobis_lengths", "clip_length", "check_solutions", "queue_solutions",
           "place_injections", "readout_lengths", "low_rank_quadratic", "repaired_population"]


def clip_length(dim: int) -> float:
    """``c_y = sqrt(n) + 2 n / (n + 2)``: the longest step an injected candidate may realise."""
    return math.sqrt(dim) + 2.0 * dim / (dim + 2.0)


def readout_lengths(readout: GaussianReadout, Y: np.ndarray) -> np.ndarray:
    """``||C^{-1/2} y|| / sigma`` for each row ``y`` of ``Y``, from a host ``readout``."""
    r, S = readout, Y / readout.sigma
    if r.B is not None and r.D is not None:  # C = B diag(D^2) B^T
        Z = S @ r.B / r.D
    elif r.A is not None:  # C = A A^T
        Z = S @ r.A_inv.T if r.A_inv is not None else np.linalg.solve(r.A, S.T).T
    elif r.covariance is not None:  # dense C: any square root gives the same lengths
        w, V = np.linalg.eigh(0.5 * (r.covariance + r.covariance.T))
        Z = (S @ V) / np.sqrt(w)
    elif r.U is not None:  # C = diag + U diag(s) U^T: Woodbury, O(n k^2 + rows n k), no n x n matrix
        return np.sqrt(np.maximum(low_rank_quadratic(r.diagonal, r.U, r.s, S), 0.0))
    else:
        Z = S if r.diagonal is None else Y / (r.sigma * np.sqrt(r.diagonal))
    return np.sqrt(np.einsum("ij,ij->i", Z, Z))


def low_rank_quadratic(diagonal: np.ndarray | None, U: np.ndarray, s: np.ndarray, S: np.ndarray) -> np.ndarray:
    """``y^T C^-1 y`` for each row ``y`` of ``S``, ``C = diag(diagonal) + U diag(s) U^T`` (``diagonal``
    ``None``: ones), by the Woodbury identity in a form that allows ``s_j = 0``:

        C^-1 = G - G U (I + diag(s) U^T G U)^-1 diag(s) U^T G,      G = diag(diagonal)^-1,

    ``O(n k^2 + k^3)`` plus ``O(n k)`` a row, for ``U`` of shape ``(n, k)``.

    Examples
    --------
    >>> U, s, y = np.array([[1.0], [1.0]]), np.array([3.0]), np.array([[1.0, 2.0]])
    >>> C = np.eye(2) + 3.0 * U @ U.T
    >>> bool(np.isclose(low_rank_quadratic(None, U, s, y)[0], y[0] @ np.linalg.solve(C, y[0])))
    True
    """
    G = np.ones(U.shape[0]) if diagonal is None else 1.0 / diagonal
    GU = U * G[:, None]  # (n, k)
    inner = np.eye(U.shape[1]) + s[:, None] * (U.T @ GU)  # I + diag(s) U^T G U, (k, k)
    P = S @ GU  # rows y^T G U, (rows, k)
    correction = np.einsum("ij,ij->i", P, np.linalg.solve(inner, (P * s).T).T)
    return np.einsum("ij,ij->i", S * G, S) - correction


def mahalanobis_lengths(strategy: Any, state: Any, Y: np.ndarray, backend: Any) -> np.ndarray:
    """``||C^{-1/2} y|| / sigma`` for each row ``y`` of ``Y`` (host numpy), under the distribution
    ``strategy`` declares for ``state`` (:func:`~evostrat.strategies.readout.resolve_readout`)."""
    return readout_lengths(host_readout(resolve_readout(strategy, state), backend), Y)


def clip_steps(strategy: Any, state: Any, X: Any, backend: Any, rows: Any = None) -> Any:
    """``X`` (a backend array) with the steps of ``rows`` (default: all) clipped to ``c_y``.

    Returns a backend array of ``X``'s dtype and device.
    """
    centre = strategy.mean(state)
    native = np.asarray(backend.to_numpy(centre))
    mean = native.astype(np.float64)
    Xh = np.array(backend.to_numpy(X), dtype=np.float64)
    idx = np.arange(Xh.shape[0]) if rows is None else np.asarray(rows, dtype=np.intp)
    if idx.size == 0:
        return X
    Y = Xh[idx] - mean
    finite = np.all(np.isfinite(Y), axis=1)
    Y[~finite] = 0.0
    readout = host_readout(resolve_readout(strategy, state), backend)
    with np.errstate(divide="ignore", invalid="ignore"):
        lengths = readout_lengths(readout, Y)
        n = mean.shape[0]
        bound = clip_length(n) if readout.cma_clip else math.sqrt(n)
        factor = np.where(np.isfinite(lengths) & (lengths > 0), np.minimum(1.0, bound / lengths), 0.0)
    Xh[idx] = mean + Y * factor[:, None]
    return backend.asarray(Xh.astype(native.dtype), device=backend.device(centre))


def check_solutions(solutions: Any, dim: int, backend: Any) -> list[np.ndarray]:
    """``solutions`` (``(dim,)`` or ``(k, dim)``, finite) as a list of host float64 rows."""
    if solutions is None:  # np.array(None, float) is a NaN of shape ()
        raise InvalidTypeError(f"solutions must be real numbers of shape ({dim},) or (k, {dim}), got None")
    try:
        S = np.array(backend.to_numpy(solutions) if hasattr(solutions, "shape") else solutions, dtype=np.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise InvalidTypeError(f"solutions must be real numbers of shape (dim,) or (k, dim), got "
                               f"{type(solutions).__name__}: {err}") from err
    S = S[None, :] if S.ndim == 1 else S
    if S.ndim != 2 or S.shape[1] != dim or not np.isfinite(S).all():
        bad = "" if np.isfinite(S).all() else " with NaN or infinite entries"
        raise InvalidArgumentError(f"solutions must be finite, of shape ({dim},) or (k, {dim}); got shape "
                                   f"{S.shape}{bad}")
    return list(S)


def queue_solutions(runner: Any, solutions: Any, bounds: Any = None) -> None:
    """Queue ``solutions`` (points of ``bounds`` when given, mapped into the strategy's space by
    ``bounds.inverse``) on ``runner`` for its next ``ask`` (:meth:`~evostrat.run.asktell.AskTell.inject`).

    The queue holds host float64 rows of the strategy's space (the integer coordinates as given:
    :meth:`~evostrat.run.integers.IntegerSpace.before_ask` decodes them for the run that places
    them), so a restart run takes over the rows its predecessor did not place.
    """
    if bounds is not None:
        rows = check_solutions(solutions, getattr(bounds, "full_dim", runner.dim), runner.backend)  # fixed_variables
        solutions = runner.backend.to_numpy(bounds.inverse(
            runner.backend.asarray(np.stack(rows), dtype=runner.dtype, device=runner.device)))
    runner.inject(solutions)


def place_injections(runner: Any, X: Any) -> Any:
    """``X`` with its first rows replaced by the runner's queued injections (marked as injected)."""
    k = min(len(runner.injections), int(X.shape[0]))
    Xh = np.array(runner.backend.to_numpy(X))
    Xh[:k] = np.stack(runner.injections[:k])
    del runner.injections[:k]
    runner.injected_rows = tuple(range(k))
    return runner.backend.asarray(Xh, device=runner.device)


def repaired_population(runner: Any, X: Any, asked: Any = None, to_strategy: Any = None) -> Any:
    """The population for the strategy's ``tell`` when rows of ``X`` were injected or repaired.

    Rows of ``X`` that differ from the pending population (``asked``: as it was
    handed out) replace it (mapped by ``to_strategy``); those and the injected rows
    have their steps clipped by :func:`clip_steps`.
    """
    be, pending = runner.backend, runner.pending
    shown = pending if asked is None else asked
    X = stack_rows(X, be, runner.device, runner.dtype)
    shape = tuple(getattr(X, "shape", np.shape(X)))
    if shape != tuple(shown.shape):
        raise PopulationMismatchError(f"X must have the shape of the population returned by ask(), "
                                      f"{tuple(shown.shape)}; got shape {shape}")
    Xa = be.asarray(X, dtype=runner.dtype, device=runner.device)
    differ = np.flatnonzero(np.any(np.asarray(be.to_numpy(Xa != shown)), axis=1))
    told, rows = pending, set(runner.injected_rows)
    if differ.size:
        Xs = Xa if to_strategy is None else to_strategy(Xa)
        mask = be.asarray(np.isin(np.arange(shape[0]), differ)[:, None], device=runner.device)
        told = be.xp.where(mask, Xs, pending)
        rows |= set(differ.tolist())
    if not rows:
        return told
    return clip_steps(runner.strategy, runner.state, told, be, sorted(rows))
