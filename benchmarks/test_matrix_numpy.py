"""The matrix on numpy float64: every strategy, pycma and cmaes beside the CMA family.

One round is one generation (``s.ask``, the vectorised sphere, ``s.tell``) of
evostrat's pure functions on numpy float64, the state carried from round to
round (steady state after a warm-up generation); for CMA-ES (evostrat and
pycma) a round is a whole decomposition gap (``_matrix.block``), so the time
per generation is the amortised one, decompositions included. Peers, same population and
sigma0, same session, float64:

- ``cma_es``: pycma ``CMAEvolutionStrategy`` (``ask``/``tell`` of the
  population) and cmaes ``CMA`` (``ask`` per candidate, one ``tell``);
- ``sep_cma_es``: pycma with ``CMA_diagonal=True`` and cmaes ``SepCMA``
  (pycma only up to d = 1000: its diagonal mode still keeps d x d matrices).

The other strategies have no numpy peer; their rows give evostrat's absolute
cost. ``test_cma_speed.py`` has the CMA-ES details (amortised decompositions).

Run: ``python -m pytest benchmarks/test_matrix_numpy.py --benchmark-only``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from _matrix import block, case, cells, make_strategy, time_rounds

SUITE = "numpy"


def _sphere(X: Any) -> Any:
    return np.einsum("ij,ij->i", X, X)


@pytest.mark.parametrize("name, dim, factor", cells())
def test_numpy_evostrat(benchmark: Any, record: Any, name: str, dim: int, factor: int) -> None:
    s = make_strategy(name, dim, factor)
    box = {"state": s.init(np.ones(dim), random_state=0)}
    generations = block(name, dim, factor)

    def rounds() -> None:
        state = box["state"]
        for _ in range(generations):
            X, state = s.ask(state)
            state = s.tell(state, X, _sphere(X))
        box["state"] = state

    benchmark.group = f"{SUITE} {case(name, dim, factor)}"
    time_rounds(benchmark, rounds)
    record(SUITE, case(name, dim, factor), "evostrat", benchmark, per_round=generations,
           strategy=name, dim=dim, popsize=s.resolved_popsize(dim))


@pytest.mark.parametrize("name, dim, factor", cells(["cma_es", "sep_cma_es"]))
def test_numpy_pycma(benchmark: Any, record: Any, require: Any, name: str, dim: int,
                     factor: int) -> None:
    if dim > 1000:
        pytest.skip("pycma's CMA_diagonal keeps d x d matrices: 80 GB at d = 100,000")
    cma = require("cma")
    s = make_strategy(name, dim, factor)
    lam = s.resolved_popsize(dim)
    opts = {"verbose": -9, "seed": 1, "popsize": lam, "CMA_diagonal": name == "sep_cma_es"}
    es = cma.CMAEvolutionStrategy(np.ones(dim), s.sigma0, opts)
    generations = block(name, dim, factor)  # pycma's lazy decomposition has the same gap

    def rounds() -> None:
        for _ in range(generations):
            X = es.ask()
            es.tell(X, _sphere(np.asarray(X)).tolist())

    benchmark.group = f"{SUITE} {case(name, dim, factor)}"
    time_rounds(benchmark, rounds)
    record(SUITE, case(name, dim, factor), "pycma", benchmark, per_round=generations,
           strategy=name, dim=dim, popsize=lam)


@pytest.mark.parametrize("name, dim, factor", cells(["cma_es", "sep_cma_es"]))
def test_numpy_cmaes(benchmark: Any, record: Any, require: Any, name: str, dim: int,
                     factor: int) -> None:
    cmaes = require("cmaes")
    s = make_strategy(name, dim, factor)
    lam = s.resolved_popsize(dim)
    cls = cmaes.SepCMA if name == "sep_cma_es" else cmaes.CMA
    opt = cls(mean=np.ones(dim), sigma=s.sigma0, population_size=lam, seed=1)

    def generation() -> None:
        solutions = []
        for _ in range(lam):
            x = opt.ask()
            solutions.append((x, float(x @ x)))
        opt.tell(solutions)

    benchmark.group = f"{SUITE} {case(name, dim, factor)}"
    time_rounds(benchmark, generation)
    record(SUITE, case(name, dim, factor), "cmaes", benchmark, strategy=name, dim=dim, popsize=lam)
