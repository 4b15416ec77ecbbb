"""LM-MA-ES (Loshchilov, Glasmachers, Beyer 2019): the factor product and its inverse,
the paper's constants, convergence, O(m n) state (d = 100,000 in tests/test_high_dim_quality.py);
tests/test_conformance.py runs the conformance kit on every registered strategy, this one included."""

from __future__ import annotations

import numpy as np
import pytest

from evostrat import ES
from evostrat.errors import InvalidArgumentError
from evostrat.problems import ellipsoid, rosenbrock, sphere
from evostrat.strategies.lm_ma_es import LMMAES


def test_constants_are_the_papers() -> None:
    k = LMMAES().constants(1000)
    lam, m = 4 + int(3 * np.log(1000)), 4 + int(3 * np.log(1000))
    assert k["m"] == m == 24 and k["weights"].shape == (lam,)
    assert np.count_nonzero(k["weights"]) == lam // 2 and k["weights"].sum() == pytest.approx(1.0)
    assert k["c_s"] == pytest.approx(2 * lam / 1000)
    np.testing.assert_allclose(k["c_d"], 1 / (1.5 ** np.arange(m) * 1000))
    np.testing.assert_allclose(k["c_c"], lam / (4.0 ** np.arange(m) * 1000))
    assert LMMAES().constants(5)["c_s"] == 1.0  # the paper's 2 lambda / n = 2.8 is capped


def test_directions_apply_the_rank_one_factors_and_noise_inverts_them() -> None:
    s = LMMAES(memory=3)
    dim = 6
    state = s.init(np.zeros(dim), random_state=0)
    rng = np.random.default_rng(1)
    state = state._replace(M=rng.normal(size=(3, dim)), t=np.asarray(2.0))  # two factors active
    Z = rng.normal(size=(5, dim))
    c = s.constants(dim)["c_d"]
    T = np.eye(dim)
    for j in range(2):
        T = ((1 - c[j]) * np.eye(dim) + c[j] * np.outer(state.M[j], state.M[j])) @ T
    D = s.directions(state, Z)
    np.testing.assert_allclose(D, Z @ T.T, rtol=1e-12)
    np.testing.assert_allclose(s.noise(state, D), Z, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("f,budget,seed", [
    (sphere, 5000, 0), (rosenbrock, 40000, 1),
    pytest.param(ellipsoid, 250000, 0, marks=pytest.mark.slow),  # condition 1e6: ~110k-160k evaluations
])
def test_reaches_the_target_at_n_10(f, budget: int, seed: int) -> None:
    es = ES("lm_ma_es", sigma0=2.0, ftarget=1e-8, max_evals=budget, random_state=seed).fit(f, np.full(10, 3.0))
    assert es.stop_reason_ == "ftarget", (f.__name__, es.n_evals_, es.fun_)


def test_state_is_o_m_n() -> None:
    s = LMMAES(sigma0=0.5)
    state = s.init(np.ones(20_000), random_state=0)
    m = s.resolved_memory(20_000)
    nbytes = sum(np.asarray(v).nbytes for k, v in state._asdict().items() if k != "key")
    assert nbytes == (m + 2) * 20_000 * 8 + 16
    X, state = s.ask(state)
    state = s.tell(state, X, sphere(X))
    assert np.all(np.isfinite(state.M)) and np.any(state.M != 0) and not np.array_equal(state.mean, np.ones(20_000))



def test_step_size_increase_is_clipped_to_e_per_generation() -> None:
    # pycma's CSA clips |log sigma change| to 1 (max_delta_log_sigma); the paper's rule
    # sigma exp(c_s / 2 (|p_s|^2 / n - 1)) alone multiplied sigma by e^7 and more per generation
    # once lambda ~ n or above (c_s capped at 1, a selected z_w far longer than N(0, I / mu_w)).
    s = LMMAES(popsize=8)
    dim = 5
    state = s.init(np.zeros(dim), random_state=0)
    X = state.mean + state.sigma * np.outer(np.arange(1.0, 9.0), np.ones(dim))  # all along one line
    new = s.tell(state, X, np.arange(8.0))  # the best farthest out: |p_s|^2 / n - 1 > 2
    zw = s.constants(dim)["weights"] @ s.noise(state, (X - state.mean) / state.sigma)
    assert 0.5 * (s.constants(dim)["mu_w"] * zw @ zw / dim - 1) > 1.0  # the unclipped exponent
    assert float(new.sigma / state.sigma) == pytest.approx(np.e, rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_large_population_converges(seed: int) -> None:
    # popsize 128 at n = 5 (an IPOP restart's size): before the clip sigma diverged (overflow, then
    # tolx after ~190k evaluations with seed 1); with it ~9k evaluations
    es = ES("lm_ma_es", sigma0=2.0, popsize=128, ftarget=1e-8, max_evals=30000,
            random_state=seed).fit(sphere, np.full(5, 3.0))
    assert es.stop_reason_ == "ftarget", (es.n_evals_, es.fun_)


def test_per_coordinate_sigma0_is_refused_naming_it() -> None:
    # was: silently sigma = max(sigma0), every coordinate drawn with std 1.0
    with pytest.raises(InvalidArgumentError, match="sigma0 must be a number for lm_ma_es"):
        LMMAES(sigma0=np.array([1.0, 0.01, 1.0])).init(np.zeros(3), random_state=0)
    state = LMMAES(sigma0=np.full(3, 0.5)).init(np.zeros(3), random_state=0)
    assert float(state.sigma) == 0.5


def test_tells_equal_algorithm_1_written_densely() -> None:
    """Loshchilov, Glasmachers and Beyer (2019), Algorithm 1, with its constants written from the
    paper and the factors as one dense matrix (``z`` solved from ``d``, not Sherman-Morrison)."""
    n = 12
    lam, m = 4 + int(3 * np.log(n)), 4 + int(3 * np.log(n))
    mu = lam // 2
    w = np.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
    w /= w.sum()
    mu_w = 1 / np.sum(w**2)
    c_s = min(1.0, 2 * lam / n)
    c_d = 1 / (1.5 ** np.arange(m) * n)
    c_c = lam / (4.0 ** np.arange(m) * n)
    strategy = LMMAES(sigma0=0.6)
    state = strategy.init(np.linspace(-1.0, 1.0, n), random_state=2)
    mean, sigma, p, M = state.mean.copy(), 0.6, np.zeros(n), np.zeros((m, n))
    for t in range(6):
        X, state = strategy.ask(state)
        f = ellipsoid(X - 0.2)
        state = strategy.tell(state, X, f)
        P = np.eye(n)
        for j in range(min(t, m)):
            P = ((1 - c_d[j]) * np.eye(n) + c_d[j] * np.outer(M[j], M[j])) @ P
        d = (X[np.argsort(f)[:mu]] - mean) / sigma
        z = np.linalg.solve(P, d.T).T
        mean = mean + sigma * (w @ d)
        p = (1 - c_s) * p + np.sqrt(mu_w * c_s * (2 - c_s)) * (w @ z)
        M = (1 - c_c)[:, None] * M + np.sqrt(mu_w * c_c * (2 - c_c))[:, None] * (w @ z)
        sigma = sigma * np.exp(min(1.0, c_s / 2 * (p @ p / n - 1)))  # the clip at 1 (module notes)
        np.testing.assert_allclose(state.mean, mean, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(state.p_sigma, p, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(state.M, M, rtol=1e-8, atol=1e-10)
        assert float(state.sigma) == pytest.approx(sigma, rel=1e-10)
