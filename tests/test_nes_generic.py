"""The generic NES over registered distributions: the same update as SNES and xNES on the
same noise (numpy closed forms, torch and JAX autodiff), every built-in family searched by
name on every backend, plain/Adam steps for a family without Fisher information, errors."""

from __future__ import annotations

import numpy as np
import pytest

from evostrat import ES
from evostrat.backends import get_backend
from evostrat.errors import InvalidArgumentError, UnknownNameError
from evostrat.problems import sphere
from evostrat.strategies.nes import NES
from evostrat.strategies.snes import SNES
from evostrat.strategies.xnes import XNES
from evostrat.testing import check_strategy

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = jax.numpy

X0 = np.array([1.0, -2.0, 0.5, 3.0, -1.0, 2.0])
SIGMA0 = np.array([0.5, 1.0, 2.0, 0.3, 1.5, 0.8])


def on(name: str, a: np.ndarray):
    return {"numpy": a, "torch": torch.tensor(a, dtype=torch.float64), "jax": jnp.asarray(a, dtype=jnp.float32)}[name]


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("family", ["diag_normal", "normal"])
def test_generic_nes_reproduces_snes_on_the_same_noise(backend: str, family: str) -> None:
    snes, nes = SNES(sigma0=SIGMA0), NES(sigma0=SIGMA0, distribution=family)
    s_state, n_state = snes.init(on(backend, X0), random_state=3), nes.init(on(backend, X0), random_state=3)
    be = get_backend(backend)
    tol = 1e-5 if backend == "jax" else 1e-12
    for _ in range(3):
        Xs, s_state = snes.ask(s_state)
        Xn, n_state = nes.ask(n_state)
        np.testing.assert_allclose(be.to_numpy(Xn), be.to_numpy(Xs), rtol=tol, atol=tol)
        f = sphere(Xs)
        s_state, n_state = snes.tell(s_state, Xs, f), nes.tell(n_state, Xs, f)
        np.testing.assert_allclose(be.to_numpy(n_state.mean), be.to_numpy(s_state.mean), rtol=tol, atol=tol)
        np.testing.assert_allclose(be.to_numpy(n_state.params.sigma), be.to_numpy(s_state.sigma), rtol=tol)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_generic_nes_ranks_non_finite_values_worst_as_snes(backend: str) -> None:
    # NaN and +inf rank below every finite value; they used to tie with the worst finite one
    # (finite_fitness), which took the second best's utility away: another mean and sigma
    snes, nes = SNES(popsize=6, sigma0=SIGMA0), NES(popsize=6, sigma0=SIGMA0, distribution="diag_normal")
    s_state, n_state = snes.init(on(backend, X0), random_state=0), nes.init(on(backend, X0), random_state=0)
    be = get_backend(backend)
    tol = 1e-5 if backend == "jax" else 1e-12
    X, s_state = snes.ask(s_state)
    f = on(backend, np.array([1.0, np.nan, 2.0, np.nan, np.inf, np.nan]))
    s_state, n_state = snes.tell(s_state, X, f), nes.tell(n_state, X, f)
    np.testing.assert_allclose(be.to_numpy(n_state.mean), be.to_numpy(s_state.mean), rtol=tol, atol=tol)
    np.testing.assert_allclose(be.to_numpy(n_state.params.sigma), be.to_numpy(s_state.sigma), rtol=tol)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_generic_nes_reproduces_xnes_covariance_update(backend: str) -> None:
    xnes, nes = XNES(sigma0=SIGMA0), NES(sigma0=SIGMA0, distribution="multivariate_normal")
    x_state, n_state = xnes.init(on(backend, X0), random_state=1), nes.init(on(backend, X0), random_state=1)
    be = get_backend(backend)
    tol = 2e-5 if backend == "jax" else 1e-10
    X, _ = xnes.ask(x_state)  # told to both: the same noise (xNES draws it unaddressed)
    f = sphere(X) * on(backend, np.ones(X.shape[0]))
    x_state, n_state = xnes.tell(x_state, X, f), nes.tell(n_state, X, f)
    np.testing.assert_allclose(be.to_numpy(n_state.mean), be.to_numpy(x_state.mean), rtol=tol, atol=tol)
    np.testing.assert_allclose(be.to_numpy(n_state.params.covariance), be.to_numpy(xnes.covariance(x_state)),
                               rtol=tol, atol=tol)
    assert not np.allclose(be.to_numpy(n_state.params.covariance), np.diag(SIGMA0**2))  # it moved


