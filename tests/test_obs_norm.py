"""Observation normalisation across parallel evaluation: every evaluator gives the serial run.

``GymProblem(obs_norm=True)`` follows the generation protocol of :mod:`evostrat.evaluators.sync`:
each candidate of a generation sees the statistics of the generation's start, returns the
count, mean and M2 of its observations, and the run merges them in population order after the
generation. Before, a process pool's workers updated their own copies: the driver's stayed at
count 0.01 and the run differed from the serial one.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evostrat import ES
from evostrat.errors import InvalidTypeError
from evostrat.evaluators import ExecutorEvaluator
from evostrat.evaluators.sync import generation, hand_back, syncs
from evostrat.problems.obs_stats import RunningStat

pytest.importorskip("gymnasium")

from evostrat.problems.gym import GymProblem, MLPPolicy  # noqa: E402


def problem(**kwargs: Any) -> GymProblem:
    return GymProblem("CartPole-v1", MLPPolicy(4, 2, hidden=()), episodes=2, max_steps=30, obs_norm=True, **kwargs)


def make(**kwargs: Any) -> ES:
    return ES("snes", popsize=6, max_generations=4, maximize=True, random_state=0, **kwargs)


def rows(es: ES) -> list:
    return [{k: v for k, v in row.items() if k != "time"} for row in es.history_]


def stats(p: GymProblem) -> tuple:
    return p.obs_stat.count, p.obs_stat.mean.tolist(), p.obs_stat.m2.tolist()


def fit(p: GymProblem, **kwargs: Any) -> ES:
    return make(**kwargs).fit(p, np.zeros(p.dim))


@pytest.fixture(scope="module")
def serial() -> tuple[ES, GymProblem]:
    p = problem()
    return fit(p, evaluator="serial"), p


@pytest.mark.parametrize("options", [
    {"max_workers": 2},                                  # the loky process pool, rows shipped
    {"max_workers": 2, "seeded": "seed"},                # the generation's seed shipped
    {"max_workers": 2, "seeded": "replay"},              # the told fitness shipped, replayed by the workers
    "threads",
])
def test_an_executor_run_equals_the_serial_run(serial: tuple[ES, GymProblem], options: Any) -> None:
    # before: the process pool's run had generation bests [10.5, 10.5, 18.0, 18.0] where the serial
    # run had [10.5, 10.5, 23.5, 30.0], and the driver's statistics stayed at count 0.01
    reference, reference_problem = serial
    p = problem()
    if options == "threads":
        with ThreadPoolExecutor(2) as pool:
            es = fit(p, evaluator=ExecutorEvaluator(pool))
    else:
        es = fit(p, evaluator="executor", evaluator_options=options)
    assert rows(es) == rows(reference) and np.array_equal(es.x_, reference.x_)
    assert stats(p) == stats(reference_problem)
    assert p.obs_stat.count > 100


def test_the_count_is_the_number_of_observations_seen() -> None:
    first = make().initialize(np.zeros(problem().dim)).ask()  # the population of generation 1
    steps = 0
    for x in first:  # every candidate sees the prior: count every step it takes, statistics frozen
        steps += sum(problem().freeze().episode(x, seed)[1] for seed in (0, 1))
    p = problem()
    ES("snes", popsize=6, max_generations=1, maximize=True, random_state=0, evaluator="executor",
       evaluator_options={"max_workers": 2}).fit(p, np.zeros(p.dim))
    assert p.obs_stat.count == pytest.approx(0.01 + steps, abs=1e-9)  # before: 0.01
    assert steps > 6 * 2


class Cut(Exception):
    pass


def cut_at(generation_: int) -> Any:
    def cb(es: ES) -> None:
        if es.n_generations_ == generation_:
            raise Cut

    return cb


def test_an_executor_run_resumes_exactly(tmp_path: Path, serial: tuple[ES, GymProblem]) -> None:
    reference, reference_problem = serial
    path, options = tmp_path / "pool.ckpt", {"max_workers": 2}
    cut = problem()
    with pytest.raises(Cut):
        make(evaluator="executor", evaluator_options=options).fit(cut, np.zeros(cut.dim), checkpoint=path,
                                                                  callbacks=[cut_at(3)])
    resumed_problem = problem()
    resumed = ES.resume(path, resumed_problem)  # the saved settings: the process pool again
    assert rows(resumed) == rows(reference) and np.array_equal(resumed.x_, reference.x_)
    assert stats(resumed_problem) == stats(reference_problem)


def test_candidates_of_one_call_see_the_same_statistics() -> None:
    p = problem()
    theta = np.random.default_rng(0).standard_normal(p.dim)
    thrice = p(np.stack([theta, theta, theta]))
    # before: each row saw the statistics updated by the rows before it: [19.0, 10.5, 11.0]
    assert thrice.tolist() == [10.5, 10.5, 10.5]
    assert p.obs_stat.count == pytest.approx(0.01 + 3 * 21)  # the call's observations joined at its end
    assert problem()(theta) == 10.5


def test_merged_candidate_statistics_equal_those_of_all_observations() -> None:
    obs = np.random.default_rng(0).normal(3.0, 2.0, size=(1000, 4))
    whole = RunningStat((4,))
    whole.update(obs)
    merged = RunningStat((4,))
    for part in np.array_split(obs, 7):
        piece = RunningStat((4,), eps=0.0)
        piece.update(part)
        merged.merge(*piece.moments())
    assert merged.count == whole.count == pytest.approx(1000.01)
    assert np.allclose(merged.mean, whole.mean) and np.allclose(merged.m2, whole.m2)
    prior = 0.01 * (1.0 + np.square(0.0))
    expected_var = (np.square(obs).sum(axis=0) + prior - 1000.01 * np.square(obs.sum(axis=0) / 1000.01)) / 1000.01
    assert np.allclose(whole.var, expected_var)


def test_checkpoints_with_sums_still_load() -> None:
    # checkpoints written before kept (count, sum, sumsq)
    p, old = problem(), problem()
    p(np.random.default_rng(2).standard_normal((3, p.dim)))
    stat = p.obs_stat
    old.load_checkpoint_state({"count": stat.count, "sum": stat.sum, "sumsq": stat.sumsq})
    assert old.obs_stat.count == stat.count
    assert np.allclose(old.obs_stat.mean, stat.mean) and np.allclose(old.obs_stat.m2, stat.m2)


class Recorder:
    """A synced objective that records each candidate's first coordinate."""

    vectorized = False

    def __init__(self) -> None:
        self.merged: list = []
        self._pending: list | None = None

    def __call__(self, x: Any) -> float:
        if self._pending is not None:
            self._pending.append(float(x[0]))
        return float(np.sum(np.asarray(x) ** 2))

    def generation_start(self) -> None:
        self._pending = []

    def collect(self) -> list:
        out = self._pending or []
        self._pending = [] if self._pending is not None else None
        return out

    def merge(self, records: list) -> None:
        self.merged.append(list(records))
        self._pending = None


