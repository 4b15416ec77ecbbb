"""Kernel plugins (``evostrat_kernel``, ``evostrat_stack_kernel``) as a third party writes them from
the hook specifications: any object with the documented methods is a kernel, and an answer that is
none is refused with an error naming the plugin and what is missing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from plugin_fixtures import registered

from evostrat import ES
from evostrat.backends import get_backend
from evostrat.errors import PluginError
from evostrat.hookspecs import hookimpl
from evostrat.kernels import resolve_stack_kernel
from evostrat.kernels.sep_cma_numpy import kernel as sep_kernel
from evostrat.problems import sphere
from evostrat.strategies.sep_cma_es import SepCMAES


class CountingKernel:
    """A kernel as the hookspec describes it: an object with ask(state) and tell(state, X, fitness)."""

    def __init__(self, strategy: Any) -> None:
        self.own = sep_kernel(strategy)
        self.asked = 0

    def ask(self, state: Any) -> Any:
        self.asked += 1
        return self.own.ask(state)

    def tell(self, state: Any, X: Any, fitness: Any) -> Any:
        return self.own.tell(state, X, fitness)


def offering(make: Any) -> Any:
    class Offer:
        @hookimpl(tryfirst=True)
        def evostrat_kernel(self, strategy: Any, backend: Any) -> Any:
            return make(strategy) if backend.host_arrays and strategy.name == "sep_cma_es" else None

        @hookimpl(tryfirst=True)
        def evostrat_stack_kernel(self, strategy: Any, backend: Any) -> Any:
            return make(strategy) if strategy.name == "sep_cma_es" else None

    return Offer()


def test_an_object_with_ask_and_tell_is_a_kernel_and_runs_the_steps() -> None:
    made: list[CountingKernel] = []
    with registered(offering(lambda s: made.append(CountingKernel(s)) or made[-1]), "ask-tell-object", fresh=False):
        es = ES("sep_cma_es", max_generations=12, random_state=0).fit(sphere, np.ones(3))
    reference = ES("sep_cma_es", max_generations=12, random_state=0).fit(sphere, np.ones(3))
    assert made and made[0].asked == es.n_generations_ == 12
    assert es.fun_ == reference.fun_ and np.array_equal(es.x_, reference.x_)


@pytest.mark.parametrize("answer, missing", [
    (lambda s: (sep_kernel(s).ask, sep_kernel(s).tell), "no method ask and no method tell"),
    (lambda s: type("AskOnly", (), {"ask": staticmethod(sep_kernel(s).ask)})(), "no method tell"),
])
def test_an_answer_that_is_no_kernel_is_refused_naming_the_plugin(answer: Any, missing: str) -> None:
    with registered(offering(answer), "not-a-kernel", fresh=False):
        with pytest.raises(PluginError, match=f"plugin 'not-a-kernel' .*evostrat_kernel\\(\\) answered for strategy "
                                               f"'sep_cma_es' on numpy with a .*, which has {missing}; return "
                                               r"evostrat.kernels.Kernel\(ask=..., tell=...\) or None"):
            ES("sep_cma_es", max_generations=3, random_state=0).fit(sphere, np.ones(3))


def test_a_stack_kernel_answer_without_read_is_refused_naming_the_plugin() -> None:
    with registered(offering(CountingKernel), "no-read", fresh=False):
        with pytest.raises(PluginError, match="plugin 'no-read' .*evostrat_stack_kernel\\(\\) answered .* which has "
                                              r"no method read; return evostrat.kernels.StackKernel\(ask=..., "
                                              r"tell=..., read=...\) or None"):
            resolve_stack_kernel(SepCMAES(), get_backend("numpy"))
