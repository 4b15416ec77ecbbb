"""EvoGrad's MaxEnt demo: maximise the entropy of a behaviour, with evostrat.

Behaviour ``b(x) = 5 sin(0.2 x) sin(20 x)``, search distribution
``N(mu, 0.5^2)``, population 500, ``lr = 0.10``, ``mu0 = 1``. MaxEnt
(evolvability ES, Gajewski et al., GECCO 2019, arXiv 1907.06077) maximises the
entropy of a Gaussian kernel density estimate of the z-scored behaviours
``z``, kernel width ``h = 1``::

    p_i = mean_j exp(-||z_i - z_j||^2 / h^2)        (inner expectation over j)
    J   = -mean_i log p_i                          (outer expectation over i)

Both means are :func:`evostrat.expectation` calls, so the gradient has the
outer score term and the inner one through ``log``. The entropy peaks where
``|sin(0.2 mu)|`` is largest: ``mu = 5 pi / 2 = 7.854``.

Run ``python examples/evograd_demos/maxent.py --backend jax``.

Examples
--------
>>> trajectory = main("jax", steps=2000)           # doctest: +SKIP
>>> abs(trajectory[-200:].mean() - 7.854) < 0.1    # doctest: +SKIP
True
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _loop import run, summary  # noqa: E402
from maxvar import behaviour  # noqa: E402

from evostrat import expectation  # noqa: E402
from evostrat.backends import get_backend  # noqa: E402
from evostrat.distributions import Normal  # noqa: E402
from evostrat.strategies.shaping import zscore  # noqa: E402

OPTIMUM = 5 * math.pi / 2
KERNEL_WIDTH = 1.0


def statistic(x: Any, p: Normal) -> Any:
    """Entropy of the kernel density estimate of the z-scored behaviours."""
    xp = get_backend(x).xp
    z = zscore(behaviour(x))  # (n,); the sample carries no gradient
    kernel = xp.exp(-((z[:, None] - z[None, :]) ** 2) / KERNEL_WIDTH**2)  # (n, n)
    density = expectation(kernel, x, p, dim=1)  # p_i = mean_j K_ij
    return expectation(-xp.log(density), x, p)


def main(backend: str = "torch", steps: int = 2000, seed: int = 0, lr: float = 0.10) -> np.ndarray:
    """Run the demo; returns ``mu`` after each step."""
    return run(statistic, backend, steps=steps, popsize=500, sigma=0.5, mu0=1.0, lr=lr, seed=seed)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["torch", "jax"], default="torch")
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    mu = main(args.backend, args.steps)
    print(summary(mu, OPTIMUM))
