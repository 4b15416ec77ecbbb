"""``ES("nes", distribution=...)``: the search distribution as an ES parameter (issue 21)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from evostrat import ES
from evostrat.errors import InvalidArgumentError, InvalidTypeError, ParameterOverrideWarning
from evostrat.problems import sphere


def _fit(**params):
    return ES("nes", max_generations=40, random_state=0, **params).fit(sphere, np.ones(6))


def test_distribution_parameter_equals_strategy_options() -> None:
    a = _fit(distribution="low_rank_normal")
    b = _fit(strategy_options=dict(distribution="low_rank_normal"))
    assert a.fun_ == b.fun_ and np.array_equal(a.x_, b.x_)
    assert a.fun_ != _fit().fun_  # the default family (diag_normal) runs a different search


def test_distribution_reaches_the_strategy() -> None:
    es = ES("nes", distribution="low_rank_normal", max_generations=2, random_state=0).initialize(np.ones(4))
    assert es.strategy_.strategy.distribution == "low_rank_normal"
    assert ES("expectation_es", distribution="student_t", strategy_options=dict(
        distribution_options={"df": 3}), max_generations=2).initialize(np.ones(3)).strategy_.strategy.distribution \
        == "student_t"


def test_distribution_is_an_sklearn_parameter() -> None:
    es = ES("nes", distribution="low_rank_normal")
    assert es.get_params()["distribution"] == "low_rank_normal"
    assert es.set_params(distribution="student_t").distribution == "student_t"
    assert "distribution='student_t'" in repr(es)
    sklearn_base = pytest.importorskip("sklearn.base")
    assert sklearn_base.clone(es).distribution == "student_t"


def test_a_strategy_without_a_distribution_refuses_it() -> None:
    with pytest.raises(InvalidArgumentError, match=r"ES\(distribution='low_rank_normal'\).*SNES has none"):
        ES("snes", distribution="low_rank_normal").initialize(np.ones(3))
    with pytest.raises(InvalidTypeError, match="distribution must be"):
        ES("nes", distribution=3).initialize(np.ones(3))


def test_distribution_overriding_strategy_options_warns_and_wins() -> None:
    with pytest.warns(ParameterOverrideWarning, match="distribution"):
        es = ES("nes", distribution="low_rank_normal", strategy_options=dict(distribution="diag_normal"),
                max_generations=2).initialize(np.ones(3))
    assert es.strategy_.strategy.distribution == "low_rank_normal"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ES("nes", distribution="diag_normal", strategy_options=dict(distribution="diag_normal")).initialize(np.ones(3))
