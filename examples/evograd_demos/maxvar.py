"""EvoGrad's MaxVar demo: maximise the variance of a behaviour, with evostrat.

The behaviour of ``x`` is ``b(x) = 5 sin(0.2 x) sin(20 x)``; the search
distribution is ``N(mu, 0.5^2)``. MaxVar (evolvability ES, Gajewski et al.,
GECCO 2019, arXiv 1907.06077) ascends ``Var[b] = E[(b - E[b])^2]``, written
here as two nested :func:`evostrat.expectation` calls so the gradient runs
through both score terms. ``sin(20 x)`` averages out over the population, so
``Var[b] ~ 12.5 sin^2(0.2 mu)``: the most evolvable point is ``mu = 5 pi / 2 = 7.854``.
Population 500, ``lr = 0.03``, ``mu0 = 1``, a leave-one-out baseline on the
outer expectation.

Run ``python examples/evograd_demos/maxvar.py --backend jax``.

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

from evostrat import expectation  # noqa: E402
from evostrat.backends import get_backend  # noqa: E402
from evostrat.distributions import Normal  # noqa: E402

OPTIMUM = 5 * math.pi / 2


def behaviour(x: Any) -> Any:
    """``5 sin(0.2 x) sin(20 x)``, shape ``(n,)`` for ``x`` of shape ``(n, 1)``."""
    xp = get_backend(x).xp
    return 5.0 * xp.sin(0.2 * x[:, 0]) * xp.sin(20.0 * x[:, 0])


def statistic(x: Any, p: Normal) -> Any:
    """``Var_p[b] = E[(b - E[b])^2]`` as nested differentiable expectations."""
    b = behaviour(x)
    mean_b = expectation(b, x, p)
    return expectation((b - mean_b) ** 2, x, p, baseline="mean")


def main(backend: str = "torch", steps: int = 2000, seed: int = 0, lr: float = 0.03) -> np.ndarray:
    """Run the demo; returns ``mu`` after each step."""
    return run(statistic, backend, steps=steps, popsize=500, sigma=0.5, mu0=1.0, lr=lr, seed=seed)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["torch", "jax"], default="torch")
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    mu = main(args.backend, args.steps)
    print(summary(mu, OPTIMUM))
