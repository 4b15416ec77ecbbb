"""Quality: evaluations to f < 1e-8, evostrat's CMA-ES against pycma (numpy, 10-D).

Each benchmark runs one library on one problem from ``x0 = 3 * ones(10)``,
``sigma0 = 2``, once per seed (``SEEDS``); the timed round is the whole set of
runs (one round). What the report shows is in ``extra_info``: the evaluations
of each run, their median over the successful runs, and the number of runs
that reached ``f < 1e-8`` (``ftarget``):

- sphere, ellipsoid (condition 1e6), Rosenbrock: plain CMA-ES, evostrat
  ``ES("cma_es", sigma0=2, ftarget=1e-8)`` vs ``cma.fmin(f, x0, 2,
  {"ftarget": 1e-8})``;
- Rastrigin: IPOP restarts, ``ES(..., restarts=dict(kind="ipop",
  max_restarts=9, incpopsize=2))`` vs ``cma.fmin(..., restarts=9,
  incpopsize=2)``.

Both sides evaluate the same functions (``evostrat.problems``), count whole
generations, and stop at the first generation whose best value is below 1e-8.

Run: ``python -m pytest benchmarks/test_quality.py --benchmark-only``.
"""

from __future__ import annotations

import statistics
from typing import Any, Callable

import numpy as np
import pytest

from evostrat import ES
from evostrat.problems import ellipsoid, rastrigin, rosenbrock, sphere

DIM = 10
FTARGET = 1e-8
SEEDS = {"sphere": 5, "ellipsoid": 5, "rosenbrock": 5, "rastrigin": 3}
PROBLEMS: dict[str, Callable] = {"sphere": sphere, "ellipsoid": ellipsoid,
                                 "rosenbrock": rosenbrock, "rastrigin": rastrigin}
SUITE = "quality"


def _x0() -> np.ndarray:
    return np.full(DIM, 3.0)


def _evostrat(problem: str, seed: int) -> tuple[int, float]:
    restarts = dict(kind="ipop", max_restarts=9, incpopsize=2) if problem == "rastrigin" else None
    es = ES("cma_es", sigma0=2.0, ftarget=FTARGET, max_evals=1_000_000, random_state=seed,
            restarts=restarts).fit(PROBLEMS[problem], _x0())
    return int(es.n_evals_), float(es.fun_)


def _pycma(cma: Any, problem: str, seed: int) -> tuple[int, float]:
    f = PROBLEMS[problem]
    opts = {"ftarget": FTARGET, "seed": seed + 1, "verbose": -9, "maxfevals": 1_000_000}
    if problem == "rastrigin":
        res = cma.fmin(lambda x: float(f(x)), _x0(), 2.0, opts, restarts=9, incpopsize=2)
    else:
        res = cma.fmin(lambda x: float(f(x)), _x0(), 2.0, opts)
    return int(res[3]), float(res[1])  # evaluations, best f


def _run(benchmark: Any, record: Any, problem: str, library: str, solve: Callable) -> None:
    runs: list[tuple[int, float]] = []

    def all_seeds() -> None:
        runs.clear()
        runs.extend(solve(problem, seed) for seed in range(SEEDS[problem]))

    benchmark.group = f"{SUITE} {problem}"
    benchmark.pedantic(all_seeds, rounds=1, iterations=1)
    evals = [n for n, _ in runs]
    ok = [n for n, fbest in runs if fbest < FTARGET]
    record(SUITE, f"{problem} {DIM}-D", library, benchmark, per_round=len(runs),
           strategy="cma_es", dim=DIM, target=None, evals=evals,
           evals_median=statistics.median(ok) if ok else None, successes=len(ok), runs=len(runs))


@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_quality_evostrat(benchmark: Any, record: Any, problem: str) -> None:
    _run(benchmark, record, problem, "evostrat", _evostrat)


@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_quality_pycma(benchmark: Any, record: Any, require: Any, problem: str) -> None:
    cma = require("cma")
    _run(benchmark, record, problem, "pycma", lambda p, s: _pycma(cma, p, s))
