"""ExpectationES: a user statistic in the ask/tell loop, on numpy, torch and JAX.

The conformance suite (tests/test_conformance.py) covers ask shapes, determinism
and state_dict round trips for every registered strategy, this one included.
Here: the three gradient paths agree on the same population (numpy closed form,
torch autograd, JAX ``jax.grad`` under ``jit``), a custom nested statistic gets
the analytic gradient, constant fitness leaves the state unchanged, and the
strategy converges through ``ES``.
"""

from __future__ import annotations

import numpy as np
import pytest

from evostrat import ES, expectation
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.problems import sphere
from evostrat.strategies.expectation_es import ExpectationES

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = jax.numpy

X0 = np.array([1.0, -0.5, 2.0, 0.3])


def _population(strategy: ExpectationES, seed: int = 0):
    state = strategy.init(X0, random_state=seed)
    X, state = strategy.ask(state)
    fitness = sphere(X) + np.sin(3 * X[:, 0])
    return state, X, fitness


@pytest.mark.parametrize("shaping", ["zscore", "centered_ranks", "none"])
@pytest.mark.parametrize("baseline", [None, "mean"])
def test_numpy_closed_form_matches_torch_and_jax_autodiff(shaping: str, baseline) -> None:
    """Same state, population and fitness: the gradients w.r.t. (mean, log_sigma) of the
    default statistic agree to float64 precision across the three paths."""
    s = ExpectationES(sigma0=np.array([0.5, 1.0, 0.2, 0.7]), fitness_shaping=shaping, baseline=baseline)
    state, X, fitness = _population(s)
    g_np = s.statistic_gradient(state, X, fitness)
    state_t = type(state)(*[torch.tensor(a) if isinstance(a, np.ndarray) and a.dtype == np.float64 else a for a in state])
    state_t = state_t._replace(opt_mean=None, opt_sigma=None)
    g_t = s.statistic_gradient(state_t, torch.tensor(X), torch.tensor(fitness))
    with jax.enable_x64(True):
        state_j = state._replace(
            mean=jnp.asarray(state.mean), log_sigma=jnp.asarray(state.log_sigma), opt_mean=None, opt_sigma=None
        )
        g_j = jax.jit(s.statistic_gradient)(state_j, jnp.asarray(X), jnp.asarray(fitness))
        g_j = [np.asarray(g) for g in g_j]
    for a, b, c in zip(g_np, g_t, g_j):
        assert np.abs(a).max() > 1e-3  # a real gradient, not zeros
        np.testing.assert_allclose(b.numpy(), a, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(c, a, rtol=1e-10, atol=1e-12)


def _maxvar(values, X, p):
    """Var_p[values] as nested expectations (MaxVar)."""
    m = expectation(values, X, p)
    return expectation((values - m) ** 2, X, p, baseline="mean")


@pytest.mark.parametrize("library", ["torch", "jax"])
def test_custom_nested_statistic_gets_the_analytic_gradient(library: str) -> None:
    """f(x) = x_0 under N(mean, diag(sigma^2)): Var[f] = sigma_0^2, so
    dVar/dlog sigma_0 = 2 sigma_0^2 = 2 (sigma_0 = 1) and every other partial is 0.
    popsize 20000: the estimator's standard error is ~0.03 (and the plug-in bias of
    the nested mean is O(1/n)); tolerance 0.2."""
    s = ExpectationES(popsize=20000, sigma0=1.0, statistic=_maxvar, fitness_shaping="none")
    x0 = torch.zeros(3, dtype=torch.float64) if library == "torch" else jnp.zeros(3)
    runner = s.initialize(x0, random_state=1)
    X = runner.ask()
    f = X[:, 0]
    g_mean, g_log_sigma = (s.statistic_gradient if library == "torch" else jax.jit(s.statistic_gradient))(
        runner.state, X, f
    )
    g_mean, g_log_sigma = np.asarray(runner.backend.to_numpy(g_mean)), np.asarray(runner.backend.to_numpy(g_log_sigma))
    np.testing.assert_allclose(g_log_sigma, [2.0, 0.0, 0.0], atol=0.2)
    np.testing.assert_allclose(g_mean, 0.0, atol=0.2)
    runner.tell(X, f)  # jitted tell with jax.grad inside on JAX
    sigma = runner.backend.to_numpy(runner.backend.xp.exp(runner.state.log_sigma))
    assert sigma[0] > 1.0 and np.all(np.isfinite(sigma))


def test_default_statistic_gradient_is_unbiased_with_mirrored_pairs() -> None:
    """The defaults (mirrored pairs, baseline="mean") with raw fitness f = ||x||^2 under
    N(mean, diag(sigma^2)): J = -E[f], so dJ/dmean = -2 mean and dJ/dlog sigma_k = -2 sigma_k^2.
    popsize 4 (2 pairs): the leave-one-out mean held the mirror image, which scaled these by
    4/3 and 2/3 (mean's gradient -1.33 for -1). Mean over 3000 generations' gradients within
    4 standard errors."""
    s = ExpectationES(popsize=4, sigma0=np.array([0.5, 1.0]), fitness_shaping="raw")
    mean = np.array([0.5, -1.0])
    g_mean, g_log_sigma = [], []
    for seed in range(3000):
        state = s.init(mean, random_state=seed)
        X, state = s.ask(state)
        a, b = s.statistic_gradient(state, X, (X**2).sum(1))
        g_mean.append(a)
        g_log_sigma.append(b)
    for g, ref in ((np.array(g_mean), -2 * mean), (np.array(g_log_sigma), -2 * np.array([0.5, 1.0]) ** 2)):
        se = g.std(0) / np.sqrt(len(g))
        assert np.all(np.abs(g.mean(0) - ref) < 4 * se), (g.mean(0), ref, se)

def test_custom_statistic_equal_to_the_default_gives_the_same_step() -> None:
    default = ExpectationES(sigma0=0.5, baseline=None)
    custom = ExpectationES(sigma0=0.5, baseline=None, statistic=lambda v, X, p: expectation(-v, X, p))
    a = default.initialize(torch.tensor(X0), random_state=3)
    b = custom.initialize(torch.tensor(X0), random_state=3)
    for _ in range(3):
        Xa, Xb = a.ask(), b.ask()
        a.tell(Xa, sphere(Xa))
        b.tell(Xb, sphere(Xb))
    torch.testing.assert_close(a.mean, b.mean, rtol=0, atol=0)


@pytest.mark.parametrize("library", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("shaping", ["zscore", "centered_ranks", "none"])
def test_constant_fitness_leaves_the_state_unchanged_without_nan(library: str, shaping: str) -> None:
    s = ExpectationES(sigma0=0.5, fitness_shaping=shaping, optimizer="sgd")
    x0 = {"numpy": X0, "torch": torch.tensor(X0), "jax": jnp.asarray(X0, jnp.float32)}[library]
    runner = s.initialize(x0, random_state=0)
    mean0 = np.asarray(runner.backend.to_numpy(runner.mean)).copy()
    for _ in range(2):
        X = runner.ask()
        runner.tell(X, np.full(runner.popsize, 7.25))
    mean = runner.backend.to_numpy(runner.mean)
    log_sigma = runner.backend.to_numpy(runner.state.log_sigma)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(log_sigma))
    np.testing.assert_array_equal(mean, mean0)
    np.testing.assert_allclose(log_sigma, np.log(0.5), rtol=1e-6)


def test_non_finite_fitness_ranks_worst_and_stays_finite() -> None:
    runner = ExpectationES(sigma0=0.5).initialize(X0, random_state=0, nonfinite="ignore")
    X = runner.ask()
    values = sphere(X)
    values[:3] = [np.nan, np.inf, -np.inf]
    runner.tell(X, values)
    assert np.all(np.isfinite(runner.mean)) and np.all(np.isfinite(runner.state.log_sigma))


@pytest.mark.parametrize("library", ["numpy", "torch", "jax"])
def test_es_estimator_solves_the_sphere(library: str) -> None:
    """dim 4, popsize 16, 300 generations (4800 evaluations), Adam lr 0.05."""
    x0 = {"numpy": X0, "torch": torch.tensor(X0, dtype=torch.float32), "jax": jnp.asarray(X0, jnp.float32)}[library]
    es = ES("expectation_es", sigma0=0.5, max_generations=300, random_state=0, strategy_options=dict(lr=0.05))
    es.fit(sphere, x0)
    assert es.fun_ < 1e-3, es.fun_
    assert es.n_evals_ == 300 * 16


@pytest.mark.parametrize(
    "options, error, match",
    [
        (dict(statistic=lambda v, X, p: v.mean()), InvalidArgumentError, "needs autodiff"),
        (dict(statistic="nes"), InvalidTypeError, "statistic must be a callable"),
        (dict(fitness_shaping="ranks"), InvalidArgumentError, "fitness_shaping must be one of"),
        (dict(baseline="median"), InvalidArgumentError, "baseline must be"),
        (dict(lr=-1.0), InvalidArgumentError, "lr must be a positive number"),
        (dict(popsize=7), InvalidArgumentError, "even with mirrored"),
    ],
)
def test_bad_hyper_parameters_raise_clear_errors(options, error, match) -> None:
    with pytest.raises(error, match=match):
        ExpectationES(**options).initialize(X0)


@pytest.mark.parametrize("library", ["torch", "jax"])
@pytest.mark.parametrize("strategy", ["expectation_es", "nes"])
def test_a_statistic_that_is_not_a_scalar_is_named(library: str, strategy: str) -> None:
    """A statistic returning a vector or a tuple got 'the function must return a scalar' (JAX: an
    AttributeError for a tuple); the error now names the strategy's statistic."""
    from evostrat import ES, expectation
    from evostrat.errors import InvalidArgumentError
    from evostrat.problems import sphere

    lib = pytest.importorskip(library)
    x0 = lib.ones(3, dtype=lib.float64) if library == "torch" else pytest.importorskip("jax.numpy").ones(3)

    def per_candidate(values, X, p):
        return -values

    def with_info(values, X, p):
        return expectation(-values, X, p), {"n": X.shape[0]}

    for statistic, got in [(per_candidate, r"shape \(\d+,\)"), (with_info, "tuple")]:
        with pytest.raises(InvalidArgumentError, match=rf"^statistic of strategy '{strategy}' must return a scalar "
                                                       rf"array \(to ascend\), got {got}"):
            ES(strategy, max_generations=2, random_state=0,
               strategy_options=dict(statistic=statistic)).fit(sphere, x0)


def _detached_statistics(library: str) -> dict:
    """Statistics whose value does not depend on the distribution's parameters."""
    stop = (lambda a: a.detach()) if library == "torch" else jax.lax.stop_gradient
    return {
        "mean fitness, no expectation": lambda values, X, p: -values.mean(),
        "stopped parameters": lambda values, X, p: expectation(
            -values, X, type(p)(*(stop(v) for v in p.params().values()))),
        "constant": lambda values, X, p: (torch.ones(()) if library == "torch" else jnp.ones(())),
    }


@pytest.mark.parametrize("library", ["torch", "jax"])
@pytest.mark.parametrize("strategy", ["expectation_es", "nes"])
def test_a_statistic_that_does_not_depend_on_the_parameters_is_refused(library: str, strategy: str) -> None:
    """A statistic built without the distribution (a plain mean of the values, stop_gradient /
    detach on p's parameters, a constant) got a zero gradient and the run silently stood still
    for max_generations; the gradient's structure (torch: no grad_fn; JAX: no JVP reaches the
    value) now gives an error naming the statistic, on JAX under jit too."""
    x0 = torch.ones(3, dtype=torch.float64) if library == "torch" else jnp.ones(3)
    for name, statistic in _detached_statistics(library).items():
        with pytest.raises(InvalidArgumentError, match=rf"^statistic of strategy '{strategy}' does not depend on "
                                                       r"the parameters it is differentiated in.*expectation"):
            ES(strategy, max_generations=2, random_state=0,
               strategy_options=dict(statistic=statistic)).fit(sphere, x0)


@pytest.mark.parametrize("library", ["torch", "jax"])
def test_a_statistic_that_depends_on_the_parameters_runs_under_the_check(library: str) -> None:
    """The check costs nothing where the statistic is fine: same steps as before, JAX under jit."""
    from evostrat.backends import get_backend

    be = get_backend(library)
    mean = be.asarray(np.array([0.5, -1.0]))
    g = be.grad(lambda m: be.xp.sum(m ** 2), (mean,), what="statistic")[0]
    np.testing.assert_allclose(be.to_numpy(g), [1.0, -2.0])
    if library == "jax":
        jitted = jax.jit(lambda m: be.grad(lambda a: jnp.sum(a ** 2), (m,), what="statistic")[0])
        np.testing.assert_allclose(np.asarray(jitted(mean)), [1.0, -2.0])
        with pytest.raises(InvalidArgumentError, match="^statistic does not depend"):
            jax.jit(lambda m: be.grad(lambda a: jnp.sum(jax.lax.stop_gradient(a)), (m,), what="statistic"))(mean)
    # unnamed: the documented zeros
    z = be.grad(lambda m: be.xp.sum(be.stop_gradient(m)), (mean,))[0]
    np.testing.assert_array_equal(be.to_numpy(z), [0.0, 0.0])


@pytest.mark.parametrize("library", ["torch", "jax"])
def test_maxvar_with_a_detached_statistic_is_refused(library: str) -> None:
    """A MaxVarES subclass whose statistic ignores p stood still; it is now named."""
    from evostrat import vectorized
    from evostrat.strategies.evolvability import MaxVarES

    class Detached(MaxVarES):
        def statistic(self, Z, X, p):
            return (Z ** 2).sum(1).mean()

    x0 = torch.ones(2, dtype=torch.float64) if library == "torch" else jnp.ones(2)
    with pytest.raises(InvalidArgumentError, match="^statistic of strategy 'maxvar_es' does not depend"):
        ES(Detached(), max_generations=2, random_state=0).fit(vectorized(lambda X: X), x0)


@pytest.mark.parametrize("strategy", ["expectation_es", "nes"])
def test_a_custom_statistic_on_numpy_says_how_to_get_autodiff(strategy: str) -> None:
    """The numpy refusal said 'needs autodiff (backend torch or jax)' without saying how to pick one;
    it now names the statistic argument and ES(..., backend=...), and following it runs."""
    def statistic(values, X, p):
        return expectation(-values, X, p)

    options = dict(max_generations=3, random_state=0, strategy_options=dict(statistic=statistic))
    with pytest.raises(InvalidArgumentError, match=r"^statistic: a custom statistic needs autodiff, which the "
                                                   r"numpy backend lacks.*ES\(\.\.\., backend='torch'\)"):
        ES(strategy, **options).fit(sphere, np.ones(3))
    for backend in ("torch", "jax"):
        assert ES(strategy, backend=backend, **options).fit(sphere, np.ones(3)).n_generations_ == 3
