"""The functional ``init/ask/tell`` on JAX outside ``jax.jit`` compiles nothing after warming up.

Called eagerly, JAX runs each operation through a compiled kernel cached by its shape and
dtype, so a generation costs milliseconds once the first ones have filled that cache. Two
things compiled again at every call instead, each 0.25-0.5 s a generation (CMA-ES at
d = 100: 640 ms, VkD-CMA 1.6 s, SNES 456 ms, against 4-36 ms now):

- ``Backend.cond`` ran ``lax.cond``, which traces and compiles its branches, and the
  strategies pass new closures or bound methods each time (CMA-ES's eigen refresh);
- the unrolled Threefry draw (``backends.jax_threefry``, populations of at least 1,024
  values) built its ``cond`` with new branch closures at every draw.

The test counts XLA compilations (``jax.monitoring``) over generations 3-5 of every
strategy at d = 100, where every draw takes the unrolled path.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import strategy_class, strategy_names

jax = pytest.importorskip("jax")
jnp = jax.numpy

from evostrat.problems import sphere  # noqa: E402

DIM = 100
from jax_compiles import compiles  # noqa: E402


def _told(strategy: Any, X: Any) -> Any:
    values = sphere(X)
    if strategy.needs_behaviours:  # behaviours (f(x), x_0)
        return jnp.stack([values, X[:, 0]], axis=1)
    return values


def _generation(strategy: Any, state: Any) -> Any:
    X, state = strategy.ask(state)
    state = strategy.tell(state, X, _told(strategy, X))
    return jax.block_until_ready(state)


@pytest.mark.parametrize("name", strategy_names())
def test_eager_generations_compile_nothing_after_the_first_two(name: str) -> None:
    strategy = strategy_class(name)()
    state = strategy.init(jnp.ones(DIM), random_state=0)
    for _ in range(2):
        state = _generation(strategy, state)
    before = compiles()
    for _ in range(3):
        state = _generation(strategy, state)
    assert compiles() == before, f"{compiles() - before} XLA compilations in 3 warm generations"
