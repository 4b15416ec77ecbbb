"""Bad input: each mistake raises a clear evostrat error naming the argument.

Also the non-finite fitness policy of :mod:`evostrat.run.asktell`: with
``nonfinite="warn"`` (default) a :class:`NonFiniteFitnessWarning`, with
``"raise"`` an :class:`InvalidArgumentError`; NaN ranks worst and the state
stays finite.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import LIBRARY_CASES, BackendCase, to_numpy

import evostrat
from evostrat import ES
from evostrat.errors import (
    EvostratError,
    InvalidArgumentError,
    InvalidTypeError,
    NonFiniteFitnessWarning,
    ObjectiveError,
    PopulationMismatchError,
    StateError,
    UnknownNameError,
)
from evostrat.problems import sphere
from evostrat.strategies.snes import SNES

# -- x0 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", LIBRARY_CASES)
@pytest.mark.parametrize(
    "values, what",
    [(np.ones((2, 3)), "2-D"), (np.ones(0), "empty"), (np.float64(1.0), "0-D")],
    ids=["2d", "empty", "scalar"],
)
def test_x0_of_wrong_shape(case: BackendCase, values: np.ndarray, what: str) -> None:
    with pytest.raises(InvalidArgumentError, match=r"x0 must have shape \(dim,\)"):
        SNES().initialize(case.array(values))
    with pytest.raises(InvalidArgumentError, match="x0"):
        ES("snes").fit(sphere, case.array(values))


@pytest.mark.parametrize("case", LIBRARY_CASES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_x0_not_finite(case: BackendCase, bad: float) -> None:
    with pytest.raises(InvalidArgumentError, match="x0 must be finite"):
        SNES().initialize(case.array([1.0, bad, 0.0]))


def _complex(library: str):
    if library == "torch":
        import torch

        return torch.ones(3, dtype=torch.complex64)
    if library == "jax":
        import jax.numpy as jnp

        return jnp.ones(3, dtype=jnp.complex64)
    return np.ones(3, dtype=np.complex128)


@pytest.mark.parametrize("library", ["numpy", "torch", "jax"])
def test_x0_complex(library: str) -> None:
    pytest.importorskip(library)
    with pytest.raises(InvalidTypeError, match="x0 must have a float32 or float64 dtype.*got complex"):
        SNES().initialize(_complex(library))


@pytest.mark.parametrize(
    "x0", [np.array(["a", "b"]), ["a", "b"], np.array([object(), 1.0])], ids=["str-array", "str-list", "object"]
)
def test_x0_not_numbers(x0) -> None:
    with pytest.raises(InvalidTypeError, match="x0"):
        SNES().initialize(x0)


@pytest.mark.parametrize("x0", [None, {"a": 1.0}, object()], ids=["None", "dict", "object"])
def test_x0_of_unknown_type_lists_backends(x0) -> None:
    with pytest.raises(InvalidTypeError, match=r"numpy array, torch tensor or JAX array.*numpy"):
        SNES().initialize(x0)


def test_integer_x0_is_promoted_to_float() -> None:
    runner = SNES().initialize(np.arange(3), random_state=0)
    assert runner.ask().dtype == np.float64


# -- ask/tell order and the population -----------------------------------------------------


@pytest.fixture
def runner():
    return SNES(popsize=6).initialize(np.ones(3), random_state=0)


def test_tell_without_ask(runner) -> None:
    with pytest.raises(StateError, match=r"ask\(\)"):
        runner.tell(np.ones((6, 3)), np.ones(6))


def test_tell_twice_for_one_ask(runner) -> None:
    X = runner.ask()
    runner.tell(X, sphere(X))
    with pytest.raises(StateError, match=r"ask\(\)"):
        runner.tell(X, sphere(X))


def test_tell_with_other_values(runner) -> None:
    X = runner.ask()
    with pytest.raises(PopulationMismatchError, match="X differs from the population"):
        runner.tell(X + 1e-9, sphere(X))
    with pytest.raises(PopulationMismatchError, match="same order"):
        runner.tell(X[::-1], sphere(X))
    runner.tell(X.copy(), sphere(X))  # an equal copy is the same population
    assert runner.generation == 1
    X = runner.ask()
    runner.tell(X.tolist(), sphere(X))  # so is the list of its rows (pycma's ask hands out a list)
    assert runner.generation == 2


@pytest.mark.parametrize(
    "make", [lambda X: X[:3], lambda X: X[:, :2], lambda X: X.tolist()[:3]], ids=["rows", "cols", "list"]
)
def test_tell_with_population_of_wrong_shape(runner, make) -> None:
    X = runner.ask()
    expected = r"X must be the population returned by ask\(\), of shape \(6, 3\)"
    with pytest.raises(PopulationMismatchError, match=expected):
        runner.tell(make(X), np.ones(6))


@pytest.mark.parametrize(
    "values", [np.ones(5), np.ones(7), np.ones((6, 1)), np.float64(1.0)], ids=["short", "long", "2d", "scalar"]
)
def test_values_of_wrong_shape(runner, values) -> None:
    X = runner.ask()
    with pytest.raises(InvalidArgumentError, match=r"values must have shape \(6,\)"):
        runner.tell(X, values)
    runner.tell(X, sphere(X))  # the population is still pending after the error


@pytest.mark.parametrize(
    "values",
    [np.ones(6, dtype=complex), np.array(["a"] * 6), None, [object()] * 6],
    ids=["complex", "str", "None", "object"],
)
def test_values_of_wrong_dtype(runner, values) -> None:
    X = runner.ask()
    with pytest.raises(InvalidTypeError, match="values must be"):
        runner.tell(X, values)


def test_estimator_ask_before_initialize() -> None:
    with pytest.raises(StateError, match=r"initialize\(x0\)"):
        ES("snes").ask()
    with pytest.raises(StateError, match=r"initialize\(x0\)"):
        ES("snes").tell(np.ones((6, 3)), np.ones(6))


# -- non-finite fitness --------------------------------------------------------------------


@pytest.mark.parametrize("case", LIBRARY_CASES)
def test_nan_fitness_warns_ranks_worst_and_keeps_state_finite(case: BackendCase) -> None:
    """NaN is ranked as the worst value: the update equals the one with a huge finite value."""
    a = SNES(popsize=8).initialize(case.array(np.ones(4)), random_state=3)
    b = SNES(popsize=8).initialize(case.array(np.ones(4)), random_state=3)
    Xa, Xb = a.ask(), b.ask()
    f = to_numpy(sphere(Xa)).astype(np.float64)
    worst_by_far = f.copy()
    worst_by_far[[1, 5]] = 1e30
    with_nan = f.copy()
    with_nan[[1, 5]] = np.nan
    with pytest.warns(NonFiniteFitnessWarning, match="2 of 8 fitness values are NaN or infinite"):
        a.tell(Xa, case.array(with_nan))
    b.tell(Xb, case.array(worst_by_far))
    np.testing.assert_array_equal(to_numpy(a.mean), to_numpy(b.mean))
    np.testing.assert_array_equal(to_numpy(a.state.sigma), to_numpy(b.state.sigma))
    assert np.all(np.isfinite(to_numpy(a.mean))) and np.isfinite(a.sigma)


def test_inf_fitness_ranks_by_order() -> None:
    a = SNES(popsize=6).initialize(np.ones(3), random_state=1, nonfinite="ignore")
    b = SNES(popsize=6).initialize(np.ones(3), random_state=1)
    Xa, Xb = a.ask(), b.ask()
    f = sphere(Xa)
    order = np.argsort(f)
    g = f.copy()
    g[order[0]], g[order[-1]] = -np.inf, np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "ignore" must not warn
        a.tell(Xa, g)
    b.tell(Xb, f)
    np.testing.assert_array_equal(a.mean, b.mean)  # only the ranks matter to SNES


def test_nonfinite_raise_policy() -> None:
    runner = SNES(popsize=6).initialize(np.ones(3), random_state=0, nonfinite="raise")
    X = runner.ask()
    f = sphere(X)
    f[2] = np.nan
    with pytest.raises(InvalidArgumentError, match="1 of 6 fitness values are NaN or infinite"):
        runner.tell(X, f)
    assert runner.generation == 0


def test_all_nan_fitness_leaves_the_distribution_unchanged() -> None:
    runner = SNES(popsize=6).initialize(np.ones(3), random_state=0)
    X = runner.ask()
    with pytest.warns(NonFiniteFitnessWarning):
        runner.tell(X, np.full(6, np.nan))
    # all candidates tie: every weight is the mean utility (0), so nothing moves
    np.testing.assert_allclose(runner.mean, np.ones(3), rtol=0, atol=1e-12)
    assert runner.sigma == pytest.approx(1.0, abs=1e-12)


def test_fit_with_nan_objective_warns_and_continues() -> None:
    def f(X):
        v = sphere(X)
        v[0] = np.nan
        return v

    with pytest.warns(NonFiniteFitnessWarning):
        es = ES("snes", max_generations=200, random_state=0).fit(f, np.full(3, 2.0))
    assert np.isfinite(es.fun_) and es.fun_ < 1e-6
    with pytest.raises(InvalidArgumentError, match="NaN or infinite"):
        ES("snes", max_generations=5, nonfinite="raise", random_state=0).fit(f, np.full(3, 2.0))


def test_bad_nonfinite_policy() -> None:
    with pytest.raises(InvalidArgumentError, match=r"nonfinite must be one of \('warn', 'ignore', 'raise'\)"):
        SNES().initialize(np.ones(3), nonfinite="skip")


# -- objectives that fail ------------------------------------------------------------------


def test_serial_objective_raising_names_candidate() -> None:
    calls = []

    def f(x):
        calls.append(1)
        if len(calls) == 3:
            raise KeyError("broken")
        return float(np.sum(x**2))

    with pytest.raises(ObjectiveError, match="objective raised on candidate 2: KeyError") as info:
        ES("snes", evaluator="serial", random_state=0).fit(f, np.ones(3))
    assert info.value.index == 2
    assert isinstance(info.value.__cause__, KeyError)
    assert info.value.__cause__.args == ("broken",)


def test_vectorized_objective_raising() -> None:
    original = ZeroDivisionError("no")

    def f(X):
        raise original

    with pytest.raises(ObjectiveError, match="vectorised") as info:
        ES("snes", evaluator="vectorized").fit(f, np.ones(3))
    assert info.value.__cause__ is original


def test_auto_evaluator_reports_per_candidate_failure() -> None:
    with pytest.raises(ObjectiveError, match="candidate 0") as info:
        ES("snes").fit(lambda x: 1 / 0, np.ones(3))
    assert isinstance(info.value.__cause__, ZeroDivisionError)


@pytest.mark.parametrize("out", ["a", None, [1.0, 2.0], 1j], ids=["str", "None", "list", "complex"])
def test_objective_returning_non_numbers(out) -> None:
    with pytest.raises(InvalidTypeError, match="objective must return a real number for candidate 0"):
        ES("snes", evaluator="serial").fit(lambda x: out, np.ones(3))


def test_vectorized_objective_of_wrong_shape() -> None:
    with pytest.raises(InvalidArgumentError, match=r"a vectorised objective must return shape \(7,\)"):
        ES("snes", evaluator="vectorized").fit(lambda X: X, np.ones(3))


def test_objective_not_callable() -> None:
    with pytest.raises(InvalidTypeError, match="objective must be callable"):
        ES("snes").fit(3.0, np.ones(3))


# -- names ---------------------------------------------------------------------------------


def test_unknown_strategy_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError, match=r"strategy must be one of \[.*'openai_es'.*'snes'.*\], got 'nope'"):
        ES("nope").fit(sphere, np.ones(3))


def test_unknown_backend_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError, match=r"backend must be one of \['jax', 'numpy', 'torch'\].*'nope'"):
        ES("snes", backend="nope").fit(sphere, np.ones(3))


def test_unknown_evaluator_lists_valid_names() -> None:
    expected = r"evaluator must be one of \['auto', 'executor', 'ray', 'serial', 'vectorized'.*'nope'"
    with pytest.raises(UnknownNameError, match=expected):
        ES("snes", evaluator="nope").fit(sphere, np.ones(3))


def test_unknown_name_error_is_catchable_as_value_error() -> None:
    with pytest.raises(ValueError):
        ES("nope").fit(sphere, np.ones(3))
    assert issubclass(UnknownNameError, EvostratError)


@pytest.mark.parametrize("strategy, evaluator", [(3, "auto"), ("snes", 3)])
def test_strategy_or_evaluator_of_wrong_type(strategy, evaluator) -> None:
    with pytest.raises(InvalidTypeError, match="(strategy|evaluator) must be a"):
        ES(strategy, evaluator=evaluator).fit(sphere, np.ones(3))


# -- hyper-parameters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "popsize, error, match",
    [
        (1, InvalidArgumentError, "popsize must be >= 2"),
        (0, InvalidArgumentError, "popsize must be >= 2"),
        (-4, InvalidArgumentError, "popsize must be >= 2"),
        (2.5, InvalidTypeError, "popsize must be an int or None"),
        ("8", InvalidTypeError, "popsize must be an int or None"),
        (True, InvalidTypeError, "popsize must be an int or None"),
    ],
)
def test_bad_popsize(popsize, error, match) -> None:
    with pytest.raises(error, match=match):
        SNES(popsize=popsize).initialize(np.ones(3))
    with pytest.raises(error, match=match):
        ES("snes", popsize=popsize).fit(sphere, np.ones(3))


def test_odd_popsize_with_mirrored_sampling() -> None:
    with pytest.raises(InvalidArgumentError, match="popsize must be even with mirrored sampling"):
        ES("openai_es", popsize=7).fit(sphere, np.ones(3))


@pytest.mark.parametrize(
    "sigma0, error, match",
    [
        (-1.0, InvalidArgumentError, "sigma0 must be positive and finite"),
        (0.0, InvalidArgumentError, "sigma0 must be positive and finite"),
        (np.nan, InvalidArgumentError, "sigma0 must be positive and finite"),
        (np.inf, InvalidArgumentError, "sigma0 must be positive and finite"),
        (np.array([1.0, -1.0, 1.0]), InvalidArgumentError, "sigma0 must be positive and finite"),
        (np.ones(2), InvalidArgumentError, r"sigma0 must be a positive number or an array of shape \(3,\)"),
        ("big", InvalidTypeError, r"sigma0 must be (None or )?a positive number or an array"),
    ],
    ids=["negative", "zero", "nan", "inf", "negative-entry", "shape", "str"],
)
def test_bad_sigma0(sigma0, error, match) -> None:
    with pytest.raises(error, match=match):
        SNES(sigma0=sigma0).initialize(np.ones(3))
    with pytest.raises(error, match=match):
        ES("snes", sigma0=sigma0).fit(sphere, np.ones(3))


@pytest.mark.parametrize(
    "random_state, error, match",
    [
        (-1, InvalidArgumentError, "random_state must be >= 0"),
        (1.5, InvalidTypeError, "random_state must be an int or None"),
        ("0", InvalidTypeError, "random_state must be an int or None"),
        (np.random.default_rng(0), InvalidTypeError, "random_state must be an int or None"),
    ],
    ids=["negative", "float", "str", "generator"],
)
def test_bad_random_state(random_state, error, match) -> None:
    with pytest.raises(error, match=match):
        SNES().initialize(np.ones(3), random_state=random_state)
    with pytest.raises(error, match=match):
        ES("snes", random_state=random_state).fit(sphere, np.ones(3))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(max_evals=0), InvalidArgumentError, "max_evals must be a positive int"),
        (dict(max_evals=10.5), InvalidTypeError, "max_evals must be a positive int"),
        (dict(max_generations=-3), InvalidArgumentError, "max_generations must be a positive int"),
        (dict(max_generations="10"), InvalidTypeError, "max_generations must be a positive int"),
        (dict(ftarget="low"), InvalidTypeError, "ftarget must be a finite number"),
        (dict(ftarget=np.nan), InvalidArgumentError, "ftarget must be a finite number"),
        (dict(tolx="tiny"), InvalidTypeError, "tolx must be a non-negative number"),
    ],
    ids=[
        "max_evals-0", "max_evals-float", "max_generations-neg", "max_generations-str",
        "ftarget-str", "ftarget-nan", "tolx-str",
    ],
)
def test_bad_budgets(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        ES("snes", **kwargs).fit(sphere, np.ones(3))


def test_unknown_strategy_option() -> None:
    with pytest.raises(InvalidArgumentError, match=r"SNES has no parameter 'lr'; valid: \['lr_mean'"):
        ES("snes", strategy_options=dict(lr=0.1)).fit(sphere, np.ones(3))


# -- state dictionaries --------------------------------------------------------------------


def test_load_state_dict_of_other_run() -> None:
    saved = SNES().initialize(np.ones(3), random_state=0).state_dict()
    with pytest.raises(InvalidArgumentError, match="state_dict was saved with dim=3"):
        SNES().initialize(np.ones(4)).load_state_dict(saved)
    with pytest.raises(InvalidArgumentError, match="state_dict was saved with strategy='snes'"):
        evostrat.plugins.registry("strategies")["openai_es"]().initialize(np.ones(3)).load_state_dict(saved)
    broken = {**saved, "arrays": {k: v for k, v in saved["arrays"].items() if k != "sigma"}}
    with pytest.raises(InvalidArgumentError, match="state_dict is missing the array 'sigma'"):
        SNES().initialize(np.ones(3)).load_state_dict(broken)
    wrong = {**saved, "arrays": {**saved["arrays"], "mean": np.ones(3, dtype=np.float32)}}
    with pytest.raises(InvalidArgumentError, match="state_dict array 'mean' has shape"):
        SNES().initialize(np.ones(3)).load_state_dict(wrong)


# -- state and population sizes past any machine's memory: refused naming the argument ------------


@pytest.mark.parametrize(
    "strategy, match",
    [("cma_es(lazy_eigen=10**15)", r"cma_es\(lazy_eigen=1000000000000000, .*queue of 1000000000000000 x "
                                   r"\(popsize \+ 1\) x dim values.*GiB, more than the .* GiB of memory"),
     ("lm_ma_es(memory=10**15)", r"memory=1000000000000000 makes a state of 1000000000000000 x 10 memory "
                                 r"values: .* GiB, more than the .* GiB of memory")],
    ids=["lazy_eigen", "memory"])
def test_state_sized_past_memory_is_refused_before_allocating(strategy: str, match: str) -> None:
    """Was numpy's MemoryError ('Unable to allocate 82.0 GiB ...') from inside initial_state."""
    from evostrat.strategies.cma_es import CMAES
    from evostrat.strategies.lm_ma_es import LMMAES

    instance = CMAES(lazy_eigen=10**15) if strategy.startswith("cma") else LMMAES(memory=10**15)
    with pytest.raises(InvalidArgumentError, match=match):
        ES(instance, max_generations=2).fit(sphere, np.ones(10))
    with pytest.raises(InvalidArgumentError, match=match):
        instance.initialize(np.ones(10))


@pytest.mark.parametrize("case", LIBRARY_CASES)
def test_ask_tell_popsize_past_memory_is_refused_at_initialize(case: BackendCase) -> None:
    """``Strategy.initialize`` (ask/tell without ES) built the state and failed in the first ask
    with a MemoryError ('Unable to allocate 72.8 TiB ...')."""
    match = r"popsize=1000000000000000 needs .* GiB for one population of dim 10"
    with pytest.raises(InvalidArgumentError, match=match):
        SNES(popsize=10**15).initialize(case.array(np.ones(10)))


def test_nonfinite_of_an_array_is_a_clear_error() -> None:
    """Was numpy's 'truth value of an array ... is ambiguous' ValueError."""
    with pytest.raises(InvalidArgumentError, match=r"nonfinite must be one of \('warn', 'ignore', 'raise'\)"):
        ES("snes", nonfinite=np.array(["warn", "raise"])).fit(sphere, np.ones(3))
