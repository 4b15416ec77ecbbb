"""CMA-ES with the factor model of C (evostrat.kernels.cma_factor): no decomposition.

The fast tests check the algebra (the factor's C is the covariance that eq. 47 gives from
the same generation, its stored inverse is the inverse, the paths follow the tutorial's
formulas), the choice of the model, the reuse of the asked draws, the criteria, and that a
checkpointed run resumes bit for bit. The slow test compares evaluations to 1e-8 with pycma.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evostrat import ES
from evostrat.backends import get_backend
from evostrat.checkpoint import checkpoint_info
from evostrat.errors import InvalidArgumentError
from evostrat.problems import ellipsoid, rosenbrock, sphere
from evostrat.strategies.cma_base import candidate_weights
from evostrat.strategies.cma_es import CMAES, FACTOR_DIM, CMAESState, CMAFactorState

import array_api_compat.numpy as xp


def _cov(state: CMAFactorState) -> np.ndarray:
    A = state.scale * state.A
    return A @ A.T


def _reference(s: CMAES, state: CMAFactorState, X: np.ndarray, f: np.ndarray) -> dict[str, Any]:
    """One generation from the tutorial's formulas (eqs. 41-47) with C^{-1/2} -> A^{-1}, in the
    units of ``state`` (before any rescaling of C into sigma)."""
    n = state.mean.shape[0]
    p = s.parameters(n)
    c = s.constants(get_backend("numpy"), n, state.mean.dtype, None)
    w_mean, w_cov = candidate_weights(f, c.cumulative, xp)
    Y = (X - state.mean) / state.sigma
    A_inv = state.A_inv / state.scale
    Zt = Y @ A_inv.T
    y_w = w_mean @ Y
    ps = (1 - p.cs) * state.ps + math.sqrt(p.cs * (2 - p.cs) * p.mueff) * (w_mean @ Zt)
    g = int(state.generation) + 1
    hsig = float(ps @ ps / (1 - (1 - p.cs) ** (2 * g)) < n * (2 + 4 / (n + 1)))  # pycma's h_sigma
    pc = (1 - p.cc) * state.pc + hsig * math.sqrt(p.cc * (2 - p.cc) * p.mueff) * y_w
    w_o = np.where(w_cov < 0, w_cov * n / np.maximum(np.sum(Zt * Zt, axis=1), c.tiny * n), w_cov)
    decay = 1 - p.c1 - p.cmu * p.sum_weights + p.c1 * p.cc * (2 - p.cc) * (1 - hsig)
    C = decay * _cov(state) + (Y.T * (p.cmu * w_o)) @ Y + p.c1 * np.outer(pc, pc)
    return dict(C=C, mean=state.mean + state.sigma * y_w, ps=ps, pc=pc)


@pytest.mark.parametrize("dim", [5, 30])  # fewer and more dimensions than rank-one terms
@pytest.mark.parametrize("how", ["asked", "copy", "moved"])
def test_factor_update_is_the_covariance_update(dim: int, how: str) -> None:
    """scale^2 A A^T equals eq. 47's C after each generation, A_inv is A's inverse, pz = A^-1 pc,
    and diag_C, mean and the paths are the tutorial's; whether tell gets the asked population,
    a copy of it (the draws are reused) or moved candidates (whitened with A_inv)."""
    s = CMAES(sigma0=0.5, covariance="factor")
    state = s.init(np.linspace(1.0, 3.0, dim), random_state=1)
    assert isinstance(state, CMAFactorState)
    rng = np.random.default_rng(0)
    for _ in range(60):
        X, asked = s.ask(state)
        if how == "copy":
            X = X.copy()
        elif how == "moved":
            X = X + 1e-3 * rng.standard_normal(X.shape)
        f = rosenbrock(X)
        ref = _reference(s, asked, X, f)
        new = s.tell(asked, X, f)
        units = math.exp(float(new.log_scale - asked.log_scale))  # C moved into sigma
        C = _cov(new) * units
        np.testing.assert_allclose(C, ref["C"], rtol=1e-10, atol=1e-12 * np.abs(ref["C"]).max())
        np.testing.assert_allclose(new.diag_C * units, np.diag(ref["C"]), rtol=1e-9)
        np.testing.assert_allclose(new.mean, ref["mean"], rtol=1e-13)
        np.testing.assert_allclose(new.ps, ref["ps"], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(new.pc * math.sqrt(units), ref["pc"], rtol=1e-9, atol=1e-14)
        A, A_inv = new.scale * new.A, new.A_inv / new.scale
        np.testing.assert_allclose(A @ A_inv, np.eye(dim), atol=1e-10)
        np.testing.assert_allclose(new.pz, A_inv @ new.pc, rtol=1e-8, atol=1e-12)
        state = new
    assert int(state.generation) == 60


def test_long_run_keeps_the_factor_consistent_and_converges() -> None:
    """Hundreds of generations (``scale`` folded into the factor, C rescaled into sigma):
    the stored inverse stays the inverse and the run reaches 1e-10 on a rotated problem."""
    s = CMAES(sigma0=1.0, covariance="factor")
    n = 8
    R = np.linalg.qr(np.random.default_rng(3).standard_normal((n, n)))[0]

    def rotated(X: np.ndarray) -> np.ndarray:
        return ellipsoid(X @ R.T)

    state = s.init(np.full(n, 2.0), random_state=0)
    folded = False
    for _ in range(500):
        X, state = s.ask(state)
        state = s.tell(state, X, rotated(X))
        folded |= bool(state.scale == 1.0) and int(state.generation) > 1
        if rotated(state.mean[None])[0] < 1e-10:
            break
    assert rotated(state.mean[None])[0] < 1e-10 and folded
    A, A_inv = state.scale * state.A, state.A_inv / state.scale
    assert np.abs(A @ A_inv - np.eye(n)).max() < 1e-9
    # the power-iteration estimates bracket from inside the true extreme eigenvalues
    true = np.sqrt(np.linalg.eigvalsh(A @ A.T))
    assert true[0] * (1 - 1e-9) <= state.D[0] and state.D[1] <= true[-1] * (1 + 1e-9)
    assert state.D[1] / state.D[0] > 0.3 * true[-1] / true[0]


def test_buffers_are_reused_only_when_no_state_holds_them() -> None:
    """Factor updates write into the buffers of dropped states only: a run that keeps every
    state (and copies of their factors) and a run that drops them agree bit for bit, and
    the kept states are unchanged."""
    def run(keep: bool) -> list[Any]:
        s = CMAES(sigma0=0.5, covariance="factor")
        state = s.init(np.linspace(-1.0, 1.0, 20), random_state=4)
        kept = []
        for _ in range(25):
            X, state = s.ask(state)
            state = s.tell(state, X, rosenbrock(X))
            if keep:
                kept.append((state, state.A.copy(), state.A_inv.copy()))
        return kept if keep else [state]

    kept, last = run(True), run(False)[0]
    for state, A, A_inv in kept:
        assert np.array_equal(state.A, A) and np.array_equal(state.A_inv, A_inv)
    assert all(np.array_equal(x, y) for x, y in zip(kept[-1][0], last))


def test_model_choice() -> None:
    numpy = np.ones(FACTOR_DIM)
    assert isinstance(CMAES().init(numpy, random_state=0), CMAFactorState)
    assert isinstance(CMAES().init(np.ones(FACTOR_DIM - 1), random_state=0), CMAESState)
    assert isinstance(CMAES(covariance="eigen").init(numpy, random_state=0), CMAESState)
    assert isinstance(CMAES(covariance="factor").init(np.ones(3), random_state=0), CMAFactorState)
    off = CMAES()
    off.numpy_kernel = False
    assert isinstance(off.init(numpy, random_state=0), CMAESState)
    off.covariance = "factor"
    with pytest.raises(InvalidArgumentError, match="covariance='factor'.*numpy_kernel"):
        off.init(np.ones(3), random_state=0)
    with pytest.raises(InvalidArgumentError, match="covariance"):
        CMAES(covariance="cholesky").init(np.ones(3), random_state=0)
    state = CMAES(covariance="factor").init(np.ones(3), random_state=0)
    with pytest.raises(InvalidArgumentError, match="factor"):
        off.sample(state)


def test_torch_and_jax_keep_the_decomposed_model() -> None:
    torch = pytest.importorskip("torch")
    state = CMAES().init(torch.ones(FACTOR_DIM, dtype=torch.float64), random_state=0)
    assert isinstance(state, CMAESState)
    with pytest.raises(InvalidArgumentError, match="backend 'torch'"):
        CMAES(covariance="factor").init(torch.ones(3), random_state=0)


def test_float32_and_read_outs() -> None:
    s = CMAES(sigma0=0.3, covariance="factor")
    state = s.init(np.ones(12, dtype=np.float32), random_state=2)
    for _ in range(30):
        X, state = s.ask(state)
        assert X.dtype == np.float32
        state = s.tell(state, X, sphere(X))
    for name, value in zip(state._fields, state):
        if name != "key":
            assert np.asarray(value).dtype in (np.float32, np.int32), name
    assert s.sigma(state) == state.sigma * np.sqrt(state.diag_C.max())
    assert not any(s.stop(state).values())


def test_tolconditioncov_stops_an_ill_conditioned_run() -> None:
    """The estimated condition number reaches pycma's 1e14 on a problem of condition 1e16."""
    def steep(X: np.ndarray) -> np.ndarray:
        return X[:, 0] ** 2 + 1e16 * np.sum(X[:, 1:] ** 2, axis=1)

    es = ES("cma_es", sigma0=1.0, random_state=0, max_generations=3000,
            strategy_options=dict(covariance="factor")).fit(steep, np.ones(4))
    assert es.stop_reason_ == "tolconditioncov"


