"""The demo run behind ``evostrat demo``: a convergence table on the numpy default.

Runs SNES and OpenAI-ES on the 10-D sphere and SNES on the 10-D ellipsoid
(condition 1e6) from ``x0 = 3 * ones`` and prints, every few generations, the
evaluations used, the best value so far and the step size.

Examples
--------
>>> from evostrat.cli.demo import run_demo
>>> rows = run_demo(print_fn=lambda line: None)
>>> all(row["best"] < 1e-6 for row in rows)
True
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from evostrat import ES
from evostrat.problems import ellipsoid, sphere

DEMO_RUNS = [
    ("snes", "sphere", sphere, dict(sigma0=1.0), 1e-8),
    ("openai_es", "sphere", sphere, dict(sigma0=1.0, popsize=40, strategy_options=dict(
        lr=0.2, lr_decay=0.99, sigma_decay=0.99)), 1e-7),
    ("snes", "ellipsoid", ellipsoid, dict(sigma0=1.0), 1e-8),
]


def run_demo(dim: int = 10, seed: int = 0, print_fn: Callable[[str], Any] = print) -> list[dict]:
    """Run the demo problems and print one convergence table per run.

    Returns
    -------
    list of dict
        One summary per run: strategy, problem, evaluations, best value, stop reason.
    """
    summaries = []
    for strategy, name, fn, options, target in DEMO_RUNS:
        es = ES(strategy, ftarget=target, max_evals=200_000, random_state=seed, **options)
        es.fit(fn, np.full(dim, 3.0))
        print_fn(f"\n{strategy} on {dim}-D {name} (x0 = 3, target f < {target:g})")
        print_fn(f"{'gen':>6} {'evals':>8} {'best f':>12} {'sigma':>10}")
        step = max(1, len(es.history_) // 8)
        rows = es.history_[::step] + ([es.history_[-1]] if (len(es.history_) - 1) % step else [])
        for row in rows:
            print_fn(f"{row['generation']:>6} {row['n_evals']:>8} {row['best']:>12.3e} {row['sigma']:>10.3e}")
        print_fn(f"stop: {es.stop_reason_} after {es.n_evals_} evaluations")
        summaries.append(dict(strategy=strategy, problem=name, n_evals=es.n_evals_,
                              best=es.fun_, stop_reason=es.stop_reason_))
    return summaries
