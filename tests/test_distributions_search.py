"""The distribution contract for searching: StudentT and LowRankNormal densities against
scipy, closed-form numpy scores against torch and JAX autodiff (1e-10), addressable rows,
Fisher information against Monte Carlo, retract, and the registry consumer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from evostrat.backends import get_backend
from evostrat.distributions import DiagNormal, MultivariateNormal, Normal
from evostrat.distributions.low_rank_normal import LowRankNormal
from evostrat.distributions.registry import distribution_class
from evostrat.distributions.student_t import StudentT, digamma_half_integer
from evostrat.errors import InvalidArgumentError, InvalidTypeError, UnknownNameError

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = jax.numpy

RNG = np.random.default_rng(7)
D, K = 5, 2
MU = RNG.normal(size=D)
SIG = RNG.uniform(0.5, 2.0, size=D)
V = RNG.normal(size=(D, K))
_A = RNG.normal(size=(D, D))
COV = _A @ _A.T + D * np.eye(D)


def families() -> dict:
    return {
        "normal": (Normal, (MU, SIG), {}),
        "diag_normal": (DiagNormal, (MU, SIG), {}),
        "multivariate_normal": (MultivariateNormal, (MU,), {"covariance": COV}),
        "student_t": (StudentT, (MU, SIG), {"df": 3}),
        "low_rank_normal": (LowRankNormal, (MU, SIG, V), {}),
    }


def build(name: str, convert=lambda a: a):
    cls, args, kw = families()[name]
    return cls(*map(convert, args), **{k: convert(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()})


def test_registry_is_consulted_and_unknown_names_list_the_installed() -> None:
    for name, (cls, _, _) in families().items():
        assert distribution_class(name) is cls
    assert distribution_class("Low-Rank-Normal") is LowRankNormal
    with pytest.raises(UnknownNameError) as info:
        distribution_class("studnet_t")
    message = str(info.value)
    assert "did you mean 'student_t'" in message
    assert all(name in message for name in families())
    with pytest.raises(InvalidTypeError, match="distribution must be a registered name"):
        distribution_class(3)


def test_student_t_density_and_entropy_match_scipy() -> None:
    p = StudentT(MU, SIG, df=3)
    x = p.sample(20, key=0)
    ref = stats.multivariate_t(loc=MU, shape=np.diag(SIG**2), df=3)
    np.testing.assert_allclose(p.log_prob(x), ref.logpdf(x), rtol=1e-12)
    np.testing.assert_allclose(float(p.entropy()), ref.entropy(), rtol=1e-12)
    from scipy.special import digamma

    for a in (0.5, 1.0, 2.5, 7.0, 10.5):
        assert digamma_half_integer(a) == pytest.approx(float(digamma(a)), abs=1e-13)


def test_low_rank_density_and_entropy_match_the_dense_gaussian() -> None:
    p = LowRankNormal(MU, SIG, V)
    cov = np.diag(SIG**2) + V @ V.T
    np.testing.assert_allclose(p.covariance, cov, rtol=1e-14)
    x = p.sample(20, key=1)
    ref = stats.multivariate_normal(MU, cov)
    np.testing.assert_allclose(p.log_prob(x), ref.logpdf(x), rtol=1e-12)
    np.testing.assert_allclose(float(p.entropy()), ref.entropy(), rtol=1e-12)
    np.testing.assert_allclose(p.marginal_scale(), np.sqrt(np.diag(cov)), rtol=1e-14)


@pytest.mark.parametrize("name", list(families()))
def test_numpy_closed_form_scores_match_torch_and_jax_autodiff(name: str) -> None:
    p = build(name)
    x = p.sample(7, key=3)
    closed = p.score(x)
    w = RNG.normal(size=7)
    weighted = p.weighted_score(x, w)

    tp = build(name, lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True))
    leaves = tp.tree_flatten()[0]
    for i in range(7):
        grads = torch.autograd.grad(tp.log_prob(torch.tensor(x[i])).sum(), leaves)
        for pname, g in zip(p.param_names, grads):
            np.testing.assert_allclose(closed[pname][i], g.numpy(), rtol=1e-10, atol=1e-10)

    with jax.enable_x64(True):
        jp = build(name, jnp.asarray)
        jleaves, aux = jp.tree_flatten()

        def total(*params):
            q = type(jp).tree_unflatten(aux, params)
            return jnp.sum(jnp.asarray(w) * q.log_prob(jnp.asarray(x)).reshape(7, -1).sum(axis=1))

        jgrads = [np.asarray(g) for g in jax.grad(total, argnums=tuple(range(len(jleaves))))(*jleaves)]
    for pname, g in zip(p.param_names, jgrads):
        np.testing.assert_allclose(weighted[pname], np.asarray(g), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(weighted[pname], np.tensordot(w, closed[pname], axes=(0, 0)),
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", list(families()))
def test_sample_rows_are_addressable(name: str) -> None:
    p = build(name)
    be = get_backend("numpy")
    key = be.key(5)
    full = p.sample_rows(key, range(9))
    assert full.shape == (9, D)
    np.testing.assert_array_equal(p.sample_rows(key, [4, 7]), full[[4, 7]])
    assert not np.array_equal(p.sample_rows(be.key(6), range(9)), full)


def test_student_t_sample_moments() -> None:
    p = StudentT(MU, SIG, df=6)
    x = p.sample(200_000, key=2)
    assert p.noise_dim == D + 6
    np.testing.assert_allclose(x.mean(0), MU, atol=0.02 * SIG.max())
    np.testing.assert_allclose(x.std(0), SIG * np.sqrt(6 / 4), rtol=0.02)
    m = StudentT(MU, SIG, df=2, mirrored=True).sample(6, key=0)
    np.testing.assert_allclose(m[:3] + m[3:], np.tile(2 * MU, (3, 1)), atol=1e-12)


def test_low_rank_sample_covariance() -> None:
    p = LowRankNormal(MU, SIG, V)
    x = p.sample(200_000, key=4)
    np.testing.assert_allclose(np.cov(x.T), p.covariance, atol=0.05 * np.abs(p.covariance).max())


@pytest.mark.parametrize("name", ["diag_normal", "student_t", "multivariate_normal"])
def test_natural_gradient_inverts_the_monte_carlo_fisher(name: str) -> None:
    """F^{-1} g in retract's coordinates, with F estimated as E[s s^T] of the local scores."""
    p = build(name)
    x = p.sample(400_000, key=9)
    s = p.score(x)
    if name == "multivariate_normal":
        L = np.linalg.cholesky(COV)
        # local coordinates of the covariance: S (symmetric), gradient L^T g L, upper triangle kept
        iu = np.triu_indices(D)
        gS = np.einsum("ji,njk,kl->nil", L, 0.5 * (s["covariance"] + np.swapaxes(s["covariance"], 1, 2)), L)
        weight = np.where(iu[0] == iu[1], 1.0, 2.0)  # off-diagonal S_ij appears twice
        feats = np.concatenate([s["mu"], gS[:, iu[0], iu[1]] * weight], axis=1)
    else:
        feats = np.concatenate([s["mu"], s["sigma"] * p.sigma], axis=1)
    F = feats.T @ feats / len(feats)
    g = RNG.normal(size=D)
    if name == "multivariate_normal":
        G = RNG.normal(size=(D, D))
        G = G + G.T
        nat = p.natural_gradient({"mu": g, "covariance": G})
        Gs = L.T @ G @ L
        vec = np.concatenate([g, Gs[iu] * weight])
        want = np.linalg.solve(F, vec)
        got = np.concatenate([nat["mu"], nat["covariance"][iu]])
    else:
        h = RNG.normal(size=D)
        nat = p.natural_gradient({"mu": g, "sigma": h})
        want = np.linalg.solve(F, np.concatenate([g, h * p.sigma]))
        got = np.concatenate([nat["mu"], nat["sigma"]])
    np.testing.assert_allclose(got, want, rtol=0.05, atol=0.05 * np.abs(want).max())