def _crash_at(generation: int) -> Any:
    def callback(es: ES) -> None:
        if es.n_generations_ == generation:
            raise RuntimeError("simulated crash")

    return callback


def test_resume_is_bit_identical(tmp_path: Path) -> None:
    make = lambda: ES("cma_es", max_generations=40, random_state=5,  # noqa: E731
                      strategy_options=dict(covariance="factor"))
    x0 = np.linspace(-1.0, 1.0, 12)
    full = make().fit(rosenbrock, x0)
    path = tmp_path / "run.ckpt"
    with pytest.raises(RuntimeError, match="simulated crash"):
        make().fit(rosenbrock, x0, checkpoint=path, checkpoint_every=8, callbacks=[_crash_at(27)])
    assert checkpoint_info(path)["n_generations"] == 27  # the crashed run's final checkpoint
    resumed = ES.resume(path, rosenbrock)
    assert isinstance(resumed.run_.runner.state, CMAFactorState)
    strip = lambda h: [{k: v for k, v in row.items() if k != "time"} for row in h]  # noqa: E731
    assert strip(resumed.history_) == strip(full.history_)
    assert resumed.fun_ == full.fun_ and np.array_equal(resumed.x_, full.x_)
    assert (resumed.n_evals_, resumed.stop_reason_) == (full.n_evals_, full.stop_reason_)


