"""Mahalanobis lengths and clipping of injected steps under each declared covariance form.

:mod:`evostrat.run.inject` measures a step ``y`` as ``sqrt(y^T (sigma^2 C)^-1 y)`` from the form
in which the strategy declares ``C`` (``B`` and ``D``, a factor ``A``, a dense matrix, a
diagonal plus directions, a diagonal), and clips it to ``c_y = sqrt(n) + 2n / (n + 2)`` (Hansen
2011, arXiv:1110.4181) for the CMA family. Each form is checked here against dense linear
algebra on a learned, ill-conditioned covariance: with ``C = I`` (a run's start) a wrong power of
``D`` or a product for a quotient gives the same lengths. Written from mutating
``evostrat/run/inject.py``: CMA-ES's own ``B``/``D`` form, the dense form, the low-rank form
without a diagonal and the non-finite row had no test that could fail.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import pytest
from test_gaussian_readout import _reference_clip

from evostrat.backends import get_backend
from evostrat.problems import sphere
from evostrat.run.inject import clip_length, clip_steps, low_rank_quadratic, mahalanobis_lengths
from evostrat.strategies.base import Strategy
from evostrat.strategies.cma_es import CMAES
from evostrat.strategies.readout import GaussianReadout
from evostrat.strategies.sep_cma_es import SepCMAES
from evostrat.strategies.vkd_cma import VkDCMA

NUMPY = get_backend("numpy")
FAR = np.array([[30.0, -20.0, 5.0, 1.0], [0.5, 0.25, -0.5, 1.0]])  # one clipped, one (near the mean) not


def _learned(strategy: Any, generations: int = 40) -> Any:
    """A run of ``strategy`` on an ellipsoid (scales 1..1000): its covariance far from ``I``."""
    s = strategy.initialize(np.linspace(1.0, 2.0, 4), random_state=0)
    scales = 10.0 ** np.linspace(0, 3, 4)
    for _ in range(generations):
        X = s.ask()
        s.tell(X, sphere(X * scales))
    return s


def _dense_lengths(Y: np.ndarray, S: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("ij,ij->i", Y, np.linalg.solve(S, Y.T).T))


def _dense_clip(mean: np.ndarray, X: np.ndarray, S: np.ndarray, bound: float) -> np.ndarray:
    """Each row of ``X`` clipped by ``test_gaussian_readout``'s dense reference."""
    return np.array([_reference_clip(mean, x, S, bound) for x in X])


def test_cma_es_steps_are_measured_under_b_diag_d2_bt() -> None:
    s = _learned(CMAES(sigma0=0.5))
    r = s.strategy.gaussian_readout(s.state)
    B, D, sigma = np.asarray(r.B), np.asarray(r.D), float(r.sigma)
    assert D.max() / D.min() > 10  # learned: far from the identity
    S = sigma**2 * (B * D**2) @ B.T
    mean = np.asarray(s.mean)
    np.testing.assert_allclose(mahalanobis_lengths(s.strategy, s.state, FAR - mean, NUMPY),
                               _dense_lengths(FAR - mean, S), rtol=1e-9)
    clipped = clip_steps(s.strategy, s.state, FAR, NUMPY)
    np.testing.assert_allclose(clipped, _dense_clip(mean, FAR, S, clip_length(4)), rtol=1e-9)
    assert _dense_lengths(clipped - mean, S)[0] == pytest.approx(clip_length(4), rel=1e-9)


def test_sep_cma_es_steps_are_measured_under_its_diagonal() -> None:
    s = _learned(SepCMAES(sigma0=0.5))
    r = s.strategy.gaussian_readout(s.state)
    S = float(r.sigma) ** 2 * np.diag(np.asarray(r.diagonal))
    mean = np.asarray(s.mean)
    np.testing.assert_allclose(mahalanobis_lengths(s.strategy, s.state, FAR - mean, NUMPY),
                               _dense_lengths(FAR - mean, S), rtol=1e-9)


class DenseState(NamedTuple):
    mean: Any
    sigma: Any
    key: Any


