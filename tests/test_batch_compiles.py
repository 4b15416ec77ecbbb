"""A JAX batch over budgets compiles one chunk: the groups of a ``max_generations`` grid share
the stagnation history's capacity (the largest), which was a shape of each group's program."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from jax_compiles import compiles  # noqa: E402
from evostrat import ES  # noqa: E402
from evostrat.run.batch import fit_batch  # noqa: E402

BUDGETS = [100, 200, 300, 400]


def _rugged(X: Any) -> Any:
    """A deterministic, noise-like landscape (the stagnation history records each run)."""
    return jnp.sum(X**2, axis=1) + 10.0 * jnp.sin(1e4 * X[:, 0] * X[:, 1])


def _es(**params: Any) -> ES:
    return ES("snes", tolstagnation=60, tolfun=None, tolx=None, **params)


def test_a_budget_grid_compiles_one_chunk_and_each_run_is_its_own() -> None:
    x0 = jnp.full(4, 1.0)
    fit_batch(_es(), _rugged, x0, seeds=3, grid={"max_generations": BUDGETS[-1:]})  # the largest budget's chunk
    before = compiles()
    res = fit_batch(_es(), _rugged, x0, seeds=3, grid={"max_generations": BUDGETS})
    assert compiles() - before == 0  # was 3 more chunk programs (and their stacking): one per history capacity
    assert res.fast_path == "batched"
    assert list(res.n_generations) == [b for b in BUDGETS for _ in range(3)]  # the stagnation history kept
    for budget in BUDGETS:  # each budget's runs in a batch of their own (their own capacity): the same runs
        own = fit_batch(_es(), _rugged, x0, seeds=3, grid={"max_generations": [budget]})
        rows = [i for i, p in enumerate(res.params) if p["max_generations"] == budget]
        assert [res.params[i]["random_state"] for i in rows] == [p["random_state"] for p in own.params]
        np.testing.assert_array_equal(res.x[rows], own.x)
        np.testing.assert_array_equal(res.fun[rows], own.fun)
        assert [res.n_generations[i] for i in rows] == list(own.n_generations)
        assert [res.stop_reason[i] for i in rows] == list(own.stop_reason)
        assert [[h["best"] for h in res.histories[i]] for i in rows] == [[h["best"] for h in hs] for hs in own.histories]
