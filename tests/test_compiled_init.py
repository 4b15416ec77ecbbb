"""``Strategy.init`` compiles ``initial_state`` where the backend compiles (JAX): the
state is the one the eager call builds, validation errors are the same, and an
``initial_state`` with host-side logic still runs (eagerly)."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from evostrat.backends import get_backend  # noqa: E402
from evostrat.errors import InvalidArgumentError  # noqa: E402
from evostrat.plugins.factories import make_strategy  # noqa: E402
from evostrat.strategies.base import Strategy  # noqa: E402

NAMES = ["snes", "openai_es", "pgpe", "xnes", "cma_es", "sep_cma_es", "expectation_es", "maxvar_es"]


@pytest.mark.parametrize("name", NAMES)
def test_compiled_initial_state_equals_the_eager_one(name: str) -> None:
    sigma0 = 0.7 if name == "openai_es" else np.linspace(0.5, 2.0, 5)  # OpenAI-ES is isotropic
    strategy = make_strategy(name, None, sigma0=sigma0)
    be = get_backend("jax")
    x0 = jnp.linspace(-1.0, 1.0, 5)
    compiled = strategy.init(x0, random_state=3)
    eager = strategy.initial_state(x0, be.key(3), be)
    for got, want in zip(jax.tree_util.tree_leaves(compiled), jax.tree_util.tree_leaves(eager)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=2e-7)  # XLA may fuse: 1 ulp


def test_sigma0_errors_are_raised_from_the_compiled_initial_state() -> None:
    with pytest.raises(InvalidArgumentError, match="sigma0 must be positive and finite"):
        make_strategy("cma_es", None, sigma0=-1.0).init(jnp.ones(3), random_state=0)
    with pytest.raises(InvalidArgumentError, match=r"sigma0 must be .* shape \(3,\), got shape \(2,\)"):
        make_strategy("snes", None, sigma0=np.ones(2)).init(jnp.ones(3), random_state=0)
    with pytest.raises(InvalidArgumentError, match="sigma0 must be positive and finite"):
        make_strategy("snes", None, sigma0=1e-50).init(jnp.ones(3), random_state=0)  # 0 in float32
    with pytest.raises(InvalidArgumentError, match="scalar for openai_es"):
        make_strategy("openai_es", None, sigma0=np.array([1.0, 2.0, 1.0])).init(jnp.ones(3), random_state=0)


class HostState(NamedTuple):
    mean: Any
    sigma: Any
    key: Any


class HostInit(Strategy):
    """An initial_state that reads an array value on the host (does not trace)."""

    def initial_state(self, x0: Any, key: Any, backend: Any) -> HostState:
        scale = 2.0 if float(x0[0]) > 0 else 1.0
        return HostState(mean=x0, sigma=backend.xp.ones_like(x0) * scale, key=key)

    def ask(self, state: HostState) -> tuple[Any, HostState]:
        return state.mean[None, :], state

    def tell(self, state: HostState, X: Any, fitness: Any) -> HostState:
        return state


def test_an_initial_state_that_does_not_trace_runs_eagerly() -> None:
    state = HostInit().init(jnp.ones(3), random_state=0)
    np.testing.assert_array_equal(np.asarray(state.sigma), [2.0, 2.0, 2.0])
    state = HostInit().init(-jnp.ones(3), random_state=0)
    np.testing.assert_array_equal(np.asarray(state.sigma), [1.0, 1.0, 1.0])


def test_the_first_state_is_checked_without_compiling_its_read_outs() -> None:
    # the contract's checks of a first state (mean, sigma, stop) trace the read-outs, they do not
    # compile them: a first ES.fit on the compiled path never runs them alone (~0.15 s saved)
    from jax_compiles import compiles

    from evostrat.strategies.cma_es import CMAES

    strategy = CMAES(sigma0=0.37, tolconditioncov=3.25e13, tolfacupx=7.5e3)  # criteria no other test uses
    x0 = jnp.ones(7)
    get_backend("jax").key(0)  # the key's own programs, compiled before counting
    before = compiles()
    state = strategy.init(x0, random_state=0)
    assert compiles() - before == 1  # the initial state's program
    assert set(strategy.stop(state)) >= {"tolconditioncov", "tolfacupx"}  # the read-outs compile when run


class _JaxVectorSigmaState(NamedTuple):
    mean: Any
    sigma: Any
    key: Any


class _JaxVectorSigma(Strategy):
    """A sigma read-out of the wrong shape, found on JAX from the traced read-outs."""

    name = "jax_vector_sigma"
    state_type = _JaxVectorSigmaState

    def initial_state(self, x0: Any, key: Any, backend: Any) -> _JaxVectorSigmaState:
        return _JaxVectorSigmaState(mean=x0, sigma=x0 * 0 + 1, key=key)

    def sigma(self, state: Any) -> Any:
        return state.sigma

    def ask(self, state: Any) -> Any:  # never reached
        raise AssertionError

    def tell(self, state: Any, X: Any, fitness: Any) -> Any:  # never reached
        raise AssertionError


def test_a_read_out_of_the_wrong_shape_is_refused_on_jax_too() -> None:
    from evostrat.errors import InvalidTypeError

    with pytest.raises(InvalidTypeError, match=r"sigma\(state\) of strategy 'jax_vector_sigma' must be an array of "
                                               r"shape \(\), got shape \(3,\)"):
        _JaxVectorSigma().init(jnp.zeros(3), random_state=0)
