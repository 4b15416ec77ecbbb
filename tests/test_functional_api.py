"""The functional API used directly (``init``/``ask``/``tell`` over NamedTuple states, as evosax
users write it): ``tell`` refuses an ``X`` or a ``fitness`` of the wrong shape with an evostrat
error naming the argument and both shapes (:mod:`evostrat.strategies.told`), on every built-in
strategy, at trace time only under ``jax.jit`` and ``vmap``."""

from __future__ import annotations

import re

import numpy as np
import pytest

from evostrat.errors import InvalidArgumentError
from evostrat.plugins import registry

STRATEGIES = sorted(registry("strategies"))
DIM = 4


def _asked(name: str, xp_ones=np.ones):
    s = registry("strategies")[name]()
    state = s.init(xp_ones(DIM), random_state=0)
    X, state = s.ask(state)
    return s, state, X


def _values(s, X):
    f = (X ** 2).sum(axis=1)
    return (X[:, :2] ** 2) if s.needs_behaviours else f


@pytest.mark.parametrize("name", STRATEGIES)
def test_tell_refuses_a_fitness_column_and_a_wrong_length(name):
    s, state, X = _asked(name)
    lam = X.shape[0]
    f = (X ** 2).sum(axis=1)
    what = "behaviours" if s.needs_behaviours else "fitness"
    bad = [f[:-1], np.concatenate([f, f[:1]])]
    if not s.needs_behaviours:  # behaviours (popsize, k): a (popsize, 1) column is one behaviour
        bad.append(f[:, None])
    for values in bad:
        with pytest.raises(InvalidArgumentError, match=rf"^{what} told to strategy '{name}' must have shape "
                                                       rf".*{lam}.*got shape {re.escape(str(values.shape))}$"):
            s.tell(state, X, values)
    if s.needs_behaviours:
        with pytest.raises(InvalidArgumentError, match=r"behaviours .* \(popsize, k\) or \(popsize,\)"):
            s.tell(state, X, np.zeros((lam - 1, 2)))


@pytest.mark.parametrize("name", STRATEGIES)
def test_tell_refuses_x_of_the_wrong_shape(name):
    s, state, X = _asked(name)
    lam = X.shape[0]
    values = _values(s, X)
    for wrong in (X[:, :-1], X[:-1], X[None]):
        with pytest.raises(InvalidArgumentError, match=rf"^X told to strategy '{name}' must have shape \(popsize, "
                                                       rf"dim\) = \({lam}, {DIM}\), got shape "
                                                       rf"{re.escape(str(wrong.shape))}$"):
            s.tell(state, wrong, values)


@pytest.mark.parametrize("name", STRATEGIES)
def test_tell_of_the_right_shapes_is_unchanged(name):
    """The check lets the usual call through, and the result is the unchecked tell's."""
    s, state, X = _asked(name)
    values = _values(s, X)
    told, raw = s.tell(state, X, values), type(s).tell.__wrapped__(s, state, X, values)
    np.testing.assert_array_equal(np.asarray(s.mean(told)), np.asarray(s.mean(raw)))
    if s.needs_behaviours:  # (popsize,) behaviours: one behaviour each
        s.tell(state, X, (X ** 2).sum(axis=1))


def test_tell_seed_refuses_a_fitness_of_the_wrong_shape():
    from evostrat.strategies.openai_es import OpenAIES
    from evostrat.strategies.snes import SNES

    for s in (SNES(), OpenAIES()):
        state = s.init(np.ones(DIM), random_state=0)
        seed, asked = s.ask_seed(state)
        X, _ = s.ask(state)
        f = (X ** 2).sum(axis=1)
        with pytest.raises(InvalidArgumentError, match=rf"fitness told to strategy '{s.name}' .* got shape "
                                                       rf"\({X.shape[0]}, 1\)"):
            s.tell_seed(asked, seed, f[:, None])
        np.testing.assert_allclose(s.tell_seed(asked, seed, f).mean, s.tell(asked, X, f).mean, rtol=1e-12)


def test_torch_tell_refuses_a_fitness_column():
    torch = pytest.importorskip("torch")
    s, state, X = _asked("cma_es", lambda n: torch.ones(n, dtype=torch.float64))
    with pytest.raises(InvalidArgumentError, match=r"fitness told to strategy 'cma_es' .* got shape \(8, 1\)"):
        s.tell(state, X, (X ** 2).sum(1, keepdim=True))


def test_jitted_and_vmapped_tell_check_at_trace_time():
    """JAX's own error was ``dot_general requires contracting dimensions``; the check runs while
    tracing (shapes are static), so the compiled tell and a vmapped tell are unchanged."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    s, state, X = _asked("cma_es", jnp.ones)
    f = (X ** 2).sum(axis=1)
    tell = jax.jit(s.tell)
    with pytest.raises(InvalidArgumentError, match=r"fitness told to strategy 'cma_es' must have shape "
                                                   r"\(popsize,\) = \(8,\) .* got shape \(8, 1\)"):
        tell(state, X, f[:, None])
    np.testing.assert_allclose(tell(state, X, f).mean, s.tell(state, X, f).mean, rtol=1e-6)
    states = jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), state)
    Xs, fs = jnp.stack([X, X]), jnp.stack([f, f])
    told = jax.vmap(s.tell)(states, Xs, fs)
    np.testing.assert_allclose(told.mean[1], s.tell(state, X, f).mean, rtol=1e-6)
    with pytest.raises(InvalidArgumentError, match=r"got shape \(8, 1\)"):
        jax.vmap(s.tell)(states, Xs, fs[..., None])


def test_the_stateful_tell_checks_once_and_names_values():
    """``ES.tell``/``AskTell.tell`` check the values themselves (their message names ``values``) and
    run the strategy's tell without the functional check (0.4 us a generation)."""
    from evostrat.strategies.cma_es import CMAES
    from evostrat.strategies.told import unchecked_tell

    s = CMAES()
    assert unchecked_tell(s).__func__ is type(s).tell.__wrapped__ and unchecked_tell(s).__self__ is s
    run = s.initialize(np.ones(DIM), random_state=0)
    X = run.ask()
    with pytest.raises(InvalidArgumentError, match=r"^values must have shape \(8,\)"):
        run.tell(X, (X ** 2).sum(axis=1)[:, None])
    run.tell(X, (X ** 2).sum(axis=1))
    assert run._tell is unchecked_tell(s) or run._tell.__func__ is type(s).tell.__wrapped__


def test_init_names_a_2d_x0():
    """Already an evostrat error before the shape check (kept as the functional API's coverage)."""
    from evostrat.strategies.snes import SNES

    with pytest.raises(InvalidArgumentError, match=r"x0 must have shape \(dim,\) .*got shape \(2, 5\)"):
        SNES().init(np.ones((2, 5)), random_state=0)
