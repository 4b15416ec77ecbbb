"""evostrat.testing: the plugin-author kit passes on every registered strategy and on
the example plugin, and fails, naming the check, on deliberately broken strategies."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
from child_process import child_env
from conftest import strategy_class, strategy_names

from evostrat import ES
from evostrat.backends import get_backend
from evostrat.errors import InvalidTypeError
from evostrat.problems import sphere
from evostrat.strategies.base import Strategy, check_strategy as check_state
from evostrat.testing import CHECKS, ConformanceError, check_strategy, roundtrip_state_dict, sphere_values

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "evostrat-plugin-example"
SLOW = {"cma_es", "expectation_es", "vkd_cma"}  # their JAX runs take seconds each (vkd_cma: 22 s)


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in strategy_names()
])
def test_every_registered_strategy_passes_on_every_installed_backend(name: str) -> None:
    ran = check_strategy(strategy_class(name))
    skipped = {"progress"} if strategy_class(name).needs_behaviours else set()
    if not any(importlib.util.find_spec(m) for m in ("torch", "jax")):
        skipped.add("cross_backend")
    assert ran == [c for c in CHECKS if c not in skipped]


@pytest.mark.parametrize("name", sorted(SLOW))
def test_the_slow_strategies_pass_on_numpy(name: str) -> None:
    assert "progress" in check_strategy(strategy_class(name), backends=["numpy"])


def test_the_example_plugins_own_tests_call_the_kit_and_pass() -> None:
    env = child_env(PYTHONPATH=os.pathsep.join([str(EXAMPLE / "src"), str(ROOT)]))
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                         cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 passed" in out.stdout
    assert "check_strategy(OnePlusLambdaES)" in (EXAMPLE / "tests" / "test_strategy.py").read_text()


# -- a strategy that fulfils the contract, and broken variants of it -------------------------------
class GreedyState(NamedTuple):
    mean: Any
    sigma: Any
    key: Any


class Greedy(Strategy):
    """Move to the best candidate, shrink sigma: small, and conforming."""

    def __init__(self, popsize: int | None = None, sigma0: Any = 1.0, shrink: float = 0.9) -> None:
        super().__init__(popsize=popsize, sigma0=sigma0)
        self.shrink = shrink

    def initial_state(self, x0: Any, key: Any, backend: Any) -> GreedyState:
        return GreedyState(mean=x0, sigma=self.initial_sigma(x0, backend), key=key)

    def noise(self, state: Any, key: Any) -> Any:
        be = get_backend(state.mean)
        shape = (self.resolved_popsize(state.mean.shape[0]), state.mean.shape[0])
        return be.normal(key, shape, state.mean.dtype, be.device(state.mean))

    def ask(self, state: Any) -> tuple[Any, Any]:
        key, sub = get_backend(state.mean).split(state.key)
        return state.mean + state.sigma * self.noise(state, sub), state._replace(key=key)

    def tell(self, state: Any, X: Any, fitness: Any) -> Any:
        xp = get_backend(state.mean).xp
        return state._replace(mean=X[xp.argmin(fitness)], sigma=state.sigma * self.shrink)


class MutatingTell(Greedy):
    def tell(self, state, X, fitness):
        state.mean[...] = X[int(np.argmin(fitness))]  # writes into the caller's state
        return state._replace(sigma=state.sigma * self.shrink)


class CountingTell(Greedy):
    calls = 0

    def tell(self, state, X, fitness):
        type(self).calls += 1  # hidden state: the same inputs give another update
        return super().tell(state, X, fitness)._replace(sigma=state.sigma / type(self).calls)


class NoSigmaState(NamedTuple):
    mean: Any
    key: Any


class NoSigma(Greedy):
    def initial_state(self, x0, key, backend):
        return NoSigmaState(mean=x0, key=key)


class VectorSigma(Greedy):
    def sigma(self, state):
        return state.sigma  # (dim,), not 0-d


class WrongShape(Greedy):
    def ask(self, state):
        X, state = super().ask(state)
        return X.T, state


class IgnoresSeed(Greedy):
    def ask(self, state):
        fixed = get_backend(state.mean).key(1234)  # the same draw whatever the state's key
        return state.mean + state.sigma * self.noise(state, fixed), state


class RandomTell(Greedy):
    def tell(self, state, X, fitness):  # reads the key: another backend, another update
        new = super().tell(state, X, fitness)
        return new._replace(mean=new.mean + 0.1 * new.sigma * self.noise(state, state.key)[0])


class Stuck(Greedy):
    def tell(self, state, X, fitness):
        return state


class Forgetful(Greedy):
    def __init__(self, popsize=None, sigma0=1.0, shrink=0.9):
        super().__init__(popsize=popsize, sigma0=sigma0)
        del self.shrink  # not stored under its name
        self.factor = shrink

    def tell(self, state, X, fitness):
        return state._replace(mean=X[0], sigma=state.sigma * self.factor)


class ResetsToSigma0(Greedy):
    initial_only_params = frozenset({"sigma0"})  # declared, but tell reads it

    def tell(self, state, X, fitness):
        new = super().tell(state, X, fitness)
        return new._replace(sigma=new.sigma * 0 + float(self.sigma0))


class UnknownInitialOnly(Greedy):
    initial_only_params = frozenset({"sigma_zero"})


class TellWithInfo(Greedy):
    def tell(self, state, X, fitness):
        return super().tell(state, X, fitness), {}  # (state, info)


class MisspeltTermination(Greedy):
    termination_defaults = {"tolflatness": 1}  # tolflatfitness


class KeepsKey(Greedy):
    def ask(self, state):
        X, _ = super().ask(state)
        return X, state  # the key it was given: each generation draws the same noise


class RowMean(Greedy):
    def tell(self, state, X, fitness):
        new = super().tell(state, X, fitness)
        return new._replace(mean=new.mean[None, :])  # (1, dim): broadcasts into the next ask


class RowSigma(Greedy):
    def tell(self, state, X, fitness):
        new = super().tell(state, X, fitness)
        return new._replace(sigma=new.sigma[None, :])  # (1, dim): broadcasts, but no checkpoint restores it


class Float32Mean(Greedy):
    def tell(self, state, X, fitness):
        new = super().tell(state, X, fitness)
        return new._replace(mean=new.mean.astype(np.float32))  # a float64 run turned float32


def test_the_conforming_example_passes_every_check() -> None:
    assert check_strategy(Greedy, backends=["numpy"]) == [c for c in CHECKS if c != "cross_backend"]


@pytest.mark.parametrize("strategy, check, detail", [
    (MutatingTell, "pure", "tell mutated its inputs"),
    (CountingTell, "pure", r"tell\(state, X, values\) twice gave different states"),
    (NoSigma, "contract", "init raised InvalidTypeError: state of strategy 'NoSigma' has no field 'sigma' and the strategy does not override sigma"),
    (VectorSigma, "contract", r"init raised InvalidTypeError: sigma\(state\) of strategy .* must be an array of shape \(\), got shape \(4,\)"),
    (WrongShape, "ask", r"X has shape \(4, 8\), expected \(8, 4\)"),
    (IgnoresSeed, "seed", "random_state=0 and 1 ask the same population"),
    (Stuck, "progress", "the best mean's value after 300 generations is 4.56 \\(from 4.56\\)"),
    (Forgetful, "params", "AttributeError"),
    (ResetsToSigma0, "capabilities", "ask/tell/stop/sigma read the initial-only 'sigma0'"),
    (UnknownInitialOnly, "capabilities", "initial_only_params names 'sigma_zero', not a hyper-parameter"),
    (TellWithInfo, "contract", r"tell of strategy 'TellWithInfo' must return the new state \(a \w+, the type of "
                               r"the state it was given\), got tuple"),
    (MisspeltTermination, "capabilities", "termination_defaults of strategy 'MisspeltTermination' names unknown "
                                          "criteria 'tolflatness'; known: tolfunhist, tolstagnation, tolflatfitness"),
    (KeepsKey, "seed", "ask returned the key it was given: every generation would draw the same noise"),
    (RowMean, "contract", r"tell of strategy 'RowMean' must return a state whose mean has the shape and dtype of "
                          r"the state it was given, \(4,\) and float64, got shape \(1, 4\) and dtype float64"),
    (RowSigma, "contract", r"tell of strategy 'RowSigma' must return a state whose field 'sigma' keeps its shape "
                           r"\(4,\), got shape \(1, 4\)"),
    (Float32Mean, "contract", r"tell of strategy 'Float32Mean' must return a state whose mean has the shape and "
                              r"dtype of the state it was given, \(4,\) and float64, got shape \(4,\) and dtype float32"),
])
def test_a_broken_strategy_fails_naming_the_check(strategy: type, check: str, detail: str) -> None:
    with pytest.raises(ConformanceError, match=f"fails check '{check}': {detail}") as info:
        check_strategy(strategy, backends=["numpy"])
    assert info.value.args[0].endswith(f"Required: {CHECKS[check]}")
    assert isinstance(info.value, AssertionError)


@pytest.mark.parametrize("strategy, got", [(RowMean, r"shape \(1, 3\) and dtype float64"),
                                           (Float32Mean, r"shape \(3,\) and dtype float32")])
@pytest.mark.parametrize("compiled_loop", ["auto", False])
def test_a_run_refuses_a_tell_that_changes_the_means_shape_or_dtype(strategy: type, got: str,
                                                                    compiled_loop: Any) -> None:
    """A (1, dim) mean failed a generation later as 'values must have shape (popsize,)'; a float32 mean
    in a float64 run went unnoticed."""
    with pytest.raises(InvalidTypeError, match=f"tell of strategy '{strategy.__name__}' must return a state whose "
                                               f"mean has the shape and dtype of the state it was given, "
                                               f"\\(3,\\) and float64, got {got}"):
        ES(strategy(), max_generations=5, random_state=0, compiled_loop=compiled_loop).fit(sphere, np.ones(3))


@pytest.mark.parametrize("compiled_loop", ["auto", False])
def test_a_run_refuses_a_tell_that_changes_a_fields_shape(compiled_loop: Any) -> None:
    """A (1, dim) sigma broadcast silently through the run; its checkpoint could not be resumed."""
    with pytest.raises(InvalidTypeError, match=r"tell of strategy 'RowSigma' must return a state whose field 'sigma' "
                                               r"keeps its shape \(3,\), got shape \(1, 3\) \(a state's shapes are fixed"):
        ES(RowSigma(), max_generations=5, random_state=0, compiled_loop=compiled_loop).fit(sphere, np.ones(3))


def test_a_strategy_that_crashes_fails_naming_where() -> None:
    class Crashes(Greedy):
        def tell(self, state, X, fitness):
            return state._replace(mean=X @ fitness)  # (dim,) @ (popsize,): wrong shapes

    with pytest.raises(ConformanceError, match="strategy Crashes raised ValueError during the checks on numpy"):
        check_strategy(Crashes, backends=["numpy"])


def test_a_tell_that_draws_noise_fails_across_backends() -> None:
    pytest.importorskip("torch")
    check_strategy(RandomTell, backends=["numpy"])  # alone it conforms
    with pytest.raises(ConformanceError, match=r"on torch fails check 'cross_backend': mean\(state\) after tell"):
        check_strategy(RandomTell, backends=["numpy", "torch"])


def test_the_two_newcomer_errors_come_at_init_not_in_the_loop() -> None:
    with pytest.raises(InvalidTypeError, match="has no field 'sigma'"):
        NoSigma().initialize(np.zeros(3), random_state=0)
    with pytest.raises(InvalidTypeError, match=r"sigma\(state\) .* must be an array of shape \(\)"):
        VectorSigma().init(np.zeros(3), random_state=0)
    with pytest.raises(InvalidTypeError, match=r"must be an array of shape \(\)"):
        check_state(VectorSigma(), GreedyState(np.zeros(3), np.ones(3), None))


def test_helpers_shared_with_the_conformance_suite() -> None:
    X = np.array([[1.0, 2.0], [0.0, 3.0]])
    np.testing.assert_array_equal(sphere_values(X), [5.0, 9.0])
    np.testing.assert_array_equal(sphere_values(X, behaviours=True), [[2.0, 5.0], [0.0, 9.0]])
    back = roundtrip_state_dict({"generation": 1, "arrays": {"mean": X}})
    assert back["generation"] == 1 and np.array_equal(back["arrays"]["mean"], X)