# pycma 4.5.0 (cma.CMAEvolutionStrategy, seeds 1-5, x0 = 3 ones, sigma0 = 2): median evaluations
# to f < 1e-8; d = 10 from DESIGN.md section 6, d = 40 measured on this machine (2026-12-04)
PYCMA = {(10, "sphere"): 1485, (10, "ellipsoid"): 4323, (10, "rosenbrock"): 5267,
         (40, "sphere"): 5235, (40, "ellipsoid"): 48465, (40, "rosenbrock"): 67185}
FUNCTIONS = {"sphere": sphere, "ellipsoid": ellipsoid, "rosenbrock": rosenbrock}


@pytest.mark.slow
@pytest.mark.parametrize(("dim", "name"), sorted(PYCMA))
def test_factor_model_evaluations_within_10_percent_of_pycma(dim: int, name: str) -> None:
    """Median evaluations over successful runs within 10% of pycma's. Rosenbrock's local
    minimum near x_1 = -1 catches some runs of every CMA-ES (at d = 10, seeds 0-20: 5 of 21
    here, 1 of 21 for the decomposed model; seeds 100-139: 5 of 40 for both): at least 70%
    must succeed."""
    seeds = 21 if dim == 10 else 5
    evals = []
    for seed in range(seeds):
        es = ES("cma_es", sigma0=2.0, ftarget=1e-8, random_state=seed,
                strategy_options=dict(covariance="factor")).fit(FUNCTIONS[name], np.full(dim, 3.0))
        evals.append(es.n_evals_ if es.fun_ <= 1e-8 else math.inf)
    solved = [e for e in evals if e < math.inf]
    assert len(solved) >= math.ceil(0.7 * seeds), evals
    median = float(np.median(solved))
    assert abs(median - PYCMA[dim, name]) <= 0.10 * PYCMA[dim, name], (median, evals)
