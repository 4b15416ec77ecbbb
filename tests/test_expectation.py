"""expectation(): score-function derivatives of every order, on torch and JAX.

The reference problem (DESIGN.md sec. 6): ``p = Normal(mu = 1, sigma = 0.05)``,
``f(x) = -(x - 5)^2``. Then ``E[f] = -(mu - 5)^2 - sigma^2``, so
``d/dmu E[f] = -2 (mu - 5) = 8`` and ``d2/dmu2 E[f] = -2``.

Per-sample terms of the estimators (derived by hand). With ``eps_i = (x_i - mu) / sigma``,
``log p(x_i) = -eps_i^2 / 2 - log sigma - log(2 pi) / 2``, so
``d log p / dmu = eps_i / sigma`` and ``d2 log p / dmu2 = -1 / sigma^2``. The magic box
gives ``D box = box Dl`` and ``D2 box = box (Dl^2 + D2 l)``; with the baseline ``b_i``
(leave-one-out mean, gradients stopped) the estimate is ``mean_i T_i`` with::

    first  derivative: T_i = (v_i - b_i) eps_i / sigma
    second derivative: T_i = (v_i - b_i) (eps_i^2 - 1) / sigma^2

Both have mean 8 and -2 because ``E[eps] = 0``, ``E[eps^2 - 1] = 0`` and ``b_i`` is
independent of ``x_i``. The standard error is ``std(T) / sqrt(n)``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from evostrat import expectation
from evostrat.backends import get_backend
from evostrat.distributions import DiagNormal, MultivariateNormal, Normal
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.expectation import expectation_grad, gradient
from evostrat.distributions.magic_box import magic_box

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = jax.numpy

MU, SIGMA, N = 1.0, 0.05, 100_000


def f(x):
    return -((x - 5.0) ** 2)


def loo(v: np.ndarray) -> np.ndarray:
    return (v.sum() - v) / (v.size - 1)


def per_sample_terms(x: np.ndarray, baseline: bool) -> tuple[np.ndarray, np.ndarray]:
    """The hand-derived per-sample terms of the first and second derivative (module docstring)."""
    v = f(x)
    c = v - loo(v) if baseline else v
    eps = (x - MU) / SIGMA
    return c * eps / SIGMA, c * (eps**2 - 1) / SIGMA**2


def torch_derivatives(baseline: str | None, mirrored: bool = False, seed: int = 0):
    mu = torch.tensor(MU, dtype=torch.float64, requires_grad=True)
    p = Normal(mu, SIGMA, mirrored=mirrored)
    x = p.sample(N, key=seed)
    mean = expectation(f(x), x, p, baseline=baseline)
    (g,) = torch.autograd.grad(mean, mu, create_graph=True)
    (h,) = torch.autograd.grad(g, mu)
    return x.numpy(), float(mean.detach()), float(g.detach()), float(h)


def jax_derivatives(baseline: str | None, mirrored: bool = False, seed: int = 0):
    with jax.enable_x64(True):
        key = jax.random.PRNGKey(seed)
        x = Normal(jnp.float64(MU), SIGMA, mirrored=mirrored).sample(N, key=key)

        def mean(m):
            return expectation(f(x), x, Normal(m, SIGMA, mirrored=mirrored), baseline=baseline)

        m0 = jnp.float64(MU)
        g = jax.jit(jax.grad(mean))(m0)
        h = jax.jit(jax.grad(jax.grad(mean)))(m0)
        return np.asarray(x), float(mean(m0)), float(g), float(h)


DERIVATIVES = {"torch": torch_derivatives, "jax": jax_derivatives}


@pytest.mark.parametrize("library", ["torch", "jax"])
def test_first_and_second_derivative_within_3_standard_errors(library: str) -> None:
    """d/dmu E[f] = 8 and d2/dmu2 E[f] = -2, n = 100000, leave-one-out baseline."""
    x, value, g, h = DERIVATIVES[library](baseline="mean")
    t1, t2 = per_sample_terms(x, baseline=True)
    se1, se2 = t1.std() / math.sqrt(N), t2.std() / math.sqrt(N)
    assert abs(g - 8.0) < 3 * se1, (g, se1)
    assert abs(h - (-2.0)) < 3 * se2, (h, se2)
    # autodiff computes exactly the hand-derived estimator on these samples
    assert g == pytest.approx(t1.mean(), rel=1e-9, abs=1e-9)
    assert h == pytest.approx(t2.mean(), rel=1e-9, abs=1e-6)
    assert value == pytest.approx(f(x).mean(), rel=1e-12)


@pytest.mark.parametrize("library", ["torch", "jax"])
def test_second_derivative_is_sharp_with_mirrored_sampling(library: str) -> None:
    """Antithetic pairs cancel the odd part 160 eps (eps^2 - 1) of the second-derivative
    terms, leaving about -(eps^2 - 1)^2 (variance 56): SE ~ 0.03, so -2 is pinned down
    (a box whose derivative lacks the Dl^2 term would give about 0 here)."""
    x, _, g, h = DERIVATIVES[library](baseline="mean", mirrored=True, seed=3)
    n = x.shape[0]
    np.testing.assert_allclose(x[: n // 2] - MU, MU - x[n // 2 :], rtol=0, atol=1e-14)
    t1, t2 = per_sample_terms(x, baseline=True)
    pairs1 = 0.5 * (t1[: n // 2] + t1[n // 2 :])
    pairs2 = 0.5 * (t2[: n // 2] + t2[n // 2 :])
    se1 = pairs1.std() / math.sqrt(n // 2)
    se2 = pairs2.std() / math.sqrt(n // 2)
    assert se2 < 0.05
    assert abs(h + 2.0) < 3 * se2, (h, se2)
    assert abs(g - 8.0) < 3 * se1, (g, se1)


@pytest.mark.parametrize("library", ["torch", "jax"])
def test_without_baseline_the_estimator_is_the_plain_score_function(library: str) -> None:
    x, _, g, h = DERIVATIVES[library](baseline=None)
    t1, t2 = per_sample_terms(x, baseline=False)
    assert g == pytest.approx(t1.mean(), rel=1e-9)
    assert h == pytest.approx(t2.mean(), rel=1e-9)
    assert abs(g - 8.0) < 3 * t1.std() / math.sqrt(N)
    assert abs(h + 2.0) < 3 * t2.std() / math.sqrt(N)


def test_seed_api_torch_fills_mu_grad() -> None:
    """The seed's example, verbatim apart from the import."""
    torch.manual_seed(0)
    mu = torch.tensor([1.0], requires_grad=True)
    p = Normal(mu, 0.05)
    sample = p.sample(n=100)
    fitnesses = -((sample - 5) ** 2)
    mean = expectation(fitnesses, sample, p=p)
    mean.backward()
    assert sample.shape == (100, 1) and not sample.requires_grad
    assert mu.grad is not None and mu.grad.shape == (1,)
    v = fitnesses.detach().numpy()[:, 0]
    eps = (sample.numpy()[:, 0] - 1.0) / 0.05
    assert float(mu.grad[0]) == pytest.approx(float(np.mean(v * eps / 0.05)), rel=1e-4)
    assert float(mean.detach()) == pytest.approx(float(v.mean()), rel=1e-6)


