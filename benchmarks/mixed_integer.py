"""evostrat's CMA-ES with margin against cmaes' ``CMAwM`` on its mixed-integer examples.

Problems (cmaes ``examples/cmaes_with_margin_integer.py``): 20-D, coordinates 0-9
continuous and unbounded, 10-19 integers in ``[-10, 11]``; start ``mean = 5``,
``sigma0 = 2``:

- ``sphere``: ``sum x_i^2``;
- ``ellipsoid``: ``sum (1000^(i / (n - 1)) x_i)^2`` (cmaes' ``ellipsoid_int``).

Both optimisers stop at the first generation whose best value is ``<= 1e-8``
(counted in whole generations), at their own termination criteria or at the
budget; *solved* counts the runs that reached the target and the median is over
the solved runs. Timings are wall-clock seconds per run (one thread, interleaved).

Run: ``python benchmarks/mixed_integer.py [--seeds 10]`` (prints the Markdown
table of BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

import numpy as np

TARGET = 1e-8
BUDGET = 40_000
CONTINUOUS, INTEGER = 10, 10


def sphere(X: np.ndarray) -> np.ndarray:
    return (np.atleast_2d(X) ** 2).sum(axis=1)


def ellipsoid(X: np.ndarray) -> np.ndarray:
    X = np.atleast_2d(X)
    n = X.shape[1]
    return ((1000.0 ** (np.arange(n) / (n - 1)) * X) ** 2).sum(axis=1)


PROBLEMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"sphere": sphere, "ellipsoid": ellipsoid}


def space() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lower, upper, integer mask)`` of the 20-D problems."""
    lower = np.r_[np.full(CONTINUOUS, -np.inf), np.full(INTEGER, -10.0)]
    upper = np.r_[np.full(CONTINUOUS, np.inf), np.full(INTEGER, 11.0)]
    return lower, upper, np.r_[np.zeros(CONTINUOUS, bool), np.ones(INTEGER, bool)]


def run_cmaes(f: Callable, seed: int) -> tuple[bool, int]:
    """cmaes ``CMAwM`` as its example runs it; (solved, evaluations)."""
    from cmaes import CMAwM

    lower, upper, mask = space()
    opt = CMAwM(mean=5.0 * np.ones(mask.size), sigma=2.0, bounds=np.c_[lower, upper],
                steps=mask.astype(float), seed=seed)
    evals, best = 0, np.inf
    while evals < BUDGET:
        told = []
        for _ in range(opt.population_size):
            x_eval, x_tell = opt.ask()
            value = float(f(x_eval)[0])
            evals += 1
            best = min(best, value)
            told.append((x_tell, value))
        opt.tell(told)
        if best <= TARGET or opt.should_stop():
            break
    return best <= TARGET, evals


def run_evostrat(f: Callable, seed: int) -> tuple[bool, int]:
    """``ES("cma_es", integer=mask, bounds=...)``; (solved, evaluations)."""
    from evostrat import ES

    lower, upper, mask = space()
    es = ES("cma_es", sigma0=2.0, integer=mask, bounds=(lower, upper), ftarget=TARGET, max_evals=BUDGET,
            random_state=seed, evaluator="vectorized").fit(f, 5.0 * np.ones(mask.size))
    return bool(es.fun_ <= TARGET), int(es.n_evals_)


def compare(problem: str, seeds: Any = range(10)) -> dict[str, Any]:
    """Both optimisers on ``problem`` over ``seeds`` (interleaved): solved counts, median evaluations, times."""
    f = PROBLEMS[problem]
    out: dict[str, Any] = {"problem": problem}
    runs: dict[str, list[tuple[bool, int, float]]] = {"cmaes": [], "evostrat": []}
    for seed in seeds:
        for name, run in (("cmaes", run_cmaes), ("evostrat", run_evostrat)):
            start = time.perf_counter()
            solved, evals = run(f, seed)
            runs[name].append((solved, evals, time.perf_counter() - start))
    for name, rows in runs.items():
        solved = [e for ok, e, _ in rows if ok]
        out[f"{name}_solved"] = len(solved)
        out[f"{name}_median"] = statistics.median(solved) if solved else float("inf")
        out[f"{name}_seconds"] = statistics.median(t for _, _, t in rows)
        out[f"{name}_evals"] = [e for _, e, _ in rows]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    print("| problem | cmaes CMAwM solved | evostrat solved | cmaes median evals | evostrat median evals "
          "| ratio | s/run cmaes | s/run evostrat |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for problem in PROBLEMS:
        t = compare(problem, range(args.seeds))
        print(f"| {problem} | {t['cmaes_solved']}/{args.seeds} | {t['evostrat_solved']}/{args.seeds} "
              f"| {t['cmaes_median']:.0f} | {t['evostrat_median']:.0f} "
              f"| {t['evostrat_median'] / t['cmaes_median']:.2f} | {t['cmaes_seconds']:.2f} "
              f"| {t['evostrat_seconds']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
