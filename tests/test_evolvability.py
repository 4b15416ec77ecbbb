"""Evolvability ES (MaxVar, MaxEnt): gradients, the behaviour contract, convergence, examples.

- The numpy closed forms equal torch autograd and ``jax.grad`` (float64) on
  the same sample, and equal a finite-difference derivative of the
  likelihood-ratio (importance-weighted) estimate, derived independently of the
  nested-expectation code.
- ``tell`` accepts behaviours ``(popsize, k)``/``(popsize,)``, optionally with
  fitness, and rejects wrong shapes with an error naming what the strategy needs.
- ``ES.fit`` records ``fun_``/``x_``/``history_`` as :mod:`evostrat.run.behaviours` defines.
- The seed toy ``b(x) = 5 sin(0.2 x) sin(20 x)`` (population 500, sigma 0.5,
  ``mu0 = 1``, 2000 generations of plain gradient ascent): both variants reach
  ``5 pi / 2`` within 0.1 (mean of the last 200 generations), on every backend.
- The point robot: MaxEnt's perturbations cover at least 7 of 8 sectors, more
  than OpenAI-ES on the distance; the example scripts run end to end.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import to_numpy

from evostrat import ES
from evostrat.run.behaviours import Outcome
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.strategies.evolvability import MaxEntES, MaxVarES, normalise_behaviours

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "evolvability"
OPTIMUM = 5 * math.pi / 2
STRATEGIES = [MaxVarES, MaxEntES]


def toy_behaviour(X):
    """The EvoGrad toy ``5 sin(0.2 x) sin(20 x)`` of the first coordinate, any backend."""
    import array_api_compat

    xp = array_api_compat.array_namespace(X)
    return 5.0 * xp.sin(0.2 * X[:, 0]) * xp.sin(20.0 * X[:, 0])


def _sample(cls, seed: int = 0, **options):
    s = cls(popsize=24, sigma0=np.array([0.5, 1.0, 0.3]), **options)
    state = s.init(np.array([0.2, -1.0, 0.5]), random_state=seed)
    X, state = s.ask(state)
    B = np.stack([np.sin(3 * X[:, 0]) + X[:, 1], X[:, 2] ** 2 - X[:, 0]], axis=1)
    return s, state, X, B


# -- the two gradient paths ------------------------------------------------------------------
@pytest.mark.parametrize("cls", STRATEGIES, ids=lambda c: c.name)
@pytest.mark.parametrize("shaping", ["zscore", "centered_ranks", "none"])
@pytest.mark.parametrize("baseline", [None, "mean"])
def test_closed_form_equals_torch_and_jax_autodiff(cls, shaping: str, baseline) -> None:
    torch = pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    s, state, X, B = _sample(cls, behaviour_shaping=shaping, baseline=baseline)
    J, g = s.evolvability_gradient(state, X, B)
    assert np.abs(g).max() > 1e-3  # a real gradient
    state_t = state._replace(mean=torch.tensor(state.mean), sigma=torch.tensor(state.sigma), opt=None)
    J_t, g_t = s.evolvability_gradient(state_t, torch.tensor(X), torch.tensor(B))
    np.testing.assert_allclose(to_numpy(g_t), g, rtol=1e-10, atol=1e-12)
    assert float(J_t) == pytest.approx(float(J), rel=1e-12)
    with jax.enable_x64(True):
        state_j = state._replace(mean=jnp.asarray(state.mean), sigma=jnp.asarray(state.sigma),
                                 opt=None, objective=None, key=None)
        J_j, g_j = jax.jit(s.evolvability_gradient)(state_j, jnp.asarray(X), jnp.asarray(B))
        np.testing.assert_allclose(np.asarray(g_j), g, rtol=1e-10, atol=1e-12)
        assert float(J_j) == pytest.approx(float(J), rel=1e-12)


def _likelihood_ratio_estimate(cls, s, X, Z, mean, mu, sigma) -> float:
    """The population statistic reweighted by ``w_i = p_mu(x_i) / p_mean(x_i)`` (no autodiff)."""
    logw = -0.5 * np.sum(((X - mu) / sigma) ** 2 - ((X - mean) / sigma) ** 2, axis=1)
    w = np.exp(logw)
    n = X.shape[0]
    if cls is MaxVarES:
        zbar = (w @ Z) / n
        return float(np.sum(w * np.sum((Z - zbar) ** 2, axis=1)) / n)
    K = np.exp(-np.sum((Z[:, None, :] - Z[None, :, :]) ** 2, axis=-1) / s.kernel_width**2)
    return float(-np.sum(w * np.log(K @ w / n)) / n)


@pytest.mark.parametrize("cls", STRATEGIES, ids=lambda c: c.name)
def test_closed_form_is_the_derivative_of_the_likelihood_ratio_estimate(cls) -> None:
    """At ``mu = mean`` the reweighted estimate is the statistic; its finite-difference
    derivative there is the score-function gradient (no baseline)."""
    s, state, X, B = _sample(cls, behaviour_shaping="zscore", baseline=None)
    _, g = s.evolvability_gradient(state, X, B)
    Z = normalise_behaviours(B, "zscore")
    h = 1e-6
    fd = np.empty(3)
    for j in range(3):
        e = np.zeros(3)
        e[j] = h
        up = _likelihood_ratio_estimate(cls, s, X, Z, state.mean, state.mean + e, state.sigma)
        down = _likelihood_ratio_estimate(cls, s, X, Z, state.mean, state.mean - e, state.sigma)
        fd[j] = (up - down) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("mirrored", [False, True])
def test_maxvar_plug_in_bias_is_the_documented_factor(mirrored: bool) -> None:
    """MaxVar's value and gradient over 4000 seeds at n = 8, behaviour ``b = x^2`` of
    ``N(1, 0.5^2)`` (``Var = 4 mu^2 s^2 + 2 s^4``, ``grad Var = 8 mu s^2``, the even part's
    variance ``Var(e) = 2 s^4``), against the module docstring's derivation: independent draws
    ``(1 - 1/n) Var`` and ``(1 - 1/n)^2 grad Var``; mirrored pairs ``Var - 2 Var(e) / n`` and
    ``(1 - 2/n) grad Var`` (the 25% low gradient is the plug-in, not noise)."""
    mu, s0, n, seeds = 1.0, 0.5, 8, 4000
    strategy = MaxVarES(popsize=n, sigma0=s0, behaviour_shaping="none", mirrored=mirrored)
    values, grads = [], []
    for seed in range(seeds):
        state = strategy.init(np.array([mu]), random_state=seed)
        X, state = strategy.ask(state)
        J, g = strategy.evolvability_gradient(state, X, X[:, 0] ** 2)
        values.append(float(J))
        grads.append(float(g[0]))
    values, grads = np.array(values), np.array(grads)
    var, dvar, var_even = 4 * mu**2 * s0**2 + 2 * s0**4, 8 * mu * s0**2, 2 * s0**4
    value_ref = var - 2 * var_even / n if mirrored else (1 - 1 / n) * var
    grad_ref = (1 - 2 / n) * dvar if mirrored else (1 - 1 / n) ** 2 * dvar
    assert abs(values.mean() - value_ref) < 4 * values.std() / math.sqrt(seeds), (values.mean(), value_ref)
    assert abs(grads.mean() - grad_ref) < 4 * grads.std() / math.sqrt(seeds), (grads.mean(), grad_ref)
    assert abs(grads.mean() - dvar) > 8 * grads.std() / math.sqrt(seeds)


def test_zscore_makes_the_update_invariant_to_affine_behaviour_changes() -> None:
    s, state, X, B = _sample(MaxEntES)
    _, g = s.evolvability_gradient(state, X, B)
    _, g2 = s.evolvability_gradient(state, X, 3.0 * B - 7.0)
    np.testing.assert_allclose(g2, g, rtol=1e-6)


def test_weight_decay_shrinks_the_mean_when_behaviours_are_constant() -> None:
    """Constant behaviours: zero evolvability gradient, so one SGD step is ``-lr * wd * mean``."""
    s = MaxVarES(popsize=8, sigma0=0.3, optimizer="sgd", lr=0.5, weight_decay=0.1)
    runner = s.initialize(np.array([2.0, -4.0]), random_state=0)
    runner.tell(runner.ask(), np.ones((8, 3)))
    np.testing.assert_allclose(runner.mean, np.array([2.0, -4.0]) * (1 - 0.5 * 0.1), rtol=1e-12)


# -- the tell contract -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "form", ["vector", "outcome", "tuple", "dict", "dict_without_fitness", "list"]
)
def test_tell_accepts_every_documented_form_and_ignores_fitness(form: str) -> None:
    """Every form gives the trajectory of the plain behaviour matrix (fitness is not used)."""
    k = 1 if form == "vector" else 2

    def run(kind: str) -> np.ndarray:
        runner = MaxEntES(popsize=10, sigma0=0.5).initialize(np.zeros(3), random_state=4)
        for _ in range(3):
            X = runner.ask()
            B = np.stack([X[:, 0] * X[:, 1], np.cos(X[:, 2])], axis=1)[:, :k]
            f = X.sum(axis=1)
            values = {
                "matrix": B, "vector": B[:, 0], "outcome": Outcome(f, B), "tuple": (f, B),
                "dict": {"fitness": f, "behaviours": B}, "dict_without_fitness": {"behaviours": B},
                "list": B.tolist(),
            }[kind]
            runner.tell(X, values)
        return runner.mean

    reference = run("matrix")
    assert not np.allclose(reference, 0.0)
    np.testing.assert_array_equal(run(form), reference)


@pytest.mark.parametrize(
    "values, error, message",
    [
        (np.zeros((9, 2)), InvalidArgumentError, r"maxvar_es needs behaviours of shape \(10, k\)"),
        (np.zeros((10, 2, 2)), InvalidArgumentError, r"got shape \(10, 2, 2\)"),
        (np.zeros((10, 0)), InvalidArgumentError, r"got shape \(10, 0\)"),
        (np.full((10, 2), np.nan), InvalidArgumentError, "behaviours must be finite"),
        ((np.zeros(10), np.zeros((10, 2)), 1), InvalidArgumentError, r"must be \(fitness, behaviours\)"),
        ({"fitness": np.zeros(10)}, InvalidArgumentError, "the key 'behaviours'"),
        ({"behaviours": np.zeros((10, 2)), "reward": 1}, InvalidArgumentError, "the key 'behaviours'"),
        ((np.zeros(7), np.zeros((10, 2))), InvalidArgumentError, r"shape \(10,\)"),
        (np.array([["a", "b"]] * 10), InvalidTypeError, "behaviours must be real numbers"),
    ],
)
def test_tell_rejects_wrong_behaviours_with_what_the_strategy_needs(values, error, message) -> None:
    runner = MaxVarES(popsize=10).initialize(np.zeros(2), random_state=0)
    X = runner.ask()
    with pytest.raises(error, match=message):
        runner.tell(X, values)


def test_hyper_parameters_are_validated() -> None:
    for kwargs, message in [
        (dict(lr=0.0), "lr must be a positive number"),
        (dict(weight_decay=-1.0), "weight_decay must be a non-negative number"),
        (dict(behaviour_shaping="ranks"), "behaviour_shaping must be one of"),
        (dict(baseline="median"), "baseline must be None or 'mean'"),
        (dict(optimizer="rmsprop"), "optimizer must be one of"),
        (dict(kernel_width=0.0), "kernel_width must be a positive number"),
        (dict(popsize=7), "popsize must be even"),
    ]:
        with pytest.raises(InvalidArgumentError, match=message):
            MaxEntES(**kwargs).init(np.zeros(2))


# -- what ES records -------------------------------------------------------------------------------
def test_fit_without_fitness_tracks_the_mean_and_the_behaviour_spread() -> None:
    es = ES("maxvar_es", sigma0=0.5, popsize=40, max_generations=5, random_state=0,
            strategy_options=dict(lr=0.05)).fit(toy_behaviour, np.array([1.0]))
    assert es.n_generations_ == 5 and es.stop_reason_ == "maxiter"
    np.testing.assert_array_equal(es.x_, es.strategy_.mean)
    last = es.history_[-1]
    assert es.fun_ == last["behaviour_var"] > 0
    assert last["behaviour_dims"] == 1
    assert math.isfinite(last["objective"]) and last["objective"] > 0


@pytest.mark.filterwarnings("ignore::evostrat.errors.PerCandidateWarning")  # per-candidate outputs, as named
def test_fit_with_fitness_tracks_the_best_fitness_per_candidate_outputs() -> None:
    """A per-candidate objective returning (fitness, behaviour vector); maximised fitness."""
    calls = []

    def objective(x):
        if np.ndim(x) != 1:
            raise ValueError("one candidate at a time")
        calls.append(1)
        return float(-np.sum(x**2)), np.array([x[0], x[1] ** 2])

    es = ES("maxent_es", sigma0=0.3, popsize=12, max_generations=4, maximize=True, random_state=1)
    es.fit(objective, np.array([0.5, -0.5, 1.0]))
    assert len(calls) >= 4 * 12
    best = max(h["generation_best"] for h in es.history_)
    assert es.fun_ == best
    assert -np.sum(es.x_**2) == pytest.approx(es.fun_)
    assert all(h["behaviour_dims"] == 2 for h in es.history_)


def test_fit_with_a_vectorised_dict_output() -> None:
    def objective(X):
        return {"fitness": X.sum(axis=1), "behaviours": np.stack([X[:, 0], X[:, 1]], axis=1)}

    es = ES("maxvar_es", popsize=10, max_generations=3, random_state=0).fit(objective, np.zeros(2))
    assert es.history_[-1]["behaviour_dims"] == 2
    assert es.fun_ == min(h["generation_best"] for h in es.history_)


# -- the seed toy: mu -> 5 pi / 2 --------------------------------------------------------------------
#: DESIGN.md sec. 6: plain gradient ascent, population 500, sigma 0.5, mu0 = 1, 2000 steps.
#: MaxVar on the raw behaviour (the EvoGrad demo's Var[b], lr 0.03) and on z-scores (lr 0.03);
#: MaxEnt with kernel width 1 on z-scored behaviours (lr 0.10).
TOY = {
    "maxvar": ("maxvar_es", dict(lr=0.03, behaviour_shaping="none")),
    "maxvar_zscore": ("maxvar_es", dict(lr=0.03, behaviour_shaping="zscore")),
    "maxent": ("maxent_es", dict(lr=0.10, behaviour_shaping="zscore", kernel_width=1.0)),
}


def _toy_run(variant: str, backend: str, seed: int = 0) -> np.ndarray:
    """``ES.fit`` on the toy; returns the mean after every generation."""
    strategy, options = TOY[variant]
    if backend == "torch":
        import torch

        x0 = torch.tensor([1.0], dtype=torch.float64)
    elif backend == "jax":
        import jax.numpy as jnp

        x0 = jnp.asarray([1.0])
    else:
        x0 = np.array([1.0])
    trajectory: list[float] = []
    es = ES(strategy, sigma0=0.5, popsize=500, max_generations=2000, random_state=seed,
            strategy_options=dict(optimizer="sgd", **options))
    es.fit(toy_behaviour, x0, callbacks=[lambda e: trajectory.append(float(to_numpy(e.strategy_.mean)[0]))])
    assert es.n_generations_ == 2000
    return np.asarray(trajectory)


def _assert_reaches_optimum(trajectory: np.ndarray) -> None:
    assert trajectory[0] < 2.0  # it really travelled from mu0 = 1
    assert abs(trajectory[-200:].mean() - OPTIMUM) < 0.1, trajectory[-200:].mean()
    assert abs(trajectory[-1] - OPTIMUM) < 0.15, trajectory[-1]


@pytest.mark.parametrize(
    "variant, backend", [("maxvar", "numpy"), ("maxent", "jax"), ("maxvar_zscore", "torch")]
)
def test_toy_reaches_five_pi_over_two(variant: str, backend: str, torch_one_thread) -> None:
    if backend != "numpy":
        pytest.importorskip(backend)
    _assert_reaches_optimum(_toy_run(variant, backend))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("variant", list(TOY))
@pytest.mark.parametrize("seed", [0, 1])
def test_toy_reaches_five_pi_over_two_everywhere(variant: str, backend: str, seed: int, torch_one_thread) -> None:
    if backend != "numpy":
        pytest.importorskip(backend)
    _assert_reaches_optimum(_toy_run(variant, backend, seed))


@pytest.fixture
def torch_one_thread():
    """Small batched ops: one torch thread avoids oversubscribing a shared CPU."""
    if importlib.util.find_spec("torch") is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- the point robot: what evolvability buys ---------------------------------------------------------
def _point_robot_module():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import point_robot
    finally:
        sys.path.remove(str(EXAMPLES))
    return point_robot


def _assert_maxent_covers_the_plane(results: dict) -> None:
    sectors = {name: round(8 * r["coverage"]) for name, r in results.items()}
    assert sectors["maxent"] >= 7, sectors
    assert sectors["maxent"] > sectors["openai_es"], sectors
    # the reward baseline does learn to go far: evolvability is not just distance
    assert results["openai_es"]["mean_distance"] > 0.9, results["openai_es"]["mean_distance"]


def test_point_robot_maxent_reaches_more_sectors_than_openai_es_small() -> None:
    """Reduced study (100 generations, population 100; 1000 perturbations, r = 0.5, >= 10 each)."""
    results = _point_robot_module().study(
        generations=100, popsize=100, methods=("maxent", "openai_es"), seed=0
    )
    _assert_maxent_covers_the_plane(results)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_point_robot_study_full(backend: str, torch_one_thread) -> None:
    """The example's settings: 200 generations, population 200, seeds 0-2."""
    pytest.importorskip(backend) if backend != "numpy" else None
    module = _point_robot_module()
    for seed in range(3) if backend == "numpy" else (0,):
        results = module.study(generations=200, popsize=200, backend=backend, seed=seed)
        _assert_maxent_covers_the_plane(results)
        assert results["maxvar"]["coverage"] < results["maxent"]["coverage"]