def test_jax_grad_and_jit_of_a_function_building_the_distribution() -> None:
    def objective(mu, key):
        p = Normal(mu, 0.05)
        x = p.sample(1000, key=key)
        return expectation(-((x - 5.0) ** 2), x, p, baseline="mean")

    key = jax.random.PRNGKey(1)
    mu = jnp.asarray(1.0)
    g = jax.grad(objective)(mu, key)
    gj = jax.jit(jax.grad(objective))(mu, key)
    assert float(g) == pytest.approx(float(gj), rel=1e-5)
    assert abs(float(g) - 8.0) < 1.5  # n = 1000: SE ~ 0.4
    # a distribution is a pytree: gradients w.r.t. all its parameters at once
    x = Normal(1.0, 0.05).sample(1000, key=0)
    gp = jax.grad(lambda p: expectation(jnp.asarray(-((x - 5.0) ** 2)), jnp.asarray(x), p))(
        Normal(jnp.asarray(1.0), jnp.asarray(0.05))
    )
    assert isinstance(gp, Normal)
    closed = expectation_grad(-((x - 5.0) ** 2), x, Normal(1.0, 0.05))
    assert float(gp.mu) == pytest.approx(float(closed["mu"]), rel=1e-4)
    assert float(gp.sigma) == pytest.approx(float(closed["sigma"]), rel=1e-4)


