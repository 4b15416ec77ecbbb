"""SNES on MinAtar Breakout (gymnax, JAX), the whole loop compiled: learning in minutes on 2 cores.

MinAtar (Young & Tian 2019) shrinks Atari games to 10x10 grids with a few object
channels; gymnax ships them as JAX environments, so a generation (``--popsize``
policies x ``--episodes`` episodes of up to 1000 steps, ``vmap`` over both, ``lax.scan``
over time, then the SNES update) runs as one XLA program and ``--chunk`` generations as
one ``lax.scan`` (:func:`evostrat.problems.gymnax.evolve`; fresh episode keys every
generation). The policy is a 400-32-3 tanh MLP on the flattened grid (12,931 weights),
argmax over the actions. Before and after, the uniformly random policy and the evolved
mean play 20 fresh episodes.

Run::

    python examples/rl/minatar_breakout.py --plot docs/guides/img/minatar_breakout.png

Examples
--------
>>> from examples.rl.minatar_breakout import run          # doctest: +SKIP
>>> out = run(generations=300)                              # doctest: +SKIP
>>> out["test_return"] > out["random_return"] + 2           # doctest: +SKIP
True
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

TEST_SEED = 10_000  # fresh episodes: training keys come from random_state + 1


def random_return(env_id: str = "Breakout-MinAtar", episodes: int = 20, seed: int = TEST_SEED) -> float:
    """Mean return of uniformly random actions over ``episodes`` episodes (the baseline)."""
    import gymnax
    import jax

    env, params = gymnax.make(env_id)
    actions = env.action_space(params).n  # (its sample() casts to int64: a warning without jax_enable_x64)

    def episode(key: Any) -> Any:
        k_reset, k_run = jax.random.split(key)
        obs, state = env.reset(k_reset, params)

        def step(carry: Any, k: Any) -> tuple[Any, None]:
            state, total, done = carry
            k_act, k_step = jax.random.split(k)
            action = jax.random.randint(k_act, (), 0, actions)
            _, state, reward, finished, _ = env.step(k_step, state, action, params)
            return (state, total + jax.numpy.where(done, 0.0, reward), done | finished), None

        init = (state, jax.numpy.zeros(()), jax.numpy.zeros((), bool))
        (_, total, _), _ = jax.lax.scan(step, init, jax.random.split(k_run, params.max_steps_in_episode))
        return total

    keys = jax.random.split(jax.random.PRNGKey(seed), episodes)
    return float(jax.jit(jax.vmap(episode))(keys).mean())


def run(env_id: str = "Breakout-MinAtar", generations: int = 300, popsize: int = 32, episodes: int = 4,
        hidden: int = 32, chunk: int = 25, seed: int = 0, verbose: bool = True) -> dict[str, Any]:
    """Evolve a MinAtar policy with SNES; returns the curve, the test and the random return."""
    from evostrat.problems.gymnax import GymnaxProblem, evolve
    from evostrat.strategies.snes import SNES

    problem = GymnaxProblem(env_id, hidden=(hidden,), episodes=episodes)
    x0 = problem.init_params(seed=seed)
    start = time.perf_counter()

    def progress(gen: int, fitness: Any) -> None:
        if verbose:
            f = np.asarray(fitness)
            print(f"gen {gen:4d}  population mean return {f[-1].mean():6.2f}  best {f[-1].max():6.2f}"
                  f"  ({time.perf_counter() - start:5.1f} s)", flush=True)

    out = evolve(SNES(popsize=popsize), problem, x0, generations, random_state=seed, chunk=chunk,
                 callback=progress)
    wall = time.perf_counter() - start
    test = float(np.asarray(problem.episode_returns(out.mean, episodes=20, seed=TEST_SEED)).mean())
    fitness = np.asarray(out.fitness)
    steps = generations * popsize * episodes * problem.steps
    return {
        "env_id": env_id,
        "episodes": episodes,
        "test_return": test,
        "random_return": random_return(env_id),
        "curve": fitness.mean(axis=1),
        "best_curve": fitness.max(axis=1),
        "seconds_per_generation": out.seconds_per_generation,
        "env_steps_per_s": popsize * episodes * problem.steps / out.seconds_per_generation,
        "wall_s": wall,
        "env_steps": steps,
        "mean": out.mean,
    }


def plot(result: dict[str, Any], path: str) -> None:
    """Population mean and best training return per generation, with the random baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot(result["curve"], label=f"population mean ({result['episodes']} episode{'s' * (result['episodes'] != 1)} each)")
    ax.plot(result["best_curve"], lw=0.7, alpha=0.6, label="population best")
    ax.axhline(result["random_return"], color="grey", ls="--", label="uniformly random actions")
    ax.axhline(result["test_return"], color="C2", ls=":", label="evolved mean, 20 fresh episodes")
    ax.set_xlabel("generation")
    ax.set_ylabel("return")
    ax.set_title(f"SNES on {result['env_id']} ({result['wall_s']:.0f} s wall clock)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="Breakout-MinAtar",
                        help="a gymnax MinAtar id (Breakout, Asterix, Freeway, SpaceInvaders -MinAtar)")
    parser.add_argument("--generations", type=int, default=300)
    parser.add_argument("--popsize", type=int, default=32)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default=None, help="save the learning curve to this PNG")
    args = parser.parse_args(argv)
    result = run(args.env, generations=args.generations, popsize=args.popsize, episodes=args.episodes,
                 chunk=args.chunk, seed=args.seed)
    print(f"done: {args.generations} generations in {result['wall_s']:.1f} s "
          f"({result['seconds_per_generation'] * 1e3:.0f} ms per generation, "
          f"{result['env_steps_per_s']:.0f} environment steps/s); mean return over 20 fresh episodes "
          f"{result['test_return']:.2f}, random actions {result['random_return']:.2f}")
    if args.plot:
        plot(result, args.plot)
        print(f"learning curve saved to {args.plot}")
    return result


if __name__ == "__main__":
    main()
