"""Fixed variables at their edges: a run with fixed coordinates is the run of its free ones.

pycma's ``fixed_variables`` takes coordinates out of the search: the strategy searches the free
coordinates and the objective sees full vectors with the fixed values in place. So a run on
``d`` coordinates with ``k`` fixed must be, step for step, the same-seed run on the ``d - k``
free coordinates whose objective puts the fixed values back, including when the user repairs
the candidates before telling them (``tell(..., repaired=True)``: the repaired rows are mapped
back through the box and the integer encoding to the strategy's space). Written from mutating
``evostrat/run/fixed.py``: the repaired rows' way back and the order in which ``x0`` and
``bounds`` are checked had no test.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from evostrat import ES
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.problems import sphere

FIXED = {0: 0.5}  # coordinate 0 of three, at 0.5


def _full(free: np.ndarray) -> np.ndarray:
    """Free rows (two coordinates) as full rows (three), the fixed value in front."""
    return np.c_[np.full(len(free), FIXED[0]), free]


def _shifted_sphere(X: np.ndarray) -> np.ndarray:
    return ((np.asarray(X, dtype=float) - 0.3) ** 2).sum(-1)


def _run(fixed: bool, bounds: bool, integer: bool, generations: int = 6) -> tuple[np.ndarray, float, list]:
    """Ask/tell a few generations, telling rows the user shrank towards 0 on the first free
    coordinate (repaired); returns the free part of the mean, sigma and the asked rows."""
    if fixed:
        es = ES("cma_es", random_state=3, fixed_variables=FIXED,
                bounds=([-2.0] * 3, [2.0] * 3) if bounds else None,
                integer=[2] if integer else None).initialize(np.array([FIXED[0], 1.0, 1.0]))
    else:
        es = ES("cma_es", random_state=3, bounds=([-2.0] * 2, [2.0] * 2) if bounds else None,
                integer=[1] if integer else None).initialize(np.array([1.0, 1.0]))
    asked = []
    for _ in range(generations):
        X = np.array(es.ask(), dtype=float)
        free = X[:, 1:] if fixed else X
        asked.append(free.copy())
        repaired = X.copy()
        repaired[:, -2] = np.clip(0.9 * repaired[:, -2], -2.0, 2.0)  # the first free coordinate
        es.tell(repaired, _shifted_sphere(repaired if fixed else _full(repaired)), repaired=True)
    mean = np.asarray(es.mean_, dtype=float)
    if fixed:
        assert mean[0] == FIXED[0]
    return (mean[1:] if fixed else mean), float(es.strategy_.sigma), asked


@pytest.mark.parametrize("integer", [False, True], ids=["continuous", "integer"])
@pytest.mark.parametrize("bounds", [False, True], ids=["unbounded", "bounded"])
def test_a_fixed_run_is_the_run_of_its_free_coordinates(bounds: bool, integer: bool) -> None:
    mean, sigma, asked = _run(True, bounds, integer)
    free_mean, free_sigma, free_asked = _run(False, bounds, integer)
    for a, b in zip(asked, free_asked):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(mean, free_mean)
    assert sigma == free_sigma


@pytest.mark.parametrize("integer", [False, True], ids=["continuous", "integer"])
def test_repaired_rows_go_back_through_the_box(integer: bool) -> None:
    """The repaired rows are what the strategy is told: mapped back through the box (and the
    integer encoding), they differ from telling the repaired rows as if they were in the
    strategy's space, which the run without a box does."""
    bounded, _, _ = _run(True, bounds=True, integer=integer)
    unbounded, _, _ = _run(True, bounds=False, integer=integer)
    assert not np.array_equal(bounded, unbounded)


@pytest.mark.parametrize("fixed", [None, FIXED], ids=["no fixed", "fixed"])
def test_a_list_x0_with_bounds_runs_as_an_array(fixed: Any) -> None:
    """``x0`` is made the backend's point before the box is read against it (a list too)."""
    def fit(x0: Any) -> np.ndarray:
        return np.asarray(ES("cma_es", bounds=(0, 5), fixed_variables=fixed, max_generations=4,
                             random_state=0).fit(sphere, x0).x_)

    np.testing.assert_array_equal(fit([1.0, 2.0, 3.0]), fit(np.array([1.0, 2.0, 3.0])))


@pytest.mark.parametrize("fixed", [None, FIXED], ids=["no fixed", "fixed"])
def test_a_bad_x0_with_bounds_is_named_before_the_box(fixed: Any) -> None:
    """A two-dimensional or non-numeric ``x0`` is refused as ``x0``, not as a box that does not fit it."""
    with pytest.raises((InvalidArgumentError, InvalidTypeError), match="x0"):
        ES("cma_es", bounds=(0, 5), fixed_variables=fixed).initialize(np.ones((2, 3)))
    with pytest.raises((InvalidArgumentError, InvalidTypeError), match="x0"):
        ES("cma_es", bounds=(0, 5), fixed_variables=fixed).initialize(["a", "b", "c"])


@pytest.mark.parametrize("index", [0, 2])
def test_the_first_and_last_index_may_be_fixed(index: int) -> None:
    es = ES("cma_es", fixed_variables={index: 0.25}, max_generations=3, random_state=0).fit(sphere, np.ones(3))
    assert np.asarray(es.x_)[index] == 0.25


@pytest.mark.parametrize("index", [3, -1])
def test_an_index_past_either_end_is_refused(index: int) -> None:
    with pytest.raises(InvalidArgumentError, match=rf"fixed_variables index {index} is out of range .*\[0, 3\)"):
        ES("cma_es", fixed_variables={index: 0.0}).initialize(np.ones(3))


@pytest.mark.parametrize("value", [-1.0, 2.0])
def test_a_fixed_value_on_the_box_edge_is_inside(value: float) -> None:
    es = ES("cma_es", bounds=(-1.0, 2.0), fixed_variables={1: value}, max_generations=3,
            random_state=0).fit(sphere, np.zeros(3))
    assert np.asarray(es.x_)[1] == value


@pytest.mark.parametrize("value", [np.nextafter(-1.0, -2.0), np.nextafter(2.0, 3.0)])
def test_a_fixed_value_just_outside_the_box_is_refused(value: float) -> None:
    with pytest.raises(InvalidArgumentError, match="is outside bounds"):
        ES("cma_es", bounds=(-1.0, 2.0), fixed_variables={1: value}).initialize(np.zeros(3))