# -- the example scripts, end to end at tiny size -------------------------------------------------
def _run_script(name: str, *args: str, cwd: Path) -> str:
    env = dict(os.environ, JAX_PLATFORMS="cpu", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_point_robot_example_runs_and_plots(tmp_path: Path) -> None:
    plot = importlib.util.find_spec("matplotlib") is not None
    args = ["--generations", "2", "--popsize", "20", "--perturbations", "50"]
    if plot:
        args += ["--plot", str(tmp_path / "robot.png")]
    out = _run_script("point_robot.py", *args, cwd=tmp_path)
    for name in ("init", "maxent", "maxvar", "openai_es"):
        assert f"| {name} |" in out
    if plot:
        assert (tmp_path / "robot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_locomotion_example_runs_or_skips(tmp_path: Path) -> None:
    args = ["--generations", "2", "--popsize", "4", "--episode-steps", "10", "--hidden", "4"]
    out = _run_script("locomotion.py", *args, cwd=tmp_path)
    if importlib.util.find_spec("gymnasium") is None or importlib.util.find_spec("mujoco") is None:
        assert "skipping" in out
        pytest.skip("gymnasium[mujoco] is not installed: the example skipped cleanly")
    assert "generation    2" in out and "behaviour variance" in out


def test_locomotion_rollout_gives_fitness_and_final_position() -> None:
    pytest.importorskip("gymnasium")
    pytest.importorskip("mujoco")
    sys.path.insert(0, str(EXAMPLES))
    try:
        from locomotion import Rollout
    finally:
        sys.path.remove(str(EXAMPLES))
    rollout = Rollout("HalfCheetah-v5", hidden=(4,), steps=20)
    theta = rollout.init_params(seed=0)
    assert theta.shape == (rollout.dim,) == (17 * 4 + 4 + 4 * 6 + 6,)
    reward, behaviour = rollout(theta)
    again = rollout(theta)
    assert behaviour.shape == (1,) and math.isfinite(reward)
    assert again[0] == reward and np.array_equal(again[1], behaviour)  # deterministic episodes
    other = rollout(theta + 0.5)
    assert other[1][0] != behaviour[0]
