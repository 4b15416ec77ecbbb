"""Every ``ES(...)`` parameter and ``fit()`` argument: bad values are refused naming it.

A table of (parameter, bad value, error type): strings for numbers, bools for numbers,
negative tolerances, NaN and infinity where they mean nothing, non-bool flags, wrong
containers. Each must raise the given evostrat error (``InvalidTypeError`` is also a
``TypeError``, ``InvalidArgumentError`` a ``ValueError``) before the objective runs,
with a message naming the parameter. Then the good values and the defaults still run.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from evostrat import ES
from evostrat.errors import EvostratError, InvalidArgumentError, InvalidTypeError, UnknownNameError
from evostrat.problems import sphere
from evostrat.run.termination import Termination
from evostrat.strategies.snes import SNES

T, A, U = InvalidTypeError, InvalidArgumentError, UnknownNameError

#: (parameter, bad value, error) for ES(...).
ES_TABLE = [
    ("strategy", 3, T), ("strategy", "nope", U), ("strategy", None, T),
    ("sigma0", "1", T), ("sigma0", True, T), ("sigma0", np.True_, T), ("sigma0", -1.0, A), ("sigma0", 0.0, A),
    ("sigma0", math.nan, A), ("sigma0", math.inf, A), ("sigma0", [1.0, "a", 1.0], T),
    ("sigma0", ["1", "1", "1"], T), ("sigma0", np.ones(2), A), ("sigma0", {"a": 1.0}, T),
    ("popsize", "10", T), ("popsize", 10.0, T), ("popsize", True, T), ("popsize", -3, A), ("popsize", 1, A),
    ("popsize", math.nan, T), ("popsize", 10**12, A),
    ("max_evals", "10", T), ("max_evals", 10.5, T), ("max_evals", True, T), ("max_evals", 0, A),
    ("max_evals", -1, A), ("max_evals", math.inf, T),
    ("max_generations", "10", T), ("max_generations", 2.5, T), ("max_generations", False, T),
    ("max_generations", 0, A), ("max_generations", math.nan, T),
    ("ftarget", "1", T), ("ftarget", True, T), ("ftarget", math.nan, A), ("ftarget", math.inf, A),
    ("ftarget", -math.inf, A),
    ("tolfun", "1e-11", T), ("tolfun", -1.0, A), ("tolfun", True, T), ("tolfun", math.nan, A), ("tolfun", math.inf, A),
    ("tolx", "1", T), ("tolx", -1e-3, A), ("tolx", False, T), ("tolx", math.nan, A), ("tolx", math.inf, A),
    ("tolfunhist", "1", A), ("tolfunhist", -1.0, A), ("tolfunhist", True, T), ("tolfunhist", math.nan, A),
    ("tolstagnation", "10", A), ("tolstagnation", -1, A), ("tolstagnation", True, T), ("tolstagnation", 1.5, T),
    ("tolflatfitness", "1", A), ("tolflatfitness", -1, A), ("tolflatfitness", True, T),
    ("tolflatfitness", math.inf, T),
    ("maximize", "yes", T), ("maximize", 1, T), ("maximize", None, T), ("maximize", 0.0, T),
    ("bounds", "a", T), ("bounds", (0.0,), T), ("bounds", 3, T), ("bounds", (2.0, -2.0), A),
    ("restarts", "nope", A), ("restarts", 3, T), ("restarts", True, T), ("restarts", {"kind": "ipop", "x": 1}, A),
    ("backend", 3, T), ("backend", True, T), ("backend", "nope", U),
    ("device", 3, T), ("device", True, T), ("device", 1.5, T),
    ("dtype", "int32", T), ("dtype", "float8", T), ("dtype", "nonsense", T), ("dtype", 3, T), ("dtype", True, T),
    ("evaluator", 3, T), ("evaluator", "nope", U),
    ("evaluator_options", "a", T), ("evaluator_options", 3, T), ("evaluator_options", {"nope": 1}, A),
    ("nonfinite", "x", A), ("nonfinite", None, A), ("nonfinite", True, A),
    ("strategy_options", "a", T), ("strategy_options", 3, T), ("strategy_options", [1], T),
    ("random_state", "1", T), ("random_state", -1, A), ("random_state", 1.5, T), ("random_state", True, T),
    ("compiled_loop", "yes", A), ("compiled_loop", 1, T), ("compiled_loop", None, T),
]


def _id(row) -> str:
    return f"{row[0]}={row[1]!r}"[:40]


def _never_called(X):
    raise AssertionError("the objective ran although a parameter was invalid")


@pytest.mark.parametrize("name, value, error", ES_TABLE, ids=[_id(r) for r in ES_TABLE])
def test_bad_es_parameter_is_refused_naming_it(name, value, error) -> None:
    with pytest.raises(error) as info:
        ES("snes", max_generations=2, random_state=0).set_params(**{name: value}).fit(_never_called, np.ones(3))
    assert isinstance(info.value, EvostratError)
    assert name in str(info.value).lower(), str(info.value)  # ("Restarts: kind must be ...")


#: (fit argument, bad value, error).
FIT_TABLE = [
    ("objective", 3.0, T), ("objective", "sphere", T), ("x0", ["1", "2"], T), ("x0", [True, False], T),
    ("x0", [1.0, [2.0]], T), ("x0", np.ones((2, 2)), A), ("x0", [], A), ("x0", [1.0, math.nan], A),
    ("x0", None, T), ("callbacks", "x", T), ("callbacks", [3], T), ("callbacks", True, T),
    ("progress", "yes", A), ("progress", 3, T), ("checkpoint", 3, T), ("checkpoint", True, T),
    ("checkpoint_every", 0, A), ("checkpoint_every", "2", T), ("checkpoint_every", True, T),
    ("checkpoint_every", 1.5, T),
]


@pytest.mark.parametrize("name, value, error", FIT_TABLE, ids=[_id(r) for r in FIT_TABLE])
def test_bad_fit_argument_is_refused_naming_it(name, value, error, tmp_path) -> None:
    args = {"objective": _never_called, "x0": np.ones(3), name: value}
    if name == "checkpoint_every":
        args["checkpoint"] = tmp_path / "run.ckpt"
    with pytest.raises(error) as info:
        ES("snes", max_generations=2, random_state=0).fit(**args)
    assert isinstance(info.value, EvostratError)
    assert name.split("_")[0] in str(info.value), str(info.value)


@pytest.mark.parametrize(
    "how", ["popsize", "strategy_options", "strategy_instance", "initialize"],
)
def test_huge_popsize_is_refused_before_allocating(how) -> None:
    """popsize x dim x itemsize above the machine's memory: an error naming popsize, at once."""
    huge = 10**12
    es = {
        "popsize": ES("snes", popsize=huge),
        "strategy_options": ES("snes", strategy_options={"popsize": huge}),
        "strategy_instance": ES(SNES(popsize=huge)),
        "initialize": ES("cma_es", popsize=huge),
    }[how]
    tracemalloc.start()
    try:
        with pytest.raises(InvalidArgumentError, match=r"popsize=1000000000000 needs .* GiB"):
            if how == "initialize":
                es.initialize(np.ones(3))
            else:
                es.fit(_never_called, np.ones(3))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20  # nothing population-sized was allocated (numpy reports to tracemalloc)