# -- numpy closed form == autodiff on the same samples ------------------------------------------
def _cases():
    rng = np.random.default_rng(0)
    d = 3
    a = rng.normal(size=(d, d))
    cov = a @ a.T + d * np.eye(d)
    return {
        "normal-scalar": (lambda m, s: Normal(m, s), np.float64(0.3), np.float64(0.7)),
        "normal-vector": (lambda m, s: Normal(m, s), rng.normal(size=d), np.float64(0.7)),
        "diag": (lambda m, s: DiagNormal(m, s), rng.normal(size=d), rng.uniform(0.5, 1.5, d)),
        "mvn-tril": (lambda m, s: MultivariateNormal(m, scale_tril=s), rng.normal(size=d), np.linalg.cholesky(cov)),
        "mvn-cov": (lambda m, s: MultivariateNormal(m, covariance=s), rng.normal(size=d), cov),
    }


CASES = _cases()


def _values(x: np.ndarray, trailing: bool) -> np.ndarray:
    flat = x.reshape(x.shape[0], -1)
    v = np.sin(flat).sum(1) + (flat**2).sum(1)
    return np.stack([v, np.cos(flat).sum(1)], axis=1) if trailing else v


CLOSED_FORM_CASES = [
    pytest.param(name, baseline, False, id=f"{name}-{baseline}")
    for name in sorted(CASES)
    for baseline in (None, "mean")
] + [
    pytest.param(name, 0.5, True, id=f"{name}-0.5-trailing") for name in ("normal-vector", "mvn-tril")
]


