"""The compiled JAX generation loop agrees with the step-by-step path."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from evostrat.run.compiled_loop import CompiledLoop, is_traceable  # noqa: E402
from evostrat.plugins import registry  # noqa: E402
from evostrat.problems import rosenbrock, sphere  # noqa: E402


def test_traceability_probe() -> None:
    assert is_traceable(sphere, 8, 5, jnp.float32)
    assert not is_traceable(lambda X: float(X.sum()), 8, 5, jnp.float32)  # host conversion
    assert not is_traceable(lambda X: X.sum(), 8, 5, jnp.float32)  # wrong shape


@pytest.mark.parametrize("name", ["snes", "openai_es"])
@pytest.mark.parametrize("n_active", [13, 20])
def test_chunk_matches_generation_by_generation(name: str, n_active: int) -> None:
    strategy = registry("strategies")[name](sigma0=0.5)
    state0 = strategy.init(jnp.full(6, 2.0), random_state=4)
    loop = CompiledLoop(strategy, rosenbrock, chunk=20)
    fast, out = loop.run(state0, n_active)

    ask, tell = jax.jit(strategy.ask), jax.jit(strategy.tell)
    slow, fitness = state0, []
    for _ in range(n_active):
        X, slow = ask(slow)
        values = rosenbrock(X)
        fitness.append(np.asarray(values))
        slow = tell(slow, X, values)

    np.testing.assert_allclose(np.asarray(fast.mean), np.asarray(slow.mean), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(fast.key), np.asarray(slow.key))
    np.testing.assert_allclose(np.asarray(out.fitness[:n_active]), np.stack(fitness), rtol=1e-5)
    best = np.asarray(out.best_x[n_active - 1])
    np.testing.assert_allclose(float(rosenbrock(best)), fitness[-1].min(), rtol=1e-5)


def test_zero_active_generations_leave_the_state_unchanged() -> None:
    strategy = registry("strategies")["snes"]()
    state0 = strategy.init(jnp.ones(3), random_state=0)
    state, _ = CompiledLoop(strategy, sphere, chunk=5).run(state0, 0)
    for a, b in zip(state0, state):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
