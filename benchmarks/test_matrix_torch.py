"""The matrix on torch float32 (CPU, and CUDA when there is one) against EvoTorch.

One round is one generation. evostrat: the pure ``s.ask``, the vectorised
sphere, ``s.tell`` on float32 tensors, state carried between rounds. EvoTorch
0.6.1: ``searcher.step()`` on a ``Problem(..., vectorized=True)`` whose
objective is the same sphere on the whole population, float32, same popsize
and initial step size; ``step()`` samples, evaluates (one call of the
vectorised sphere) and updates, i.e. the same work plus EvoTorch's
bookkeeping (its status dictionary, best-so-far tracking), which is part of
what a user of its ``step()`` pays. Peers: SNES -> ``SNES``, xNES -> ``XNES``,
PGPE -> ``PGPE`` (ClipUp, centered ranks, like evostrat's default),
CMA-ES -> ``CMAES``, sep-CMA-ES -> ``CMAES(separable=True)``; EvoTorch has no
OpenAI-ES (its rows have no peer).

For CMA-ES a round is a whole decomposition gap of evostrat's lazy update
(``_matrix.block``) on both sides, so times are amortised, decompositions
included. On CUDA (suite ``torch-cuda``, skipped without a GPU) each round ends with
``torch.cuda.synchronize()``.

Run: ``python -m pytest benchmarks/test_matrix_torch.py --benchmark-only``.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from _matrix import block, case, cells, make_strategy, time_rounds

DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda")]


def _torch(device: str) -> Any:
    torch = pytest.importorskip("torch")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch


def _sync(torch: Any, device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name, dim, factor", cells())
def test_torch_evostrat(benchmark: Any, record: Any, name: str, dim: int, factor: int,
                        device: str) -> None:
    torch = _torch(device)
    s = make_strategy(name, dim, factor)
    box = {"state": s.init(torch.ones(dim, dtype=torch.float32, device=device), random_state=0)}
    generations = block(name, dim, factor)

    def rounds() -> None:
        state = box["state"]
        for _ in range(generations):
            X, state = s.ask(state)
            state = s.tell(state, X, (X * X).sum(dim=1))
        box["state"] = state
        _sync(torch, device)

    suite = f"torch-{device}"
    benchmark.group = f"{suite} {case(name, dim, factor)}"
    time_rounds(benchmark, rounds)
    record(suite, case(name, dim, factor), "evostrat", benchmark, per_round=generations,
           strategy=name, dim=dim, popsize=s.resolved_popsize(dim))


def evotorch_searcher(name: str, s: Any, dim: int, sphere: Any, device: str) -> Any:
    """EvoTorch's peer of strategy ``s`` (named ``name``) on the vectorised ``sphere``, float32,
    the same popsize and initial step size (see the module docstring for the pairs)."""
    import evotorch
    import torch
    from evotorch import algorithms

    lam = s.resolved_popsize(dim)
    problem = evotorch.Problem("min", sphere, solution_length=dim, initial_bounds=(0.5, 1.5),
                               vectorized=True, dtype=torch.float32, device=device)
    if name == "snes":
        return algorithms.SNES(problem, stdev_init=s.sigma0, popsize=lam)
    if name == "xnes":
        return algorithms.XNES(problem, stdev_init=s.sigma0, popsize=lam)
    if name == "pgpe":
        return algorithms.PGPE(problem, popsize=lam, stdev_init=s.sigma0,
                               center_learning_rate=s.center_learning_rate,
                               stdev_learning_rate=s.stdev_learning_rate)
    return algorithms.CMAES(problem, stdev_init=s.sigma0, popsize=lam, separable=name == "sep_cma_es")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name, dim, factor", cells(["snes", "xnes", "pgpe", "sep_cma_es", "cma_es"]))
def test_torch_evotorch(benchmark: Any, record: Any, require: Any, name: str, dim: int,
                        factor: int, device: str) -> None:
    torch = _torch(device)
    require("evotorch")
    logging.getLogger("evotorch").setLevel(logging.WARNING)
    s = make_strategy(name, dim, factor)
    lam = s.resolved_popsize(dim)

    def sphere(X: Any) -> Any:
        return (X * X).sum(dim=-1)

    searcher = evotorch_searcher(name, s, dim, sphere, device)

    generations = block(name, dim, factor)  # EvoTorch's CMAES limits its decompositions too

    def rounds() -> None:
        for _ in range(generations):
            searcher.step()
        _sync(torch, device)

    suite = f"torch-{device}"
    benchmark.group = f"{suite} {case(name, dim, factor)}"
    time_rounds(benchmark, rounds)
    record(suite, case(name, dim, factor), "evotorch", benchmark, per_round=generations,
           strategy=name, dim=dim, popsize=lam)
