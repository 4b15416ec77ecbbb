"""Distribution and expectation edge cases: seeds under jit, keys, sample shapes, covariances.

Each test pins a bug that was found: a wrong answer given silently, a backend's own error
where an evostrat error naming the argument was due, or state corrupted for later calls.
"""

from __future__ import annotations

import numpy as np
import pytest

from evostrat import expectation
from evostrat.backends import get_backend
from evostrat.distributions import DiagNormal, Normal
from evostrat.errors import InvalidArgumentError

jax = pytest.importorskip("jax")
jnp = jax.numpy


def test_an_int_key_inside_jit_leaves_the_seed_usable_afterwards() -> None:
    seed = 987_654  # a seed no other test caches
    inside = jax.jit(lambda m: DiagNormal(m, 0.3).sample(3, key=seed) + DiagNormal(m, 0.3).sample(3, key=seed))
    twice = np.asarray(inside(jnp.ones(2)))
    outside = np.asarray(DiagNormal(jnp.ones(2), 0.3).sample(3, key=seed))  # raised: a leaked tracer
    np.testing.assert_allclose(twice, 2 * outside, rtol=1e-6)
    assert not isinstance(get_backend("jax").key(seed), jax.core.Tracer)


@pytest.mark.parametrize(
    "p, sample, match",
    [
        # a draw of one coordinate broadcast over d = 3: was the mean of the values, no error
        (DiagNormal(np.zeros(3), 1.0), np.zeros((6, 1)), "sample_shape"),
        (Normal(np.zeros(3), 1.0), np.zeros((6, 1)), "sample_shape"),
        # one draw of a batch of 3 read as 3 draws: was the mean of the values, no error
        (Normal(np.zeros(3), 1.0), np.zeros(3), "leading sample axis"),
        (DiagNormal(np.zeros((3, 2)), 1.0), np.zeros((3, 2)), "leading sample axis"),
        # numpy's broadcasting ValueError
        (DiagNormal(np.zeros(3), 1.0), np.zeros((3, 4)), "sample_shape"),
    ],
)
def test_expectation_refuses_a_sample_that_is_not_draws_of_p(p, sample, match) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        expectation(np.ones(sample.shape[0]), sample, p)
