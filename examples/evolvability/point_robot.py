"""What evolvability means: a point robot whose perturbations reach far in many directions.

A small tanh policy network (98 parameters) drives a point robot from the
origin for 50 steps (:class:`evostrat.problems.point_robot.PointRobot`; the
farthest a robot can get is ``reach = 1``); its behaviour is the final
position ``(x, y)``. Three strategies train the policy from the same random
initialisation, with the same population, sigma and number of generations:

- ``maxent``: MaxEnt evolvability ES (Gajewski et al., GECCO 2019, arXiv
  1907.06077): entropy of a kernel density estimate of the z-scored final
  positions, kernel width 1;
- ``maxvar``: MaxVar evolvability ES: total variance of the z-scored final positions;
- ``openai_es``: OpenAI-ES (Salimans et al. 2017) maximising the distance from
  the origin, the usual reward-driven baseline.

Evolvability is then measured the same way for each trained centre ``theta``:
1000 perturbations ``theta + sigma eps`` are rolled out and we count the
angular sectors (8 of 45 degrees) that at least ``--min-count`` of them reach
beyond ``--radius`` (:func:`~evostrat.problems.point_robot.sector_coverage`).
Reward-driven ES learns to run far in one direction, so its perturbations
cluster; MaxVar pushes them to opposite extremes; MaxEnt spreads them all
around. ``--plot`` writes the final positions of the perturbations (PNG;
needs matplotlib, ``pip install evostrat[plot]``).

Run ``python examples/evolvability/point_robot.py --plot point_robot.png``
(about 10 s on a laptop; ``--backend torch`` or ``jax`` simulates there).

Examples
--------
>>> results = main(["--generations", "2", "--popsize", "20", "--perturbations", "50"])  # doctest: +SKIP
>>> sorted(results)                                                                     # doctest: +SKIP
['init', 'maxent', 'maxvar', 'openai_es']
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence

import numpy as np

from evostrat import ES
from evostrat.problems.point_robot import PointRobot, distance, sector_coverage

METHODS = ("maxent", "maxvar", "openai_es")

#: Strategy name and options of each method (Adam, lr 0.02; fixed sigma).
SETTINGS = {
    "maxent": ("maxent_es", dict(lr=0.02, behaviour_shaping="zscore", kernel_width=1.0)),
    "maxvar": ("maxvar_es", dict(lr=0.02, behaviour_shaping="zscore")),
    "openai_es": ("openai_es", dict(lr=0.02)),
}


def as_backend(x: np.ndarray, backend: str) -> Any:
    """``x`` as a float64 numpy array, float32 torch tensor or JAX array."""
    if backend == "torch":
        import torch

        return torch.as_tensor(x, dtype=torch.float32)
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(x, dtype=jnp.float32)
    return np.asarray(x, dtype=np.float64)


def to_numpy(x: Any) -> np.ndarray:
    return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)


def train(
    method: str,
    robot: PointRobot,
    x0: Any,
    generations: int,
    popsize: int,
    sigma: float,
    seed: int = 0,
) -> ES:
    """Fit one method; the trained centre is ``es.strategy_.mean``."""
    strategy, options = SETTINGS[method]
    if method == "openai_es":
        def objective(X: Any) -> Any:  # minimised: the negative distance travelled
            return -distance(robot(X))
    else:
        objective = robot  # behaviours: final positions (popsize, 2)
    if type(x0).__module__.startswith("jax"):  # one compiled program for the 50-step rollout
        import jax

        objective = jax.jit(objective)
    es = ES(strategy, sigma0=sigma, popsize=popsize, max_generations=generations,
            tolfun=None, tolx=None, evaluator="vectorized", random_state=seed,
            strategy_options=options)
    return es.fit(objective, x0)


def perturbations(robot: PointRobot, theta: np.ndarray, sigma: float, n: int, seed: int) -> np.ndarray:
    """Final positions of ``n`` perturbations ``theta + sigma eps`` (numpy, float64)."""
    eps = np.random.default_rng(seed).standard_normal((n, theta.shape[0]))
    return to_numpy(robot(theta + sigma * eps))


def study(
    generations: int = 200,
    popsize: int = 200,
    sigma: float = 0.1,
    backend: str = "numpy",
    seed: int = 0,
    n_perturbations: int = 1000,
    radius: float = 0.5,
    min_count: int = 10,
    steps: int = 50,
    hidden: int = 16,
    methods: Sequence[str] = METHODS,
) -> dict[str, dict[str, Any]]:
    """Train each method and measure the evolvability of its centre.

    Returns
    -------
    dict
        ``method -> {"coverage", "counts", "mean_distance", "behaviours", "theta"}``,
        with ``"init"`` for the untrained initial parameters.
    """
    robot = PointRobot(steps=steps, hidden=hidden)
    theta0 = robot.init_params(seed=seed)
    centres = {"init": theta0}
    for method in methods:
        es = train(method, robot, as_backend(theta0, backend), generations, popsize, sigma, seed)
        centres[method] = to_numpy(es.strategy_.mean)
    results = {}
    for name, theta in centres.items():
        B = perturbations(robot, theta, sigma, n_perturbations, seed=seed + 1)
        coverage, counts = sector_coverage(B, radius, sectors=8, min_count=min_count)
        results[name] = {
            "coverage": coverage,
            "counts": counts,
            "mean_distance": float(np.mean(np.hypot(B[:, 0], B[:, 1]))),
            "behaviours": B,
            "theta": theta,
        }
    return results


def plot(results: dict[str, dict[str, Any]], path: str, radius: float, reach: float = 1.0) -> None:
    """Scatter the perturbations' final positions, one panel per method (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.4), squeeze=False)
    angles = np.linspace(0, 2 * np.pi, 200)
    for ax, name in zip(axes[0], names):
        r = results[name]
        B = r["behaviours"]
        ax.scatter(B[:, 0], B[:, 1], s=3, alpha=0.5)
        ax.plot(radius * np.cos(angles), radius * np.sin(angles), "k--", lw=0.8)
        ax.plot(reach * np.cos(angles), reach * np.sin(angles), "k-", lw=0.5)
        for k in range(8):
            a = k * np.pi / 4
            ax.plot([radius * np.cos(a), reach * np.cos(a)], [radius * np.sin(a), reach * np.sin(a)],
                    color="0.7", lw=0.5)
        ax.set_title(f"{name}\n{round(8 * r['coverage'])}/8 sectors")
        ax.set_xlim(-1.1 * reach, 1.1 * reach)
        ax.set_ylim(-1.1 * reach, 1.1 * reach)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"final positions of perturbations of the trained policy (beyond r = {radius})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def table(results: dict[str, dict[str, Any]]) -> str:
    """A Markdown table of sectors reached and mean distance."""
    lines = ["| method | sectors reached | coverage | mean distance | points per sector |",
             "| --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        lines.append(
            f"| {name} | {round(8 * r['coverage'])}/8 | {r['coverage']:.3f} | "
            f"{r['mean_distance']:.3f} | {' '.join(str(c) for c in r['counts'])} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generations", type=int, default=200)
    parser.add_argument("--popsize", type=int, default=200)
    parser.add_argument("--sigma", type=float, default=0.1)
    parser.add_argument("--backend", choices=["numpy", "torch", "jax"], default="numpy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--perturbations", type=int, default=1000)
    parser.add_argument("--radius", type=float, default=0.5)
    parser.add_argument("--min-count", type=int, default=10)
    parser.add_argument("--plot", metavar="PNG", default=None, help="write the scatter plot here")
    args = parser.parse_args(argv)
    results = study(args.generations, args.popsize, args.sigma, args.backend, args.seed,
                    args.perturbations, args.radius, args.min_count)
    print(f"sectors reached beyond r = {args.radius} by {args.perturbations} perturbations "
          f"(at least {args.min_count} each), {args.generations} generations, popsize {args.popsize}")
    print(table(results))
    if args.plot:
        plot(results, args.plot, args.radius)
        print(f"plot written to {args.plot}")
    return results


if __name__ == "__main__":
    main()
