"""A strategy's functional API refuses another strategy's state (:mod:`evostrat.strategies.state_type`).

``SNES().ask(CMAES().init(x0))`` ran (the states share ``mean``, ``sigma`` and ``key``) and
``CMAES().tell(snes_state, X, f)`` failed deep inside with an ``AttributeError``; every method
that takes a state now refuses a state of another type with an ``InvalidTypeError`` naming
``state``, the type expected and the type given. Legitimate states still pass: traced, vmapped
and mapped ones, a subclass's, a shared class's, a plugin's own, a checkpoint's.
"""

from __future__ import annotations

import collections
import re
from typing import Any, NamedTuple

import numpy as np
import pytest

from conftest import LIBRARY_CASES, BackendCase, strategy_class, strategy_names
from evostrat.backends import get_backend
from evostrat.errors import InvalidTypeError
from evostrat.strategies.base import Strategy
from evostrat.strategies.cma_es import CMAES, CMAESState
from evostrat.strategies.evolvability import MaxEntES, MaxVarES
from evostrat.strategies.sep_cma_es import SepCMAES
from evostrat.strategies.snes import SNES, SNESState

DIM = 4


def _init(strategy: Strategy, x0: Any = None) -> Any:
    return strategy.init(np.ones(DIM) if x0 is None else x0, random_state=0)


def _values(strategy: Strategy, X: Any) -> Any:
    return X[:, :2] ** 2 if strategy.needs_behaviours else (X ** 2).sum(axis=1)


def _refused(call: Any, method: str, strategy: Strategy, given: type) -> None:
    with pytest.raises(InvalidTypeError) as err:
        call()
    message = str(err.value)
    assert message.startswith(f"state given to {method} of strategy {strategy.name!r} must be a")
    kinds = strategy.state_type if isinstance(strategy.state_type, tuple) else (strategy.state_type,)
    assert all(k.__qualname__ in message for k in kinds)
    article = "an" if given.__qualname__[0] in "AEIOUX" else "a"
    assert message.endswith(f"got {article} {given.__qualname__}") or f"got {article} {given.__qualname__} " in message


def _foreign(name: str) -> tuple[Strategy, Any]:
    """A strategy of another state type than ``name``'s, and one of its states."""
    other = SNES() if name not in ("snes",) else CMAES()
    return other, _init(other)


@pytest.mark.parametrize("name", strategy_names())
def test_every_strategy_refuses_a_foreign_state_in_ask_tell_and_the_read_outs(name: str) -> None:
    s = strategy_class(name)()
    other, foreign = _foreign(name)
    X, own = s.ask(_init(s))
    for method, call in [("ask", lambda: s.ask(foreign)), ("tell", lambda: s.tell(foreign, X, _values(s, X))),
                         ("mean", lambda: s.mean(foreign)), ("sigma", lambda: s.sigma(foreign)),
                         ("stop", lambda: s.stop(foreign)), ("evolvability", lambda: s.evolvability(foreign)),
                         ("gaussian_readout", lambda: s.gaussian_readout(foreign)),
                         ("population_seed", lambda: s.population_seed(foreign))]:
        _refused(call, method, s, type(foreign))
    s.tell(own, X, _values(s, X))  # its own state still runs
    s.mean(own), s.sigma(own), s.stop(own), s.evolvability(own), s.gaussian_readout(own), s.population_seed(own)


@pytest.mark.parametrize("case", LIBRARY_CASES)
def test_a_cma_state_given_to_snes_and_back_is_refused_on_every_backend(case: BackendCase) -> None:
    """The brief's two cases: SNES().ask(CMAES().init(x0)) ran silently (same fields), and
    CMAES().tell(snes_state, X, f) failed with an AttributeError inside."""
    x0 = case.array(np.ones(DIM))
    snes, cma = SNES(), CMAES()
    cma_state, snes_state = _init(cma, x0), _init(snes, x0)
    _refused(lambda: snes.ask(cma_state), "ask", snes, CMAESState)
    X, _ = cma.ask(cma_state)
    _refused(lambda: cma.tell(snes_state, X, (X ** 2).sum(axis=1)), "tell", cma, SNESState)
    _refused(lambda: SepCMAES().ask(cma_state), "ask", SepCMAES(), CMAESState)  # same family, other model


