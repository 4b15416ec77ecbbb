"""What a refused hyper-parameter's error says: the argument, what was expected in words and
interval notation, and what was given; and which error it is (a wrong value of an accepted type is
an ``InvalidArgumentError``, a value of no accepted type an ``InvalidTypeError``).

Written from mutating ``evostrat/params.py`` one operator or constant at a time: every test here
fails for at least one such change that the bad-input tests let pass.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
import pytest

from evostrat import ES
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.params import Interval, Params, StrOptions
from evostrat.strategies.snes import SNES


class Toy(Params):
    parameter_constraints = {
        "rate": [Interval(Real, 0, 1, closed="right")],
        "low": [Interval(Real, None, 2, closed="neither")],
        "count": [Interval(Integral, 1, None, closed="left"), None],
        "mode": [StrOptions({"b", "a"}), callable],
        "agg": [StrOptions({"mean"})],
        "arr": [np.ndarray, Real],
        "pos": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, rate: Any = 0.5, low: Any = 0.0, count: Any = None, mode: Any = "a", agg: Any = "mean",
                 arr: Any = 1.0, pos: Any = 0.0) -> None:
        self.rate, self.low, self.count, self.mode, self.agg, self.arr, self.pos = rate, low, count, mode, agg, arr, pos


@pytest.mark.parametrize("given, error, message", [
    (dict(rate=0.0), InvalidArgumentError, "rate must be a number in (0, 1], got 0.0"),
    (dict(rate=1.5), InvalidArgumentError, "rate must be a number in (0, 1], got 1.5"),
    (dict(rate="x"), InvalidTypeError, "rate must be a number in (0, 1], got 'x'"),
    (dict(low=2.0), InvalidArgumentError, "low must be a number in (-inf, 2), got 2.0"),
    (dict(count=0), InvalidArgumentError, "count must be an int in [1, inf) or None, got 0"),
    (dict(count=1.5), InvalidTypeError, "count must be an int in [1, inf) or None, got 1.5"),
    (dict(count=True), InvalidTypeError, "count must be an int in [1, inf) or None, got True"),
    (dict(mode="c"), InvalidArgumentError, "mode must be one of ('a', 'b') or a callable, got 'c'"),
    (dict(mode=3), InvalidTypeError, "mode must be one of ('a', 'b') or a callable, got 3"),
    (dict(agg="median"), InvalidArgumentError, "agg must be 'mean', got 'median'"),
    (dict(arr="s"), InvalidTypeError, "arr must be a numpy ndarray or a number, got 's'"),
    (dict(pos=-1.0), InvalidArgumentError, "pos must be a non-negative number, got -1.0"),
])
def test_a_refused_value_names_the_argument_what_it_must_be_and_what_it_got(given: dict, error: type,
                                                                            message: str) -> None:
    with pytest.raises(error) as info:
        Toy(**given).validate_params()
    assert str(info.value) == f"Toy: {message}"


@pytest.mark.parametrize("given", [dict(rate=1.0), dict(count=None), dict(count=7), dict(mode=len),
                                   dict(arr=np.zeros(2)), dict(pos=0.0), dict(low=-1e300)])
def test_the_values_at_and_inside_the_bounds_are_accepted(given: dict) -> None:
    Toy(**given).validate_params()


def test_interval_notation_of_open_closed_and_unbounded_ends() -> None:
    assert [str(i) for i in (Interval(Real, 0, 1, closed="right"), Interval(Real, 0, 1, closed="left"),
                             Interval(Integral, 1, 5), Interval(Real, None, 2, closed="neither"),
                             Interval(Real, 0, None, closed="neither"), Interval(Real, None, None))] == [
        "a number in (0, 1]", "a number in [0, 1)", "an int in [1, 5]", "a number in (-inf, 2)",
        "a positive number", "a finite number"]


def test_a_parameter_init_does_not_store_under_its_name_is_a_type_error_naming_the_convention() -> None:
    class Unstored(Params):
        parameter_constraints = {"rate": [Real]}

        def __init__(self, rate: float = 0.5) -> None:
            self._rate = rate

    with pytest.raises(InvalidTypeError, match=r"Unstored.__init__ must store its argument 'rate' as self.rate"):
        Unstored().validate_params()


def test_an_unknown_parameter_lists_the_nested_strategy_names_only_where_there_are_some() -> None:
    with pytest.raises(InvalidArgumentError, match=r"ES has no parameter 'bogus'.*'warm_start'\] and strategy__<name>$"):
        ES("snes").set_params(bogus=1)
    with pytest.raises(InvalidArgumentError, match=r"SNES has no parameter 'bogus'; valid: \['lr_mean', 'lr_sigma', "
                                                   r"'popsize', 'sigma0'\]$"):
        SNES().set_params(bogus=1)


def test_shallow_parameters_leave_out_the_nested_ones() -> None:
    class Outer(Params):
        def __init__(self, inner: Any = None, scale: float = 1.0) -> None:
            self.inner, self.scale = inner, scale

    outer = Outer(inner=Toy(rate=0.25))
    assert set(outer.get_params(deep=False)) == {"inner", "scale"}
    deep = outer.get_params(deep=True)
    assert deep["inner__rate"] == 0.25 and deep["inner"] is outer.inner and deep["scale"] == 1.0
