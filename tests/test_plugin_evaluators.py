"""Evaluator plugins (``evostrat_evaluators``) as a third party writes them from the hook
specification: ``evaluate(objective, X, backend)`` is all one must implement, its ``__init__``
arguments are the ``evaluator_options``; a class that breaks this is named before the first
generation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from plugin_fixtures import module_plugin

from evostrat import ES
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.evaluators.local import Evaluator
from evostrat.hookspecs import hookimpl
from evostrat.problems import sphere


class Chunked(Evaluator):
    """``objective`` on ``chunk`` rows at a time; ``chunk`` has no default."""

    def __init__(self, chunk: int) -> None:
        self.chunk = chunk

    def evaluate(self, objective: Any, X: Any, backend: Any) -> Any:
        parts = [backend.asarray(objective(X[i:i + self.chunk]), device=backend.device(X))
                 for i in range(0, X.shape[0], self.chunk)]
        return backend.xp.concat(parts)


class Unfinished(Evaluator):
    """Forgets to override ``evaluate``."""


class Truncating(Evaluator):
    """Returns one value too few, or the values as strings (``kind``)."""

    def __init__(self, kind: str = "short") -> None:
        self.kind = kind

    def evaluate(self, objective: Any, X: Any, backend: Any) -> Any:
        values = objective(X)
        return values[:-1] if self.kind == "short" else np.array([str(v) for v in values])


class EvaluatorPlugin:
    @hookimpl
    def evostrat_evaluators(self) -> dict[str, type]:
        return {"chunked": Chunked, "unfinished": Unfinished, "truncating": Truncating}


plugin = module_plugin(EvaluatorPlugin, "evaluator-plugin")


def test_a_plugin_evaluator_gets_its_options_and_gives_the_default_evaluators_run() -> None:
    es = ES("snes", max_generations=8, random_state=0, evaluator="chunked", evaluator_options={"chunk": 3})
    es.fit(sphere, np.ones(4))
    reference = ES("snes", max_generations=8, random_state=0).fit(sphere, np.ones(4))
    assert es.fun_ == reference.fun_ and np.array_equal(es.x_, reference.x_)


def test_an_option_without_default_that_is_not_given_is_named() -> None:
    with pytest.raises(InvalidArgumentError, match=r"evaluator 'chunked' \(Chunked\) needs evaluator_options "
                                                   r"'chunk' \(no default\), got \[\]"):
        ES("snes", max_generations=3, evaluator="chunked").fit(sphere, np.ones(4))


@pytest.mark.parametrize("evaluator, what", [("unfinished", r"evaluator 'unfinished' \(Unfinished\)"),
                                              (Unfinished(), "evaluator Unfinished")])
def test_an_evaluator_without_evaluate_is_named_before_the_first_generation(evaluator: Any, what: str) -> None:
    calls: list[int] = []

    def objective(X: Any) -> Any:
        calls.append(1)
        return sphere(X)

    with pytest.raises(InvalidTypeError, match=f"{what} does not implement evaluate\\(objective, X, backend\\), "
                                               "the method an evaluator must override"):
        ES("snes", max_generations=3, evaluator=evaluator).fit(objective, np.ones(4))
    assert calls == []



@pytest.mark.parametrize("evaluator, what", [("truncating", r"evaluator 'truncating' \(Truncating\)"),
                                              (Truncating(), "evaluator Truncating")])
def test_wrong_values_from_a_plugin_evaluator_name_it(evaluator: Any, what: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"^{what} returned values the run cannot use: values must have "
                                                   r"shape \(8,\) \(one value per candidate\), got shape \(7,\)$"):
        ES("snes", popsize=8, max_generations=3, evaluator=evaluator).fit(sphere, np.ones(4))


def test_non_numbers_from_a_plugin_evaluator_name_it_and_keep_the_error_class() -> None:
    with pytest.raises(InvalidTypeError, match=r"^evaluator Truncating returned values the run cannot use: "
                                               r"values must be real numbers, got dtype"):
        ES("snes", popsize=8, max_generations=3, evaluator=Truncating("strings")).fit(sphere, np.ones(4))


def test_wrong_values_through_evostrats_own_evaluators_are_not_attributed_to_one() -> None:
    def strings(X: Any) -> Any:
        return np.array([str(v) for v in sphere(X)])

    with pytest.raises(InvalidTypeError, match=r"^values must be real numbers, got dtype"):
        ES("snes", popsize=8, max_generations=3, evaluator="vectorized").fit(strings, np.ones(4))
    with pytest.raises(InvalidArgumentError, match=r"^evaluator 'truncating'") as info:
        ES("snes", popsize=8, max_generations=3, evaluator="truncating").fit(sphere, np.ones(4))
    assert type(info.value.__cause__) is InvalidArgumentError  # the check's own error, chained
    assert str(info.value.__cause__).startswith("values must have shape (8,)")