def test_the_seeded_methods_check_the_state_too() -> None:
    s, cma = SNES(), CMAES()
    own, foreign = _init(s), _init(cma)
    seed, _ = s.ask_seed(own)
    _refused(lambda: s.ask_seed(foreign), "ask_seed", s, CMAESState)
    _refused(lambda: s.tell_seed(foreign, seed, np.zeros(s.resolved_popsize(DIM))), "tell_seed", s, CMAESState)


def test_a_plain_tuple_is_refused_with_a_hint() -> None:
    s = SNES()
    state = _init(s)
    with pytest.raises(InvalidTypeError, match=re.escape("got a tuple (not a strategy state)")):
        s.ask((state, 0))


def test_strategies_that_share_a_state_class_take_each_others_states() -> None:
    """MaxVar-ES and MaxEnt-ES differ in the statistic they ascend, not in their state."""
    maxvar, maxent = MaxVarES(), MaxEntES()
    X, state = maxent.ask(_init(maxvar))
    maxvar.tell(state, X, _values(maxvar, X))


def test_cma_es_takes_both_of_its_models() -> None:
    s = CMAES(covariance="factor")
    state = _init(s)
    assert type(state).__name__ == "CMAFactorState"
    X, state = CMAES().ask(state)  # a CMAES with another covariance setting: its state type all the same
    s.tell(state, X, (X ** 2).sum(axis=1))


# -- plugins ---------------------------------------------------------------------------------------
class TweakedCMA(CMAES):
    """A plugin's CMA-ES that keeps the parent's initial_state: the parent's state type."""


class OwnState(NamedTuple):
    mean: Any
    sigma: Any
    key: Any
    extra: Any


class OwnStateSNES(SNES):
    """A plugin's SNES with its own state class, that declares no state_type: not checked."""

    def initial_state(self, x0: Any, key: Any, backend: Any) -> OwnState:
        base = super().initial_state(x0, key, backend)
        return OwnState(base.mean, base.sigma, base.key, backend.xp.zeros((), dtype=x0.dtype))

    def tell(self, state: Any, X: Any, fitness: Any) -> Any:
        inner = super().tell(SNESState(state.mean, state.sigma, state.key), X, fitness)
        return OwnState(inner.mean, inner.sigma, inner.key, state.extra + 1)


class DeclaredSNES(OwnStateSNES):
    state_type = OwnState


class Greedy(Strategy):
    """A plugin's strategy that leaves state_type at its default (None): not checked."""

    def initial_state(self, x0: Any, key: Any, backend: Any) -> Any:
        return SNESState(mean=x0, sigma=self.initial_sigma(x0, backend), key=key)

    def ask(self, state: Any) -> Any:
        be = get_backend(state.mean)
        key, sub = be.split(state.key)
        z = be.normal(sub, (self.resolved_popsize(DIM), DIM), state.mean.dtype, be.device(state.mean))
        return state.mean + state.sigma * z, state._replace(key=key)

    def tell(self, state: Any, X: Any, fitness: Any) -> Any:
        return state._replace(mean=X[int(np.argmin(fitness))])


def test_plugin_strategies_keep_working() -> None:
    tweaked = TweakedCMA()
    assert tweaked.state_type == CMAES.state_type
    X, state = tweaked.ask(CMAES().init(np.ones(DIM), random_state=0))  # the parent's state
    tweaked.tell(state, X, (X ** 2).sum(axis=1))
    _refused(lambda: tweaked.ask(_init(SNES())), "ask", tweaked, SNESState)

    own = OwnStateSNES()
    assert own.state_type is None  # overrides initial_state without declaring: not checked
    X, state = own.ask(_init(own))
    assert type(own.tell(state, X, (X ** 2).sum(axis=1))) is OwnState

    declared = DeclaredSNES()  # its tell calls SNES's with a SNESState: a method takes its own class's states
    X, state = declared.ask(_init(declared))
    assert type(declared.tell(state, X, (X ** 2).sum(axis=1))) is OwnState
    _refused(lambda: declared.ask(_init(CMAES())), "ask", declared, CMAESState)
    _refused(lambda: declared.tell(_init(CMAES()), X, (X ** 2).sum(axis=1)), "tell", declared, CMAESState)

    greedy = Greedy()
    X, state = greedy.ask(_init(greedy))
    greedy.tell(state, X, (X ** 2).sum(axis=1))
    greedy.ask(_init(SNES()))  # no state_type: anything goes, as before