def test_retract_keeps_positive_parameters_positive_and_covariances_definite() -> None:
    p = StudentT(MU, SIG, df=3).retract({"mu": np.ones(D), "sigma": np.full(D, -50.0)})
    assert np.all(p.sigma > 0) and np.allclose(p.mu, MU + 1)
    q = MultivariateNormal(MU, covariance=COV).retract({"covariance": -3.0 * np.eye(D)})
    np.testing.assert_allclose(q.covariance, np.exp(-3.0) * COV, rtol=1e-10)
    assert np.all(np.linalg.eigvalsh(q.covariance) > 0)


def test_search_init_and_bad_options_name_the_argument() -> None:
    p = LowRankNormal.search_init(np.zeros(6), np.full(6, 2.0), rank=3)
    assert p.V.shape == (6, 3) and np.count_nonzero(p.V) == 6
    with pytest.raises(InvalidArgumentError, match="rank must be an int in"):
        LowRankNormal.search_init(np.zeros(6), np.ones(6), rank=7)
    with pytest.raises(InvalidArgumentError, match="distribution_options are \\['df'\\]"):
        StudentT.search_init(np.zeros(3), np.ones(3), rank=2)
    with pytest.raises(InvalidArgumentError, match="df must be a positive int"):
        StudentT(np.zeros(3), 1.0, df=2.5)
    with pytest.raises(InvalidArgumentError, match="V must have shape"):
        LowRankNormal(np.zeros(3), 1.0, np.zeros((4, 1)))
    with pytest.raises(InvalidArgumentError, match="takes no distribution_options"):
        DiagNormal.search_init(np.zeros(3), np.ones(3), df=3)
