"""The rule ``evaluator="auto"`` follows for an unmarked objective (issue 18, item 3):
a per-candidate function is never called with a 2-D array unless it is marked or the
call is unambiguous.

- the probe calls the objective with candidate 0 alone, shape ``(dim,)``; one value back
  means per-candidate (that value is candidate 0's: no extra call), with one warning;
- only an objective that refused one candidate (raised, or returned several values) is
  called with the population;
- a marked objective is never probed; an objective failing both ways gets one error
  quoting both failures.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import evostrat
from evostrat import ES
from evostrat.errors import ObjectiveError, PerCandidateWarning


class Calls:
    """Records the number of dimensions of each input; ``kind`` says how it computes."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.ndims: list[int] = []

    def __call__(self, x: np.ndarray) -> Any:
        self.ndims.append(np.ndim(x))
        if self.kind == "per-candidate":  # a meaningless scalar on a 2-D array
            return float(np.sum(np.asarray(x) ** 2))
        if self.kind == "both":  # right on one candidate and on a population
            return np.sum(np.asarray(x) ** 2, axis=-1)
        if self.kind == "population":
            return np.sum(np.asarray(x) ** 2, axis=1)
        if self.kind == "list":  # iterates over its input: one candidate gives dim values
            return [float(np.sum(np.asarray(row) ** 2)) for row in x]
        raise AssertionError(self.kind)


def _fit(objective: Any, **options: Any) -> ES:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        es = ES("snes", max_generations=4, random_state=0, **options).fit(objective, np.full(5, 2.0))
    es.warned = [w for w in caught if w.category is PerCandidateWarning]  # type: ignore[attr-defined]
    return es


def test_a_per_candidate_function_is_never_called_with_a_population() -> None:
    f = Calls("per-candidate")
    es = _fit(f)
    assert f.ndims == [1] * es.n_evals_  # the probe's call is candidate 0's evaluation
    assert len(es.warned) == 1
    reference = ES("snes", max_generations=4, random_state=0, evaluator="serial").fit(
        lambda x: float(np.sum(x**2)), np.full(5, 2.0))
    assert es.fun_ == reference.fun_ and np.array_equal(es.x_, reference.x_)


def test_a_function_taking_both_is_per_candidate_until_marked() -> None:
    f = Calls("both")
    es = _fit(f)
    assert set(f.ndims) == {1} and len(f.ndims) == es.n_evals_
    message = str(es.warned[0].message)
    assert "@evostrat.vectorized" in message and "shape (5,)" in message

    marked = evostrat.vectorized(Calls("both"))
    es_marked = _fit(marked)
    assert marked.ndims == [2] * es_marked.n_generations_ and not es_marked.warned  # never probed
    assert es_marked.fun_ == es.fun_


@pytest.mark.parametrize("kind", ["population", "list"])
def test_a_function_refusing_one_candidate_gets_the_population(kind: str) -> None:
    f = Calls(kind)
    es = _fit(f)
    assert f.ndims == [1] + [2] * es.n_generations_  # one refused probe, then one call per generation
    assert not es.warned
    marked = _fit(evostrat.vectorized(Calls("population")))
    assert es.fun_ == marked.fun_ and np.array_equal(es.x_, marked.x_)


def test_failing_both_ways_quotes_both_failures() -> None:
    def broken(x: np.ndarray) -> float:
        raise RuntimeError(f"simulator crashed on input of {np.ndim(x)} dims")

    with pytest.raises(ObjectiveError, match=r"candidate 0: called with one candidate \(shape \(5,\)\) it "
                       r"raised RuntimeError: simulator crashed on input of 1 dims; called with the "
                       r"population \(shape \(\d+, 5\)\) it raised RuntimeError: .* of 2 dims") as info:
        _fit(broken)
    assert info.value.index == 0 and isinstance(info.value.__cause__, RuntimeError)


def test_a_per_candidate_failure_with_a_scalar_on_the_population_names_the_candidate_error() -> None:
    def fails_on_rows(x: np.ndarray) -> float:
        if np.ndim(x) == 1:
            raise ValueError("negative pressure")
        return 0.0  # a meaningless scalar for a 2-D array

    with pytest.raises(ObjectiveError, match=r"raised ValueError: negative pressure; called with the population "
                       r"it returned float of shape \(\)"):
        _fit(fails_on_rows)


def test_behaviour_objectives_follow_the_same_rule() -> None:
    ndims: list[int] = []

    def behaviour(x: np.ndarray) -> np.ndarray:
        ndims.append(x.ndim)
        return np.array([np.sin(x[0]), x[1]])  # one behaviour vector per candidate

    with pytest.warns(PerCandidateWarning):
        es = ES("maxvar_es", popsize=10, max_generations=3, random_state=0).fit(behaviour, np.zeros(2))
    assert ndims == [1] * es.n_evals_

    ndims.clear()

    def population(X: np.ndarray) -> np.ndarray:
        ndims.append(X.ndim)
        return np.stack([np.sin(X[:, 0]), X[:, 1]], axis=1)

    other = ES("maxvar_es", popsize=10, max_generations=3, random_state=0).fit(population, np.zeros(2))
    assert ndims == [1, 2, 2, 2]
    np.testing.assert_allclose(other.strategy_.mean, es.strategy_.mean)
