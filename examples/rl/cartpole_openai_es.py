"""OpenAI-ES on CartPole-v1 with a small torch policy network, evaluated in parallel.

The search vector holds all weights of a 4-16-2 tanh MLP (``torch.nn``); each
candidate plays ``--episodes`` episodes (the same seeds for all candidates)
and its fitness is the mean return, maximised. Candidates are evaluated on a
process pool (``evaluator="executor"``, ``--workers`` processes; ``--workers 0``
evaluates serially in this process). Every ``--check-every`` generations the
current mean of the search distribution plays 20 fresh episodes (seeds never
used in training); the run stops once their mean return reaches ``--target``.

Run::

    python examples/rl/cartpole_openai_es.py --plot cartpole.png

Examples
--------
>>> from examples.rl.cartpole_openai_es import run      # doctest: +SKIP
>>> result = run(max_generations=60, workers=0)          # doctest: +SKIP
>>> result["test_return"] >= 475                          # doctest: +SKIP
True
"""

from __future__ import annotations

import argparse
import time
from typing import Any


TEST_SEED = 10_000  # fresh episodes: training uses seeds 0 .. episodes - 1


def make_policy(hidden: int = 16) -> Any:
    """A 4-hidden-2 tanh MLP for CartPole's 4 observations and 2 actions."""
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 2))


def run(
    max_generations: int = 100,
    popsize: int = 40,
    episodes: int = 3,
    sigma0: float = 0.1,
    lr: float = 0.05,
    workers: int = 2,
    target: float = 475.0,
    check_every: int = 5,
    seed: int = 0,
    verbose: bool = True,
) -> dict[str, Any]:
    """Evolve a CartPole policy; returns the learning curve and the final test return."""
    import torch

    from evostrat import ES
    from evostrat.params_flat import TorchParams
    from evostrat.problems.gym import GymProblem

    policy = make_policy()
    problem = GymProblem("CartPole-v1", policy, episodes=episodes, seed=seed)
    x0 = TorchParams(policy).flatten().double()
    tests: list[tuple[int, float]] = []
    start = time.perf_counter()

    def monitor(es: ES) -> bool:
        gen = es.n_generations_
        if gen % check_every:
            return False
        mean = es.strategy_.mean
        test = float(problem.evaluate(mean, episodes=20, seed=TEST_SEED).mean())
        tests.append((gen, test))
        if verbose:
            print(f"gen {gen:4d}  best so far {es.fun_:6.1f}  mean policy on 20 fresh episodes "
                  f"{test:6.1f}  ({time.perf_counter() - start:5.1f} s)", flush=True)
        return test >= target

    evaluator = "executor" if workers > 0 else "serial"
    options = {"max_workers": workers} if workers > 0 else None
    es = ES(
        "openai_es", sigma0=sigma0, popsize=popsize, max_generations=max_generations, maximize=True,
        strategy_options={"lr": lr}, evaluator=evaluator, evaluator_options=options, random_state=seed,
    )
    es.fit(problem, x0, callbacks=[monitor])
    final = es.strategy_.mean
    test = float(problem.evaluate(final, episodes=20, seed=TEST_SEED).mean())
    TorchParams(policy).load(torch.as_tensor(final, dtype=torch.float32))
    return {
        "test_return": test,
        "generations": es.n_generations_,
        "tests": tests,
        "best": es.fun_,
        "wall_s": time.perf_counter() - start,
        "evaluator": evaluator,
        "policy": policy,
        "history": es.history_,
    }


def plot(result: dict[str, Any], path: str) -> None:
    """Save the learning curve (test return of the mean policy per check) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gens, returns = zip(*result["tests"]) if result["tests"] else ((), ())
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(gens, returns, marker="o", label="mean policy, 20 fresh episodes")
    ax.axhline(475, color="grey", ls="--", label="solved (475)")
    ax.set_xlabel("generation")
    ax.set_ylabel("return")
    ax.set_title("OpenAI-ES on CartPole-v1")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generations", type=int, default=100)
    parser.add_argument("--popsize", type=int, default=40)
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check-every", type=int, default=5)
    parser.add_argument("--target", type=float, default=475.0)
    parser.add_argument("--plot", default=None, help="save the learning curve to this PNG")
    args = parser.parse_args(argv)
    result = run(
        max_generations=args.generations, popsize=args.popsize, episodes=args.episodes,
        workers=args.workers, seed=args.seed, check_every=args.check_every, target=args.target,
    )
    print(f"done: {result['generations']} generations, {result['wall_s']:.1f} s ({result['evaluator']} "
          f"evaluator); mean return over 20 fresh episodes: {result['test_return']:.1f}")
    if args.plot:
        plot(result, args.plot)
        print(f"learning curve saved to {args.plot}")
    return result


if __name__ == "__main__":
    main()
