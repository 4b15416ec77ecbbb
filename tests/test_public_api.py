"""The public API is reachable the way the docs spell it.

``evostrat.expectation`` is both the documented function and the module of its other
names; the names the docs import from submodules are also exported (lazily, where they
need torch, JAX or gymnasium) by their parent packages.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap

import numpy as np

import evostrat
from evostrat.distributions import Normal


def test_expectation_is_callable_and_reaches_the_module_names() -> None:
    import evostrat.expectation as E
    from evostrat.expectation import expectation as function
    from evostrat.expectation import expectation_grad

    p = Normal(np.array([1.0]), 0.5)
    x = p.sample(64, key=0)
    v = -(x[:, 0] - 5.0) ** 2
    assert E is evostrat.expectation
    assert E.expectation_grad is expectation_grad
    assert evostrat.expectation.expectation_grad is expectation_grad
    assert float(evostrat.expectation(v, x, p)) == float(function(v, x, p)) == float(np.mean(v))
    assert float(evostrat.expectation(v, x, p=p, baseline="mean")) == float(function(v, x, p, baseline="mean"))
    g = evostrat.expectation.expectation_grad(v, x, p, baseline="mean")
    np.testing.assert_array_equal(g["mu"], expectation_grad(v, x, p, baseline="mean")["mu"])
    assert list(inspect.signature(evostrat.expectation).parameters) == ["values", "sample", "p", "dim", "baseline"]


def test_from_evostrat_import_expectation_calls_the_function() -> None:
    from evostrat import expectation

    p = Normal(np.zeros(2), 1.0)
    x = np.array([[1.0, 0.0], [3.0, 0.0]])
    assert float(expectation(x[:, 0], x, p)) == 2.0
    assert "expectation" in evostrat.__all__ and callable(evostrat.expectation)
