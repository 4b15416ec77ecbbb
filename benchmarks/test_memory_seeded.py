"""Peak memory of one generation of OpenAI-ES and SNES at d = 1,000,000 (issue 9, item 4).

Seed-compressed mode (:mod:`evostrat.strategies.seeded_tell`,
``seeded_generation``): ``ask_seed`` (the seed: key, mean, sigma), the workers'
part in this process (rows rebuilt from the seed a chunk at a time, values
kept), ``tell_seed`` (the weighted noise sums rebuilt a chunk at a time). Peak
memory is measured with tracemalloc (numpy reports its array allocations to
it) above the state's own arrays, for population 1,000 (8 GB as a plain float64
population) and population 100: the peak is O(d) + O(popsize), the same for
both. For contrast, the plain ``ask`` + ``tell`` at population 50 (0.4 GB as a
population; 1,000 does not fit this suite's machines: X, z and z^2 are 8 GB
each). Each case is one timed round; the time is that of the whole generation
(sampling every row twice: once "on the workers", once in ``tell_seed``).

``extra_info``: ``peak_bytes``, ``population_bytes`` (popsize x d x 8) and
``peak_over_d`` (peak in vectors of d float64).

Run: ``python -m pytest benchmarks/test_memory_seeded.py --benchmark-only`` (minutes).
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np
import pytest

from evostrat.strategies.openai_es import OpenAIES
from evostrat.strategies.seeded_tell import seeded_generation
from evostrat.strategies.snes import SNES

DIM = 1_000_000
SUITE = "memory"
CASES = [
    pytest.param("seeded", 1000, id="seeded-pop1000"),
    pytest.param("seeded", 100, id="seeded-pop100"),
    pytest.param("plain", 50, id="plain-pop50"),
]


def _sphere(X: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", X, X)


@pytest.mark.parametrize("mode, popsize", CASES)
@pytest.mark.parametrize("name", ["openai_es", "snes"])
def test_generation_peak_memory(benchmark: Any, record: Any, name: str, mode: str,
                                popsize: int) -> None:
    cls = {"openai_es": OpenAIES, "snes": SNES}[name]
    s = cls(popsize=popsize, sigma0=0.1)
    state0 = s.init(np.zeros(DIM), random_state=0)
    peaks = []

    def generation() -> None:
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            if mode == "seeded":
                seeded_generation(s, state0, _sphere)
            else:
                X, state = s.ask(state0)
                s.tell(state, X, _sphere(X))
                del X
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
        finally:
            tracemalloc.stop()

    benchmark.group = f"{SUITE} {name} d={DIM}"
    benchmark.pedantic(generation, rounds=1, iterations=1)
    peak = max(peaks)
    record(SUITE, f"{name} d={DIM} pop={popsize} {mode}", "evostrat", benchmark, strategy=name,
           dim=DIM, popsize=popsize, target=None, mode=mode, peak_bytes=peak,
           population_bytes=popsize * DIM * 8, peak_over_d=peak / (DIM * 8))
    if mode == "seeded":
        assert peak < 24 * DIM * 8 + 64 * popsize  # O(d) + O(popsize), not O(popsize x d)
