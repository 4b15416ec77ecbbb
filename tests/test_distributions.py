"""Normal, DiagNormal, MultivariateNormal: densities, scores, sampling, backends, errors.

References are computed independently: log densities and entropies by
``scipy.stats``, scores by torch/JAX autodiff of ``log_prob`` (float64), sample
moments against the parameters within stated standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from evostrat.backends import get_backend
from evostrat.distributions import DiagNormal, MultivariateNormal, Normal
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.plugins import registry

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = jax.numpy

RNG = np.random.default_rng(42)
D = 3
_A = RNG.normal(size=(D, D))
COV = _A @ _A.T + D * np.eye(D)
CHOL = np.linalg.cholesky(COV)
MU = RNG.normal(size=D)
SIG = RNG.uniform(0.5, 2.0, size=D)


def make(name: str, mu, scale, mirrored: bool = False):
    if name == "normal":
        return Normal(mu, scale, mirrored=mirrored)
    if name == "diag":
        return DiagNormal(mu, scale, mirrored=mirrored)
    if name == "mvn-tril":
        return MultivariateNormal(mu, scale_tril=scale, mirrored=mirrored)
    return MultivariateNormal(mu, covariance=scale, mirrored=mirrored)


PARAMS = {"normal": (MU, SIG), "diag": (MU, SIG), "mvn-tril": (MU, CHOL), "mvn-cov": (MU, COV)}
NAMES = sorted(PARAMS)


def scipy_logpdf(name: str, x: np.ndarray) -> np.ndarray:
    if name == "normal":
        return stats.norm(MU, SIG).logpdf(x)
    if name == "diag":
        return stats.norm(MU, SIG).logpdf(x).sum(-1)
    return stats.multivariate_normal(MU, COV).logpdf(x)


def scipy_entropy(name: str) -> np.ndarray:
    if name == "normal":
        return stats.norm(MU, SIG).entropy()
    if name == "diag":
        return stats.norm(MU, SIG).entropy().sum()
    return stats.multivariate_normal(MU, COV).entropy()


def test_registered_as_plugins() -> None:
    reg = registry("distributions")
    assert reg["normal"] is Normal
    assert reg["diag_normal"] is DiagNormal
    assert reg["multivariate_normal"] is MultivariateNormal


@pytest.mark.parametrize("name", NAMES)
def test_log_prob_and_entropy_match_scipy_on_every_backend(name: str) -> None:
    x = RNG.normal(size=(7, D))
    mu, scale = PARAMS[name]
    ref_lp, ref_h = scipy_logpdf(name, x), scipy_entropy(name)
    p = make(name, mu, scale)
    np.testing.assert_allclose(p.log_prob(x), ref_lp, rtol=1e-12)
    np.testing.assert_allclose(p.entropy(), ref_h, rtol=1e-12)
    pt = make(name, torch.tensor(mu), torch.tensor(scale))
    np.testing.assert_allclose(pt.log_prob(torch.tensor(x)).numpy(), ref_lp, rtol=1e-12)
    np.testing.assert_allclose(pt.entropy().numpy(), ref_h, rtol=1e-12)
    pj = make(name, jnp.asarray(mu, jnp.float32), jnp.asarray(scale, jnp.float32))
    np.testing.assert_allclose(np.asarray(pj.log_prob(jnp.asarray(x, jnp.float32))), ref_lp, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(np.asarray(pj.entropy()), ref_h, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_score_equals_autodiff_of_log_prob(name: str) -> None:
    """score(x)[param][i] = d log_prob(x_i) / d param, for torch and JAX autodiff (float64)."""
    mu, scale = PARAMS[name]
    x = RNG.normal(size=(5, D))
    score = make(name, mu, scale).score(x)
    pnames = make(name, mu, scale).param_names
    for i in range(x.shape[0]):
        tm, ts = torch.tensor(mu, requires_grad=True), torch.tensor(scale, requires_grad=True)
        lp = make(name, tm, ts).log_prob(torch.tensor(x[i])).sum()
        grads = torch.autograd.grad(lp, [tm, ts])
        for pname, g in zip(pnames, grads):
            np.testing.assert_allclose(score[pname][i], g.numpy(), rtol=1e-10, atol=1e-12)
    with jax.enable_x64(True):
        jgrads = jax.vmap(
            jax.grad(lambda m, s, xi: make(name, m, s).log_prob(xi).sum(), argnums=(0, 1)),
            in_axes=(None, None, 0),
        )(jnp.asarray(mu), jnp.asarray(scale), jnp.asarray(x))
    for pname, g in zip(pnames, jgrads):
        np.testing.assert_allclose(score[pname], np.asarray(g), rtol=1e-10, atol=1e-12)


def test_normal_score_sums_over_broadcast_parameters() -> None:
    """mu (2, 3), sigma (1,): the sigma score of a draw sums over all six elements."""
    mu, sigma = RNG.normal(size=(2, 3)), np.array([0.5])
    x = RNG.normal(size=(4, 2, 3))
    score = Normal(mu, sigma).score(x)
    assert score["mu"].shape == (4, 2, 3) and score["sigma"].shape == (4, 1)
    tm, ts = torch.tensor(mu, requires_grad=True), torch.tensor(sigma, requires_grad=True)
    g_mu, g_sigma = torch.autograd.grad(Normal(tm, ts).log_prob(torch.tensor(x)).sum(), [tm, ts])
    np.testing.assert_allclose(score["mu"].sum(0), g_mu.numpy(), rtol=1e-12)
    np.testing.assert_allclose(score["sigma"].sum(0), g_sigma.numpy(), rtol=1e-12)


@pytest.mark.parametrize("library", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("name", NAMES)
def test_sample_shapes_moments_and_mirroring(name: str, library: str) -> None:
    """n = 20000 draws: the sample mean lies within 4 standard errors of mu, the
    sample covariance within 5 standard errors (Var of s_jk = (S_jj S_kk + S_jk^2)/n)."""
    mu, scale = PARAMS[name]
    if library == "torch":
        mu, scale = torch.tensor(mu), torch.tensor(scale)
    elif library == "jax":
        mu, scale = jnp.asarray(mu, jnp.float32), jnp.asarray(scale, jnp.float32)
    key = jax.random.PRNGKey(0) if library == "jax" else 0
    p = make(name, mu, scale)
    n = 20000
    x = np.asarray(get_backend(p.mu).to_numpy(p.sample(n, key=key)), dtype=np.float64)
    assert x.shape == (n, D)
    cov = COV if name.startswith("mvn") else np.diag(SIG**2)
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(x.mean(0) - MU) < 4 * se_mean)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert np.all(np.abs(np.cov(x.T) - cov) < 5 * se_cov)
    # mirrored: the second half reflects the first through the mean
    pm = make(name, mu, scale, mirrored=True)
    xm = np.asarray(get_backend(pm.mu).to_numpy(pm.sample((6, 1), key=key)), dtype=np.float64)
    assert xm.shape == (6, 1, D)
    np.testing.assert_allclose(xm[:3] - MU, MU - xm[3:], atol=1e-5)
    with pytest.raises(InvalidArgumentError, match="even with mirrored"):
        pm.sample(5, key=key)


def test_same_key_same_draws_and_sample_carries_no_gradient() -> None:
    p = DiagNormal(np.zeros(3), 1.0)
    np.testing.assert_array_equal(p.sample(4, key=3), p.sample(4, key=3))
    assert not np.array_equal(p.sample(4, key=3), p.sample(4, key=4))
    be = get_backend("numpy")
    k = be.key(9)
    np.testing.assert_array_equal(p.sample(2, key=k), p.sample(2, key=k))
    mu = torch.zeros(3, requires_grad=True)
    pt = DiagNormal(mu, 0.5)
    assert not pt.sample(4, key=1).requires_grad
    r = pt.rsample(4, key=1)
    assert r.requires_grad
    torch.testing.assert_close(r.detach(), pt.sample(4, key=1))
    (g,) = torch.autograd.grad(r.sum(), mu)
    torch.testing.assert_close(g, torch.full((3,), 4.0))  # d(mu + sigma eps)/dmu summed over 4 draws
    pj = Normal(jnp.zeros(2), 1.0)
    g = jax.grad(lambda m: Normal(m, 1.0).sample(3, key=jax.random.PRNGKey(0)).sum())(jnp.zeros(2))
    np.testing.assert_array_equal(np.asarray(g), 0.0)
    assert pj.sample(3, key=jax.random.key(0)).shape == (3, 2)  # typed keys work too


def test_numbers_follow_the_array_parameters_backend_dtype() -> None:
    p = Normal(torch.zeros(2, dtype=torch.float64), 0.5)
    assert p.sigma.dtype == torch.float64 and isinstance(p.sigma, torch.Tensor)
    q = DiagNormal([0.0, 1.0], 2)
    assert isinstance(q.mu, np.ndarray) and q.mu.dtype == np.float64
    r = Normal(jnp.zeros(2, dtype=jnp.int32), jnp.ones(2))
    assert r.dtype == jnp.float32
    assert DiagNormal(np.zeros(2), 1.0).event_shape == (2,)
    assert DiagNormal(np.zeros((4, 2)), 1.0).batch_shape == (4,)
    assert Normal(np.zeros((4, 2)), 1.0).batch_shape == (4, 2)
    m = MultivariateNormal(np.zeros(2), covariance=np.eye(2) * 4)
    np.testing.assert_allclose(m.scale_tril, 2 * np.eye(2))
    np.testing.assert_allclose(MultivariateNormal(np.zeros(2), scale_tril=2 * np.eye(2)).covariance, 4 * np.eye(2))


def test_distributions_are_jax_pytrees_through_jit() -> None:
    p = MultivariateNormal(jnp.zeros(2), scale_tril=jnp.eye(2), mirrored=True)
    lp = jax.jit(lambda d, x: d.log_prob(x))(p, jnp.ones((3, 2)))
    np.testing.assert_allclose(np.asarray(lp), -1.0 - math.log(2 * math.pi), rtol=1e-6)
    leaves, treedef = jax.tree_util.tree_flatten(p)
    back = jax.tree_util.tree_unflatten(treedef, leaves)
    assert isinstance(back, MultivariateNormal) and back.mirrored and back.param_names == p.param_names
    g = jax.grad(lambda d: d.entropy())(DiagNormal(jnp.zeros(2), jnp.full(2, 2.0)))
    np.testing.assert_allclose(np.asarray(g.sigma), 0.5)  # d/dsigma sum log sigma


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: Normal(np.zeros(2), -1.0), InvalidArgumentError, "sigma must be positive"),
        (lambda: Normal(np.zeros(2), np.nan), InvalidArgumentError, "sigma must be positive"),
        (lambda: Normal(np.array([np.inf]), 1.0), InvalidArgumentError, "mu must be finite"),
        (lambda: Normal(np.zeros(2), np.ones(3)), InvalidArgumentError, "broadcast"),
        (lambda: DiagNormal(0.0, 1.0), InvalidArgumentError, "shape \\(..., d\\)"),
        (lambda: Normal("a", 1.0), InvalidTypeError, "mu must be a number or an array"),
        (lambda: Normal(torch.zeros(2), jnp.ones(2)), InvalidTypeError, "one backend"),
        (lambda: MultivariateNormal(np.zeros(2)), InvalidArgumentError, "exactly one"),
        (lambda: MultivariateNormal(np.zeros(2), np.eye(2), np.eye(2)), InvalidArgumentError, "exactly one"),
        (lambda: MultivariateNormal(np.zeros(2), covariance=np.eye(3)), InvalidArgumentError, "shape \\(2, 2\\)"),
        (lambda: MultivariateNormal(np.zeros(2), covariance=-np.eye(2)), InvalidArgumentError, "positive definite"),
        (lambda: MultivariateNormal(np.zeros(2), scale_tril=-np.eye(2)), InvalidArgumentError, "scale_tril"),
        (lambda: Normal(0.0, 1.0, mirrored=1), InvalidTypeError, "mirrored must be a bool"),
        (lambda: Normal(0.0, 1.0).sample(0), InvalidArgumentError, "n must be a positive int"),
        (lambda: Normal(0.0, 1.0).sample(2, key="seed"), InvalidTypeError, "key must be an int seed"),
        (lambda: Normal(jnp.zeros(1), 1.0).sample(2), InvalidArgumentError, "key is required on JAX"),
        (lambda: DiagNormal(np.zeros(2), 1.0).score(np.zeros((4, 3))), InvalidArgumentError, "sample_shape"),
    ],
)
def test_bad_input_raises_clear_errors(build, error, match) -> None:
    with pytest.raises(error, match=match):
        build()