def test_records_come_back_in_population_order_from_a_thread_pool() -> None:
    f = Recorder()
    assert syncs(f) and not syncs(lambda x: 0.0)
    with ThreadPoolExecutor(3) as pool:
        ES("snes", popsize=7, max_generations=3, random_state=0,
           evaluator=ExecutorEvaluator(pool, chunksize=2)).fit(f, np.ones(2))
    assert len(f.merged) == 3 and all(len(records) == 7 for records in f.merged)
    first = make().set_params(popsize=7, maximize=False).initialize(np.ones(2)).ask()
    assert f.merged[0] == [float(v) for v in first[:, 0]]
    assert f._pending is None  # the driver's copy left the generation; workers evaluated copies


def test_a_failed_generation_merges_nothing() -> None:
    f = Recorder()
    with pytest.raises(RuntimeError):
        with generation(f):
            f(np.ones(2))
            raise RuntimeError("evaluation failed")
    assert f.merged == [[]] and f._pending is None
    hand_back(f, [1.0])  # outside a generation: merged at once
    assert f.merged[-1] == [1.0]


def test_a_thread_pool_gives_each_chunk_its_own_environment() -> None:
    # before: the threads stepped the problem's one environment at once: this run's returns differed
    # from the serial run's, and a longer one failed with "objective raised on candidates 4-7:
    # TypeError: cannot unpack non-iterable NoneType object"
    def run(evaluator: Any) -> list:
        p = GymProblem("CartPole-v1", MLPPolicy(4, 2, hidden=(8,)), episodes=2, max_steps=100)
        es = ES("snes", popsize=16, max_generations=2, maximize=True, random_state=0,
                evaluator=evaluator).fit(p, np.zeros(p.dim))
        return rows(es)

    with ThreadPoolExecutor(4) as pool:
        assert run(ExecutorEvaluator(pool)) == run("serial")


def test_a_thread_pool_refuses_a_synced_objective_it_cannot_copy() -> None:
    import threading

    f = Recorder()
    f.lock = threading.Lock()  # type: ignore[attr-defined]
    with ThreadPoolExecutor(2) as pool:
        with pytest.raises(InvalidTypeError, match=r"objective must be copyable.*copy.*per chunk.*Recorder"):
            ES("snes", popsize=4, max_generations=1, evaluator=ExecutorEvaluator(pool)).fit(f, np.ones(2))


def test_a_batched_run_is_the_run_done_alone() -> None:
    # fit_batch ran its runs one after the other on the one objective: each run started from
    # the statistics the earlier runs had left (seed 2: -49.0 in a batch, -16.0 alone)
    from evostrat.run.batch import fit_batch

    template = problem()
    before = stats(template)
    res = fit_batch(make(), template, np.zeros(template.dim), seeds=[1, 2])
    for i, seed in enumerate((1, 2)):
        own = problem()
        alone = ES("snes", popsize=6, max_generations=4, maximize=True, random_state=seed).fit(own, np.zeros(own.dim))
        assert rows(res.estimators[i]) == rows(alone)
        assert res.objectives[i] is not template
        for a, b in zip(stats(res.objectives[i]), stats(own)):
            np.testing.assert_array_equal(a, b)  # each run's statistics, to evaluate its x_ with
    for a, b in zip(stats(template), before):
        np.testing.assert_array_equal(a, b)  # the objective passed is left as it was
