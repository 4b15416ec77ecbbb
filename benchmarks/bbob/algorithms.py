"""The configurations a BBOB run can use: evostrat's and pycma's CMA-ES with restarts.

Each configuration is a function ``solve(problem, objective, budget, sigma0, seed, x0, stop)``
that minimises ``objective`` (the COCO problem behind a counter) within ``budget``
evaluations, restarting inside the budget, and returns as soon as ``stop()`` is true
(the problem's final target was hit). ``x0`` is an array or a callable returning one
(COCO's ``initial_solution_proposal``: its first call gives ``initial_solution``, later
ones uniform-ish points in [-5, 5]^d, one per restart).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np

Solver = Callable[..., None]


def _evostrat(strategy: str, restarts: str) -> Solver:
    def solve(objective: Callable, dim: int, budget: int, sigma0: float, seed: int, x0: Any,
              stop: Callable[[], bool]) -> None:
        from evostrat import ES

        def batch(X: np.ndarray) -> np.ndarray:
            return np.array([objective(x) for x in X])

        batch.vectorized = True  # type: ignore[attr-defined]
        es = ES(strategy, sigma0=sigma0, restarts=dict(kind=restarts, max_restarts=9, incpopsize=2),
                max_evals=budget, random_state=seed)
        es.fit(batch, x0, callbacks=[lambda _es: bool(stop())])

    return solve


def _pycma(bipop: bool, diagonal: bool) -> Solver:
    def solve(objective: Callable, dim: int, budget: int, sigma0: float, seed: int, x0: Any,
              stop: Callable[[], bool]) -> None:
        import cma

        options = {"maxfevals": budget, "termination_callback": lambda _es: bool(stop()),
                   "verbose": -9, "seed": seed}
        if diagonal:
            options["CMA_diagonal"] = True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cma.fmin2(objective, x0, sigma0, options, restarts=9, incpopsize=2, bipop=bipop)

    return solve


#: Name -> (solver, one-line description). ``seed`` is the same integer for both
#: libraries on a given problem (pycma reads 0 as "random", so seeds start at 1).
ALGORITHMS: dict[str, tuple[Solver, str]] = {
    "evostrat-ipop": (_evostrat("cma_es", "ipop"), 'evostrat ES("cma_es", restarts="ipop")'),
    "evostrat-bipop": (_evostrat("cma_es", "bipop"), 'evostrat ES("cma_es", restarts="bipop")'),
    "evostrat-sep-ipop": (_evostrat("sep_cma_es", "ipop"), 'evostrat ES("sep_cma_es", restarts="ipop")'),
    "pycma-ipop": (_pycma(False, False), "cma.fmin2(restarts=9, incpopsize=2)"),
    "pycma-bipop": (_pycma(True, False), "cma.fmin2(restarts=9, incpopsize=2, bipop=True)"),
    "pycma-sep-ipop": (_pycma(False, True), "cma.fmin2(restarts=9, incpopsize=2, CMA_diagonal=True)"),
}

#: Each evostrat configuration and the pycma one it is compared with.
PEERS: dict[str, str] = {
    "evostrat-ipop": "pycma-ipop",
    "evostrat-bipop": "pycma-bipop",
    "evostrat-sep-ipop": "pycma-sep-ipop",
}
