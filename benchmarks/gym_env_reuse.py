"""Generations per second of a GymProblem fit, serial and on pools (environment reuse).

A CartPole-v1 fit (an ``MLPPolicy(4, 2, hidden=(16,))``, SNES, popsize 16, 20 generations, one
episode per candidate, ``max_steps=200``) evaluated serially, on a thread pool of 2 and on a
loky process pool of 2 workers (made once before the timed fits: its start is not timed); with
``ATARI=1`` also an ``AtariProblem`` on Pong (a ``ConvPolicy``, popsize 4, 5 generations,
``max_steps=10``: short episodes, where making the environment, about 0.25 s, weighs most).
Each figure is the best over ``ROUNDS`` fits (default 3): the machine's other load only
slows a fit down. It also prints the mean return of the final mean, identical whatever the
evaluator. With ``RESETS=1`` it first prints the cost of an Atari ``reset(seed=...)`` on Pong
(seeds 0 to 3 in turn, as a generation's episodes meet them): reloading the game every time
(``AtariFrames.max_starts = 0``, what evostrat did before it kept each seed's start) against
restoring the start it kept.

Run (from the repository root)::

    ROUNDS=3 ATARI=1 RESETS=1 python benchmarks/gym_env_reuse.py
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np


def fit_rate(problem: Any, evaluator: Any, popsize: int, generations: int) -> tuple[float, float]:
    """``(generations per second, the final mean's value)`` of one SNES fit."""
    from evostrat import ES

    start = time.perf_counter()
    es = ES("snes", popsize=popsize, max_generations=generations, maximize=True, random_state=0,
            evaluator=evaluator).fit(problem, np.zeros(problem.dim))
    return generations / (time.perf_counter() - start), float(problem(es.x_))


def reset_cost(resets: int = 40) -> None:
    """Print the mean seconds of a seeded Pong reset, reloading the game and restoring the kept start."""
    from evostrat.problems.atari import make_atari

    for label, keep in (("reload", 0), ("restore", 64)):
        env = make_atari("Pong", size=42, stack=1, crop=(34, 194))
        env.max_starts = keep
        for seed in range(4):  # the first reset of each seed loads the game in both
            env.reset(seed=seed)
        start = time.perf_counter()
        for i in range(resets):
            env.reset(seed=i % 4)
        print(f"atari reset(seed) {label:8s} {(time.perf_counter() - start) / resets * 1e3:8.2f} ms")
        env.close()


def main() -> None:
    """Print the rates (see the module docstring)."""
    from joblib.externals.loky import ProcessPoolExecutor as LokyPool

    from evostrat.evaluators import ExecutorEvaluator
    from evostrat.problems.gym import GymProblem, MLPPolicy

    rounds = int(os.environ.get("ROUNDS", 3))
    if os.environ.get("RESETS"):
        reset_cost()
    cases: list[tuple[str, Any, int, int]] = [
        ("cartpole", GymProblem("CartPole-v1", MLPPolicy(4, 2, hidden=(16,)), max_steps=200), 16, 20)]
    if os.environ.get("ATARI"):
        from evostrat.problems.atari import AtariProblem
        from evostrat.problems.policies import ConvPolicy

        cases.append(("pong", AtariProblem("Pong", ConvPolicy(n_actions=6, in_channels=1, size=42, hidden=64), size=42, stack=1,
                                           crop=(34, 194), max_steps=10), 4, 5))
    with ThreadPoolExecutor(2) as threads, LokyPool(max_workers=2) as processes:
        processes.submit(int).result()  # workers started
        for name, problem, popsize, generations in cases:
            for label, make in (("serial", lambda: "serial"),
                                ("threads 2", lambda: ExecutorEvaluator(threads, max_workers=2)),
                                ("processes 2", lambda: ExecutorEvaluator(processes, max_workers=2))):
                runs = [fit_rate(problem, make(), popsize, generations) for _ in range(rounds)]
                rate = max(r[0] for r in runs)
                print(f"{name:9s} {label:12s} {rate:8.2f} generations/s   final mean return {runs[-1][1]:.1f}")


if __name__ == "__main__":
    main()
