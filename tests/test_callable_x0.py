"""``x0`` as a callable: called for the first run and for each restart, as pycma does (issue 23).

COCO passes ``problem.initial_solution_proposal`` this way. The calls see numpy's global
generator seeded from ``(random_state, run)``, so a callable drawing from ``np.random`` gives
reproducible runs, and the caller's global generator is left as it was.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from evostrat import ES
from evostrat.errors import InvalidArgumentError
from evostrat.problems import rastrigin


class Starts:
    """A callable x0 drawing from numpy's global generator; remembers what it returned."""

    def __init__(self, dim: int = 5, low: float = -4.0, high: float = 4.0) -> None:
        self.dim, self.low, self.high = dim, low, high
        self.points: list[np.ndarray] = []

    def __call__(self) -> np.ndarray:
        point = np.random.uniform(self.low, self.high, self.dim)
        self.points.append(point.copy())
        return point


def _fit(starts: Any, seed: int | None = 1, **options: Any) -> tuple[ES, list[np.ndarray]]:
    seen: list[np.ndarray] = []

    def first_generation_start(es: ES) -> None:  # the start point of the current run
        x0 = np.asarray(es.run_.x0)
        if not seen or not np.array_equal(seen[-1], x0):
            seen.append(x0.copy())

    es = ES("cma_es", restarts="ipop", max_evals=15_000, random_state=seed, **options)
    return es.fit(rastrigin, starts, callbacks=[first_generation_start]), seen


def test_each_restart_starts_from_a_new_call() -> None:
    starts = Starts()
    es, seen = _fit(starts)
    assert len(es.restarts_) >= 3
    assert len(starts.points) == len(es.restarts_)  # one call per run
    assert len({p.tobytes() for p in starts.points}) == len(starts.points)
    for point, start in zip(starts.points, seen):
        np.testing.assert_array_equal(point, start)


def _seeded_fits(make: Any) -> tuple[ES, list[np.ndarray], Starts]:
    """Three fits from callables made by ``make``: two with seed 1, one with seed 2. Asserts that the
    global generator is left as it was, that the same seed draws the same starts and run, and that
    another seed draws another first start; returns the first fit, its starts and its callable."""
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a, b, c = make(), make(), make()
    es_a, seen = _fit(a, seed=1)
    es_b, _ = _fit(b, seed=1)
    _fit(c, seed=2)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    assert [p.tobytes() for p in a.points] == [p.tobytes() for p in b.points]
    assert es_a.fun_ == es_b.fun_ and np.array_equal(es_a.x_, es_b.x_)
    assert a.points[0].tobytes() != c.points[0].tobytes()
    return es_a, seen, a


def test_calls_are_seeded_from_random_state_and_leave_the_global_generator_alone() -> None:
    _seeded_fits(Starts)


def test_without_random_state_the_callable_is_called_as_it_is() -> None:
    starts = Starts(dim=3)
    es = ES("snes", max_generations=5).fit(rastrigin, starts)
    assert len(starts.points) == 1 and es.n_generations_ == 5


@pytest.mark.parametrize("bad", [lambda: np.ones((2, 2)), lambda: 3.0, lambda: np.ones(0)])
def test_a_wrong_shape_is_refused_naming_the_callable(bad: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="callable x0 must return a point of shape"):
        ES("cma_es", max_generations=3).fit(rastrigin, bad)


def test_a_restart_point_of_another_dimension_is_refused() -> None:
    dims = iter([4, 5])

    def changing() -> np.ndarray:
        return np.full(next(dims), 2.0)

    with pytest.raises(InvalidArgumentError, match=r"shape \(4,\), got shape \(5,\) for restart run 1"):
        ES("cma_es", restarts="ipop", max_evals=20_000, random_state=0).fit(rastrigin, changing)


def test_with_bounds_each_start_must_lie_inside() -> None:
    es, _ = _fit(Starts(low=-2.0, high=2.0), bounds=(-3, 3))
    assert np.all(np.abs(es.x_) <= 3)
    with pytest.raises(InvalidArgumentError, match="x0 must lie inside bounds"):
        _fit(Starts(low=4.0, high=5.0), bounds=(-3, 3))


def test_a_callable_returning_a_torch_tensor_runs_on_torch() -> None:
    torch = pytest.importorskip("torch")
    es = ES("snes", max_generations=4, random_state=0).fit(lambda X: (X**2).sum(dim=1),
                                                            lambda: torch.ones(3))
    assert isinstance(es.x_, torch.Tensor)


@pytest.mark.parametrize("bad", [lambda: {"w": np.ones(2)}, lambda: [np.ones(2), np.ones(1)]])
def test_a_structured_start_from_a_callable_is_refused_saying_so(bad: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="structured starts .* are taken as x0 itself"):
        ES("cma_es", max_generations=3).fit(rastrigin, bad)


def test_a_restart_point_with_nan_is_refused_naming_the_callable_and_the_run() -> None:
    points = iter([np.ones(3), np.array([1.0, np.nan, 0.0])])
    with pytest.raises(InvalidArgumentError, match="callable x0 returned a point with NaN or inf for restart run 1"):
        ES("cma_es", restarts="ipop", max_evals=20_000, random_state=0).fit(rastrigin, lambda: next(points))


class GeneratorStarts(Starts):
    """A callable x0 of one argument: draws from the numpy Generator it is given."""

    def __call__(self, rng: np.random.Generator) -> np.ndarray:  # type: ignore[override]
        assert isinstance(rng, np.random.Generator)
        point = rng.uniform(self.low, self.high, self.dim)
        self.points.append(point.copy())
        return point


def test_a_callable_of_one_argument_gets_a_generator_seeded_from_random_state_and_the_run() -> None:
    es_a, seen, a = _seeded_fits(GeneratorStarts)  # the global generator untouched: they draw from rng
    assert len(a.points) == len(es_a.restarts_) >= 3  # one call per run, each from its own generator
    assert len({p.tobytes() for p in a.points}) == len(a.points)
    for point, start in zip(a.points, seen):
        np.testing.assert_array_equal(point, start)
    # run r's generator is numpy's from the documented seed sequence
    expected = np.random.default_rng(np.random.SeedSequence([1, 2, 0x5EED])).uniform(-4.0, 4.0, 5)
    np.testing.assert_array_equal(a.points[2], expected)


def test_a_callable_of_one_argument_without_random_state_draws_fresh_starts() -> None:
    a, b = GeneratorStarts(dim=3), GeneratorStarts(dim=3)
    ES("snes", max_generations=2).fit(rastrigin, a)
    ES("snes", max_generations=2).fit(rastrigin, b)
    assert a.points[0].tobytes() != b.points[0].tobytes()


def test_optional_arguments_are_left_to_their_defaults() -> None:  # COCO's initial_solution_proposal(restart=None)
    calls: list[Any] = []

    def proposal(restart_number: Any = None) -> np.ndarray:
        calls.append(restart_number)
        return np.ones(3)

    ES("snes", max_generations=2, random_state=0).fit(rastrigin, proposal)
    assert calls == [None]


@pytest.mark.parametrize("bad,named", [(lambda rng, dim: np.ones(dim), "'rng', 'dim'"),
                                       (lambda *, rng: np.ones(3), "'rng'")])
def test_a_callable_needing_more_than_a_generator_is_refused_naming_its_arguments(bad: Any, named: str) -> None:
    from evostrat.errors import InvalidTypeError

    with pytest.raises(InvalidTypeError, match=rf"called as x0\(\) or x0\(rng\) .* requires {named}$"):
        ES("cma_es", max_generations=3).fit(rastrigin, bad)
