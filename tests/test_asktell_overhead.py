"""What ``ES.ask``/``ES.tell`` add to a numpy generation of the functional core (issue 15).

The timings are in ``benchmarks/test_run_overhead.py`` (``numpy-asktell``); here the host work
that they measure is pinned where it can be counted: the Python functions the estimator runs
beyond the strategy's own, and the runner's attribute reads staying on CPython's specialised
look-up (a class ``__getattr__`` turns that off for every attribute).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from evostrat import ES
from evostrat.plugins.factories import make_strategy
from evostrat.problems import sphere
from evostrat.run.asktell import AskTell

#: Python function calls of the usual numpy generation beyond the functional core's: ES.ask,
#: Driver.ask, AskTell.ask, ES.tell, Driver.tell, AskTell.update, RunState.add_generation and the
#: kernel's sigma_parts, less the four of the core's tell shape check (checked, check_told and
#: default_popsize twice), which the estimator's own checks replace
EXTRA_CALLS = 8 - 4


def _python_calls(generation) -> list[str]:
    calls = []

    def profile(frame, event, arg):
        if event == "call":
            calls.append(f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_code.co_name}")

    sys.setprofile(profile)
    try:
        generation()
    finally:
        sys.setprofile(None)
    return calls


def test_the_usual_generation_runs_few_python_functions_beyond_the_strategy_s():
    es = ES("cma_es", max_generations=10**6, tolfun=None, tolx=None, random_state=0).initialize(np.ones(10))
    s = make_strategy("cma_es", None)
    box = {"state": s.init(np.ones(10), random_state=0)}

    def estimator() -> None:
        X = es.ask()
        es.tell(X, sphere(X))

    def core() -> None:
        X, box["state"] = s.ask(box["state"])
        box["state"] = s.tell(box["state"], X, sphere(X))

    for _ in range(5):  # kernels resolved, first results checked
        estimator(), core()
    ours, theirs = _python_calls(estimator), _python_calls(core)
    assert len(ours) - len(theirs) <= EXTRA_CALLS, sorted(set(ours) - set(theirs))
    assert [row["generation"] for row in es.history_] == list(range(1, 7))  # recorded all the same


class _Deferred:
    def __init__(self, mean, state):
        self.mean, self.state, self.reads = mean, state, 0

    def resolve(self):
        self.reads += 1
        return self.state


def test_runner_attributes_stay_on_the_specialised_lookup_with_a_deferred_state():
    """No ``__getattr__`` on the runner's class; a deferred state is still built when first read."""
    assert not any("__getattr__" in vars(klass) for klass in AskTell.__mro__)
    strategy = make_strategy("snes", None)
    state = strategy.init(np.ones(3), random_state=1)
    deferred = _Deferred(strategy.mean(state), state)
    runner = AskTell(strategy, np.ones(3), state=deferred)
    assert "state" not in vars(runner) and deferred.reads == 0 and runner.pending is None
    assert runner.state is state and runner.state is state and deferred.reads == 1
    assert vars(runner)["state"] is state and "_deferred" not in vars(runner)
    X = runner.ask()
    assert vars(runner)["pending"] is X  # a plain attribute, read by every tell
    runner.tell(X, sphere(X))
    with pytest.raises(AttributeError, match="no_such"):
        runner.no_such
    with pytest.raises(AttributeError, match="'state'"):
        AskTell.__new__(AskTell).state