def test_termination_checks_its_criteria_itself() -> None:
    for kwargs in (dict(tolfun=-1.0), dict(tolx="1"), dict(max_evals=0), dict(ftarget=math.nan),
                   dict(tolstagnation=True), dict(tolfunhist=math.inf)):
        with pytest.raises(EvostratError, match=f"Termination: {next(iter(kwargs))} must be"):
            Termination(**kwargs)
    t = Termination(max_evals=np.int64(5), tolfun=np.float32(1e-3), tolstagnation=np.int32(3))
    assert (type(t.max_evals), type(t.tolfun), type(t.tolstagnation)) == (int, float, int)  # plain numbers


#: Good values, one per parameter, all different from the defaults.
GOOD = [
    {}, dict(sigma0=0.5), dict(sigma0=np.array([0.5, 1.0, 2.0])), dict(sigma0=[1, 2, 3]), dict(popsize=np.int64(8)),
    dict(max_evals=40, max_generations=None), dict(ftarget=-1.0), dict(ftarget=np.float32(1e-3)),
    dict(tolfun=0.0, tolx=None), dict(tolfunhist=1e-9, tolstagnation=0, tolflatfitness=None),
    dict(tolstagnation="auto", tolflatfitness="auto", tolfunhist=None), dict(maximize=np.False_),
    dict(bounds=(-5.0, 5.0)), dict(restarts="ipop"), dict(restarts={"kind": "bipop", "max_restarts": 1}),
    dict(backend="numpy"), dict(device="cpu"), dict(dtype="float32"), dict(dtype=np.float64),
    dict(evaluator="serial"), dict(nonfinite="ignore"), dict(strategy_options={"lr_mean": 0.5}),
    dict(random_state=np.int64(3)), dict(compiled_loop=False), dict(compiled_loop=np.True_),
]


