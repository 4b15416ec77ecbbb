"""The strategy contract (evostrat.strategies.base), declarative hyper-parameter
constraints (evostrat.params), one fitness-shaping vocabulary and weight decay
as an optimiser option."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, NamedTuple

import numpy as np
import pytest

from evostrat.backends import get_backend
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.params import Interval, Params, StrOptions
from evostrat.strategies.base import Strategy, check_strategy
from evostrat.strategies.evolvability import MaxVarES
from evostrat.strategies.expectation_es import ExpectationES
from evostrat.strategies.openai_es import OpenAIES
from evostrat.strategies.optimizers import Adam, make_optimizer
from evostrat.strategies.pgpe import PGPE
from evostrat.strategies.shaping import SHAPINGS, centered_ranks, shape_fitness
from evostrat.strategies.snes import SNES
from evostrat.strategies.xnes import XNES


# -- plugin-style strategies that break the contract -----------------------------------------------
class NoSigmaState(NamedTuple):
    mean: Any
    key: Any


class NoSigma(Strategy):
    """Documents 'at least mean and key' but reads sigma from the state by default."""

    name = "no_sigma"

    def initial_state(self, x0, key, backend):
        return NoSigmaState(mean=x0, key=key)

    def ask(self, state):
        be = get_backend(state.mean)
        key, sub = be.split(state.key)
        z = be.normal(sub, (self.resolved_popsize(state.mean.shape[0]), state.mean.shape[0]),
                      state.mean.dtype, be.device(state.mean))
        return state.mean + z, state._replace(key=key)

    def tell(self, state, X, fitness):
        return state._replace(mean=X[int(np.argmin(fitness))])


class VectorSigmaState(NamedTuple):
    mean: Any
    sigma: Any
    key: Any


class VectorSigma(NoSigma):
    name = "vector_sigma"

    def initial_state(self, x0, key, backend):
        return VectorSigmaState(mean=x0, sigma=self.initial_sigma(x0, backend), key=key)

    def sigma(self, state):
        return state.sigma  # (dim,), not 0-d


class OwnSigma(NoSigma):
    """No sigma field, but sigma(state) overridden: accepted."""

    name = "own_sigma"

    def sigma(self, state):
        return get_backend(state.mean).xp.ones((), dtype=state.mean.dtype)


class OldName(OwnSigma):
    """A subclass written before the rename still defines ``_init``."""

    name = "old_name"
    initial_state = Strategy.initial_state

    def _init(self, x0, key, backend):
        return NoSigmaState(mean=x0, key=key)


def test_a_state_without_sigma_is_refused_at_init_with_a_clear_error():
    message = ("state of strategy 'no_sigma' has no field 'sigma' and the strategy does not "
               r"override sigma\(state\)")
    with pytest.raises(InvalidTypeError, match=message):
        NoSigma().init(np.zeros(3), random_state=0)
    with pytest.raises(InvalidTypeError, match=message):
        NoSigma().initialize(np.zeros(3), random_state=0)


def test_a_vector_sigma_read_out_is_refused_at_init():
    with pytest.raises(InvalidTypeError,
                       match=r"sigma\(state\) of strategy 'vector_sigma' must be an array of shape \(\)"):
        VectorSigma().initialize(np.zeros(3), random_state=0)


def test_overriding_sigma_and_the_old_init_name_are_accepted():
    runner = OwnSigma().initialize(np.zeros(3), random_state=0)
    X = runner.ask()
    runner.tell(X, (X ** 2).sum(axis=1))
    assert float(runner.sigma) == 1.0
    assert OldName().init(np.zeros(2), random_state=0).mean.shape == (2,)


def test_missing_methods_and_non_namedtuple_states_are_named():
    class NoTell(NoSigma):
        tell = Strategy.tell

    with pytest.raises(InvalidTypeError, match="strategy 'no_sigma' does not define tell"):
        check_strategy(NoTell(), NoSigmaState(np.zeros(2), None))
    with pytest.raises(InvalidTypeError, match="must be a NamedTuple, got dict"):
        check_strategy(OwnSigma(), {"mean": np.zeros(2)})

    class Nothing(Strategy):
        name = "nothing"

    with pytest.raises(NotImplementedError, match="does not define initial_state"):
        Nothing().init(np.zeros(2))


class NarrowAsk(OwnSigma):
    """ask drops a coordinate: the objective would be evaluated on points of the wrong dimension."""

    name = "narrow_ask"

    def ask(self, state):
        X, state = super().ask(state)
        return X[:, :-1], state


class BareAsk(OwnSigma):
    name = "bare_ask"

    def ask(self, state):
        return super().ask(state)[0]  # X alone, not (X, state)


class LostTell(OwnSigma):
    name = "lost_tell"

    def tell(self, state, X, fitness):
        state._replace(mean=X[get_backend(X).xp.argmin(fitness)])  # forgets to return the new state


class TellWithInfo(OwnSigma):
    name = "tell_with_info"

    def tell(self, state, X, fitness):
        new = state._replace(mean=X[get_backend(X).xp.argmin(fitness)])
        return new, {"best": fitness[0]}  # (state, info): not the contract


class OtherState(NamedTuple):
    mean: Any
    key: Any
    generation: Any


class TellChangesTheState(OwnSigma):
    name = "tell_changes_the_state"

    def tell(self, state, X, fitness):
        return OtherState(X[get_backend(X).xp.argmin(fitness)], state.key, generation=0)


class SinglePrecisionAsk(OwnSigma):
    name = "single_precision_ask"

    def ask(self, state):
        X, state = super().ask(state)
        return get_backend(X).xp.astype(X, get_backend(X).dtype_from_name("float32")), state


def torch_float64():
    import torch

    return torch.float64


@pytest.mark.parametrize("array", ["numpy", "torch", "jax"])
def test_ask_and_tell_results_that_break_the_contract_are_named(array):
    from evostrat import ES
    from evostrat.problems import sphere

    x0 = {"numpy": np.zeros, "torch": lambda n: pytest.importorskip("torch").zeros(n, dtype=torch_float64()),
          "jax": lambda n: pytest.importorskip("jax.numpy").zeros(n)}[array](3)
    cases = [(NarrowAsk, r"ask of strategy 'narrow_ask' must return X of shape \(popsize, dim\) = \(7, 3\), "
                         r"got shape \(7, 2\)"),
             (BareAsk, r"ask of strategy 'bare_ask' must return a pair \(X, state\), got an array of shape \(7, 3\)"),
             (LostTell, r"tell of strategy 'lost_tell' must return the new state \(a NoSigmaState, the type of the "
                        r"state it was given\), got NoneType"),
             # these three leaked an AttributeError (or JAX's carry-structure error) a step later
             (TellWithInfo, r"tell of strategy 'tell_with_info' must return the new state \(a NoSigmaState, "
                            r"the type of the state it was given\), got tuple"),
             (TellChangesTheState, r"tell of strategy 'tell_changes_the_state' must return the new state "
                                   r"\(a NoSigmaState, the type of the state it was given\), got OtherState")]
    if array != "jax":  # float64 runs (JAX computes in float32 here): a float32 X was accepted silently
        cases.append((SinglePrecisionAsk, f"ask of strategy 'single_precision_ask' must return X of "
                                          f"the run's dtype, {'torch.' if array == 'torch' else ''}float64, "
                                          f"got {'torch.' if array == 'torch' else ''}float32"))
    for cls, message in cases:
        with pytest.raises(InvalidTypeError, match=message):  # the JAX fit runs compiled chunks
            ES(cls(), max_generations=3, random_state=0).fit(sphere, x0)
        with pytest.raises(InvalidTypeError, match=message):
            runner = cls().initialize(x0, random_state=0)
            X = runner.ask()
            runner.tell(X, sphere(X))
    if array == "torch":  # the batched lockstep runs check their first ask and tell too
        from evostrat import fit_batch

        for cls, message in [(TellWithInfo, r"tell of strategy 'tell_with_info' must return the new state "
                                             r"\(a NamedTuple\), got tuple"),
                             (SinglePrecisionAsk, "must return X of the run's dtype, torch.float64, got torch.float32")]:
            with pytest.raises(InvalidTypeError, match=message):
                fit_batch(ES(cls(), max_generations=3), sphere, x0, seeds=2)


class ListStops(OwnSigma):
    name = "list_stops"

    def stop(self, state):
        return ["tolx"]  # names only: the contract is a dict of names to booleans


class BehavioursAsText(OwnSigma):
    name = "behaviours_as_text"
    needs_behaviours = "no"  # truthy: the run would tell behaviour descriptors


@pytest.mark.parametrize("array", ["numpy", "jax"])
def test_a_stop_that_is_not_a_dict_and_a_non_bool_needs_behaviours_are_refused_at_init(array):
    """They leaked AttributeError: 'list' object has no attribute 'values' from the driver and
    'object too deep for desired array' (JAX: a broadcasting error) from the behaviour path."""
    from evostrat import ES
    from evostrat.problems import sphere

    x0 = np.zeros(3) if array == "numpy" else pytest.importorskip("jax.numpy").zeros(3)
    for cls, message in [(ListStops, r"stop\(state\) of strategy 'list_stops' must return a dict of criterion "
                                     r"names to booleans, got list: \['tolx'\]"),
                         (BehavioursAsText, "needs_behaviours of strategy 'behaviours_as_text' must be a bool, "
                                            "got 'no'")]:
        with pytest.raises(InvalidTypeError, match=message):
            cls().init(x0, random_state=0)
        with pytest.raises(InvalidTypeError, match=message):
            ES(cls(), max_generations=3, random_state=0).fit(sphere, x0)


class DoubleSigma(VectorSigma):
    name = "double_sigma"

    def initial_state(self, x0, key, backend):  # sigma from a float64 host array, not from x0
        return VectorSigmaState(mean=x0, sigma=backend.asarray(np.ones(x0.shape[0])), key=key)

    def sigma(self, state):
        return get_backend(state.sigma).xp.max(state.sigma)


@pytest.mark.parametrize("array", ["numpy", "torch"])
def test_a_sigma_of_another_dtype_than_x0_is_refused_at_init(array):
    """It was accepted: the float32 run asked float64 populations and returned a float64 x_."""
    from evostrat import ES
    from evostrat.problems import sphere

    x0 = np.zeros(3, dtype=np.float32) if array == "numpy" else pytest.importorskip("torch").zeros(3)
    prefix = "torch." if array == "torch" else ""
    with pytest.raises(InvalidTypeError, match=rf"sigma\(state\) of strategy 'double_sigma' must be of the dtype of "
                                               rf"x0 and mean\(state\), {prefix}float32, got {prefix}float64"):
        ES(DoubleSigma(), max_generations=3, random_state=0).fit(sphere, x0)


def test_a_default_popsize_that_is_not_an_int_is_named():
    class NoDefault(OwnSigma):
        def default_popsize(self, dim):
            return None

    with pytest.raises(InvalidTypeError, match=r"default_popsize\(3\) of NoDefault must be an int, got None"):
        NoDefault().init(np.zeros(3), random_state=0)
    with pytest.raises(InvalidTypeError, match="popsize must be an int or None, got 2.5"):
        NoDefault(popsize=2.5).init(np.zeros(3), random_state=0)


class TypoDefaults(OwnSigma):
    name = "typo_defaults"
    termination_defaults = {"tolstagation": 100, "tolfunhist": 1e-12}  # a misspelt criterion


class NegativeDefaults(OwnSigma):
    name = "negative_defaults"
    termination_defaults = {"tolstagnation": -3}


@pytest.mark.parametrize("array", ["numpy", "torch", "jax"])
def test_termination_defaults_are_checked_when_a_run_starts(array):
    """An unknown criterion used to be dropped silently (the run went on without it) and a bad
    value was refused by Termination without naming the strategy; both are now refused at the
    start of the run, naming the strategy, the criterion and the known ones."""
    from evostrat import ES, fit_batch
    from evostrat.problems import sphere

    x0 = {"numpy": np.zeros, "torch": lambda n: pytest.importorskip("torch").zeros(n),
          "jax": lambda n: pytest.importorskip("jax.numpy").zeros(n)}[array](3)
    unknown = ("termination_defaults of strategy 'typo_defaults' names unknown criteria 'tolstagation'; "
               "known: tolfunhist, tolstagnation, tolflatfitness")
    with pytest.raises(InvalidArgumentError, match=unknown):
        ES(TypoDefaults(), max_generations=3, random_state=0).fit(sphere, x0)
    with pytest.raises(InvalidArgumentError, match=unknown):  # batched (torch lockstep, JAX compiled)
        fit_batch(ES(TypoDefaults(), max_generations=3), sphere, x0, seeds=2)
    with pytest.raises(InvalidArgumentError, match="strategy 'negative_defaults': termination_defaults: "
                                                   "tolstagnation must be a non-negative int or None, got -3"):
        ES(NegativeDefaults(), max_generations=3, random_state=0).fit(sphere, x0)
    es = ES(SNES(), max_generations=3, random_state=0).fit(sphere, x0)  # no defaults: none turned on
    assert es.n_generations_ == 3


def test_optional_capabilities_have_declared_defaults():
    s = OwnSigma()
    state = s.init(np.zeros(2), random_state=0)
    assert s.population_seed(state) is None
    assert math.isnan(float(s.evolvability(state))) and s.evolvability(state).ndim == 0
    assert dict(s.termination_defaults) == {} and s.stop(state) == {}
    assert s.needs_behaviours is False
    assert SNES().population_seed(SNES().init(np.zeros(2), random_state=0)) is not None


@pytest.mark.parametrize("cls", [SNES, XNES, OpenAIES, PGPE, ExpectationES, MaxVarES])
def test_builtin_strategies_fulfil_the_contract(cls):
    s = cls()
    check_strategy(s, s.init(np.ones(4), random_state=0))


# -- declarative constraints -----------------------------------------------------------------------
class Knobs(Params):
    parameter_constraints = {
        "rate": [Interval(Real, 0, 1, closed="right")],
        "mode": [StrOptions({"fast", "slow"}), None],
        "hook": [callable, None],
    }

    def __init__(self, rate=0.5, mode=None, hook=None):
        self.rate, self.mode, self.hook = rate, mode, hook


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(rate=0.0), InvalidArgumentError, r"Knobs: rate must be a number in \(0, 1\], got 0.0"),
        (dict(rate=float("nan")), InvalidArgumentError, "rate must be a number in"),
        (dict(rate=True), InvalidTypeError, "rate must be a number in"),
        (dict(rate="big"), InvalidTypeError, "rate must be"),
        (dict(mode="medium"), InvalidArgumentError,
         r"mode must be one of \('fast', 'slow'\) or None, got 'medium'"),
        (dict(hook=3), InvalidTypeError, "hook must be a callable or None, got 3"),
    ],
)
def test_constraints_reject_bad_values_naming_the_parameter(kwargs, error, message):
    Knobs().validate_params()
    with pytest.raises(error, match=message):
        Knobs(**kwargs).validate_params()


@pytest.mark.parametrize(
    "strategy, error, message",
    [
        (SNES(lr_mean=-1.0), InvalidArgumentError, "SNES: lr_mean must be a positive number"),
        (OpenAIES(weight_decay=-0.1), InvalidArgumentError, "weight_decay must be a non-negative number"),
        (OpenAIES(fitness_shaping="ranks"), InvalidArgumentError, "fitness_shaping must be one of"),
        (XNES(fitness_shaping=1), InvalidTypeError, "XNES: fitness_shaping must be one of"),
        (PGPE(optimizer_options=[1]), InvalidTypeError, "optimizer_options must be a dict or None"),
        (OpenAIES(optimizer_options=dict(weight_decay=-1.0)), InvalidArgumentError,
         "Adam: weight_decay must be a non-negative number"),
    ],
)
def test_strategies_validate_their_constraints_at_init(strategy, error, message):
    with pytest.raises(error, match=message):
        strategy.init(np.zeros(4), random_state=0)


def test_a_constraint_on_a_name_that_is_not_a_parameter_is_named():
    """A misspelt parameter_constraints key leaked an AttributeError from evostrat.params."""
    class Misspelt(SNES):
        parameter_constraints = {**SNES.parameter_constraints, "lr_sigam": [Interval(Real, 0, None)]}

    message = (r"Misspelt: parameter_constraints constrains 'lr_sigam', which is not a parameter "
               r"\(did you mean 'lr_sigma'\?\); parameters: \[.*'lr_sigma'.*\]")
    with pytest.raises(InvalidArgumentError, match=message):
        Misspelt().init(np.zeros(4), random_state=0)
    from evostrat import ES
    from evostrat.problems import sphere

    with pytest.raises(InvalidArgumentError, match=message):
        ES(Misspelt(), max_generations=2).fit(sphere, np.zeros(4))

    class Unstored(OwnSigma):
        parameter_constraints = {"step": [Interval(Real, 0, None)]}

        def __init__(self, popsize=None, sigma0=1.0, step=1.0):
            super().__init__(popsize=popsize, sigma0=sigma0)
            self.step_size = step  # stored under another name

    with pytest.raises(InvalidTypeError, match=r"Unstored.__init__ must store its argument 'step' as "
                                               r"self.step"):
        Unstored().init(np.zeros(4), random_state=0)


# -- one shaping vocabulary ------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [XNES, OpenAIES, PGPE, ExpectationES])
@pytest.mark.parametrize("how", sorted(SHAPINGS))
def test_every_shaping_strategy_takes_every_shaping(cls, how):
    s = cls(fitness_shaping=how)
    state = s.init(np.ones(3), random_state=0)
    for _ in range(3):
        X, state = s.ask(state)
        with np.errstate(all="ignore"):  # xNES on raw values may overflow (and then not move)
            state = s.tell(state, X, (X ** 2).sum(axis=1))
    assert np.all(np.isfinite(s.mean(state)))


def test_shapings_keep_the_fitness_orientation():
    f = np.array([3.0, 1.0, 2.0, 5.0])
    for how in SHAPINGS:
        shaped = shape_fitness(f, how)
        assert np.argmin(shaped) == 1 and shaped[3] == np.max(shaped), how
    np.testing.assert_array_equal(shape_fitness(f, "centered_ranks"), centered_ranks(f))


# -- weight decay in the optimiser -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["adam", "sgd", "clipup"])
def test_l2_weight_decay_in_the_optimiser_equals_the_hand_added_gradient(name):
    rng = np.random.default_rng(0)
    params, wd = rng.normal(size=5), 0.05
    plain, decayed = make_optimizer(name), make_optimizer(name, weight_decay=wd)
    s1, s2 = plain.init(params), decayed.init(params)
    for _ in range(4):
        grad = rng.normal(size=5)
        step1, s1 = plain.update(grad + wd * params, s1, 0.1)  # the old hand-added L2 term
        step2, s2 = decayed.update(grad, s2, 0.1, params=params)
        np.testing.assert_array_equal(step1, step2)
        params = params - step1


def test_decoupled_weight_decay_adds_lr_times_decay_to_the_step():
    params, grad = np.array([1.0, -2.0]), np.array([0.3, 0.1])
    adamw = Adam(weight_decay=0.1, decoupled=True)
    step, _ = adamw.update(grad, adamw.init(params), 0.01, params=params)
    plain, _ = Adam().update(grad, Adam().init(params), 0.01)
    np.testing.assert_allclose(step, plain + 0.01 * 0.1 * params)


def test_openai_es_weight_decay_matches_the_old_hand_added_update():
    s = OpenAIES(popsize=8, sigma0=0.3, weight_decay=0.02, lr=0.05)
    state = s.init(np.ones(3), random_state=0)
    X, state = s.ask(state)
    fitness = (X ** 2).sum(axis=1)
    new = s.tell(state, X, fitness)
    # the update as OpenAI-ES wrote it before weight decay moved into the optimiser
    z = (X - state.mean) / state.sigma
    grad = centered_ranks(fitness) @ z / (8 * state.sigma) + 0.02 * state.mean
    step, _ = Adam().update(grad, state.opt, state.lr)
    np.testing.assert_array_equal(new.mean, state.mean - step)


def test_openai_es_weight_decay_is_the_reference_codes_l2coeff_over_sigma():
    """The documented conversion: Salimans et al.'s code adds ``l2coeff * theta`` to a
    gradient estimate without ``1 / sigma``; Adam is scale-free, so ``l2coeff / sigma``."""
    sigma, l2coeff, n = 0.02, 0.005, 10
    s = OpenAIES(popsize=n, sigma0=sigma, lr=0.01, weight_decay=l2coeff / sigma)
    state = s.init(np.linspace(-1.0, 1.0, 4), random_state=0)
    theta, m, v = state.mean.copy(), np.zeros(4), np.zeros(4)
    for t in range(1, 6):
        X, state = s.ask(state)
        fitness = ((X - 0.3) ** 2).sum(axis=1)
        state = s.tell(state, X, fitness)
        eps = (X - theta) / sigma
        g = centered_ranks(fitness) @ eps / n + l2coeff * theta  # the reference code's, minimising
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        theta = theta - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8 * sigma)
        np.testing.assert_allclose(state.mean, theta, rtol=1e-9)


def test_an_optimizer_instance_can_be_passed():
    s = OpenAIES(optimizer=Adam(beta1=0.5), popsize=8)
    state = s.init(np.ones(3), random_state=0)
    X, state = s.ask(state)
    assert np.all(np.isfinite(s.tell(state, X, (X ** 2).sum(axis=1)).mean))
