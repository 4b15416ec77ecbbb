"""Checks of a saved strategy state (``state_dict()["arrays"]``) before it is loaded.

A checkpoint (:mod:`evostrat.checkpoint`) holds a strategy's state as named numpy arrays.
Their types and shapes are checked when the state is rebuilt; the *values* are checked
here, before any of them reaches the strategy: :func:`check_state_arrays` refuses a
floating array with NaN or infinite entries (a strategy lists the fields that may hold
them in ``nonfinite_state_fields``, such as CMA-ES's ``asked`` population, NaN before the
first ``ask``) and then runs the strategy's own ``check_state_arrays(arrays)`` where it has
one: CMA-ES checks that its covariance and cached decomposition agree
(:func:`check_eigen_state`, :func:`check_factor_state`), sep-CMA-ES that its diagonal is
positive (:func:`check_diagonal_state`). A NaN covariance behind a finite cached diagonal
was loaded, and failed at the next eigendecomposition instead.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.strategies.state_checks import check_state_arrays
>>> es = ES("cma_es", random_state=0).initialize(np.zeros(3))
>>> arrays = es.run_.runner.state_dict()["arrays"]
>>> check_state_arrays(es.run_.runner.strategy, arrays)  # a state the run made: nothing to say
>>> arrays["C"] = arrays["C"] + np.triu(np.ones((3, 3)), 1)
>>> check_state_arrays(es.run_.runner.strategy, arrays)
Traceback (most recent call last):
...
evostrat.errors.InvalidArgumentError: state array 'C' (the covariance matrix) is not symmetric: largest |C - C^T| is 1
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evostrat.errors import InvalidArgumentError

__all__ = ["check_state_arrays", "check_eigen_state", "check_factor_state", "check_diagonal_state"]


def _tolerance(a: np.ndarray) -> float:
    """A relative tolerance for rounding in ``a``'s dtype: ``sqrt(eps)`` (1.5e-8 in float64)."""
    return float(np.sqrt(np.finfo(a.dtype).eps))


def _refuse(name: str, what: str, problem: str) -> None:
    raise InvalidArgumentError(f"state array {name!r} ({what}) {problem}")


def check_state_arrays(strategy: Any, arrays: dict[str, np.ndarray]) -> None:
    """Refuse saved state ``arrays`` of ``strategy`` with non-finite or inconsistent values.

    Parameters
    ----------
    strategy : Strategy
        The strategy the state belongs to: its ``nonfinite_state_fields`` (names of arrays
        that may hold NaN or inf) and its ``check_state_arrays(arrays)``, where it has them.
    arrays : dict of str to ndarray
        The state's arrays by name, as ``AskTell.state_dict()["arrays"]`` holds them.

    Raises
    ------
    InvalidArgumentError
        Naming the first array holding NaN or infinite values, or the check that failed.
    """
    allowed = strategy.nonfinite_state_fields
    for name, a in arrays.items():
        a = np.asarray(a)
        if a.dtype.kind in "fc" and name not in allowed and not np.isfinite(a).all():
            bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
            raise InvalidArgumentError(f"state array {name!r} holds {bad} NaN or infinite value(s) of "
                                       f"{np.size(a)}; a strategy state must be finite")
    strategy.check_state_arrays(arrays)


def check_eigen_state(arrays: dict[str, np.ndarray]) -> None:
    """CMA-ES's decomposed model: ``C`` symmetric, ``diag_C`` the diagonal of the current C
    (``decay C`` plus the queued rank-one terms), ``B`` orthonormal, ``D > 0`` and
    ``B diag(D)^2 B^T = C`` (finite arrays; all to rounding)."""
    C, B, D, diag_C = (np.asarray(arrays[k]) for k in ("C", "B", "D", "diag_C"))
    queue, coef, decay = (np.asarray(arrays[k]) for k in ("queue", "queue_coef", "decay"))
    tol, size = _tolerance(C), float(np.abs(C).max(initial=0.0))
    asym = float(np.abs(C - C.T).max(initial=0.0))
    if asym > tol * size:
        _refuse("C", "the covariance matrix", f"is not symmetric: largest |C - C^T| is {asym:.3g}")
    if not (D > 0).all():
        _refuse("D", "the square roots of C's eigenvalues", f"holds values <= 0 (smallest {float(D.min()):.3g}): "
                "C's cached decomposition must be positive definite")
    squares = np.einsum("gri,gr->i", queue * queue, coef)
    magnitude = np.abs(decay) * np.abs(np.diagonal(C)) + np.einsum("gri,gr->i", queue * queue, np.abs(coef))
    gap = np.abs(diag_C - (decay * np.diagonal(C) + squares))
    if not (gap <= tol * magnitude + np.finfo(C.dtype).tiny).all():
        _refuse("diag_C", "the diagonal of C", f"disagrees with diag(C) by up to {float(gap.max()):.3g}")
    n = D.shape[0]
    ortho = float(np.abs(B.T @ B - np.eye(n)).max(initial=0.0))
    if ortho > tol:
        _refuse("B", "C's eigenvectors", f"is not orthonormal: largest |B^T B - I| is {ortho:.3g}")
    gap_C = float(np.abs((B * (D * D)) @ B.T - C).max(initial=0.0))
    if gap_C > tol * max(size, float((D * D).max(initial=0.0))):
        _refuse("C", "the covariance matrix", f"is not B diag(D)^2 B^T, its cached decomposition: they differ "
                f"by up to {gap_C:.3g}")


def check_factor_state(arrays: dict[str, np.ndarray]) -> None:
    """CMA-ES's factor model (``C = scale^2 A A^T``): ``scale > 0``, ``A_inv`` the inverse of ``A``,
    ``diag_C`` the diagonal of C and the eigenvalue estimates ``D >= 0`` (to rounding)."""
    A, A_inv, scale, diag_C, D = (np.asarray(arrays[k]) for k in ("A", "A_inv", "scale", "diag_C", "D"))
    tol = _tolerance(A)
    if not scale > 0:
        _refuse("scale", "the factor of A kept apart", f"is {float(scale):.3g}; it must be > 0")
    if not (D >= 0).all():
        _refuse("D", "the estimated square roots of C's extreme eigenvalues", "holds negative values")
    n = A.shape[0]
    inverse = float(np.abs(A @ A_inv - np.eye(n)).max(initial=0.0))
    if inverse > np.sqrt(tol):  # A A^-1 = I to rounding times A's condition number (bounded by the run)
        _refuse("A_inv", "the inverse of A", f"is not A's inverse: largest |A A_inv - I| is {inverse:.3g}")
    exact = float(scale) ** 2 * np.einsum("ij,ij->i", A, A)
    gap = np.abs(diag_C - exact)
    if not (gap <= np.sqrt(tol) * exact + np.finfo(A.dtype).tiny).all():
        _refuse("diag_C", "the diagonal of C", f"disagrees with scale^2 diag(A A^T) by up to {float(gap.max()):.3g}")


def check_diagonal_state(arrays: dict[str, np.ndarray]) -> None:
    """sep-CMA-ES's diagonal covariance ``C``: every entry > 0."""
    C = np.asarray(arrays["C"])
    if not (C > 0).all():
        _refuse("C", "the diagonal covariance", f"holds values <= 0 (smallest {float(C.min()):.3g}); "
                "a covariance must be positive definite")