@pytest.mark.parametrize("family,options", [
    ("diag_normal", None), ("normal", None), ("multivariate_normal", None),
    ("student_t", {"df": 3}), ("low_rank_normal", {"rank": 2}),
])
def test_every_built_in_family_is_searched_by_name(family: str, options) -> None:
    """On numpy (closed-form scores); the non-Gaussian family also on torch and JAX (autodiff)."""
    x0s = [np.full(4, 2.0)]
    if family == "student_t":
        x0s += [torch.full((4,), 2.0, dtype=torch.float64), jnp.full((4,), 2.0)]
    for x0 in x0s:
        es = ES("nes", strategy_options=dict(distribution=family, distribution_options=options),
                max_generations=150, random_state=0).fit(sphere, x0)
        assert float(es.fun_) < 1e-3 * 16, (family, type(x0), es.fun_)
        assert type(es.x_).__module__.split(".")[0] == type(x0).__module__.split(".")[0]


def test_natural_gradient_solves_and_plain_adam_makes_progress() -> None:
    natural = ES("nes", strategy_options=dict(distribution="student_t"), ftarget=1e-8,
                 max_evals=20000, random_state=0).fit(sphere, np.ones(6))
    assert natural.stop_reason_ == "ftarget"
    plain = ES("nes", strategy_options=dict(distribution="student_t", gradient="plain"),
               max_generations=300, random_state=0).fit(sphere, np.ones(6))
    assert plain.fun_ < 0.05 * 6 and plain.fun_ > natural.fun_
    # a family without a Fisher: tests/test_low_rank_fisher.py (every built-in Gaussian now has one)


def test_a_custom_statistic_needs_autodiff_and_is_used() -> None:
    with pytest.raises(InvalidArgumentError, match="custom statistic needs autodiff"):
        NES(statistic=lambda u, x, p: 0.0).init(np.ones(3), random_state=0)
    from evostrat import expectation

    s = NES(statistic=lambda u, x, p: 2.0 * len(x) * expectation(u, x, p))  # twice the default
    ref = NES()
    state, ref_state = s.init(torch.ones(3, dtype=torch.float64), random_state=0), ref.init(
        torch.ones(3, dtype=torch.float64), random_state=0)
    X, _ = s.ask(state)
    g, g_ref = s.gradient_of(state, X, sphere(X)), ref.gradient_of(ref_state, X, sphere(X))
    torch.testing.assert_close(g["mu"], 2 * g_ref["mu"])


def test_unknown_distribution_lists_the_installed() -> None:
    with pytest.raises(UnknownNameError, match="distribution must be one of .*'diag_normal'.*did you mean"):
        ES("nes", strategy_options=dict(distribution="diag_norml"), max_generations=2).fit(sphere, np.ones(3))


def test_conformance_kit() -> None:
    # every backend for the default family runs in tests/test_conformance.py (all registered strategies)
    assert "progress" in check_strategy(NES(distribution="student_t"), backends=["numpy"], budget=80)
    assert "progress" in check_strategy(NES(distribution="low_rank_normal", distribution_options={"rank": 1}),
                                        backends=["numpy"], budget=80)


def test_expectation_es_looks_its_distribution_up_in_the_registry() -> None:
    from evostrat.strategies.expectation_es import ExpectationES

    s = ExpectationES(distribution="student_t", distribution_options={"df": 4}, popsize=8)
    state = s.init(np.ones(3), random_state=0)
    X, _ = s.ask(state)
    assert type(s.search_distribution(state)).__name__ == "StudentT"
    f = sphere(X)
    g_np = s.statistic_gradient(state, X, f)  # closed form
    t_state = s.init(torch.ones(3, dtype=torch.float64), random_state=0)
    g_t = s.statistic_gradient(t_state, torch.tensor(X), torch.tensor(f))  # autodiff
    for a, b in zip(g_np, g_t):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-10, atol=1e-12)
    with pytest.raises(InvalidArgumentError, match="location and one positive scale"):
        ExpectationES(distribution="low_rank_normal").init(np.ones(3), random_state=0)