@pytest.mark.parametrize("name, baseline, trailing", CLOSED_FORM_CASES)
def test_numpy_closed_form_equals_torch_and_jax_autodiff(name: str, baseline, trailing: bool) -> None:
    make, mu, scale = CASES[name]
    x = make(mu, scale).sample(64, key=1)
    v = _values(x, trailing)
    closed = expectation_grad(v, x, make(mu, scale), baseline=baseline)
    names = make(mu, scale).param_names
    k = v.shape[1] if trailing else 1

    def reduce(out, weights):
        return (out * weights).sum() if trailing else out

    w = np.arange(1.0, k + 1)  # contract trailing outputs to a scalar
    # torch
    tm = torch.tensor(mu, requires_grad=True)
    ts = torch.tensor(scale, requires_grad=True)
    out = expectation(torch.tensor(v), torch.tensor(x), make(tm, ts), baseline=baseline)
    gt = torch.autograd.grad(reduce(out, torch.tensor(w)), [tm, ts])
    # JAX
    with jax.enable_x64(True):
        vj, xj = jnp.asarray(v), jnp.asarray(x)
        gj = jax.grad(
            lambda m, s: reduce(expectation(vj, xj, make(m, s), baseline=baseline), jnp.asarray(w)),
            argnums=(0, 1),
        )(jnp.asarray(mu), jnp.asarray(scale))
    for i, pname in enumerate(names):
        ref = closed[pname]
        if trailing:
            ref = np.tensordot(w, ref, axes=([0], [0]))
        np.testing.assert_allclose(gt[i].numpy(), ref, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(np.asarray(gj[i]), ref, rtol=1e-10, atol=1e-10)


def test_numpy_expectation_is_the_sample_mean() -> None:
    p = DiagNormal(np.zeros(2), 1.0)
    x = p.sample(10, key=0)
    v = np.stack([x.sum(1), (x**2).sum(1)], axis=1)
    np.testing.assert_array_equal(expectation(v, x, p), v.mean(0))
    np.testing.assert_array_equal(expectation(v, x, p, baseline="mean"), v.mean(0))


# -- nested expectations -------------------------------------------------------------------------
def test_nested_expectation_matches_hand_derived_gradient() -> None:
    """Outer x ~ p = N(mu, s^2), N draws; for each, M = 4 inner draws y ~ q = N(theta, t^2);
    h = x + y; inner m_i = expectation(h_i., y_i., q) (the sample mean of h over j);
    g(m) = m^2; F = expectation(g(m), x, p).

    Derivation. Write H_i = mean_j h_ij (y_ij - theta) / t^2, the inner score estimate of
    dm/dtheta; autodiff of F gives the per-draw terms (gradients of x, y are stopped)

        dF/dmu    : A_i = m_i^2 (x_i - mu) / s^2
        dF/dtheta : B_i = 2 m_i H_i

    E[A] = d/dmu E[m^2] and E[m^2] = (mu + theta)^2 + s^2 + t^2 / M, so E[A] = 2 (mu + theta).
    For B, expand m_i H_i = (1/M^2) sum_{k,j} h_k h_j (y_j - theta)/t^2: the M(M-1) pairs
    k != j are independent given x and give (x + theta) * 1 each; the M terms k = j give
    E[(x + y)^2 (y - theta)] / t^2 = 2 (x + theta). So E[B | x] = 2 (x + theta)(M + 1) / M
    and E[B] = 2 (mu + theta)(1 + 1/M): composing expectations differentiates the plug-in
    g(mean), whose O(1/M) bias is the same nested-Monte-Carlo bias as the value's t^2 / M.
    With mu = 0.5, theta = 0.3: dF/dmu = 1.6, dF/dtheta = 2.0 (the naive 1.6 is ~45 SE off).
    """
    n, m_inner, mu0, th0, s, t = 200_000, 4, 0.5, 0.3, 0.5, 0.5
    mu = torch.tensor(mu0, dtype=torch.float64, requires_grad=True)
    th = torch.tensor(th0, dtype=torch.float64, requires_grad=True)
    p, q = Normal(mu, s), Normal(th, t)
    x = p.sample(n, key=11)
    y = q.sample((n, m_inner), key=12)
    h = x[:, None] + y
    inner = expectation(h, y, q, dim=1)
    assert inner.shape == (n,)
    F = expectation(inner**2, x, p)
    g_mu, g_th = torch.autograd.grad(F, [mu, th])
    xn, hn, yn = x.numpy(), h.numpy(), y.numpy()
    mi = hn.mean(1)
    A = mi**2 * (xn - mu0) / s**2
    B = 2 * mi * (hn * (yn - th0) / t**2).mean(1)
    assert float(g_mu) == pytest.approx(A.mean(), rel=1e-9)
    assert float(g_th) == pytest.approx(B.mean(), rel=1e-9)
    assert abs(float(g_mu) - 2 * (mu0 + th0)) < 3 * A.std() / math.sqrt(n)
    assert abs(float(g_th) - 2 * (mu0 + th0) * (1 + 1 / m_inner)) < 3 * B.std() / math.sqrt(n)
    value_terms = mi**2
    expected_value = (mu0 + th0) ** 2 + s**2 + t**2 / m_inner
    assert abs(float(F.detach()) - expected_value) < 3 * value_terms.std() / math.sqrt(n)


# -- constant values, alignment, the box --------------------------------------------------------
@pytest.mark.parametrize("library", ["numpy", "torch", "jax"])
def test_constant_values_give_zero_gradient_and_no_nan(library: str) -> None:
    v = np.full(50, 3.0)
    x = DiagNormal(np.zeros(2), 1.0).sample(50, key=2)
    if library == "numpy":
        g = expectation_grad(v, x, DiagNormal(np.zeros(2), 1.0), baseline="mean")
        grads = [g["mu"], g["sigma"]]
    elif library == "torch":
        grads = gradient(
            lambda m, s: expectation(torch.tensor(v), torch.tensor(x), DiagNormal(m, s), baseline="mean"),
            (torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)),
            get_backend("torch"),
        )
        grads = [g.numpy() for g in grads]
    else:
        grads = jax.grad(
            lambda m, s: expectation(jnp.asarray(v, jnp.float32), jnp.asarray(x, jnp.float32), DiagNormal(m, s), baseline="mean"),
            argnums=(0, 1),
        )(jnp.zeros(2), jnp.ones(2))
        grads = [np.asarray(g) for g in grads]
    for g in grads:
        assert np.all(np.isfinite(g))
        np.testing.assert_array_equal(g, 0.0)


def test_values_with_or_without_the_unit_axis_agree() -> None:
    mu = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    p = Normal(mu, 0.5)
    x = p.sample(200, key=3)
    v = -((x - 5.0) ** 2)  # (200, 1)
    (g1,) = torch.autograd.grad(expectation(v, x, p), mu)
    (g2,) = torch.autograd.grad(expectation(v[:, 0], x, p), mu)
    assert torch.allclose(g1, g2, rtol=1e-12)