#: A lower-triangular factor, and the symmetric positive-definite covariance it makes.
FACTOR = np.array([[2.0, 0.0, 0.0, 0.0], [0.7, 1.2, 0.0, 0.0], [0.0, -0.3, 0.6, 0.0], [0.15, 0.05, 0.2, 0.1]])
COVARIANCE = FACTOR @ FACTOR.T


class DenseES(Strategy):
    """A third-party strategy declaring ``N(mean, sigma^2 COVARIANCE)`` as a dense matrix."""

    def initial_state(self, x0: Any, key: Any, backend: Any) -> DenseState:
        return DenseState(x0, self.initial_sigma(x0, backend)[0], key)

    def ask(self, state: DenseState) -> tuple[Any, DenseState]:
        raise NotImplementedError  # only the read-out is used

    def tell(self, state: DenseState, X: Any, fitness: Any) -> DenseState:
        return state

    def gaussian_readout(self, state: DenseState) -> GaussianReadout:
        return GaussianReadout(state.mean, state.sigma, covariance=COVARIANCE, cma_clip=True)


def test_a_dense_covariance_is_read_as_declared() -> None:
    s = DenseES(sigma0=0.5)
    state = s.init(np.zeros(4), random_state=0)
    S = 0.25 * COVARIANCE
    np.testing.assert_allclose(mahalanobis_lengths(s, state, FAR, NUMPY), _dense_lengths(FAR, S), rtol=1e-9)
    np.testing.assert_allclose(clip_steps(s, state, FAR, NUMPY), _dense_clip(np.zeros(4), FAR, S, clip_length(4)),
                               rtol=1e-9)


@pytest.mark.parametrize("with_diagonal", [False, True], ids=["unit diagonal", "diagonal"])
def test_low_rank_quadratic_is_the_dense_inverse_for_several_directions(with_diagonal: bool) -> None:
    rng = np.random.default_rng(4)
    n, k = 6, 3
    U = np.linalg.qr(rng.standard_normal((n, k)))[0] * np.array([1.0, 2.0, 0.5])  # columns of lengths 1, 2, 0.5
    s = np.array([2.0, 0.0, -1.0])  # a zero and a negative entry (-1 * 0.5**2), C still positive definite
    diagonal = rng.uniform(0.5, 3.0, n) if with_diagonal else None
    C = np.diag(np.ones(n) if diagonal is None else diagonal) + (U * s) @ U.T
    assert np.linalg.eigvalsh(C).min() > 0
    Y = rng.standard_normal((5, n))
    np.testing.assert_allclose(low_rank_quadratic(diagonal, U, s, Y),
                               np.einsum("ij,ij->i", Y, np.linalg.solve(C, Y.T).T), rtol=1e-10)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_row_becomes_the_mean(bad: float) -> None:
    """As pycma's injection: a row that is not finite moves nothing (the mean is told)."""
    s = _learned(CMAES(sigma0=0.5), generations=5)
    X = FAR.copy()
    X[0, 2] = bad
    clipped = clip_steps(s.strategy, s.state, X, NUMPY)
    np.testing.assert_array_equal(clipped[0], np.asarray(s.mean))
    np.testing.assert_array_equal(clipped[1], clip_steps(s.strategy, s.state, FAR, NUMPY)[1])


def test_vkd_cma_short_and_long_steps_are_measured_under_its_low_rank_covariance() -> None:
    """The diagonal-plus-directions form (Woodbury) for a step shorter than one standard length
    as well as a long one: neither is rounded to a floor."""
    s = _learned(VkDCMA(sigma0=0.5, k=2), generations=40)
    st = s.state
    assert float(st.k) > 0  # the low-rank part is active
    inner = np.eye(4) + (st.V.T * st.s) @ st.V
    S = float(st.sigma) ** 2 * st.D[:, None] * inner * st.D[None, :]  # sigma^2 D (I + V^T diag(s) V) D
    Y = np.array([[30.0, -20.0, 5.0, 1.0], [3e-3, -2e-3, 5e-4, 1e-4]])
    lengths = mahalanobis_lengths(s.strategy, st, Y, NUMPY)
    assert lengths[1] < 1.0 < lengths[0]
    np.testing.assert_allclose(lengths, _dense_lengths(Y, S), rtol=1e-9)
