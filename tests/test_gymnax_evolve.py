"""evostrat.problems.gymnax.evolve: compiled chunks of generations (examples/rl's pendulum and MinAtar runs).

The chunk program compiles once per call (an uncommitted first key compiled it a second time at
the second chunk, whose timing then counted as "after compilation"), and a last, shorter chunk
plays only its own generations (its masked generations used to play all their rollouts: the last
chunk of 30 generations in chunks of 25 computed 25 and its time was divided by 5).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("gymnax")
jax = pytest.importorskip("jax")

from evostrat.problems.gymnax import GymnaxProblem, evolve  # noqa: E402
from evostrat.strategies.snes import SNES  # noqa: E402

from jax_compiles import compiles  # noqa: E402


def _problem() -> GymnaxProblem:
    return GymnaxProblem("CartPole-v1", hidden=(2,), episodes=1, max_steps=5)


def _evolve(generations: int, chunk: int) -> tuple[Any, list[int], list[int]]:
    """``evolve``'s result, the compilations seen by each chunk's callback, the generations played."""
    problem = _problem()
    played: list[int] = []
    population_returns = problem.population_returns

    def counting(X: Any, key: Any) -> Any:
        jax.debug.callback(lambda: played.append(1))  # runs once per executed generation
        return population_returns(X, key)

    problem.population_returns = counting  # type: ignore[method-assign]
    seen: list[int] = []
    out = evolve(SNES(popsize=4, sigma0=0.1), problem, problem.init_params(), generations, chunk=chunk,
                 callback=lambda generation, fitness: seen.append(compiles()))
    return out, seen, played


def test_later_chunks_compile_nothing_and_a_short_last_chunk_plays_only_its_generations() -> None:
    out, seen, played = _evolve(10, chunk=4)  # chunks of 4, 4 and 2
    assert len(seen) == 3
    assert seen[1] == seen[0], f"the second chunk compiled {seen[1] - seen[0]} programs"
    assert len(played) == 10  # was 12: the last chunk played its 2 masked generations too
    assert out.fitness.shape == (10, 4)
    assert np.isfinite(out.seconds_per_generation) and out.seconds_per_generation > 0


@pytest.mark.slow  # a second compiled program: about 15 s on a loaded 2-core machine
def test_chunking_leaves_the_run_unchanged() -> None:
    out, _, _ = _evolve(10, chunk=4)
    whole, _, played = _evolve(10, chunk=10)
    assert len(played) == 10
    np.testing.assert_array_equal(np.asarray(out.fitness), np.asarray(whole.fitness))
    np.testing.assert_array_equal(np.asarray(out.mean), np.asarray(whole.mean))
