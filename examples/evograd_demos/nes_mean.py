"""EvoGrad's first demo: NES on the mean of a 1-D Gaussian, with evostrat.

Maximise ``E_{x ~ N(mu, 0.5^2)}[-(x - 5)^2]`` by plain gradient ascent on
``mu`` (population 500, ``lr = 0.03``, ``mu0 = 1``). The gradient of the
expectation is the score-function (NES) estimator ``mean_i f(x_i) (x_i - mu) / sigma^2``
(Wierstra et al., JMLR 2014), obtained by differentiating
:func:`evostrat.expectation`; ``E[f] = -(mu - 5)^2 - sigma^2`` peaks at ``mu = 5``.

Run ``python examples/evograd_demos/nes_mean.py --backend jax``.

Examples
--------
>>> trajectory = main("torch", steps=300)          # doctest: +SKIP
>>> abs(trajectory[-1] - 5.0) < 0.05               # doctest: +SKIP
True
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _loop import run  # noqa: E402

from evostrat import expectation  # noqa: E402
from evostrat.distributions import Normal  # noqa: E402

OPTIMUM = 5.0


def fitness(x: Any) -> Any:
    """``-(x - 5)^2`` for each draw; ``x`` has shape ``(n, 1)``, the result ``(n,)``."""
    return -((x[:, 0] - 5.0) ** 2)


def statistic(x: Any, p: Normal) -> Any:
    """``E_p[fitness]`` as a differentiable sample mean."""
    return expectation(fitness(x), x, p)


def main(backend: str = "torch", steps: int = 2000, seed: int = 0, lr: float = 0.03) -> np.ndarray:
    """Run the demo; returns ``mu`` after each step."""
    return run(statistic, backend, steps=steps, popsize=500, sigma=0.5, mu0=1.0, lr=lr, seed=seed)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["torch", "jax"], default="torch")
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    mu = main(args.backend, args.steps)
    print(f"mu after {args.steps} steps: {mu[-1]:.4f} (optimum {OPTIMUM})")
