"""Test helpers: two fits are the same run (history without its clock column, result, best point),
and a start point on each backend."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest


def without_time(history: list[dict]) -> list[dict]:
    """History rows without their ``time`` entry (the only column two equal runs may differ in)."""
    return [{k: v for k, v in row.items() if k != "time"} for row in history]


def assert_same_run(a: Any, b: Any) -> None:
    """``a`` and ``b`` (fitted ``ES``) ran the same generations to the same result, bit for bit."""
    assert without_time(a.history_) == without_time(b.history_)
    assert (a.fun_, a.n_evals_, a.n_generations_, a.stop_reason_) == (b.fun_, b.n_evals_, b.n_generations_,
                                                                      b.stop_reason_)
    host = lambda es: np.asarray(es.strategy_.backend.to_numpy(es.x_))  # noqa: E731
    assert np.array_equal(host(a), host(b))


def ones_on(backend: str) -> Any:
    """``ones(4)`` on ``backend`` (float64 on numpy and torch, JAX's default float on JAX); the test is
    skipped where the library is not installed."""
    if backend == "torch":
        torch = pytest.importorskip("torch")
        return torch.ones(4, dtype=torch.float64)
    if backend == "jax":
        pytest.importorskip("jax")
        import jax.numpy as jnp

        return jnp.ones(4)
    return np.ones(4)
