"""The batched JAX chunk runs its runs in lockstep (issue 19): a run that stops is kept as it was
while the others go on, and each run stops at the generation, for the reason, it stops at alone."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from evostrat import ES
from evostrat.run.batch import fit_batch

jax = pytest.importorskip("jax")
jnp = jax.numpy

QUIET = dict(tolconditioncov=None, tolupsigma=None, tolfacupx=None, noeffectaxis=False, noeffectcoord=False)


def _terraced(X: Any) -> Any:
    """A sphere rounded to a grid of 1e-3: its values, hence its stop generations, are exact."""
    return jnp.floor(((X - 0.3) ** 2).sum(axis=1) * 1e3) / 1e3


def _alone(settings: dict, objective: Any, x0: Any, seed: int) -> ES:
    es = ES("cma_es", random_state=seed, **settings).fit(objective, x0)
    assert es.fast_path_ == "compiled_loop"
    return es


def test_stagnation_stops_each_run_at_its_own_generation_as_alone() -> None:
    settings = dict(tolfun=None, tolfunhist=None, tolx=None, tolflatfitness=None, max_generations=600,
                    strategy_options=QUIET)
    res = fit_batch(ES("cma_es", **settings), _terraced, jnp.ones(3), seeds=4)
    assert res.fast_path == "batched"
    # pycma's test needs 101 records of the run, one every 5th generation: each run stops at 505
    assert res.n_generations.tolist() == [505] * 4
    for i in range(4):
        alone = _alone(settings, _terraced, jnp.ones(3), i)
        assert (res.stop_reason[i], res.n_generations[i]) == ("tolstagnation", alone.n_generations_)
        assert res.fun[i] == alone.fun_
        assert [h["best"] for h in res.histories[i]] == [h["best"] for h in alone.history_]


def test_runs_over_several_chunks_stop_where_they_stop_alone(monkeypatch: Any) -> None:
    import evostrat.run.chunk_host as chunk_host

    monkeypatch.setattr(chunk_host, "CHUNK", 16)  # the runs cross several chunks, and stop inside one
    settings = dict(tolfun=None, tolfunhist=None, tolx=None, max_generations=300)
    res = fit_batch(ES("cma_es", **settings), _terraced, jnp.ones(3), seeds=3)
    assert res.fast_path == "batched" and (res.n_generations > 16).all()
    for i in range(3):
        alone = _alone(settings, _terraced, jnp.ones(3), i)
        assert (res.stop_reason[i], res.n_generations[i]) == (alone.stop_reason_, alone.n_generations_)
        assert res.n_evals[i] == alone.n_evals_
        np.testing.assert_array_equal([h["generation_best"] for h in res.histories[i]],
                                      [h["generation_best"] for h in alone.history_])


def test_lazy_eigendecomposition_in_lockstep_stops_each_run_as_alone() -> None:
    # every third generation decomposes C: one decision for the runs (lockstep_conds), the stopped
    # runs left out of it, and each run's values are still those it reaches alone
    settings = dict(tolfun=None, tolfunhist=None, tolx=None, tolflatfitness=None, max_generations=600,
                    strategy_options=dict(QUIET, lazy_eigen=3))
    res = fit_batch(ES("cma_es", **settings), _terraced, jnp.ones(3), seeds=4)
    assert res.fast_path == "batched"
    for i in range(4):
        alone = _alone(settings, _terraced, jnp.ones(3), i)
        assert (res.stop_reason[i], res.n_generations[i]) == ("tolstagnation", alone.n_generations_)
        assert res.fun[i] == alone.fun_
        assert [h["best"] for h in res.histories[i]] == [h["best"] for h in alone.history_]


def test_lockstep_conds_run_a_branch_only_when_an_active_run_takes_it() -> None:
    from evostrat.backends import get_backend
    from evostrat.backends.jax import lockstep_conds

    be = get_backend("jax")

    def step(x: Any, active: Any) -> Any:
        with lockstep_conds("runs", active):
            return be.cond(x > 1, lambda v: v * 10, lambda v: v - 1, x)

    x, active = jnp.arange(4.0), jnp.asarray([True, True, True, False])
    mapped = jax.vmap(step, axis_name="runs")
    # each active run gets the branch its predicate picks, the inactive one the false branch
    assert mapped(x, active).tolist() == [-1.0, 0.0, 20.0, 2.0]
    # one conditional for all the runs; without the context vmap selects between both branches
    assert "cond[" in str(jax.make_jaxpr(mapped)(x, active))
    plain = jax.vmap(lambda v: be.cond(v > 1, lambda u: u * 10, lambda u: u - 1, v))
    assert "cond[" not in str(jax.make_jaxpr(plain)(x))
    assert plain(x).tolist() == [-1.0, 0.0, 20.0, 30.0]
