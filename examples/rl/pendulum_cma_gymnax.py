"""CMA-ES on gymnax Pendulum-v1 with a 3-48-1 tanh MLP, the whole loop compiled in JAX.

Each generation samples ``--popsize`` policies, plays ``--episodes`` episodes of
200 steps for every one of them (``vmap`` over population and episodes,
``lax.scan`` over time; fresh episode keys every generation), and updates
CMA-ES; chunks of ``--chunk`` generations run as one XLA program
(:func:`evostrat.problems.gymnax.evolve`). The network's output is the torque,
clipped to [-2, 2]; CMA-ES starts with ``sigma0 = 1`` (small initial steps such as 0.1
leave all policies near zero torque, unable to swing up). The evolved mean then plays 20 fresh
episodes; Pendulum counts as solved at a mean cost of about 150 or less
(return >= -150).

Run::

    python examples/rl/pendulum_cma_gymnax.py --plot pendulum.png

Examples
--------
>>> from examples.rl.pendulum_cma_gymnax import run            # doctest: +SKIP
>>> run(generations=200)["test_return"] >= -150                 # doctest: +SKIP
True
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np


def run(
    generations: int = 200,
    popsize: int = 100,
    episodes: int = 20,
    sigma0: float = 1.0,
    chunk: int = 25,
    seed: int = 0,
    verbose: bool = True,
) -> dict[str, Any]:
    """Evolve a Pendulum policy; returns the learning curve and the test return."""
    from evostrat.problems.gymnax import GymnaxProblem, evolve
    from evostrat.strategies.cma_es import CMAES

    problem = GymnaxProblem("Pendulum-v1", hidden=(48,), episodes=episodes)
    x0 = problem.init_params(seed=seed)
    start = time.perf_counter()

    def progress(gen: int, fitness: Any) -> None:
        if verbose:
            f = np.asarray(fitness)
            print(f"gen {gen:4d}  population mean return {f[-1].mean():8.1f}  best {f[-1].max():8.1f}"
                  f"  ({time.perf_counter() - start:5.1f} s)", flush=True)

    out = evolve(CMAES(popsize=popsize, sigma0=sigma0), problem, x0, generations,
                 random_state=seed, chunk=chunk, callback=progress)
    test = float(np.asarray(problem.episode_returns(out.mean, episodes=20, seed=10_000)).mean())
    fitness = np.asarray(out.fitness)
    return {
        "test_return": test,
        "generations": generations,
        "curve": fitness.mean(axis=1),
        "best_curve": fitness.max(axis=1),
        "seconds_per_generation": out.seconds_per_generation,
        "wall_s": time.perf_counter() - start,
        "mean": out.mean,
        "problem": problem,
    }


def plot(result: dict[str, Any], path: str) -> None:
    """Save the population's mean and best return per generation as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(result["curve"], label="population mean")
    ax.plot(result["best_curve"], label="population best")
    ax.axhline(-150, color="grey", ls="--", label="solved (-150)")
    ax.set_xlabel("generation")
    ax.set_ylabel("mean return over episodes")
    ax.set_title("CMA-ES on gymnax Pendulum-v1 (3-48-1 MLP)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generations", type=int, default=200)
    parser.add_argument("--popsize", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--sigma0", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default=None, help="save the learning curve to this PNG")
    args = parser.parse_args(argv)
    result = run(args.generations, args.popsize, args.episodes, args.sigma0, seed=args.seed)
    print(f"done: {result['generations']} generations in {result['wall_s']:.1f} s "
          f"({1000 * result['seconds_per_generation']:.0f} ms per generation after compilation); "
          f"mean return over 20 fresh episodes: {result['test_return']:.1f}")
    if args.plot:
        plot(result, args.plot)
        print(f"learning curve saved to {args.plot}")
    return result


if __name__ == "__main__":
    main()
