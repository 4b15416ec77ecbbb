"""How ``evaluator="auto"`` reads an unmarked objective (issue 18, item 3).

- a population objective returning one column, ``(popsize, 1)`` (numpy, torch, a list of
  one-element lists), is read as one value per candidate;
- one returning ``(popsize, k)`` with ``k > 1`` is refused naming the shape (it used to fall
  back to per-candidate calls and fail with an unrelated ``AxisError``);
- falling back to one call per candidate warns once (``PerCandidateWarning``); a marked
  objective, or one that takes a population, does not warn.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import pytest

from evostrat import ES
from evostrat.errors import InvalidArgumentError, InvalidTypeError, PerCandidateWarning


def column_sphere(X: Any) -> Any:
    return (X**2).sum(axis=1, keepdims=True) if isinstance(X, np.ndarray) else (X**2).sum(dim=1, keepdim=True)


def reference(X: Any) -> Any:
    return (X**2).sum(axis=1) if isinstance(X, np.ndarray) else (X**2).sum(dim=1)


def _run(objective: Any, x0: Any, **options: Any) -> ES:
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerCandidateWarning)  # a population objective never warns
        return ES("cma_es", max_generations=6, random_state=0, **options).fit(objective, x0)


@pytest.mark.parametrize("evaluator", ["auto", "vectorized"])
def test_one_column_is_one_value_per_candidate(evaluator: str) -> None:
    a = _run(column_sphere, np.full(4, 2.0), evaluator=evaluator)
    b = _run(reference, np.full(4, 2.0), evaluator=evaluator)
    assert a.fun_ == b.fun_ and np.array_equal(a.x_, b.x_)
    c = _run(lambda X: [[float(v)] for v in reference(X)], np.full(4, 2.0), evaluator=evaluator)
    assert c.fun_ == b.fun_


def test_one_column_on_torch() -> None:
    torch = pytest.importorskip("torch")
    a = _run(column_sphere, torch.full((4,), 2.0))
    b = _run(reference, torch.full((4,), 2.0))
    assert a.fun_ == b.fun_ and torch.equal(a.x_, b.x_)


def test_several_columns_are_refused_naming_the_shape() -> None:
    with pytest.raises(InvalidArgumentError, match=r"must return shape \(8,\) \(or \(8, 1\)\), got shape \(8, 2\)"):
        ES("cma_es", popsize=8, max_generations=3).fit(lambda X: np.stack([X.sum(1), X.sum(1)], 1), np.ones(3))


def test_falling_back_to_per_candidate_calls_warns_once() -> None:
    calls: list[int] = []

    def per_candidate(x: np.ndarray) -> float:
        calls.append(x.ndim)
        return float(x @ x)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        es = ES("cma_es", max_generations=5, random_state=0).fit(per_candidate, np.ones(3))
    assert [w.category for w in caught].count(PerCandidateWarning) == 1
    assert "objective.vectorized = False" in str(next(w.message for w in caught if w.category is PerCandidateWarning))
    assert es.n_generations_ == 5 and calls.count(1) == 5 * es.strategy_.popsize

    per_candidate.vectorized = False  # type: ignore[attr-defined]
    calls.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerCandidateWarning)
        ES("cma_es", max_generations=5, random_state=0).fit(per_candidate, np.ones(3))
    assert set(calls) == {1}  # marked: never called with the population


@pytest.mark.parametrize("out, error, returned", [
    ("a", InvalidTypeError, "str of shape ()"),
    (None, InvalidTypeError, "NoneType of shape ()"),
    ([1.0, 2.0], InvalidArgumentError, "list of shape (2,)"),
], ids=["str", "None", "two-values"])
def test_an_objective_neither_call_can_use_is_refused_saying_what_each_returned(out: Any, error: type,
                                                                                 returned: str) -> None:
    # evaluator="auto": one candidate gave no number and the population no vector of values;
    # before, the error spoke of "a vectorised objective" and of the shape alone
    calls: list[tuple[int, ...]] = []

    def objective(x: Any) -> Any:
        calls.append(np.shape(x))
        return out

    returned = re.escape(returned)
    with pytest.raises(error, match=rf"^objective must return one real number per candidate: called with one "
                                    rf"candidate \(shape \(3,\)\) it returned {returned}, not one number, and "
                                    rf"called with the population \(shape \(7, 3\)\) {returned}, not 7 real values$"):
        ES("cma_es", max_generations=3).fit(objective, np.ones(3))
    assert calls == [(3,), (7, 3)]


@pytest.mark.parametrize("out", ["a", None], ids=["str", "None"])
def test_a_vectorised_objective_returning_no_numbers_gets_a_type_error(out: Any) -> None:
    with pytest.raises(InvalidTypeError, match=r"^values must be real numbers, got dtype (<U1|object): a "
                                               r"vectorised objective must return 7 real values, got "
                                               r"(str|NoneType) of shape \(\)$"):
        ES("cma_es", evaluator="vectorized", max_generations=3).fit(lambda X: out, np.ones(3))
