"""GymProblem's environments: made once per worker and reused, closed at the end; time limits."""

from __future__ import annotations

import gc
import multiprocessing
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from evostrat import ES
from evostrat.backends import get_backend
from evostrat.errors import EvostratWarning

gymnasium = pytest.importorskip("gymnasium")

from gymnasium.envs.classic_control import CartPoleEnv  # noqa: E402

from evostrat.evaluators import ExecutorEvaluator  # noqa: E402
from evostrat.problems.gym import GymProblem, MLPPolicy  # noqa: E402
from evostrat.problems.gym_envs import ENVS, EnvCache, step_limit  # noqa: E402

COUNTING = "evostrat-test/CountingCartPole-v0"


class CountingCartPole(CartPoleEnv):
    """CartPole that counts the environments made and closed."""

    made: list = []
    closed: list = []

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        CountingCartPole.made.append(self)

    def close(self) -> None:
        CountingCartPole.closed.append(self)
        super().close()


if COUNTING not in gymnasium.envs.registry:
    gymnasium.register(COUNTING, entry_point=CountingCartPole, max_episode_steps=500)


def fresh_returns(X: np.ndarray, episodes: int, max_steps: int) -> list[float]:
    """Each row's mean return, every episode on an environment made for it (as before reuse)."""
    values = []
    for row in X:
        returns = []
        for seed in range(episodes):
            problem = GymProblem("CartPole-v1", MLPPolicy(4, 2, hidden=(4,)), max_steps=max_steps, seed=seed)
            returns.append(problem(row))
            problem.close()
        values.append(float(np.mean(returns)))
    return values


def test_process_pool_workers_reuse_environments_with_the_returns_of_new_ones() -> None:
    """Three generations on a process pool of two workers (the later ones on the workers' kept
    environments, cut mid-episode by max_steps before): the returns of a new environment per episode."""
    problem = GymProblem("CartPole-v1", MLPPolicy(4, 2, hidden=(4,)), episodes=2, max_steps=40)
    rng, evaluator = np.random.default_rng(3), ExecutorEvaluator(max_workers=2)
    try:
        for _ in range(3):
            X = rng.standard_normal((6, problem.dim))
            values = evaluator.evaluate(problem, X, get_backend("numpy"))
            assert values.tolist() == fresh_returns(X, episodes=2, max_steps=40)
    finally:
        evaluator.close()
    assert len(set(values.tolist())) > 2  # returns that tell the candidates apart
    problem.close()


def test_pooled_fit_equals_the_serial_fit() -> None:
    problem = GymProblem("CartPole-v1", MLPPolicy(4, 2, hidden=(4,)), episodes=2, max_steps=60, obs_norm=True)
    kwargs = dict(popsize=8, max_generations=4, maximize=True, random_state=2)
    serial = ES("snes", evaluator="serial", **kwargs).fit(problem, np.zeros(problem.dim))
    problem = GymProblem("CartPole-v1", MLPPolicy(4, 2, hidden=(4,)), episodes=2, max_steps=60, obs_norm=True)
    pooled = ES("snes", evaluator="executor", evaluator_options={"max_workers": 2}, **kwargs)
    pooled.fit(problem, np.zeros(problem.dim))
    assert pooled.fun_ == serial.fun_ and np.array_equal(pooled.x_, serial.x_)


def test_thread_pool_makes_an_environment_per_worker_and_closes_them_at_the_end() -> None:
    """Five generations on two threads: two environments made (there were one per chunk and
    generation, 10), kept for reuse after the fit and closed with the problem."""
    made, closed = CountingCartPole.made, CountingCartPole.closed
    problem = GymProblem(COUNTING, MLPPolicy(4, 2, hidden=()), max_steps=30, obs_norm=True)
    made.clear(), closed.clear()
    with ThreadPoolExecutor(2) as pool:
        ES("snes", popsize=8, max_generations=5, maximize=True, random_state=0,
           evaluator=ExecutorEvaluator(pool, max_workers=2)).fit(problem, np.zeros(problem.dim))
    gc.collect()
    assert len(made) == 2 and closed == []
    assert ENVS.idle(problem.env_key) == 2
    problem(np.zeros(problem.dim))  # the problem's own environment: no new one
    assert len(made) == 2
    problem.close()
    assert len(closed) == 3 and ENVS.idle(problem.env_key) == 0  # the workers' two and the problem's own


