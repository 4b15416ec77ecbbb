"""The declared Gaussian read-out (``Strategy.gaussian_readout``) behind injection and the recorder.

A strategy states how its state describes ``N(mean, sigma^2 C)``; the Mahalanobis clipping
of injected candidates (:mod:`evostrat.run.inject`) and :func:`distribution_summary` read
that declaration, never a state's field names.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import pytest

from evostrat.backends import get_backend
from evostrat.callbacks.recorder import distribution_summary
from evostrat.errors import InvalidTypeError
from evostrat.problems import sphere
from evostrat.run.inject import clip_length, clip_steps, mahalanobis_lengths
from evostrat.strategies.base import Strategy
from evostrat.strategies.cma_es import CMAES
from evostrat.strategies.readout import GaussianReadout
from evostrat.strategies.vkd_cma import VkDCMA

NUMPY = get_backend("numpy")
#: A lower-triangular factor: the plugin's search covariance is sigma^2 L L^T.
L = np.array([[2.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, -1.0, 3.0]])


class FactorState(NamedTuple):
    mean: Any
    sigma: Any  # 0-d
    B: Any  # (3, 3): the plugin's own bookkeeping, not an eigenbasis
    C: Any  # (3,): counts, not a diagonal covariance
    D: Any  # (3,): not square roots of eigenvalues
    key: Any


class FactorES(Strategy):
    """A third-party strategy sampling ``mean + sigma L z``; ``tell`` keeps the distribution."""

    def initial_state(self, x0: Any, key: Any, backend: Any) -> FactorState:
        xp = backend.xp
        return FactorState(x0, self.initial_sigma(x0, backend)[0], xp.full((3, 3), 7.0), xp.zeros(3),
                           xp.full(3, 1e-3), key)

    def ask(self, state: FactorState) -> tuple[Any, FactorState]:
        be = get_backend(state.mean)
        key, sub = be.split(state.key)
        Z = be.normal(sub, (self.resolved_popsize(3), 3), state.mean.dtype, be.device(state.mean))
        return state.mean + state.sigma * Z @ L.T, state._replace(key=key)

    def tell(self, state: FactorState, X: Any, fitness: Any) -> FactorState:
        return state

    def sigma(self, state: FactorState) -> Any:
        return state.sigma * np.sqrt(np.max(np.sum(L * L, axis=1)))


class DeclaredFactorES(FactorES):
    def gaussian_readout(self, state: FactorState) -> GaussianReadout:
        return GaussianReadout(state.mean, state.sigma, A=L, cma_clip=True)


def _reference_clip(mean: np.ndarray, x: np.ndarray, S: np.ndarray, bound: float) -> np.ndarray:
    """``x`` clipped to the Mahalanobis length ``bound`` under the covariance ``S`` (dense algebra)."""
    y = x - mean
    length = math.sqrt(y @ np.linalg.solve(S, y))
    return mean + y * min(1.0, bound / length)


def test_a_plugin_declaring_its_readout_gets_mahalanobis_clipping_and_summaries() -> None:
    s = DeclaredFactorES(sigma0=0.5)
    state = s.init(np.zeros(3), random_state=0)
    S = 0.25 * L @ L.T
    far = np.array([[40.0, -3.0, 1.0]])
    clipped = clip_steps(s, state, far, NUMPY)
    np.testing.assert_allclose(clipped[0], _reference_clip(np.zeros(3), far[0], S, clip_length(3)), rtol=1e-12)
    summary = distribution_summary(s, state, NUMPY)
    np.testing.assert_allclose(summary["stds"], np.sqrt(np.diag(S)), rtol=1e-12)
    np.testing.assert_allclose(summary["axes"], np.sqrt(np.linalg.eigvalsh(S)), rtol=1e-12)
    R = S / np.outer(np.sqrt(np.diag(S)), np.sqrt(np.diag(S)))
    np.testing.assert_allclose(summary["correlations"], np.linalg.eigvalsh(R), rtol=1e-10)


def test_a_plugin_with_fields_named_b_c_d_but_no_readout_is_seen_through_its_sigma() -> None:
    s = FactorES(sigma0=0.5)
    state = s.init(np.zeros(3), random_state=0)
    far = np.array([[40.0, -3.0, 1.0]])
    scale = float(s.sigma(state))  # isotropic: the largest standard deviation, sqrt(n) bound
    length = float(np.linalg.norm(far[0])) / scale
    np.testing.assert_allclose(mahalanobis_lengths(s, state, far, NUMPY), [length], rtol=1e-12)
    np.testing.assert_allclose(clip_steps(s, state, far, NUMPY)[0], far[0] * math.sqrt(3) / length, rtol=1e-12)
    summary = distribution_summary(s, state, NUMPY)
    assert summary["stds"] == summary["axes"] == [scale] * 3 and summary["correlations"] == [1.0] * 3


def test_a_readout_of_another_type_is_refused_naming_the_method() -> None:
    class Broken(FactorES):
        def gaussian_readout(self, state: FactorState) -> Any:
            return {"sigma": state.sigma}

    s = Broken(sigma0=0.5)
    with pytest.raises(InvalidTypeError, match=r"gaussian_readout\(state\) of strategy 'Broken' must return a "
                                               r"GaussianReadout or None, got dict"):
        distribution_summary(s, s.init(np.zeros(3), random_state=0), NUMPY)


def _run(strategy: Any, generations: int = 30, dim: int = 4) -> Any:
    s = strategy.initialize(np.linspace(1.0, 2.0, dim), random_state=0)
    for _ in range(generations):
        X = s.ask()
        s.tell(X, sphere(X * np.arange(1.0, dim + 1.0)))
    return s


def test_cma_es_factor_model_injection_is_clipped_under_its_covariance_with_hansens_bound() -> None:
    """Was: the factor model (``covariance="factor"``, the numpy default from 256 dimensions) had
    its injected steps measured isotropically by ``sigma(state)`` and clipped to ``sqrt(n)``
    (a far point at the start ended at length 2.0 in 4 dimensions instead of 3.33)."""
    s = _run(CMAES(sigma0=0.5, covariance="factor"))
    st = s.state
    A = float(st.scale) * st.A
    S = float(st.sigma) ** 2 * A @ A.T
    far = np.array([[30.0, -20.0, 5.0, 1.0]])
    mean = np.asarray(s.mean)
    np.testing.assert_allclose(clip_steps(s.strategy, st, far, s.backend)[0],
                               _reference_clip(mean, far[0], S, clip_length(4)), rtol=1e-9)
    start = CMAES(sigma0=1.0, covariance="factor").initialize(np.zeros(4), random_state=0)
    far = clip_steps(start.strategy, start.state, np.full((1, 4), 100.0), start.backend)
    assert np.isclose(np.linalg.norm(far), clip_length(4))  # was 2.0 = sqrt(4)


def test_vkd_cma_injection_and_summary_read_its_covariance_with_sigma() -> None:
    """Was: the recorder showed VkD-CMA's ``covariance(state)`` without ``sigma^2`` (stds 1.0 for
    ``sigma0=3``), and injected steps were measured isotropically by ``sigma(state)``."""
    start = VkDCMA(sigma0=3.0)
    state = start.init(np.zeros(4), random_state=0)
    assert distribution_summary(start, state, NUMPY)["stds"] == [3.0] * 4  # was [1.0] * 4
    s = _run(VkDCMA(sigma0=0.5, k=2), generations=40)
    st = s.state
    assert float(st.k) > 0  # the low-rank part is active
    inner = np.eye(4) + (st.V.T * st.s) @ st.V
    S = float(st.sigma) ** 2 * st.D[:, None] * inner * st.D[None, :]  # sigma^2 D (I + V^T diag(s) V) D
    np.testing.assert_allclose(distribution_summary(s.strategy, st, s.backend)["stds"], np.sqrt(np.diag(S)),
                               rtol=1e-10)
    far = np.array([[30.0, -20.0, 5.0, 1.0]])
    y = far[0] - np.asarray(s.mean)
    np.testing.assert_allclose(mahalanobis_lengths(s.strategy, st, y[None], s.backend),
                               [math.sqrt(y @ np.linalg.solve(S, y))], rtol=1e-9)
    np.testing.assert_allclose(clip_steps(s.strategy, st, far, s.backend)[0],
                               _reference_clip(np.asarray(s.mean), far[0], S, math.sqrt(4)), rtol=1e-9)


def _vkd_state(n: int, k: int, seed: int = 0) -> tuple[VkDCMA, Any]:
    """A VkD-CMA state with ``k`` random orthonormal directions, one of them with ``s = 0``."""
    s = VkDCMA(k=k, sigma0=0.7)
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(n, k)))
    excess = rng.uniform(0.5, 20.0, k)
    excess[-1] = 0.0
    state = s.init(np.zeros(n), random_state=0)._replace(
        mean=rng.normal(size=n), V=np.ascontiguousarray(Q.T), s=excess, D=rng.uniform(0.3, 3.0, n), k=np.asarray(k))
    return s, state


def test_vkd_cma_readout_is_low_rank_and_injection_lengths_equal_the_dense_algebra() -> None:
    """Was: VkD-CMA's read-out was its dense ``(n, n)`` covariance and injection eigen-decomposed
    it, ``O(n^3)`` (2.6 s a clip at ``n = 1000``, ``k = 10``); now ``diag(D^2) + U diag(s) U^T``
    read by the Woodbury identity, ``O(n k^2)``, the same lengths to rounding."""
    s, state = _vkd_state(7, 3)
    r = s.gaussian_readout(state)
    assert r.covariance is None and r.U.shape == (7, 3)
    S = 0.49 * s.covariance(state)  # sigma^2 D (I + V^T diag(s) V) D, dense
    Y = np.random.default_rng(1).normal(size=(5, 7)) * 10
    dense = np.sqrt(np.einsum("ij,ij->i", Y, np.linalg.solve(S, Y.T).T))
    np.testing.assert_allclose(mahalanobis_lengths(s, state, Y, NUMPY), dense, rtol=1e-12)
    X = state.mean + Y
    clipped = clip_steps(s, state, X, NUMPY)
    for row, x in zip(clipped, X):
        np.testing.assert_allclose(row, _reference_clip(state.mean, x, S, math.sqrt(7)), rtol=1e-12)
    summary = distribution_summary(s, state, NUMPY)
    np.testing.assert_allclose(summary["stds"], np.sqrt(np.diag(S)), rtol=1e-12)
    np.testing.assert_allclose(summary["axes"], np.sqrt(np.linalg.eigvalsh(S)), rtol=1e-10)


def test_vkd_cma_injection_at_large_dimension_builds_no_dense_matrix() -> None:
    s, state = _vkd_state(3000, 4)
    r = s.gaussian_readout(state)
    assert all(getattr(v, "ndim", 0) < 2 or v.shape[1] == 4 for v in r[:-1] if v is not None)
    y = np.random.default_rng(2).normal(size=(1, 3000))
    u = y[0] / (0.7 * state.D)  # the length through the model's own inverse (orthonormal V)
    expected = math.sqrt(u @ u - np.sum((state.V @ u) ** 2 * state.s / (1.0 + state.s)))
    np.testing.assert_allclose(mahalanobis_lengths(s, state, y, NUMPY), [expected], rtol=1e-10)
