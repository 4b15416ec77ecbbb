"""A CMA-ES hyper-parameter sweep on gymnax Pendulum-v1 as batched fits (issue 19 item 3).

The study of the JAX seed article ("Evolving Neural Networks in JAX"): CMA-ES evolving
a tanh MLP policy for Pendulum, swept over the hidden-layer size, the mean learning
rate (``strategy__lr_mean``, ``c_m``) and the elite ratio (``strategy__elite_ratio``,
the share of the population that are parents), several seeds each, with the final
return drawn against each hyper-parameter.

Every hidden size is one :func:`evostrat.fit_batch` call (the network size changes
the search dimension); inside it the runs of each ``elite_ratio`` (it sets the weights)
advance together in one compiled program, ``lr_mean`` a per-run value in it (``jax.vmap``
over the runs, the episodes ``vmap``-ed and the 200 steps in ``lax.scan`` inside the
objective). Candidates are
evaluated on ``--episodes`` fixed episodes (the same start states every generation);
the evolved mean is then tested on 10 fresh episodes, the number the figure shows.

Run::

    python examples/rl/pendulum_sweep.py --plot docs/guides/pendulum_sweep.png
    python examples/rl/pendulum_sweep.py --tiny        # seconds: the CI size

Examples
--------
>>> from examples.rl.pendulum_sweep import run, TINY      # doctest: +SKIP
>>> out = run(**TINY)                                     # doctest: +SKIP
>>> len(out["params"]) == len(out["test_return"])         # doctest: +SKIP
True
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Sequence

import numpy as np

#: The full study: 36 runs (docs/guides/pendulum_sweep.png; wall time and returns in docs/guides/batched.md).
FULL = dict(hidden=(8, 16, 32), lr_mean=(0.5, 1.0), elite_ratio=(0.25, 0.5), sigma0=0.5, popsize=32, seeds=3,
            generations=200, episodes=8, max_steps=200)
#: The CI size (seconds once compiled).
TINY = dict(hidden=(2,), lr_mean=(0.5, 1.0), elite_ratio=(0.5,), sigma0=1.0, popsize=6, seeds=1, generations=2,
            episodes=1, max_steps=5)
#: The swept hyper-parameters, as fit_batch's grid names them.
SWEPT = ["hidden", "strategy__lr_mean", "strategy__elite_ratio"]


def run(hidden: Sequence[int] = FULL["hidden"], lr_mean: Sequence[float] = FULL["lr_mean"],
        elite_ratio: Sequence[float] = FULL["elite_ratio"], sigma0: float = FULL["sigma0"],
        popsize: int = FULL["popsize"], seeds: int = FULL["seeds"], generations: int = FULL["generations"],
        episodes: int = FULL["episodes"], max_steps: int = FULL["max_steps"], verbose: bool = True) -> dict[str, Any]:
    """The sweep; returns ``params`` (one dict per run), ``fun`` (final training return),
    ``test_return`` (10 fresh episodes of the final mean) and ``wall_s``."""
    import jax

    from evostrat import ES, fit_batch
    from evostrat.problems.gymnax import GymnaxProblem

    start = time.perf_counter()
    params: list[dict[str, Any]] = []
    fun, test = [], []
    for width in hidden:
        problem = GymnaxProblem("Pendulum-v1", hidden=(width,), episodes=episodes, max_steps=max_steps)
        key = jax.random.PRNGKey(0)

        def mean_return(X: Any, problem: Any = problem, key: Any = key) -> Any:
            return problem.population_returns(X, key)

        es = ES("cma_es", sigma0=sigma0, popsize=popsize, maximize=True, max_generations=generations, tolfun=None,
                tolx=None, tolfunhist=None, tolstagnation=None, tolflatfitness=None)
        res = fit_batch(es, mean_return, problem.init_params(seed=0), seeds=seeds,
                        grid={"strategy__lr_mean": list(lr_mean), "strategy__elite_ratio": list(elite_ratio)})
        tester = GymnaxProblem("Pendulum-v1", hidden=(width,), episodes=10, max_steps=max_steps, seed=10_000)
        for p, e in zip(res.params, res.estimators):
            params.append({"hidden": width, **p})
            fun.append(float(e.fun_))
            test.append(float(tester(e.strategy_.mean)))
        if verbose:
            print(f"hidden {width:3d}: {len(res)} runs in {res.n_programs} programs, median test return "
                  f"{np.median(test[-len(res):]):8.1f}  ({time.perf_counter() - start:6.1f} s)", flush=True)
    return {"params": params, "fun": np.array(fun), "test_return": np.array(test),
            "wall_s": time.perf_counter() - start}


def plot(out: dict[str, Any], path: str) -> None:
    """The article's kind of figure: test return against each hyper-parameter (median, quartiles)."""
    import matplotlib

    matplotlib.use("Agg")
    from types import SimpleNamespace

    from evostrat.plotting import plot_sweep

    result = SimpleNamespace(params=out["params"], fun=out["test_return"])
    fig = plot_sweep(result, SWEPT, ylabel="test return (10 episodes)",
                     title=f"CMA-ES on Pendulum-v1: {len(out['params'])} runs, {out['wall_s'] / 60:.1f} min")
    fig.savefig(path, dpi=110)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the CI size")
    parser.add_argument("--plot", help="save the sweep figure (PNG) there")
    args = parser.parse_args(argv)
    out = run(**(TINY if args.tiny else FULL))
    print(f"{len(out['params'])} runs, wall time {out['wall_s']:.1f} s, best test return "
          f"{out['test_return'].max():.1f}")
    if args.plot:
        plot(out, args.plot)


if __name__ == "__main__":
    main()