class LoggedCartPole(CartPoleEnv):
    """CartPole that writes "made PID" and "closed PID" lines to the file ``log``."""

    def __init__(self, log: str = "", **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.log = log
        self.note("made")

    def note(self, what: str) -> None:
        with open(self.log, "a") as file:
            file.write(f"{what} {os.getpid()}\n")

    def close(self) -> None:
        self.note("closed")
        super().close()


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="forked workers see the test's env")
def test_process_pool_workers_make_one_environment_each_and_close_it_at_shutdown(tmp_path: Path) -> None:
    """Five generations on two forked workers: an environment made per worker (there was one per
    chunk and generation, 10), closed when the pool shuts down at the fit's end."""
    env_id, log = "evostrat-test/LoggedCartPole-v0", tmp_path / "envs.log"
    if env_id not in gymnasium.envs.registry:
        gymnasium.register(env_id, entry_point=LoggedCartPole, max_episode_steps=50)
    problem = GymProblem(env_id, MLPPolicy(4, 2, hidden=()), max_steps=20, env_kwargs={"log": str(log)})
    log.write_text("")
    ES("snes", popsize=8, max_generations=5, maximize=True, random_state=0,
       evaluator=ExecutorEvaluator(max_workers=2, mp_context="fork")).fit(problem, np.zeros(problem.dim))
    lines = log.read_text().split()
    made = sorted(pid for what, pid in zip(lines[::2], lines[1::2]) if what == "made")
    closed = sorted(pid for what, pid in zip(lines[::2], lines[1::2]) if what == "closed")
    assert len(made) <= 2 and made == closed and str(os.getpid()) not in made
    problem.close()


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="forked workers see the test's env")
def test_long_lived_worker_keeps_the_environments_of_at_most_max_keys_problems(tmp_path: Path) -> None:
    """One worker of a pool the user keeps serves five problems: it holds the environments of the
    last ``ENVS.max_keys`` (4), the older one closed, and closes the rest when the pool shuts down."""
    from concurrent.futures import ProcessPoolExecutor

    env_id, log = "evostrat-test/LoggedCartPole-v0", tmp_path / "envs.log"
    if env_id not in gymnasium.envs.registry:
        gymnasium.register(env_id, entry_point=LoggedCartPole, max_episode_steps=50)
    log.write_text("")
    problems = [GymProblem(env_id, MLPPolicy(4, 2, hidden=()), max_steps=5, env_kwargs={"log": str(log)})
                for _ in range(5)]
    log.write_text("")  # the problems' own environments, made here, are not the worker's
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    try:
        for problem in problems:
            ExecutorEvaluator(pool, max_workers=1).evaluate(problem, np.zeros((2, problem.dim)), get_backend("numpy"))
        assert pool.submit(os.getpid).result() != os.getpid()
        lines = log.read_text().split()
        assert ENVS.max_keys == 4 and lines[::2] == ["made"] * 5 + ["closed"]  # one closed when the fifth went
    finally:
        pool.shutdown()
    lines = log.read_text().split()
    assert lines[::2].count("closed") == 5 and len(set(lines[1::2])) == 1  # all in the one worker
    for problem in problems:
        problem.close()


def test_a_problem_that_goes_closes_its_environments() -> None:
    made, closed = CountingCartPole.made, CountingCartPole.closed
    made.clear(), closed.clear()
    problem = GymProblem(COUNTING, MLPPolicy(4, 2, hidden=()), max_steps=10)
    with ThreadPoolExecutor(2) as pool:
        ExecutorEvaluator(pool, max_workers=2).evaluate(problem, np.zeros((4, problem.dim)), get_backend("numpy"))
    del problem
    gc.collect()
    assert len(made) == 3 and sorted(map(id, closed)) == sorted(map(id, made))


def test_env_cache_closes_the_environments_of_the_oldest_problem_past_max_keys() -> None:
    cache, envs = EnvCache(max_keys=2), [CountingCartPole() for _ in range(3)]
    CountingCartPole.closed.clear()
    for key, env in zip("abc", envs):
        cache.give_back(key, env)
    assert CountingCartPole.closed == [envs[0]]
    assert cache.take("b", list) is envs[1] and cache.take("b", list) == []  # none left: made
    assert cache.close() == 1 and CountingCartPole.closed == [envs[0], envs[2]]


# -- time limits ------------------------------------------------------------------------------------------
def limitless(env_id: str, entry_point: object) -> str:
    if env_id not in gymnasium.envs.registry:
        gymnasium.register(env_id, entry_point=entry_point)
    return env_id


def test_environment_with_its_own_time_limit_is_not_warned_about() -> None:
    """A TimeLimit the entry point adds (not in the registry's spec) and episodes that always end
    (Blackjack) are no reason to warn (both warned when the problem was made)."""
    from gymnasium.wrappers import TimeLimit

    env_id = limitless("evostrat-test/SelfLimitedCartPole-v0", lambda: TimeLimit(CartPoleEnv(), 12))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        problem = GymProblem(env_id, MLPPolicy(4, 2, hidden=()))
        blackjack = GymProblem("Blackjack-v1", MLPPolicy(45, 2, hidden=()))
        assert np.isfinite(blackjack(np.zeros(blackjack.dim)))
    assert step_limit(problem._get_env()) == 12 and step_limit(blackjack._get_env()) is None
    balance = np.zeros(problem.dim)
    balance[[5, 7]], balance[[4, 6]] = 1.0, -1.0  # pushes towards the pole's lean
    assert problem.episode(balance, 0) == (12.0, 12)


def test_environment_without_time_limit_is_cut_at_the_default_cap_with_a_warning(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An episode that never ends by itself is cut (it ran forever) at DEFAULT_STEP_CAP, and warned
    about then; max_steps or env_kwargs max_episode_steps set the cap without a warning."""
    import evostrat.problems.gym as gym

    env_id = limitless("evostrat-test/NoLimitCartPole-v0", CartPoleEnv)
    monkeypatch.setattr(gym, "DEFAULT_STEP_CAP", 300)
    policy = MLPPolicy(4, 2, hidden=())
    balance = np.zeros(policy.dim)
    balance[[5, 7]], balance[[4, 6]] = 1.0, -1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        problem = GymProblem(env_id, policy)  # made without a warning
        assert problem.episode(np.zeros(policy.dim), 0)[1] < 30  # it fails: ends by itself, no warning
        assert GymProblem(env_id, policy, max_steps=7).episode(balance, 0) == (7.0, 7)
        capped = GymProblem(env_id, policy, env_kwargs={"max_episode_steps": 9})
        assert capped.episode(balance, 0) == (9.0, 9)
    with pytest.warns(EvostratWarning, match=r"NoLimitCartPole-v0 has no time limit and max_steps is None: "
                                             r"an episode was cut at 300 steps"):
        assert problem.episode(balance, 0) == (300.0, 300)