def test_vector_draws_of_an_elementwise_normal_count_as_one_joint_draw() -> None:
    mu = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    x = Normal(mu, 1.0).sample(100, key=4)
    v = (x**2).sum(1)
    (g_elem,) = torch.autograd.grad(expectation(v, x, Normal(mu, 1.0)), mu)
    (g_diag,) = torch.autograd.grad(expectation(v, x, DiagNormal(mu, 1.0)), mu)
    assert torch.allclose(g_elem, g_diag, rtol=1e-12)


def test_shared_inner_draws_line_up_with_dim() -> None:
    """Inner draws shared across outer draws: values (n, m), sample (m,), dim=1."""
    th = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    q = Normal(th, 1.0)
    y = q.sample(7, key=5)
    outer = torch.arange(3, dtype=torch.float64)[:, None]
    v = outer * y[None, :]
    out = expectation(v, y, q, dim=1)
    assert out.shape == (3,)
    (g,) = torch.autograd.grad(out.sum(), th)
    expected = float((outer[:, 0].sum() * (y * y).mean()))
    assert float(g) == pytest.approx(expected, rel=1e-12)


def test_magic_box_is_one_and_differentiates_like_its_log() -> None:
    theta = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    l = 3 * theta**2
    b = magic_box(l)
    assert float(b.detach()) == 1.0
    (g,) = torch.autograd.grad(b, theta, create_graph=True)
    (h,) = torch.autograd.grad(g, theta)
    # d box = box l', d2 box = box (l'^2 + l'') with l' = 6 theta, l'' = 6
    assert float(g.detach()) == pytest.approx(6 * 0.7, rel=1e-12)
    assert float(h) == pytest.approx((6 * 0.7) ** 2 + 6, rel=1e-12)


# -- the leave-one-out baseline with mirrored pairs ---------------------------------------------
def test_mirrored_baseline_leaves_the_pair_out_and_stays_unbiased() -> None:
    """E over N(mu, sigma^2 I_2) of ||x||^2 has gradient 2 mu in mu and 2 d sigma in sigma.
    With mirrored draws the partner x_{i+n/2} = 2 mu - x_i is a function of x_i: a
    leave-one-out mean containing it scaled the mu-gradient by n / (n - 1) = 4/3 and the
    sigma-gradient by (n - 2) / (n - 1) = 2/3 (n = 4: 1.36 and 1.90 for 1.0 and 2.8).
    The mean over 4000 seeds lies within 4 standard errors of the analytic values."""
    mu0, s0, n, seeds = np.array([0.5, -1.0]), 0.7, 4, 4000
    g_mu, g_sigma = [], []
    for seed in range(seeds):
        p = DiagNormal(mu0, s0, mirrored=True)
        x = p.sample(n, key=seed)
        g = expectation_grad((x**2).sum(1), x, p, baseline="mean")
        g_mu.append(g["mu"])
        g_sigma.append(g["sigma"])
    g_mu, g_sigma = np.array(g_mu), np.array(g_sigma)
    se_mu, se_sigma = g_mu.std(0) / math.sqrt(seeds), g_sigma.std() / math.sqrt(seeds)
    assert np.all(np.abs(g_mu.mean(0) - 2 * mu0) < 4 * se_mu), (g_mu.mean(0), se_mu)
    assert abs(g_sigma.mean() - 2 * 2 * s0) < 4 * se_sigma, (g_sigma.mean(), se_sigma)


