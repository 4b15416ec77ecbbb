"""Seconds of a torch-policy fit on evostrat's own process pool: one intra-op thread per worker or the default.

A Pong ``AtariProblem`` (a ``ConvPolicy``, 42 x 42 frames, ``max_steps=40``) and a CartPole-v1
``GymProblem`` with a torch MLP policy (4-64-64-2) are fitted with SNES (popsize 8, 4
generations) on ``evaluator="executor"`` with ``max_workers=2``, once with
``worker_threads=1`` (the default: each worker runs torch, OpenMP and BLAS on one thread) and
once with ``worker_threads=None`` (the libraries' defaults: a thread per core in each
worker). The pool is started inside each timed fit, as ``ES.fit`` does. Each figure is the best
of ``ROUNDS`` fits (default 2); the final means are equal whatever the threads.

Run (from the repository root)::

    ROUNDS=2 python benchmarks/pool_threads.py
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np


def fit_seconds(problem: Any, threads: int | None) -> tuple[float, np.ndarray]:
    """``(seconds, x_)`` of one SNES fit on an owned pool of 2 workers with ``worker_threads=threads``."""
    from evostrat import ES

    start = time.perf_counter()
    es = ES("snes", popsize=8, max_generations=4, maximize=True, random_state=0, evaluator="executor",
            evaluator_options={"max_workers": 2, "worker_threads": threads}).fit(problem, problem.init_params())
    return time.perf_counter() - start, es.x_


def main() -> None:
    """Print the seconds (see the module docstring)."""
    import torch

    from evostrat.problems.atari import AtariProblem
    from evostrat.problems.gym import GymProblem
    from evostrat.problems.policies import ConvPolicy

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),
                              torch.nn.Linear(64, 2))
    cartpole = GymProblem("CartPole-v1", mlp, max_steps=200)
    cartpole.init_params = lambda: np.zeros(cartpole.dim)  # type: ignore[method-assign]
    pong = AtariProblem("Pong", ConvPolicy(n_actions=6, in_channels=1, size=42, hidden=64), size=42, stack=1,
                        crop=(34, 194), max_steps=40)
    rounds = int(os.environ.get("ROUNDS", 2))
    for name, problem in (("pong", pong), ("cartpole", cartpole)):
        results = {}
        for threads in (1, None):
            runs = [fit_seconds(problem, threads) for _ in range(rounds)]
            results[threads] = runs[-1][1]
            print(f"{name:9s} worker_threads={threads!s:5s} {min(r[0] for r in runs):7.2f} s")
        print(f"{name:9s} same final mean: {np.array_equal(results[1], results[None])}")


if __name__ == "__main__":
    main()
