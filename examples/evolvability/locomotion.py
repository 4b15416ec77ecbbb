"""Evolvability ES on MuJoCo locomotion (gymnasium's HalfCheetah or Ant).

The locomotion task of Gajewski et al., GECCO 2019 (arXiv 1907.06077): a tanh
MLP policy controls the robot for one episode; its behaviour characterisation
is where the robot ends up, the final ``x`` of HalfCheetah (``k = 1``) or the
final ``(x, y)`` of Ant (``k = 2``). MaxEnt (or MaxVar) evolvability ES then
trains the central policy so that its perturbations end in diverse places;
the episode reward rides along as fitness (tracked in ``es.fun_`` and
``es.history_``, not used by the strategy).

Laptop size (the default, a few minutes): population 48, episodes of 200
steps, a 32-32 policy, 10 generations, evaluated on a local process pool::

    pip install "evostrat[gym]"
    python examples/evolvability/locomotion.py --env HalfCheetah-v5 --evaluator executor

The paper's scale: population 10,000, 1000-step episodes, a 256-256 tanh
policy, sigma 0.02, Adam with lr 0.01 and L2 0.005, behaviours normalised per
dimension, on a cluster through Ray::

    python examples/evolvability/locomotion.py --env Ant-v5 --strategy maxent_es \\
        --popsize 10000 --episode-steps 1000 --hidden 256 256 --generations 200 \\
        --evaluator ray

``evaluator="ray"`` ships the objective (a :class:`Rollout`, picklable) to the
cluster's workers, runs chunks of candidates as tasks and stacks the
``(fitness, behaviours)`` pairs on the driver (``ray.init(address=...)``
before ``fit`` joins an existing cluster). The MaxEnt kernel is then a
10,000 x 10,000 matrix (0.8 GB in float64): pass ``--backend torch`` with
``--device cuda`` to keep the strategy on a GPU.

Without gymnasium and MuJoCo the script says so and exits with status 0.

Examples
--------
>>> es = main(["--generations", "1", "--popsize", "4", "--episode-steps", "5",
...            "--hidden", "4"])                                  # doctest: +SKIP
>>> len(es.history_)                                                # doctest: +SKIP
1
"""

from __future__ import annotations

import argparse
import importlib.util
import math
from typing import Any, Sequence

import numpy as np

#: Behaviour characterisation per environment: keys of the step ``info`` dict.
BEHAVIOURS = {"HalfCheetah": ("x_position",), "Ant": ("x_position", "y_position")}


def gym_available() -> bool:
    """Whether gymnasium and MuJoCo can be imported."""
    return all(importlib.util.find_spec(m) is not None for m in ("gymnasium", "mujoco"))


def behaviour_keys(env_id: str) -> tuple[str, ...]:
    for prefix, keys in BEHAVIOURS.items():
        if env_id.startswith(prefix):
            return keys
    raise ValueError(f"env must be a HalfCheetah or Ant version, got {env_id!r}")


