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


class EvaluatorPlugin:
    @hookimpl
    def evostrat_evaluators(self) -> dict[str, type]:
        return {"chunked": Chunked, "unfinished": Unfinished}


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
