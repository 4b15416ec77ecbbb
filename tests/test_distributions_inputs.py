"""Distribution and expectation edge cases: seeds under jit, keys, sample shapes, covariances.

Each test pins a bug that was found: a wrong answer given silently, a backend's own error
where an evostrat error naming the argument was due, or state corrupted for later calls.
"""

from __future__ import annotations

import numpy as np
import pytest

from evostrat import expectation
from evostrat.backends import get_backend
from evostrat.distributions import DiagNormal, MultivariateNormal, Normal
from evostrat.errors import InvalidArgumentError, InvalidTypeError

torch = pytest.importorskip("torch")
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


@pytest.mark.parametrize(
    "key, error, match",
    [
        ("seed", InvalidTypeError, "key must be an int seed or a jax backend key.*got str"),  # was JAX's TypeError
        (1.5, InvalidTypeError, "key must be an int seed or a jax backend key.*got float"),
        (np.zeros(2, dtype=np.float32), InvalidTypeError, "got ndarray of dtype float32 and shape \\(2,\\)"),
        (np.zeros(5, dtype=np.uint32), InvalidTypeError, "key must be an int seed"),
        (-1, InvalidArgumentError, "key must be an int seed >= 0"),  # was "random_state must be >= 0"
    ],
)
def test_a_bad_jax_key_is_an_evostrat_error_naming_key(key, error, match) -> None:
    with pytest.raises(error, match=match):
        Normal(jnp.zeros(2), 1.0).sample(3, key=key)


def test_jax_keys_concrete_typed_traced_and_vmapped_are_accepted() -> None:
    p = Normal(jnp.zeros(2), 1.0)
    raw = jax.random.PRNGKey(4)
    expected = np.asarray(p.sample(3, key=raw))
    np.testing.assert_array_equal(np.asarray(p.sample(3, key=np.asarray(raw))), expected)
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda k: p.sample(3, key=k))(raw)), expected)
    assert p.sample(3, key=jax.random.key(4)).shape == (3, 2)
    batched = jax.vmap(lambda k: p.sample(3, key=k))(jax.random.split(raw, 2))
    assert batched.shape == (2, 3, 2)
    with pytest.raises(InvalidArgumentError, match="key must be an int seed >= 0"):
        Normal(np.zeros(2), 1.0).sample(3, key=-2)


@pytest.mark.parametrize("library", ["numpy", "torch", "jax"])
def test_an_asymmetric_covariance_is_refused_on_every_backend(library: str) -> None:
    """Cholesky reads the lower triangle on numpy and torch but the symmetric part on JAX:
    [[1, 0.9], [0, 1]] was N(0, I) on numpy/torch and a correlated Gaussian on JAX, no error."""
    asarray = {"numpy": np.asarray, "torch": torch.as_tensor, "jax": jnp.asarray}[library]
    with pytest.raises(InvalidArgumentError, match="covariance must be symmetric"):
        MultivariateNormal(asarray(np.zeros(2)), covariance=asarray(np.array([[1.0, 0.9], [0.0, 1.0]])))
    a = np.random.default_rng(0).normal(size=(6, 6))
    cov = asarray(a @ a.T / 6 + np.eye(6))  # a product's rounding is not asymmetry
    assert MultivariateNormal(asarray(np.zeros(6)), covariance=cov).event_shape == (6,)


def test_diag_normal_log_prob_refuses_a_draw_of_the_wrong_width() -> None:
    p = DiagNormal(np.zeros(3), 1.0)
    with pytest.raises(InvalidArgumentError, match="x must have shape"):
        p.log_prob(np.zeros((2, 1)))  # was one value broadcast over 3 coordinates
    with pytest.raises(InvalidArgumentError, match="x must have shape"):
        p.log_prob(np.zeros(4))  # was numpy's broadcasting ValueError
    assert DiagNormal(np.zeros((4, 3)), 1.0).log_prob(np.zeros(3)).shape == (4,)  # the batch still broadcasts


@pytest.mark.parametrize("estimator", ["expectation", "expectation_grad"])
def test_a_baseline_that_does_not_broadcast_is_named(estimator: str) -> None:
    from evostrat.expectation import expectation_grad

    p = DiagNormal(np.zeros(3), 0.5)
    x = p.sample(8, key=0)
    f = (x ** 2).sum(axis=1)
    run = expectation if estimator == "expectation" else expectation_grad
    with pytest.raises(InvalidArgumentError, match=r"baseline must be .* broadcasts against the values of shape \(8,\)"):
        run(f, x, p, baseline=np.zeros(5))  # numpy's own ValueError before
    assert np.isfinite(float(expectation(f, x, p, baseline=np.zeros(8))))  # one per draw broadcasts


def test_p_that_is_not_a_distribution_lists_every_family() -> None:
    with pytest.raises(InvalidTypeError, match="LowRankNormal, StudentT or a plugin's"):
        expectation(np.ones(3), np.ones((3, 1)), object())