@pytest.mark.parametrize("params", GOOD, ids=[",".join(p) or "defaults" for p in GOOD])
def test_good_values_and_defaults_still_run(params) -> None:
    es = ES("snes", **{"random_state": 0, "max_generations": 4, **params}).fit(sphere, np.ones(3))
    assert es.n_generations_ >= 1 and np.isfinite(es.fun_)


def test_all_defaults_run_on_every_strategy() -> None:
    for name in ("snes", "cma_es", "sep_cma_es", "xnes", "openai_es", "pgpe"):
        es = ES(name, max_generations=3, random_state=0).fit(sphere, [1.0, 2.0, 3.0])
        assert es.n_generations_ == 3 and isinstance(es.x_, np.ndarray)


@pytest.mark.parametrize("bad", ["1", True, ["1", "1"], None])
@pytest.mark.parametrize("how", ["strategy_options", "instance"])
def test_sigma0_of_a_strategy_is_checked_like_the_estimators(bad, how) -> None:
    """numpy reads "1" and True as numbers: a strategy's own sigma0 is type-checked too."""
    es = (ES("snes", strategy_options={"sigma0": bad}, max_generations=2) if how == "strategy_options"
          else ES(SNES(sigma0=bad), max_generations=2))
    with pytest.raises(InvalidTypeError, match="sigma0"):
        es.fit(sphere, np.ones(2))


@pytest.mark.parametrize("bad", [math.nan, math.inf, "-1"])
def test_expectation_es_baseline_is_none_mean_or_a_finite_number(bad) -> None:
    with pytest.raises(EvostratError, match="baseline"):
        ES("expectation_es", strategy_options={"baseline": bad}, max_generations=2).fit(sphere, np.ones(2))
    assert ES("expectation_es", strategy_options={"baseline": -1.0}, max_generations=2).fit(
        sphere, np.ones(2)).n_generations_ == 2


def test_a_restarts_larger_population_is_refused_before_allocating(monkeypatch) -> None:
    """IPOP doubles the population each restart: the restart whose state would not fit in memory
    raises naming popsize, and the run keeps what it found so far."""
    import os

    real = os.sysconf
    # 3 pages of 4096 bytes: the first state (2 x 20^2 + 1 x (12 + 2) x 20 values of 8 bytes) fits, and
    # the first restart's (popsize 25: pycma's int(2 x 12.99)), the second restart's (popsize 51: 1860 values) not
    monkeypatch.setattr(os, "sysconf", lambda name: {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 3}.get(name)
                        if name in ("SC_PAGE_SIZE", "SC_PHYS_PAGES") else real(name))
    es = ES("cma_es", restarts="ipop", max_evals=200_000, random_state=0)
    with pytest.raises(InvalidArgumentError, match=r"popsize=51\) makes a state of 1860 values"):
        es.fit(lambda X: np.sum(X**2 - 10 * np.cos(2 * np.pi * X), axis=1) + 10 * X.shape[1], np.ones(20))
    assert es.n_generations_ > 0 and math.isfinite(es.fun_) and len(es.restarts_) == 2
