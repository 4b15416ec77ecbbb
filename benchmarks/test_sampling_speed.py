"""Block sampling and the sep-CMA-ES numpy kernel (issue 17 items 2 and 3).

- ``numpy-snes-ask``: one SNES ``ask`` at popsize 10**6, d = 10 (the noise of a
  population drawn in blocks with addressable rows, ``Backend.normal_rows``) against one
  ``numpy.random.Generator.standard_normal((10**6, 10))`` of the same size, the cost of
  the numbers alone. Target: at most 2x.
- ``numpy-snes-generation``: one whole SNES generation (``ask``, the sphere, ``tell``:
  block noise, O(n log n) NES-utility ranks) at popsize 10**6, d = 10, against the same
  ``standard_normal((10**6, 10))``. Target: at most 3x.
- ``numpy-sep-cma``: one sep-CMA-ES generation (``ask``, the sphere, ``tell``) at the
  default population, d = 100 and 1000, on numpy (the kernel of
  :mod:`evostrat.kernels.sep_cma_numpy`) and with the generic steps
  (``numpy_kernel = False``, suite ``numpy-sep-cma-generic``, for reference), against cmaes
  ``SepCMA`` (``ask`` per candidate, one ``tell``). Target: the kernel at most 0.8x.

Run: ``python -m pytest benchmarks/test_sampling_speed.py -p no:cacheprovider --benchmark-only``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from evostrat.strategies.sep_cma_es import SepCMAES
from evostrat.strategies.snes import SNES

ASK_POPSIZE, ASK_DIM = 10**6, 10
SEP_DIMS = [100, 1000]
SEP_ROUNDS = {100: 200, 1000: 100}


def _ask_case() -> str:
    return f"snes ask popsize={ASK_POPSIZE} d={ASK_DIM}"


def test_snes_ask_evostrat(benchmark: Any, record: Any) -> None:
    s = SNES(popsize=ASK_POPSIZE)
    state = s.init(np.zeros(ASK_DIM), random_state=0)
    benchmark.group = "numpy-snes-ask"
    benchmark.pedantic(lambda: s.ask(state), rounds=7, iterations=1, warmup_rounds=1)
    record("numpy-snes-ask", _ask_case(), "evostrat", benchmark, strategy="snes", dim=ASK_DIM,
           popsize=ASK_POPSIZE, target=2.0)


def test_snes_ask_standard_normal(benchmark: Any, record: Any) -> None:
    rng = np.random.default_rng(0)
    benchmark.group = "numpy-snes-ask"
    benchmark.pedantic(lambda: rng.standard_normal((ASK_POPSIZE, ASK_DIM)), rounds=7, iterations=1,
                       warmup_rounds=1)
    record("numpy-snes-ask", _ask_case(), "numpy standard_normal", benchmark, strategy="snes",
           dim=ASK_DIM, popsize=ASK_POPSIZE, target=2.0)


def test_snes_generation_evostrat(benchmark: Any, record: Any) -> None:
    s = SNES(popsize=ASK_POPSIZE)
    box = {"state": s.init(np.zeros(ASK_DIM), random_state=0)}

    def generation() -> None:
        X, state = s.ask(box["state"])
        box["state"] = s.tell(state, X, (X * X).sum(axis=1))

    benchmark.group = "numpy-snes-generation"
    benchmark.pedantic(generation, rounds=7, iterations=1, warmup_rounds=1)
    record("numpy-snes-generation", f"snes generation popsize={ASK_POPSIZE} d={ASK_DIM}", "evostrat",
           benchmark, strategy="snes", dim=ASK_DIM, popsize=ASK_POPSIZE, target=3.0)


def test_snes_generation_standard_normal(benchmark: Any, record: Any) -> None:
    rng = np.random.default_rng(0)
    benchmark.group = "numpy-snes-generation"
    benchmark.pedantic(lambda: rng.standard_normal((ASK_POPSIZE, ASK_DIM)), rounds=7, iterations=1,
                       warmup_rounds=1)
    record("numpy-snes-generation", f"snes generation popsize={ASK_POPSIZE} d={ASK_DIM}",
           "numpy standard_normal", benchmark, strategy="snes", dim=ASK_DIM, popsize=ASK_POPSIZE,
           target=3.0)


def _sep_case(dim: int) -> str:
    return f"sep_cma_es d={dim} pop=1x (test_sampling_speed)"


@pytest.mark.parametrize("kernel", [True, False], ids=["kernel", "generic"])
@pytest.mark.parametrize("dim", SEP_DIMS)
def test_sep_cma_evostrat(benchmark: Any, record: Any, dim: int, kernel: bool) -> None:
    s = SepCMAES(sigma0=1.0)
    s.numpy_kernel = kernel
    box = {"state": s.init(np.ones(dim), random_state=0)}

    def generation() -> None:
        X, state = s.ask(box["state"])
        box["state"] = s.tell(state, X, (X * X).sum(axis=1))

    benchmark.group = f"numpy-sep-cma d={dim}"
    benchmark.pedantic(generation, rounds=SEP_ROUNDS[dim], iterations=1, warmup_rounds=3)
    if kernel:
        record("numpy-sep-cma", _sep_case(dim), "evostrat", benchmark, strategy="sep_cma_es", dim=dim,
               target=0.8)
    else:  # the generic steps, for reference (the target is the kernel's)
        record("numpy-sep-cma-generic", _sep_case(dim), "evostrat-generic", benchmark,
               strategy="sep_cma_es", dim=dim, target=None)


@pytest.mark.parametrize("dim", SEP_DIMS)
def test_sep_cma_cmaes(benchmark: Any, record: Any, require: Any, dim: int) -> None:
    cmaes = require("cmaes")
    lam = SepCMAES().resolved_popsize(dim)
    opt = cmaes.SepCMA(mean=np.ones(dim), sigma=1.0, seed=1, population_size=lam)

    def generation() -> None:
        solutions = []
        for _ in range(opt.population_size):
            x = opt.ask()
            solutions.append((x, float(x @ x)))
        opt.tell(solutions)

    benchmark.group = f"numpy-sep-cma d={dim}"
    benchmark.pedantic(generation, rounds=SEP_ROUNDS[dim], iterations=1, warmup_rounds=3)
    record("numpy-sep-cma", _sep_case(dim), "cmaes", benchmark, strategy="sep_cma_es", dim=dim,
           target=0.8)
