"""Idioms of evosax / EvoTorch users (docs/guides/coming_from_evosax_evotorch.md).

- ``strategy.init`` inside ``jax.jit`` / ``jax.vmap`` (evosax's ``jax.vmap(init)`` over seeds
  or starting points): ``x0``'s finiteness check converted the traced ``x0`` to numpy and
  raised ``TracerArrayConversionError``.
- ``evolve(strategy, problem, params_pytree, ...)`` with the flax parameters the problem was
  built from raised ``ValueError: entry not a 2- or 3- tuple`` from ``jnp.asarray``.
"""

from __future__ import annotations

import numpy as np
import pytest

from evostrat.errors import InvalidArgumentError

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

from evostrat.plugins.factories import make_strategy  # noqa: E402


@pytest.mark.parametrize("name", ["snes", "cma_es"])
def test_init_runs_under_jit_and_vmap_and_equals_the_eager_state(name: str) -> None:
    strategy = make_strategy(name, popsize=6, sigma0=0.5)
    x0 = jnp.linspace(-1.0, 1.0, 4)
    key = jax.random.PRNGKey(3)
    eager = strategy.init(x0, key=key)
    jitted = jax.jit(lambda x, k: strategy.init(x, key=k))(x0, key)  # was TracerArrayConversionError
    for a, b in zip(eager, jitted):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-6)
    starts = jnp.stack([x0, 2 * x0, -x0])
    batched = jax.vmap(lambda x: strategy.init(x, key=key))(starts)
    np.testing.assert_allclose(np.asarray(strategy.mean(jax.tree.map(lambda a: a[1], batched))),
                               np.asarray(2 * x0))
    X, _ = jax.vmap(strategy.ask)(batched)
    assert X.shape == (3, 6, 4)


def test_init_still_refuses_a_non_finite_x0_outside_jit() -> None:
    with pytest.raises(InvalidArgumentError, match="x0 must be finite"):
        make_strategy("snes").init(jnp.array([1.0, jnp.nan]), random_state=0)


def test_evolve_takes_the_policy_parameter_pytree() -> None:
    pytest.importorskip("gymnax")
    from evostrat.problems.gymnax import GymnaxProblem, evolve
    from evostrat.strategies.snes import SNES

    problem = GymnaxProblem("CartPole-v1", hidden=(2,), episodes=1, max_steps=5)
    flat = problem.init_params(seed=1)
    tree = problem.unflatten(flat)
    assert [tuple(w.shape) for w, _ in tree] == [(4, 2), (2, 2)]
    flat_run = evolve(SNES(popsize=4, sigma0=0.1), problem, flat, 2, chunk=2)
    tree_run = evolve(SNES(popsize=4, sigma0=0.1), problem, tree, 2, chunk=2)  # was ValueError from jnp.asarray
    np.testing.assert_array_equal(np.asarray(tree_run.fitness), np.asarray(flat_run.fitness))
    np.testing.assert_array_equal(np.asarray(tree_run.mean), np.asarray(flat_run.mean))
    expected = rf"x0 must be the policy.s parameters.*\({problem.dim},\).*got shape \(5,\)"
    with pytest.raises(InvalidArgumentError, match=expected):
        evolve(SNES(popsize=4), problem, jnp.zeros(5), 2)