@pytest.mark.parametrize("library", ["numpy", "torch", "jax"])
def test_mirrored_baseline_is_the_leave_pair_out_mean_on_every_backend(library: str) -> None:
    """b_i = (sum_j v_j - v_i - v_{i+n/2}) / (n - 2): autodiff and the closed form give
    mean_i (v_i - b_i) score(x_i) with that b on the same draws."""
    mu0, s0 = np.array([0.5, -1.0, 2.0]), np.array([0.3, 0.7, 1.2])
    x = DiagNormal(mu0, s0, mirrored=True).sample(8, key=2)
    v = (x**2).sum(1) + np.sin(x).sum(1)
    b = (v.sum() - v - np.roll(v, 4)) / 6
    r = (x - mu0) / s0
    ref_mu = ((v - b)[:, None] * r / s0).mean(0)
    ref_sigma = ((v - b)[:, None] * (r**2 - 1) / s0).mean(0)
    if library == "numpy":
        g = expectation_grad(v, x, DiagNormal(mu0, s0, mirrored=True), baseline="mean")
        got = g["mu"], g["sigma"]
    elif library == "torch":
        tm, ts = torch.tensor(mu0, requires_grad=True), torch.tensor(s0, requires_grad=True)
        J = expectation(torch.tensor(v), torch.tensor(x), DiagNormal(tm, ts, mirrored=True), baseline="mean")
        got = [t.numpy() for t in torch.autograd.grad(J, [tm, ts])]
    else:
        with jax.enable_x64(True):
            got = jax.grad(lambda m, s: expectation(jnp.asarray(v), jnp.asarray(x), DiagNormal(m, s, mirrored=True),
                                                     baseline="mean"), argnums=(0, 1))(jnp.asarray(mu0), jnp.asarray(s0))
            got = [np.asarray(a) for a in got]
    np.testing.assert_allclose(got[0], ref_mu, rtol=1e-10)
    np.testing.assert_allclose(got[1], ref_sigma, rtol=1e-10)


def test_mirrored_baseline_needs_two_pairs() -> None:
    p = DiagNormal(np.zeros(2), 1.0, mirrored=True)
    x = p.sample(2, key=0)
    with pytest.raises(InvalidArgumentError, match=r"baseline='mean' with mirrored draws needs at least 2 antithetic"):
        expectation_grad(x.sum(1), x, p, baseline="mean")
    assert expectation_grad(x.sum(1), x, p)["mu"].shape == (2,)  # no baseline: fine
    x = p.sample(6, key=0)[:5]  # not the mirrored layout: no partner to leave out
    with pytest.raises(InvalidArgumentError, match=r"an even number of draws, 4 or more.*got 5"):
        expectation(x.sum(1), x, p, baseline="mean")


def test_a_differentiable_sample_is_refused_not_counted_twice() -> None:
    """Values of an rsample'd x carry the pathwise gradient and the magic box adds the score
    one: for E||x||^2 at mu = 1 that was 4 per coordinate instead of 2 mu = 2."""
    mu = torch.ones(3, requires_grad=True)
    p = DiagNormal(mu, 0.5)
    x = p.rsample(4000, key=0)
    with pytest.raises(InvalidArgumentError, match=r"sample must carry no gradient .*p\.sample"):
        expectation((x**2).sum(1), x, p, baseline="mean")
    x = p.sample(4000, key=0)  # the documented way: the score-function estimate of 2 mu
    (g,) = torch.autograd.grad(expectation((x**2).sum(1), x, p, baseline="mean"), mu)
    np.testing.assert_allclose(g.numpy(), 2.0, atol=0.3)

def test_a_dim_on_a_batch_axis_is_never_paired_elementwise() -> None:
    """Normal batch (3,), draws x (n, 3). values (3, n) along dim=1 with n = 3 looked like
    the elementwise layout (n, 3): value v[b, i] was weighted with the log-density of draw b,
    member i (the transpose) and the gradient was wrong; it is now the joint draw i, as for
    any n != 3. values (n, 3) with dim=1 averaged over batch members; now an error."""
    mu = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    p = Normal(mu, 0.7)
    x = p.sample(3, key=0)
    v = (x**2 + x).T  # (batch, draws)
    (g,) = torch.autograd.grad(expectation(v, x, p, dim=1).sum(), mu)
    xn, vn = x.numpy(), v.numpy()
    ref = (vn.sum(0)[:, None] * (xn - mu.detach().numpy()) / 0.49).mean(0)  # mean_i sum_b v[b, i] score(x_i)
    np.testing.assert_allclose(g.numpy(), ref, rtol=1e-12)
    with pytest.raises(InvalidArgumentError, match="values has 3 entries along dim=1 but sample has 5 draws"):
        expectation(Normal(np.zeros(3), 1.0).sample(5, key=0), Normal(np.zeros(3), 1.0).sample(5, key=0),
                    Normal(np.zeros(3), 1.0), dim=1)

