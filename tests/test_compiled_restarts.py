"""Restarts (IPOP, BIPOP) on the compiled JAX driver make the runs of the host loop.

Each run of a restart schedule runs in compiled chunks of its own population size; between
runs the host applies the same restart logic (``evostrat.run.restarts.after_run``). SNES on the sphere
ranks the same candidates on both paths, so the runs agree exactly: the same restart
records, stop generations and reasons, evaluations and history columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from evostrat import ES, fit_batch, vectorized  # noqa: E402
from evostrat.problems import sphere  # noqa: E402

#: every local criterion but tolfun off, so that each run converges and restarts
SETTINGS = dict(random_state=3, sigma0=0.5, tolfun=1e-6)


def _both(**kwargs: Any) -> tuple[ES, ES]:
    fast = ES("snes", **SETTINGS, **kwargs).fit(sphere, jnp.full(4, 2.0))
    slow = ES("snes", compiled_loop=False, **SETTINGS, **kwargs).fit(sphere, jnp.full(4, 2.0))
    return fast, slow


def _same_runs(fast: ES, slow: ES) -> None:
    assert fast.fast_path_ == "compiled_loop" and slow.fast_path_ is None
    assert (fast.stop_reason_, fast.n_evals_, fast.n_generations_) == (slow.stop_reason_, slow.n_evals_,
                                                                       slow.n_generations_)
    assert len(fast.restarts_) == len(slow.restarts_) >= 3
    for a, b in zip(fast.restarts_, slow.restarts_):
        assert {k: v for k, v in a.items() if k != "best"} == {k: v for k, v in b.items() if k != "best"}
        np.testing.assert_allclose(a["best"], b["best"], rtol=1e-5)  # float32 values, fused or not
    assert len(fast.history_) == len(slow.history_) == fast.n_generations_
    keys = ("generation", "n_evals", "run", "popsize")
    assert [tuple(h[k] for k in keys) for h in fast.history_] == [tuple(h[k] for k in keys) for h in slow.history_]
    assert list(fast.history_[-1]) == list(slow.history_[-1])  # the same columns in the same order
    np.testing.assert_allclose([h["best"] for h in fast.history_], [h["best"] for h in slow.history_], rtol=1e-5)
    np.testing.assert_allclose(fast.fun_, slow.fun_, rtol=1e-5)


@pytest.mark.parametrize("kind", ["ipop", "bipop"])
def test_restarts_on_the_compiled_loop_make_the_host_loops_runs(kind: str) -> None:
    fast, slow = _both(restarts=kind, max_evals=6000)
    _same_runs(fast, slow)
    assert fast.stop_reason_ == "maxfevals"
    assert [r["stop_reason"] for r in fast.restarts_[:-1]].count("tolfun") >= 2  # runs ended by a local criterion
    assert fast.restarts_[1]["popsize"] == 2 * fast.restarts_[0]["popsize"]
    if kind == "bipop":
        assert "small" in [r["regime"] for r in fast.restarts_]


@pytest.mark.parametrize("kind,budget", [("ipop", 300), ("bipop", 333)])
def test_a_chunk_never_passes_the_generation_budget_of_all_runs(kind: str, budget: int) -> None:
    fast, slow = _both(restarts=kind, max_generations=budget)
    _same_runs(fast, slow)
    assert fast.stop_reason_ == "maxiter" and fast.n_generations_ == budget
    assert fast.restarts_[-1]["stop_reason"] == "maxiter"


def test_maximised_restarts_on_the_compiled_loop() -> None:
    @vectorized
    def negated(X: Any) -> Any:
        return -sphere(X)

    fast = ES("snes", restarts="ipop", max_evals=2000, maximize=True, **SETTINGS).fit(negated, jnp.full(4, 2.0))
    slow = ES("snes", restarts="ipop", max_evals=2000, maximize=True, compiled_loop=False, **SETTINGS).fit(
        negated, jnp.full(4, 2.0))
    _same_runs(fast, slow)
    assert fast.fun_ == max(h["generation_best"] for h in fast.history_)


def test_observing_a_compiled_run_with_restarts_does_not_change_it() -> None:
    seen: list[tuple[int, int]] = []

    def callback(es: ES) -> None:
        seen.append((es.n_generations_, len(es.restarts_)))

    plain = ES("snes", restarts="bipop", max_evals=6000, **SETTINGS).fit(sphere, jnp.full(4, 2.0))
    observed = ES("snes", restarts="bipop", max_evals=6000, **SETTINGS).fit(sphere, jnp.full(4, 2.0),
                                                                          callbacks=[callback])
    assert observed.fast_path_ == "compiled_loop"
    assert observed.restarts_ == plain.restarts_ and observed.n_evals_ == plain.n_evals_
    np.testing.assert_array_equal(np.asarray(observed.x_), np.asarray(plain.x_))
    assert [g for g, _ in seen] == list(range(1, plain.n_generations_ + 1))  # once a generation
    assert seen[-1][1] == len(plain.restarts_)


def test_cma_es_restarts_run_compiled_and_find_the_optimum() -> None:
    def wells(X: Any) -> Any:  # 2**d local minima; the global one near x = -1
        return jnp.sum((X * X - 1.0) ** 2 + 0.3 * X, axis=1)

    stationary = np.roots([4.0, 0.0, -4.0, 0.3]).real  # of (x^2 - 1)^2 + 0.3 x
    optimum = 4 * min((x * x - 1) ** 2 + 0.3 * x for x in stationary)

    es = ES("cma_es", restarts="ipop", max_evals=2500, sigma0=0.5, random_state=3).fit(wells, jnp.full(4, 2.0))
    assert es.fast_path_ == "compiled_loop" and len(es.restarts_) >= 3
    assert [r["popsize"] for r in es.restarts_[:3]] == [8, 16, 32]
    assert sum(r["n_evals"] for r in es.restarts_) == es.n_evals_
    assert es.fun_ == pytest.approx(optimum, abs=1e-5)


def test_a_batch_with_restarts_runs_each_run_alone_on_the_compiled_loop() -> None:
    res = fit_batch(ES("snes", restarts="ipop", max_evals=6000, sigma0=0.5, tolfun=1e-6), sphere,
                    jnp.full(4, 2.0), seeds=2)
    for i, es in enumerate(res.estimators):
        alone = ES("snes", restarts="ipop", max_evals=6000, sigma0=0.5, tolfun=1e-6, random_state=i).fit(
            sphere, jnp.full(4, 2.0))
        assert es.fast_path_ == alone.fast_path_ == "compiled_loop"
        assert es.restarts_ == alone.restarts_ and es.n_evals_ == alone.n_evals_
