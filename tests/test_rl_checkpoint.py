"""Checkpoints of RL runs: GymProblem's running observation statistics are saved with the run
and given back on resume, so the resumed run is the uninterrupted one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evostrat import ES
from evostrat.checkpoint import Checkpointer, load_checkpoint, save_checkpoint
from evostrat.errors import InvalidArgumentError, InvalidTypeError

pytest.importorskip("gymnasium")

from evostrat.problems.gym import GymProblem, MLPPolicy  # noqa: E402


class Cut(Exception):
    pass


def cut_at(generation: int) -> Any:
    def cb(es: ES) -> None:
        if es.n_generations_ == generation:
            raise Cut

    return cb


def problem() -> GymProblem:
    return GymProblem("CartPole-v1", MLPPolicy(4, 2, hidden=()), episodes=2, max_steps=30, obs_norm=True)


def make() -> ES:
    return ES("snes", popsize=6, max_generations=6, maximize=True, random_state=0)


def rows(es: ES) -> list:
    return [{k: v for k, v in row.items() if k != "time"} for row in es.history_]


def stats(p: GymProblem) -> tuple:
    return p.obs_stat.count, p.obs_stat.sum.tolist(), p.obs_stat.sumsq.tolist()


@pytest.mark.parametrize("same_problem", [False, True])
def test_resumed_obs_norm_run_equals_the_uninterrupted_run(tmp_path: Path, same_problem: bool) -> None:
    full_problem = problem()
    full = make().fit(full_problem, np.zeros(full_problem.dim))
    cut_problem, path = problem(), tmp_path / "rl.ckpt"
    with pytest.raises(Cut):  # checkpoints at generations 1, 2; the cut falls in generation 3
        make().fit(cut_problem, np.zeros(cut_problem.dim), checkpoint=path, callbacks=[cut_at(3)])
    # before: the statistics were not saved, and the resumed run's generation 3 returned 21.0
    # (a fresh problem) or 21.5 (the cut one, which had seen generation 3) instead of 23.5
    resumed_problem = cut_problem if same_problem else problem()
    resumed = ES.resume(path, resumed_problem)
    assert rows(resumed) == rows(full) and resumed.fun_ == full.fun_
    assert np.array_equal(resumed.x_, full.x_)
    assert stats(resumed_problem) == stats(full_problem)


def test_a_checkpointer_among_the_callbacks_saves_the_statistics(tmp_path: Path) -> None:
    p = problem()
    make().fit(p, np.zeros(p.dim), callbacks=[Checkpointer(tmp_path / "cb.ckpt", every=2)])
    fresh = problem()
    es = load_checkpoint(tmp_path / "cb.ckpt", objective=fresh)
    assert es.n_generations_ == 6 and stats(fresh) == stats(p)


def test_ask_tell_loop_saves_and_loads_the_objective(tmp_path: Path) -> None:
    p = problem()
    es = make().initialize(np.zeros(p.dim))
    for _ in range(2):
        X = es.ask()
        es.tell(X, p(X))
    save_checkpoint(es, tmp_path / "loop.ckpt", objective=p)
    fresh = problem()
    later = load_checkpoint(tmp_path / "loop.ckpt", objective=fresh)
    assert stats(fresh) == stats(p)
    X = later.ask()
    assert np.array_equal(fresh(X), p(X))  # the same normalisation, so the same returns


def test_resuming_with_an_objective_that_cannot_take_the_state_back(tmp_path: Path) -> None:
    p = problem()
    make().fit(p, np.zeros(p.dim), checkpoint=tmp_path / "a.ckpt")
    with pytest.raises(InvalidTypeError, match=r"load_checkpoint_state\(state\).*function"):
        ES.resume(tmp_path / "a.ckpt", lambda X: np.zeros(len(X)))
    plain = GymProblem("CartPole-v1", MLPPolicy(4, 2, hidden=()), episodes=2, max_steps=30)
    with pytest.raises(InvalidArgumentError, match=r"obs_norm=False.*obs_norm=True"):
        ES.resume(tmp_path / "a.ckpt", plain)
    with pytest.raises(InvalidArgumentError, match=r"mean and m2 of shape \(4,\)"):
        problem().load_checkpoint_state({"count": 1.0, "sum": np.zeros(3), "sumsq": np.ones(3)})


def test_a_problem_without_obs_norm_saves_nothing(tmp_path: Path) -> None:
    plain = GymProblem("CartPole-v1", MLPPolicy(4, 2, hidden=()), max_steps=10)
    assert plain.checkpoint_state() is None
    done = make().fit(plain, np.zeros(plain.dim), checkpoint=tmp_path / "b.ckpt")  # tolfun stops it at 3
    resumed = ES.resume(tmp_path / "b.ckpt", lambda X: np.zeros(len(X)))  # finished: no evaluation
    assert (resumed.n_generations_, resumed.stop_reason_) == (done.n_generations_, done.stop_reason_)