# -- bad input -------------------------------------------------------------------------------------
def test_bad_arguments_raise_clear_errors() -> None:
    p = Normal(np.zeros(2), 1.0)
    x = p.sample(4, key=0)
    with pytest.raises(InvalidTypeError, match="p must be an evostrat distribution"):
        expectation(np.ones(4), x, object())
    with pytest.raises(InvalidArgumentError, match="dim must be in"):
        expectation(np.ones(4), x, p, dim=2)
    with pytest.raises(InvalidArgumentError, match="values has 5 entries along dim=0"):
        expectation(np.ones(5), x, p)
    with pytest.raises(InvalidArgumentError, match="baseline must be"):
        expectation(np.ones(4), x, p, baseline="median")
    with pytest.raises(InvalidArgumentError, match="sample axis"):
        expectation(np.float64(1.0), x, p)
    with pytest.raises(InvalidArgumentError, match="no autodiff"):
        gradient(lambda m: m, (np.zeros(2),), p.backend)
    with pytest.raises(InvalidArgumentError, match="one sample axis"):
        expectation_grad(np.ones((4, 3)), Normal(0.0, 1.0).sample((4, 3), key=0), Normal(0.0, 1.0))


# -- the three EvoGrad demos (examples/evograd_demos) ----------------------------------------------
@pytest.fixture(autouse=False)
def one_torch_thread():
    """The demos' (500, 500) kernels thrash when torch's intra-op threads compete with
    other processes on a small machine; one thread is faster there (results unchanged)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _demo(name: str):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "evograd_demos" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"evograd_demo_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("library", ["torch", "jax"])
def test_nes_demo_reaches_the_optimum_fast(library: str, one_torch_thread: None) -> None:
    """E[f] = -(mu - 5)^2 - sigma^2: plain ascent contracts mu - 5 by 1 - 2 lr = 0.94 per
    step, so 300 steps suffice; the stationary noise is ~0.01 (SE of the estimate ~0.09 x lr)."""
    trajectory = _demo("nes_mean").main(library, steps=300)
    assert abs(trajectory[-1] - 5.0) < 0.05


@pytest.mark.parametrize("library", ["torch", "jax"])
def test_maxvar_demo_moves_to_the_most_evolvable_point_fast(library: str, one_torch_thread: None) -> None:
    demo = _demo("maxvar")
    trajectory = demo.main(library, steps=400)
    assert abs(trajectory[-100:].mean() - demo.OPTIMUM) < 0.25


@pytest.mark.parametrize("library", ["torch", "jax"])
def test_maxent_demo_progresses_toward_the_most_evolvable_point_fast(library: str, one_torch_thread: None) -> None:
    """MaxEnt climbs slowly (about 5.7 after 300 steps, 7.5 after 1000): check progress
    from mu0 = 1 and no overshoot."""
    demo = _demo("maxent")
    trajectory = demo.main(library, steps=300)
    assert trajectory[-1] > 4.5
    assert trajectory.max() < demo.OPTIMUM + 0.3
    assert trajectory[-50:].mean() > trajectory[100:150].mean() > trajectory[:50].mean()


@pytest.mark.slow
@pytest.mark.parametrize("library", ["torch", "jax"])
@pytest.mark.parametrize("name, lr", [("nes_mean", 0.03), ("maxvar", 0.03), ("maxent", 0.10)])
def test_demo_full_2000_steps_slow(name: str, lr: float, library: str, one_torch_thread: None) -> None:
    """Population 500, sigma 0.5, mu0 = 1, 2000 steps (DESIGN.md sec. 6): NES reaches 5
    within 0.05; MaxVar/MaxEnt reach 5 pi / 2 = 7.854: the mean of the last 200 iterates
    within 0.1 (the iterates themselves fluctuate with sd ~0.1 at these settings), the
    last one within 0.35."""
    demo = _demo(name)
    trajectory = demo.main(library, steps=2000, lr=lr)
    if name == "nes_mean":
        assert abs(trajectory[-1] - 5.0) < 0.05
    else:
        assert abs(trajectory[-200:].mean() - demo.OPTIMUM) < 0.1
        assert abs(trajectory[-1] - demo.OPTIMUM) < 0.35


def test_demo_summary_names_the_steps_it_averages() -> None:
    """``--steps 50`` printed "mean of the last 200" for an average of 50 steps."""
    summary = _demo("maxvar").summary  # _loop's, which maxvar and maxent print
    assert summary(np.arange(1.0, 51.0), 7.854) == (
        "mu after 50 steps: 50.0000, mean of the last 50: 25.5000 (optimum 7.8540)")
    assert "mean of the last 200: 1900.5000" in summary(np.arange(1.0, 2001.0), 7.854)
