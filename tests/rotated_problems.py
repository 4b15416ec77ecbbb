"""A rotated ellipsoid shared by the high-dimension tests (imported by name: tests/ is on the path).

``f(x) = sum_i 1e4^(i/(d-1)) (R x)_i^2`` with a random orthogonal ``R`` (condition 1e4), the
problem of issue 21's quality checks, and the criteria switched off so that a run stops only on
``ftarget`` or its budget.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

#: every run-level criterion but ``ftarget`` and the budget off
OFF = dict(tolfun=None, tolx=None, tolfunhist=None, tolstagnation=None, tolflatfitness=None)


def rotated_ellipsoid(dim: int, seed: int = 0) -> tuple[Callable[[Any], np.ndarray], np.ndarray]:
    """``(f, x0)``: the condition-1e4 ellipsoid rotated by a seeded random ``R``, ``x0 = R^T 1``."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    R = q * np.sign(np.diag(r))
    coef = 1e4 ** (np.arange(dim) / (dim - 1))

    def f(X: Any) -> np.ndarray:
        Y = np.atleast_2d(X) @ R.T
        return (Y * Y) @ coef

    return f, R.T @ np.ones(dim)
