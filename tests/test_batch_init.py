"""A JAX batch's initial states built in one vmapped call per grid combination (issue 19).

The vmapped states equal the runs' own inits leaf by leaf, bit for bit, and a batch
started from them (one family, or a group mixing families) gives the results of the
same batch started from per-run inits, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from evostrat import ES
from evostrat.problems import sphere
from evostrat.run.batch import fit_batch
from evostrat.run.batch_init import DeferredState, initialize_runs, vmapped_initial_states

jax = pytest.importorskip("jax")
jnp = jax.numpy

SEEDS = [0, 1, 7, 12345]


def _same_leaves(a, b) -> None:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb) and jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()  # bit for bit (NaN too)


@pytest.mark.parametrize("strategy", ["cma_es", "snes", "xnes"])
def test_vmapped_initial_states_equal_the_per_run_inits_bit_for_bit(strategy):
    x0 = jnp.linspace(-1.0, 2.0, 10)
    runs = [ES(strategy, sigma0=0.7, random_state=s) for s in SEEDS]
    stacked = initialize_runs(runs, [0] * len(runs), x0)[0]
    direct = vmapped_initial_states(runs[0].run_.runner, SEEDS)
    _same_leaves(stacked, direct)
    for i, (seed, run) in enumerate(zip(SEEDS, runs)):
        alone = ES(strategy, sigma0=0.7, random_state=seed).initialize(x0).run_.runner.state
        _same_leaves(jax.tree_util.tree_map(lambda a, i=i: a[i], stacked), alone)
        _same_leaves(run.run_.runner.state, alone)  # a deferred state, split out when read
        assert np.array_equal(np.asarray(run.run_.state.best_x), np.asarray(x0))


def test_a_deferred_state_is_read_only_when_needed():
    x0 = jnp.ones(4)
    runs = [ES("snes", random_state=s) for s in range(3)]
    initialize_runs(runs, [0, 0, 0], x0)
    runner = runs[2].run_.runner
    deferred = runner.__dict__["_deferred"]
    assert isinstance(deferred, DeferredState) and deferred.split.runs is None  # nothing split yet
    assert "state" not in runner.__dict__ and runner.dim == 4 and runner.initial_mean is deferred.mean
    state = runner.state
    assert deferred.split.runs is not None and runner.state is state and "_deferred" not in runner.__dict__
    with pytest.raises(AttributeError, match="no_such"):
        runner.no_such


def _per_run_batch(es, x0, seeds, grid):
    """The batch started from per-run inits (the path before issue 19's vmapped init)."""
    from evostrat.run.batch import expand_grid
    from evostrat.run.batch_jax import run_batched

    runs, families = [], []
    for family, combo in enumerate(expand_grid(grid)):
        for seed in seeds:
            runs.append(ES(**es.get_params(deep=False)).set_params(**combo, random_state=seed).initialize(x0))
            families.append(family)
    n_programs = run_batched([r.run_ for r in runs], sphere, None, families)
    return runs, n_programs


@pytest.mark.parametrize("grid, programs", [
    (None, 1),  # one family
    ({"sigma0": [0.5, 1.5]}, 1),  # a group mixing two families: their stacks joined
    ({"popsize": [6, 10]}, 2),  # a group per family
])
def test_batch_from_vmapped_inits_equals_batch_from_per_run_inits_bit_for_bit(grid, programs):
    es = ES("cma_es", max_generations=40)
    x0 = jnp.full(6, 1.5)
    res = fit_batch(es, sphere, x0, seeds=3, grid=grid, devices=None)
    runs, n_programs = _per_run_batch(es, x0, range(3), grid)
    assert res.n_programs == n_programs == programs and res.fast_path == "batched"
    for mine, ref in zip(res.estimators, runs):
        assert mine.fast_path_ == ref.fast_path_ == "batched"
        assert mine.n_generations_ == ref.n_generations_ and mine.stop_reason_ == ref.stop_reason_
        assert np.asarray(mine.x_).tobytes() == np.asarray(ref.x_).tobytes() and mine.fun_ == ref.fun_
        assert [h["best"] for h in mine.history_] == [h["best"] for h in ref.history_]
        _same_leaves(mine.run_.runner.state, ref.run_.runner.state)


@pytest.mark.parametrize("grid", [None, {"strategy__lr_sigma": [0.05, 0.2]}])  # hyper-parameters per run: a tuple
def test_a_batch_s_final_states_are_split_when_first_read_and_equal_the_lone_runs(grid):
    """After a batch's chunk each run's strategy state stays in the stack until read (about 800 arrays
    for 64 runs of CMA-ES, a tenth of the batch's host time): the first read splits every run's."""
    x0 = jnp.linspace(-1.0, 2.0, 5)
    es = ES("snes", max_generations=30, random_state=0)
    res = fit_batch(es, sphere, x0, seeds=3, grid=grid)
    assert res.fast_path == "batched" and res.n_programs == 1
    runners = [e.run_.runner for e in res.estimators]
    deferred = [r.__dict__["_deferred"] for r in runners]
    assert all("state" not in r.__dict__ for r in runners) and all(d.split is deferred[0].split for d in deferred)
    assert deferred[0].split.runs is None  # nothing split yet
    for e, runner in zip(res.estimators, runners):
        alone = ES(**e.get_params(deep=False)).fit(sphere, x0).run_.runner.state
        assert type(runner.state) is type(alone)  # the strategy state, not (state, hyper-parameters)
        _same_leaves(runner.state, alone)
        assert np.asarray(e.x_).tobytes() == np.asarray(ES(**e.get_params(deep=False)).fit(sphere, x0).x_).tobytes()
    assert len(deferred[0].split.runs) == len(runners) and deferred[0].split.stacked is None  # split once, all runs


def test_a_jax_batch_warns_of_non_finite_values_as_its_runs_alone():
    """The batch counts each run's non-finite values among the generations it ran, all runs at once;
    every run warns with the count it warns with alone."""
    import warnings

    from evostrat.errors import NonFiniteFitnessWarning

    def holes(X):  # NaN for the first candidate of every generation, and where the first coordinate is above 1.2
        return jnp.where((X[:, 0] > 1.2) | (jnp.arange(X.shape[0]) == 0), jnp.nan, (X * X).sum(axis=1))

    x0 = jnp.ones(4)
    es = ES("snes", max_generations=60, ftarget=1e-2, random_state=0)

    def messages(fit):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            fit()
        return sorted(str(w.message) for w in seen if issubclass(w.category, NonFiniteFitnessWarning))

    seeds = [0, 1, 2, 3]
    res = fit_batch(es, holes, x0, seeds=seeds)  # runs that stop first: the lockstep writes rows past their end
    assert res.n_programs == 1 and len(set(res.n_generations.tolist())) > 1, res.n_generations
    batched = messages(lambda: fit_batch(es, holes, x0, seeds=seeds))
    alone = messages(lambda: [ES(**es.get_params(deep=False)).set_params(random_state=s).fit(holes, x0) for s in seeds])
    assert batched == alone and len(alone) == len(seeds) and all(" are NaN or infinite" in m for m in alone)


def test_a_run_that_stops_before_the_batch_s_last_chunk_keeps_its_own_state(monkeypatch):
    """A run that stops while others go on takes its state out of that chunk's stack at once (a deferred
    one would keep the whole stack alive); the runs of the last chunk share its stack until one is read.
    Chunks of 6 generations here, so that the runs (ftarget) stop in different chunks."""
    from evostrat.run import batch_jax

    monkeypatch.setattr(batch_jax, "chunk_length", lambda popsize: 6)
    x0 = jnp.linspace(-1.0, 2.0, 4)
    es = ES("snes", max_generations=200, ftarget=1e-3, random_state=0)
    seeds = [0, 1, 2, 3, 4, 5]
    res = fit_batch(es, sphere, x0, seeds=seeds)
    generations = res.n_generations.tolist()
    last = max(generations)
    assert res.fast_path == "batched" and any((g - 1) // 6 < (last - 1) // 6 for g in generations), generations
    for e, g in zip(res.estimators, generations):
        runner = e.run_.runner
        assert ("_deferred" in runner.__dict__) == ((g - 1) // 6 == (last - 1) // 6)  # stopped in the last chunk
        alone = ES(**e.get_params(deep=False)).fit(sphere, x0)
        assert alone.n_generations_ == g
        _same_leaves(runner.state, alone.run_.runner.state)
