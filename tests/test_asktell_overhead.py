"""What ``ES.ask``/``ES.tell`` add to a numpy generation of the functional core (issue 15).

The timings are in ``benchmarks/test_run_overhead.py`` (``numpy-asktell``); here the host work
that they measure is pinned where it can be counted: the Python functions the estimator runs
beyond the strategy's own, and the runner's attribute reads staying on CPython's specialised
look-up (a class ``__getattr__`` turns that off for every attribute).
"""

from __future__ import annotations

import gc
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
#: default_popsize twice), which the estimator's own checks replace, and the four of CMA-ES's
#: kernel dispatch (CMABase.ask and .tell, each with its kernel look-up), which the driver's
#: runner binds once (evostrat.kernels.kernel_program)
EXTRA_CALLS = 8 - 4 - 4


def _python_calls(generation) -> list[str]:
    calls = []

    def profile(frame, event, arg):
        if event == "call":
            calls.append(f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_code.co_name}")

    # a garbage collection inside the window runs gc callbacks (JAX registers one) that are
    # not the generation's: collect first and keep the collector off while counting
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    sys.setprofile(profile)
    try:
        generation()
    finally:
        sys.setprofile(None)
        if was_enabled:
            gc.enable()
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


@pytest.mark.parametrize("name", ["cma_es", "sep_cma_es"])
def test_the_driver_s_runner_calls_the_kernel_and_runs_the_functional_core_s_generations(name):
    """The driver's runner owns its strategy: on numpy it calls the kernel's ask and tell itself
    (no per-call kernel look-up), and the run is the functional core's, bit for bit."""
    es = ES(name, max_generations=10**6, tolfun=None, tolx=None, random_state=4).initialize(np.full(6, 0.5))
    s = make_strategy(name, None)
    state = s.init(np.full(6, 0.5), random_state=4)
    for _ in range(60):
        X = es.ask()
        Xc, state = s.ask(state)
        assert np.array_equal(X, Xc)
        es.tell(X, sphere(X))
        state = s.tell(state, Xc, sphere(Xc))
    runner = es.strategy_
    kernel = runner.strategy.kernel(runner.state)
    assert vars(runner)["_ask"] is kernel.ask and vars(runner)["_tell"] is kernel.tell
    for field, value in zip(state._fields, state):
        assert np.array_equal(getattr(runner.state, field), value), field


def test_a_strategy_that_overrides_ask_or_tell_keeps_its_own():
    from evostrat.strategies.cma_es import CMAES

    calls = []

    class Counted(CMAES):
        def ask(self, state):
            calls.append("ask")
            return super().ask(state)

        def tell(self, state, X, fitness):
            calls.append("tell")
            return super().tell(state, X, fitness)

    es = ES(Counted(), max_generations=10**6, random_state=0).initialize(np.ones(3))
    for _ in range(3):
        X = es.ask()
        es.tell(X, sphere(X))
    assert calls == ["ask", "tell"] * 3


def test_a_runner_of_a_strategy_held_elsewhere_sees_its_hyper_parameters_change():
    """``Strategy.initialize`` hands out a runner of the caller's strategy: its kernel is looked up
    at each call, so a hyper-parameter set between generations applies (as the functional API's)."""
    from evostrat.strategies.cma_es import CMAES

    held, functional = CMAES(), CMAES()
    runner = held.initialize(np.ones(4), random_state=2)
    state = functional.init(np.ones(4), random_state=2)
    for g in range(20):
        if g == 10:
            held.set_params(lr_mean=0.5)
            functional.set_params(lr_mean=0.5)
        X = runner.ask()
        Xc, state = functional.ask(state)
        runner.tell(X, sphere(X))
        state = functional.tell(state, Xc, sphere(Xc))
    assert np.array_equal(runner.state.mean, state.mean)
    assert not runner.owns_strategy