@pytest.mark.parametrize("family", ["student_t", "low_rank_normal"])
def test_seed_compressed_evaluation_gives_the_plain_run(family: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from evostrat.evaluators import ExecutorEvaluator

    def f(x):
        return float(np.sum(x * x))

    runs = {}
    with ThreadPoolExecutor(2) as pool:
        for seeded in (True, False):
            ev = ExecutorEvaluator(pool, seeded=seeded)
            es = ES("nes", strategy_options=dict(distribution=family), max_generations=5, random_state=0,
                    evaluator=ev).fit(f, np.ones(6))
            assert ev.last_shipped_["seeded"] is seeded
            runs[seeded] = (es.x_, es.fun_)
    np.testing.assert_array_equal(runs[True][0], runs[False][0])
    assert runs[True][1] == runs[False][1]


def test_a_family_whose_natural_gradient_returns_none_gets_a_clear_error() -> None:
    from evostrat.distributions import MultivariateNormal

    class Tril(MultivariateNormal):  # natural_gradient is None in the scale_tril parameterisation
        @classmethod
        def search_init(cls, mean, sigma, **options):
            return cls(mean, scale_tril=np.diag(sigma))

    s = NES(distribution=Tril)
    state = s.init(np.ones(3), random_state=0)
    X, state = s.ask(state)
    with pytest.raises(InvalidArgumentError, match="natural_gradient returned None.*gradient='plain'"):
        s.tell(state, X, sphere(X))
    plain = NES(distribution=Tril, gradient="plain")
    state = plain.tell(plain.init(np.ones(3), random_state=0), X, sphere(X))
    assert np.all(np.isfinite(state.params.scale_tril))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_multivariate_normal_search_stretched_along_a_slope_keeps_a_positive_definite_covariance(
        backend: str) -> None:
    # far from the optimum the sphere is a slope: the covariance stretches along it until
    # L expm(S) L^T is no longer positive definite in float64, where every Cholesky raised
    x0 = np.full(2, 1e8)
    x0 = torch.tensor(x0, dtype=torch.float64) if backend == "torch" else x0
    es = ES("nes", distribution="multivariate_normal", max_generations=150, random_state=1).fit(sphere, x0)
    assert es.stop_reason_ == "maxiter"
    cov = get_backend(backend).to_numpy(es.strategy_.state.params.covariance)
    np.linalg.cholesky(cov)
    assert np.all(np.isfinite(get_backend(backend).to_numpy(es.x_)))


@pytest.mark.parametrize("family,expected", [("multivariate_normal", XNES.default_lr(1)),
                                             ("diag_normal", 3 / 5)])
def test_generic_nes_default_rates_at_one_dimension_are_xness_and_sness(family: str, expected: float) -> None:
    # at d = 1 a (1, 1) covariance used to get SNES's rate 0.6 instead of xNES's 1.8
    nes = NES(popsize=6, sigma0=0.5, distribution=family)
    state = nes.init(np.ones(1), random_state=0)
    lrs = nes.resolved_lrs(nes.search_distribution(state))
    assert lrs == {"mu": 1.0, nes.search_distribution(state).param_names[1]: pytest.approx(expected)}
    if family == "multivariate_normal":  # hence the same update as xNES
        xnes = XNES(popsize=6, sigma0=0.5)
        x_state = xnes.init(np.ones(1), random_state=0)
        X, _ = xnes.ask(x_state)
        x_state, state = xnes.tell(x_state, X, X[:, 0] ** 2), nes.tell(state, X, X[:, 0] ** 2)
        np.testing.assert_allclose(state.params.covariance, xnes.covariance(x_state), rtol=1e-12)
