"""Shared pieces of the strategy x backend x dimension x population matrix.

The suites ``test_matrix_numpy.py``, ``test_matrix_torch.py`` and
``test_matrix_jax.py`` import this module (pytest puts ``benchmarks/`` on
``sys.path``). It holds the grid (strategies, dimensions, populations), the
evostrat strategy of each cell with the hyper-parameters the peers are given
too, the round budget, and the targets of issue 9 that ``record`` stores in each
benchmark's ``extra_info`` (so ``benchmarks/report.py`` works from the JSON
alone).

What one round measures everywhere: one generation, ``ask`` + a vectorised
sphere on the population + ``tell``. The objective is the same O(popsize x d)
reduction on every side and is cheap next to sampling the population (also
O(popsize x d)); it is in the round because EvoTorch's ``step()`` and a
``lax.scan`` loop cannot run a generation without it.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import pytest

#: Registry names of the strategies in the matrix.
STRATEGIES = ["snes", "openai_es", "pgpe", "xnes", "sep_cma_es", "cma_es"]
#: Strategies whose generation costs O(popsize x d) (no d x d matrix): they also run at d = 100,000.
DIAGONAL = {"snes", "openai_es", "pgpe", "sep_cma_es"}
DIMS = [10, 100, 1000, 100_000]
#: Population multipliers of the strategy's default size.
POP_FACTORS = [1, 4]

#: Seconds of timed rounds per benchmark (after warm-up), and the bounds on the rounds.
BUDGET_S = 0.6
MIN_ROUNDS = 3
MAX_ROUNDS = 200


def cells(strategies: list[str] | None = None, dims: list[int] | None = None) -> list[Any]:
    """``pytest.param(strategy, dim, factor)`` of the grid, with readable ids.

    d = 100,000 only for the diagonal/isotropic strategies.
    """
    out = []
    for name in strategies or STRATEGIES:
        for dim in dims or DIMS:
            if dim > 1000 and name not in DIAGONAL:
                continue
            for factor in POP_FACTORS:
                out.append(pytest.param(name, dim, factor, id=f"{name}-d{dim}-pop{factor}x"))
    return out


def make_strategy(name: str, dim: int, factor: int) -> Any:
    """The evostrat strategy of a cell; the peers get the same popsize and sigma0.

    sigma0 is 1 except for OpenAI-ES and PGPE (0.1, their defaults).
    """
    from evostrat.strategies.cma_es import CMAES
    from evostrat.strategies.openai_es import OpenAIES
    from evostrat.strategies.pgpe import PGPE
    from evostrat.strategies.sep_cma_es import SepCMAES
    from evostrat.strategies.snes import SNES
    from evostrat.strategies.xnes import XNES

    cls = {"snes": SNES, "openai_es": OpenAIES, "pgpe": PGPE, "xnes": XNES,
           "sep_cma_es": SepCMAES, "cma_es": CMAES}[name]
    default = cls().resolved_popsize(dim)
    return cls(popsize=default * factor, sigma0=sigma0(name))


def block(name: str, dim: int, factor: int) -> int:
    """Generations per round: CMA-ES's decomposition gap, 1 for the others.

    evostrat's CMA-ES and pycma (and EvoTorch's, with ``limit_C_decomposition``)
    decompose C only every ``ceil(1 / (10 d (c1 + cmu)))`` generations (8 at d =
    1000 with the default population), so a round of one generation would time
    the typical generation and miss the decompositions; a round of a whole gap
    times the amortised cost. cmaes decomposes every generation: its rounds stay
    at one generation (typical == amortised).
    """
    if name != "cma_es":
        return 1
    return int(make_strategy(name, dim, factor).eigen_every(dim))


def sigma0(name: str) -> float:
    """Initial step size of a strategy in the matrix."""
    return 0.1 if name in ("openai_es", "pgpe") else 1.0


def popsize(name: str, dim: int, factor: int) -> int:
    """Population of a cell."""
    return make_strategy(name, dim, factor).resolved_popsize(dim)


def case(name: str, dim: int, factor: int) -> str:
    """Row label of a cell in the tables: ``"snes d=100 pop=4x (76)"``."""
    return f"{name} d={dim} pop={factor}x ({popsize(name, dim, factor)})"


def target(suite: str, strategy: str | None, dim: int | None) -> float | None:
    """The ratio (evostrat / fastest peer) issue 9 asks for, or ``None``.

    - numpy CMA-ES vs min(pycma, cmaes): 0.5 at d <= 1000;
    - JAX compiled loop vs evosax, every strategy: 1.0, CMA-ES 0.3 at d = 1000;
    - torch vs EvoTorch, every strategy: 1.0;
    - the NES demo vs evograd: 0.05.
    """
    if strategy is None:
        return None
    if suite.startswith("numpy") and strategy == "cma_es" and dim is not None and dim <= 1000:
        return 0.5
    if suite.startswith("jax-scan") or suite.startswith("jax-gpu"):
        return 0.3 if strategy == "cma_es" and dim == 1000 else 1.0
    if suite.startswith("torch"):
        return 1.0
    if suite == "nes-demo":
        return 0.05
    return None


def time_rounds(benchmark: Any, fn: Callable[[], Any], per_round: int = 1,
                budget_s: float = BUDGET_S, max_rounds: int = MAX_ROUNDS) -> None:
    """Warm ``fn`` up, then time ``rounds`` calls of it, ``rounds`` fitted to ``budget_s``.

    ``fn`` runs one round (``per_round`` generations) and must block until its
    work is done (``block_until_ready``, ``torch.cuda.synchronize``).
    """
    fn()  # warm-up: caches, allocator, lazy imports
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    rounds = int(min(max_rounds, max(MIN_ROUNDS, math.floor(budget_s / once))))
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1 if rounds > 10 else 0)
