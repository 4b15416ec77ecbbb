"""The Gaussian read-outs of LM-MA-ES, the generic NES, ExpectationES and the Evolvability ES.

Each read-out (:meth:`~evostrat.strategies.base.Strategy.gaussian_readout`) must describe the
distribution the strategy's own ``ask`` samples from: the mean and the per-coordinate standard
deviations (``ES.stds_``, :func:`~evostrat.run.result.readout_stds`) are compared with a
Monte-Carlo estimate from ``ask`` (fixed seed, within 5 standard errors), on numpy and torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from evostrat import ES
from evostrat.backends import get_backend
from evostrat.run.result import readout_stds
from evostrat.strategies.evolvability import MaxVarES
from evostrat.strategies.expectation_es import ExpectationES
from evostrat.strategies.lm_ma_es import LMMAES
from evostrat.strategies.nes import NES
from evostrat.strategies.readout import host_readout, readout_covariance, resolve_readout

BACKENDS = ["numpy", pytest.param("torch", marks=pytest.mark.skipif(
    not __import__("importlib").util.find_spec("torch"), reason="torch not installed"))]
SCALES = np.array([1.0, 3.0, 10.0, 0.3, 2.0, 30.0])


def _ellipsoid(X: Any) -> Any:
    return ((X * get_backend(X).asarray(SCALES, dtype=X.dtype)) ** 2).sum(axis=1)


def _x0(backend: str, values: np.ndarray) -> Any:
    if backend == "torch":
        import torch
        return torch.as_tensor(values, dtype=torch.float64)
    return values


def _evolve(strategy: Any, backend: str, generations: int, sigma_dim: int = 6) -> Any:
    state = strategy.init(_x0(backend, np.linspace(1.0, 2.0, sigma_dim)), random_state=3)
    for _ in range(generations):
        X, state = strategy.ask(state)
        state = strategy.tell(state, X, _ellipsoid(X))
    return state


def _assert_matches_samples(strategy: Any, state: Any, draws: int = 6000) -> np.ndarray:
    """The read-out's mean and ``stds`` against ``draws`` samples of ``ask``; returns the stds."""
    be = get_backend(strategy.mean(state))
    rows, s = [], state
    while sum(len(r) for r in rows) < draws:
        X, s = strategy.ask(s)
        rows.append(np.asarray(be.to_numpy(X), dtype=np.float64))
    X = np.concatenate(rows)
    mean = np.asarray(be.to_numpy(strategy.mean(state)), dtype=np.float64)
    stds = readout_stds(strategy, state, be)
    r = host_readout(resolve_readout(strategy, state), be)
    np.testing.assert_allclose(r.mean, mean)
    n = X.shape[0] / 2  # mirrored pairs are not independent: half the rows count
    assert np.all(np.abs(X.mean(axis=0) - mean) < 5 * stds / np.sqrt(n))
    assert np.all(np.abs(X.std(axis=0) - stds) < 5 * stds / np.sqrt(2 * n)), (X.std(axis=0), stds)
    return stds


