"""GymProblem on every kind of gymnasium space: flattened observations, MultiDiscrete actions,
and the spaces it refuses, named when the problem is made."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from evostrat.errors import InvalidArgumentError, InvalidTypeError

gymnasium = pytest.importorskip("gymnasium")

from gymnasium import spaces  # noqa: E402

from evostrat.problems.gym import GymProblem, MLPPolicy  # noqa: E402


class SpacesEnv(gymnasium.Env):
    """Three steps of reward 1 (the chosen action is recorded); observations drawn from the space."""

    def __init__(self, observation_space: Any, action_space: Any) -> None:
        self.observation_space, self.action_space = observation_space, action_space
        self.actions: list = []

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        self.t, self.actions = 0, []
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.t += 1
        self.actions.append(action)
        return self.observation_space.sample(), 1.0, self.t >= 3, False, {}


def register(name: str, observation_space: Any, action_space: Any) -> str:
    env_id = f"evostrat-test/{name}-v0"
    if env_id not in gymnasium.envs.registry:
        gymnasium.register(env_id, entry_point=SpacesEnv, max_episode_steps=10,
                           kwargs={"observation_space": observation_space, "action_space": action_space})
    return env_id


BOX2 = spaces.Box(-1.0, 1.0, (2,))


def test_discrete_and_dict_observations_are_flattened_as_gymnasium_does() -> None:
    # FrozenLake's Discrete(16) observation is shown to the policy one-hot (it failed in numpy's matmul)
    problem = GymProblem("FrozenLake-v1", MLPPolicy(16, 4, hidden=()), max_steps=5)
    assert problem.obs_shape == (16,)
    assert problem._observe(5).tolist() == np.eye(16)[5].tolist()
    assert np.isfinite(problem(np.zeros(problem.dim)))
    nested = spaces.Dict({"pos": BOX2, "mode": spaces.Discrete(3)})
    problem = GymProblem(register("DictObs", nested, spaces.Discrete(2)), MLPPolicy(5, 2, hidden=()))
    assert problem.obs_shape == (5,)
    obs = {"pos": np.array([0.5, -0.5], np.float32), "mode": 2}
    assert problem._observe(obs).tolist() == [0.0, 0.0, 1.0, 0.5, -0.5]
    assert problem(np.zeros(problem.dim)) == 3.0


def test_multidiscrete_actions_take_an_argmax_per_component() -> None:
    env_id = register("MultiDiscrete", BOX2, spaces.MultiDiscrete([2, 3], start=[0, 10]))
    problem = GymProblem(env_id, MLPPolicy(2, 5, hidden=()))
    assert problem.n_outputs == 5
    action = problem._action(np.array([0.0, 1.0, 5.0, 0.0, 2.0]), problem._get_env().action_space)
    assert action.tolist() == [1, 10] and action.dtype == np.int64
    assert problem(np.zeros(problem.dim)) == 3.0
    assert all(a in problem._get_env().action_space for a in problem._get_env().unwrapped.actions)


def test_unsupported_spaces_are_refused_when_the_problem_is_made() -> None:
    # a MultiBinary action space used to be refused only at the first step of the first episode
    with pytest.raises(InvalidTypeError, match=r"Discrete, MultiDiscrete and Box action spaces.*MultiBinary"):
        GymProblem(register("MultiBinary", BOX2, spaces.MultiBinary(3)), MLPPolicy(2, 3, hidden=()))
    with pytest.raises(InvalidTypeError, match=r"observation spaces that gymnasium can flatten.*Sequence"):
        GymProblem(register("SequenceObs", spaces.Sequence(spaces.Discrete(2)), spaces.Discrete(2)),
                   MLPPolicy(1, 2, hidden=()))


def test_squash_needs_a_bounded_box() -> None:
    # tanh onto [-inf, inf] made NaN actions that the environment took silently
    env_id = register("UnboundedBox", BOX2, spaces.Box(-np.inf, np.inf, (1,)))
    with pytest.raises(InvalidArgumentError, match=r"squash=True.*finite.*UnboundedBox.*squash=False"):
        GymProblem(env_id, MLPPolicy(2, 1, hidden=()), squash=True)
    assert GymProblem(env_id, MLPPolicy(2, 1, hidden=()))(np.ones(3)) == 3.0  # clipping is fine


def test_evaluate_names_a_bad_seed() -> None:
    problem = GymProblem("CartPole-v1", MLPPolicy(4, 2, hidden=()), max_steps=3)
    with pytest.raises(InvalidArgumentError, match=r"seed must be an int >= 0, got 'a'"):
        problem.evaluate(np.zeros(problem.dim), seed="a")


def test_a_negative_seed_is_refused_naming_it() -> None:
    """``seed=-1`` was accepted and failed at the first episode inside gymnasium (``Error: Seed must be
    greater or equal to zero``), or in numpy's generator (``expected non-negative integer``)."""
    with pytest.raises(InvalidArgumentError, match=r"seed must be an int >= 0, got -1"):
        GymProblem("CartPole-v1", MLPPolicy(4, 2, hidden=()), max_steps=3, seed=-1)
    problem = GymProblem("CartPole-v1", MLPPolicy(4, 2, hidden=()), max_steps=3)
    with pytest.raises(InvalidArgumentError, match=r"seed must be an int >= 0, got -2"):
        problem.evaluate(np.zeros(problem.dim), seed=-2)