class Rollout:
    """The objective: one deterministic episode of a tanh-MLP policy.

    ``Rollout(env_id, hidden, steps)(theta)`` returns
    ``(episode reward, final position)``: a fitness and a behaviour vector, as
    :mod:`evostrat.run.behaviours` accepts them per candidate. Picklable (the
    environment is built lazily in each process), so process pools and Ray
    workers can run it.
    """

    def __init__(self, env_id: str = "HalfCheetah-v5", hidden: Sequence[int] = (32, 32),
                 steps: int = 200, seed: int = 0) -> None:
        self.env_id, self.hidden, self.steps, self.seed = env_id, tuple(hidden), int(steps), seed
        self.keys = behaviour_keys(env_id)
        self._env: Any = None
        self._sizes: tuple[int, int] | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_env": None}

    def env(self) -> Any:
        if self._env is None:
            import gymnasium as gym

            self._env = gym.make(self.env_id)
            self._sizes = (self._env.observation_space.shape[0], self._env.action_space.shape[0])
        return self._env

    def layer_shapes(self) -> list[tuple[int, int]]:
        self.env()
        n_obs, n_act = self._sizes
        sizes = [n_obs, *self.hidden, n_act]
        return list(zip(sizes[:-1], sizes[1:]))

    @property
    def dim(self) -> int:
        return sum(a * b + b for a, b in self.layer_shapes())

    def init_params(self, seed: int = 0) -> np.ndarray:
        """Weights ``N(0, 1/fan_in)``, biases 0 (float64)."""
        rng = np.random.default_rng(seed)
        parts = []
        for a, b in self.layer_shapes():
            parts += [rng.standard_normal(a * b) / math.sqrt(a), np.zeros(b)]
        return np.concatenate(parts)

    def policy(self, theta: np.ndarray, obs: np.ndarray) -> np.ndarray:
        h, start = obs, 0
        for a, b in self.layer_shapes():
            W = theta[start : start + a * b].reshape(a, b)
            start += a * b
            h = np.tanh(np.clip(h, -10, 10) @ W + theta[start : start + b])
            start += b
        return h  # tanh output: the action box [-1, 1]

    def __call__(self, theta: Any) -> tuple[float, np.ndarray]:
        theta = np.asarray(theta.detach().cpu() if hasattr(theta, "detach") else theta, dtype=np.float64)
        env = self.env()
        obs, info = env.reset(seed=self.seed)
        total = 0.0
        for _ in range(self.steps):
            obs, reward, terminated, truncated, info = env.step(self.policy(theta, obs))
            total += float(reward)
            if terminated or truncated:
                break
        return total, np.array([float(info[k]) for k in self.keys])


def main(argv: Sequence[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="HalfCheetah-v5", help="HalfCheetah-v5 or Ant-v5")
    parser.add_argument("--strategy", choices=["maxent_es", "maxvar_es"], default="maxent_es")
    parser.add_argument("--popsize", type=int, default=48)
    parser.add_argument("--generations", type=int, default=10)
    parser.add_argument("--episode-steps", type=int, default=200)
    parser.add_argument("--hidden", type=int, nargs="+", default=[32, 32])
    parser.add_argument("--sigma", type=float, default=0.02)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--weight-decay", type=float, default=0.005)
    parser.add_argument("--evaluator", default="serial", help="serial, executor or ray")
    parser.add_argument("--backend", default="numpy", help="numpy, torch or jax: where the strategy runs")
    parser.add_argument("--device", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not gym_available():
        print("skipping: gymnasium and mujoco are not installed (pip install 'evostrat[gym]')")
        return None

    from evostrat import ES

    rollout = Rollout(args.env, args.hidden, args.episode_steps, seed=args.seed)
    x0 = rollout.init_params(seed=args.seed)
    es = ES(
        args.strategy, sigma0=args.sigma, popsize=args.popsize, max_generations=args.generations,
        maximize=True, tolfun=None, tolx=None, evaluator=args.evaluator, backend=args.backend,
        device=args.device, random_state=args.seed,
        strategy_options=dict(lr=args.lr, weight_decay=args.weight_decay, optimizer="adam"),
    )

    def progress(es: Any) -> None:
        h = es.history_[-1]
        print(f"generation {h['generation']:4d}  best reward {h['generation_best']:9.2f}  "
              f"behaviour variance {h['behaviour_var']:8.4f}  objective {h['objective']:.4f}",
              flush=True)

    print(f"{args.strategy} on {args.env}: {rollout.dim} parameters, popsize {args.popsize}, "
          f"behaviour {', '.join(rollout.keys)}")
    es.fit(rollout, x0, callbacks=[progress])
    print(f"best reward {es.fun_:.2f}; final behaviour variance {es.history_[-1]['behaviour_var']:.4f}")
    return es


if __name__ == "__main__":
    main()