@pytest.mark.parametrize("backend", BACKENDS)
def test_lm_ma_es_readout_is_the_covariance_of_its_directions(backend: str) -> None:
    """Was: LM-MA-ES declared no read-out, so ``stds_`` was the isotropic ``sigma`` whatever its
    memory vectors had learnt (here [0.153] * 6 where the samples' stds spread over 0.098 .. 0.359)."""
    s = LMMAES(sigma0=0.5)
    state = _evolve(s, backend, 40)
    be = get_backend(state.mean)
    r = host_readout(s.gaussian_readout(state), be)
    assert r.covariance is None and r.A is None and r.U.shape == (6, s.resolved_memory(6))  # never dense
    P = np.asarray(be.to_numpy(s.directions(state, be.asarray(np.eye(6), dtype=state.mean.dtype))))
    sigma = float(be.to_numpy(state.sigma))
    np.testing.assert_allclose(readout_covariance(r), sigma**2 * P.T @ P, rtol=1e-10, atol=1e-14)
    stds = _assert_matches_samples(s, state)
    assert stds.max() / stds.min() > 2  # not the isotropic sigma it read before


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("family", ["diag_normal", "multivariate_normal", "low_rank_normal"])
def test_nes_readout_follows_its_gaussian_family(backend: str, family: str) -> None:
    """Was: the generic NES declared none: ``stds_`` was its largest marginal scale in every
    coordinate (``[3.0, 3.0, 3.0]`` for ``sigma0=[1, 2, 3]``)."""
    s = NES(sigma0=np.array([0.5, 1.0, 2.0, 0.2, 0.7, 1.5]), distribution=family, popsize=12)
    state = _evolve(s, backend, 15)
    _assert_matches_samples(s, state)
    es = ES("nes", sigma0=np.array([1.0, 2.0, 3.0]), strategy_options=dict(distribution=family), random_state=0)
    expected = [1.0, 2.0, 3.0] if family != "low_rank_normal" else np.sqrt([1.01, 4.04, 9.09])  # V = 0.1 sigma
    np.testing.assert_allclose(es.initialize(np.zeros(3)).stds_, expected, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("strategy", ["nes", "expectation_es"])
def test_student_t_readout_is_the_spread_of_its_draws(backend: str, strategy: str) -> None:
    """Was: a Student-t family declared no read-out, so ``stds_`` was the largest scale in every
    coordinate (``[3.0, 3.0]`` for ``sigma0=[1, 3]``, ``df=5``, whose draws spread
    ``[1.29, 3.87]``); now ``sigma sqrt(df / (df - 2))`` per coordinate, the draws' spread."""
    df, scales = 6, np.array([0.5, 1.0, 2.0, 0.2, 0.7, 1.5])
    options = dict(distribution="student_t", distribution_options={"df": df})
    s = NES(sigma0=scales, **options) if strategy == "nes" else ExpectationES(sigma0=scales, **options)
    state = s.init(_x0(backend, np.arange(6.0)), random_state=0)
    be = get_backend(s.mean(state))
    rows, st = [], state
    while sum(len(r) for r in rows) < 40000:
        X, st = s.ask(st)
        rows.append(np.asarray(be.to_numpy(X), dtype=np.float64))
    X = np.concatenate(rows)
    stds = readout_stds(s, state, be)
    np.testing.assert_allclose(stds, scales * np.sqrt(df / (df - 2)), rtol=1e-12)
    kurtosis = 3 + 6 / (df - 4)  # the sample std's standard error is std sqrt((kurtosis - 1) / (4 N))
    assert np.all(np.abs(X.std(axis=0) - stds) < 5 * stds * np.sqrt((kurtosis - 1) / (4 * len(X) / 2)))
    es = ES(strategy, sigma0=np.array([1.0, 3.0]), strategy_options=dict(options, distribution_options={"df": 5}),
            random_state=0)
    np.testing.assert_allclose(es.initialize(np.zeros(2)).stds_, np.array([1.0, 3.0]) * np.sqrt(5 / 3), rtol=1e-12)


def test_student_t_without_variance_reads_out_its_scale() -> None:
    """``df <= 2``: infinite variance; the read-out is the scale ``sigma`` (documented)."""
    for df in (1, 2):
        s = NES(sigma0=np.array([1.0, 3.0]), distribution="student_t", distribution_options={"df": df})
        state = s.init(np.zeros(2), random_state=0)
        np.testing.assert_allclose(readout_stds(s, state, get_backend(state.mean)), [1.0, 3.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_expectation_es_readout_has_per_coordinate_sigma(backend: str) -> None:
    """Was: ``stds_`` of ExpectationES was ``max(exp(log_sigma))`` in every coordinate."""
    s = ExpectationES(sigma0=np.array([0.5, 1.0, 2.0, 0.2, 0.7, 1.5]), popsize=20, lr=0.05)
    state = _evolve(s, backend, 10)
    stds = _assert_matches_samples(s, state)
    np.testing.assert_allclose(stds, np.exp(np.asarray(get_backend(state.mean).to_numpy(state.log_sigma))))
    es = ES("expectation_es", sigma0=np.array([1.0, 2.0, 3.0]), random_state=0)
    np.testing.assert_allclose(es.initialize(np.zeros(3)).stds_, [1.0, 2.0, 3.0], rtol=1e-12)  # was [3.0] * 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_evolvability_es_readout_is_its_fixed_diagonal(backend: str) -> None:
    s = MaxVarES(sigma0=np.array([0.5, 1.0, 2.0, 0.2, 0.7, 1.5]), popsize=100)
    state = s.init(_x0(backend, np.arange(6.0)), random_state=0)
    r = s.gaussian_readout(state)
    assert r.sigma is state.sigma and r.A is None and r.U is None
    _assert_matches_samples(s, state)


def test_stds_at_integer_coordinates_include_the_margin_scaling() -> None:
    """Was: with ``integer=`` (CMA-ES with margin) ``stds_`` was the strategy's ``sigma sqrt(C_jj)``
    without the margin's ``A_j``: about 2e-4 on integer coordinates whose rounded values
    ``m + A (x - m)`` still spread by about 0.3 (``A`` near 1500). Continuous ones are unchanged."""
    def f(X: Any) -> Any:
        return ((X - 0.3) ** 2).sum(axis=1)

    es = ES("cma_es", sigma0=2.0, integer=[True, True, True, False], max_evals=1500, random_state=0)
    es.fit(f, np.full(4, 3.0))
    runner, A = es.run_.runner, es.run_.integers.A
    assert A[:3].min() > 10 and A[3] == 1.0
    rows, state = [], runner.state
    for _ in range(600):
        X, state = runner.strategy.ask(state)
        rows.append(np.asarray(X))
    X = np.concatenate(rows)
    m = np.asarray(runner.state.mean)
    spread = (m + A * (X - m)).std(axis=0)  # what is rounded: the candidates' integer coordinates
    n = X.shape[0]
    assert np.all(np.abs(spread - es.stds_) < 5 * es.stds_ / np.sqrt(2 * n)), (spread, es.stds_)
    np.testing.assert_allclose(es.stds_ / A, readout_stds(runner.strategy, runner.state, runner.backend))