def test_plugin_strategies_fit() -> None:
    from evostrat import ES

    for strategy in (TweakedCMA(), OwnStateSNES(), DeclaredSNES(), Greedy()):
        es = ES(strategy, max_generations=5, random_state=0).fit(lambda X: (X ** 2).sum(axis=1), np.ones(DIM))
        assert es.n_generations_ == 5


def test_a_wrong_declaration_is_refused() -> None:
    with pytest.raises(InvalidTypeError, match="state_type of Broken must be None, the NamedTuple class"):
        type("Broken", (SNES,), {"state_type": "SNESState"})

    class Liar(SNES):
        state_type = OwnState  # but initial_state (SNES's) makes SNESStates

    with pytest.raises(InvalidTypeError, match="initial_state of strategy 'snes' must return an OwnState, its "
                                               "state_type, got a SNESState"):
        _init(Liar())


def test_a_subclass_and_a_redefined_class_of_the_state_pass() -> None:
    """A state class's subclass, and the class defined again (a reloaded module: same module,
    name and fields) stand for it; a class of another name or other fields does not."""
    s = SNES()
    state = _init(s)

    class Sub(SNESState):
        pass

    again = collections.namedtuple("SNESState", SNESState._fields)
    again.__module__ = SNESState.__module__
    for kind in (Sub, again):
        s.ask(kind(*state))
    other = collections.namedtuple("SNESState", ("mean", "sigma", "key", "more"))
    other.__module__ = SNESState.__module__
    _refused(lambda: s.ask(other(*state, 0)), "ask", s, other)


# -- JAX: traced, vmapped, mapped states ----------------------------------------------------------
def test_jax_states_pass_through_jit_vmap_and_tree_map() -> None:
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    s, cma = SNES(), CMAES()
    state = _init(s, jnp.ones(DIM))
    X, asked = jax.jit(s.ask)(state)
    told = jax.jit(s.tell)(asked, X, (X ** 2).sum(axis=1))
    assert type(told) is SNESState
    mapped = jax.tree_util.tree_map(lambda a: a, told)
    s.ask(mapped)
    s.sigma(mapped)
    be = get_backend(jnp.ones(DIM))
    many = jax.vmap(lambda k: s.initial_state(jnp.ones(DIM), k, be))(jax.random.split(jax.random.PRNGKey(0), 3))
    Xs, _ = jax.vmap(s.ask)(many)
    assert Xs.shape == (3, s.resolved_popsize(DIM), DIM)
    foreign = _init(cma, jnp.ones(DIM))
    _refused(lambda: jax.jit(s.ask)(foreign), "ask", s, CMAESState)  # at trace time
    _refused(lambda: jax.vmap(s.sigma)(jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), foreign)), "sigma", s,
             CMAESState)


def test_a_compiled_ask_costs_nothing_for_the_check() -> None:
    """The check runs at trace time: the compiled programs of the checked and unchecked ask are the same."""
    jax = pytest.importorskip("jax")
    from evostrat.strategies.state_type import unchecked

    s = SNES()
    state = _init(s, jax.numpy.ones(DIM))
    checked = jax.jit(s.ask).lower(state).as_text()
    raw = jax.jit(unchecked(s, "ask")).lower(state).as_text()
    assert checked == raw


def test_runs_and_checkpoints_keep_their_states() -> None:
    """A run's state (AskTell), its checkpoint round trip and a batched run pass the check."""
    from evostrat import ES
    from evostrat.strategies.state_type import unchecked

    es = ES("cma_es", max_generations=3, random_state=0).initialize(np.ones(DIM))
    X = es.ask()
    es.tell(X, (np.asarray(X) ** 2).sum(axis=1))
    runner = es.run_.runner
    saved = runner.state_dict()
    runner.load_state_dict(saved)
    X, state = runner.strategy.ask(runner.state)
    assert type(state) is CMAESState
    assert unchecked(runner.strategy, "ask").__func__ is CMAES.ask.__wrapped__
