"""Fitness shaping and gradient-step optimisers against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import CPU_CASES, BackendCase, to_numpy

from evostrat.errors import UnknownNameError
from evostrat.strategies.optimizers import Adam, ClipUp, make_optimizer
from evostrat.strategies.shaping import centered_ranks, nes_utilities, rank_weights, sanitize_fitness, zscore

# -- centered ranks (Salimans et al. 2017) ------------------------------------------------


def test_centered_ranks_hand_computed() -> None:
    np.testing.assert_array_equal(centered_ranks(np.array([3.0, 1.0, 2.0])), [0.5, -0.5, 0.0])
    # n = 5: positions 0..4 map to -0.5, -0.25, 0, 0.25, 0.5 (best = -0.5)
    np.testing.assert_array_equal(
        centered_ranks(np.array([10.0, -3.0, 7.0, 0.5, 2.0])), [0.5, -0.5, 0.25, -0.25, 0.0]
    )


def test_centered_ranks_ties_are_averaged() -> None:
    # sorted positions: -0.5, -1/6, 1/6, 0.5; the two 1.0 share (-0.5 - 1/6) / 2 = -1/3
    out = centered_ranks(np.array([1.0, 3.0, 1.0, 2.0]))
    np.testing.assert_allclose(out, [-1 / 3, 0.5, -1 / 3, 1 / 6], rtol=0, atol=1e-15)
    assert out.sum() == pytest.approx(0.0, abs=1e-15)


def test_centered_ranks_nan_is_worst() -> None:
    np.testing.assert_array_equal(centered_ranks(np.array([np.nan, 1.0, 2.0])), [0.5, -0.5, 0.0])
    # NaN counts as +inf: it ties with +inf and both share the two worst positions
    np.testing.assert_array_equal(centered_ranks(np.array([np.nan, np.inf, 0.0])), [0.25, 0.25, -0.5])
    np.testing.assert_array_equal(centered_ranks(np.array([-np.inf, 5.0, np.nan])), [-0.5, 0.0, 0.5])


def test_constant_fitness_gives_zero_weights() -> None:
    np.testing.assert_array_equal(centered_ranks(np.full(6, 4.2)), np.zeros(6))
    u = nes_utilities(6, np, np.float64)
    np.testing.assert_allclose(rank_weights(np.full(6, 4.2), u), np.zeros(6), atol=1e-16)


def test_sanitize_fitness() -> None:
    np.testing.assert_array_equal(sanitize_fitness(np.array([1.0, np.nan, -np.inf])), [1.0, np.inf, -np.inf])


# -- NES utilities (Wierstra et al. 2014, eq. 19) -----------------------------------------


def test_nes_utilities_hand_computed_n4() -> None:
    # raw_k = max(0, ln 3 - ln k): ln 3, ln 1.5, 0, 0; their sum is ln 4.5
    expected = [math.log(3) / math.log(4.5) - 0.25, math.log(1.5) / math.log(4.5) - 0.25, -0.25, -0.25]
    np.testing.assert_allclose(nes_utilities(4, np, np.float64), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("n", [2, 3, 7, 10, 50])
def test_nes_utilities_properties(n: int) -> None:
    u = nes_utilities(n, np, np.float64)
    assert u.shape == (n,)
    assert u.sum() == pytest.approx(0.0, abs=1e-14)
    assert np.all(np.diff(u) <= 0)  # best first, non-increasing
    assert u[-1] == pytest.approx(-1.0 / n)  # the worse half all get -1/n


def test_rank_weights_with_nes_utilities() -> None:
    u = nes_utilities(4, np, np.float64)
    f = np.array([2.0, np.nan, 0.0, 1.0])  # ranks: 2, 3 (NaN worst), 0, 1
    np.testing.assert_array_equal(rank_weights(f, u), [u[2], u[3], u[0], u[1]])
    # a tie between the best two shares their utilities
    np.testing.assert_allclose(rank_weights(np.array([0.0, 0.0, 5.0, 6.0]), u)[:2], (u[0] + u[1]) / 2)


def test_zscore() -> None:
    out = zscore(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(out, np.array([-1.0, 0.0, 1.0]) * math.sqrt(1.5), rtol=1e-7)
    flat = zscore(np.full((4, 2), 3.0))  # constant input: zeros, never NaN
    np.testing.assert_array_equal(flat, np.zeros((4, 2)))


@pytest.mark.parametrize("case", CPU_CASES)
def test_shaping_same_on_every_backend(case: BackendCase) -> None:
    rng = np.random.default_rng(0)
    f = np.round(rng.standard_normal(12), 1)  # rounding makes ties
    f[3] = np.nan
    ref = centered_ranks(f)
    got = to_numpy(centered_ranks(case.array(f)))
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)
    u = nes_utilities(12, np, np.float64)
    from evostrat.backends import get_backend

    be = get_backend(case.backend)
    u_case = nes_utilities(12, be.xp, be.dtype_from_name(case.dtype))
    got_w = to_numpy(rank_weights(case.array(f), u_case))
    np.testing.assert_allclose(got_w, rank_weights(f, u), rtol=1e-6, atol=1e-7)


# -- optimisers ----------------------------------------------------------------------------


def test_adam_first_step_is_lr_times_sign() -> None:
    g = np.array([3.0, -0.002, 0.0, 1e4])
    step, state = Adam().update(g, Adam().init(np.zeros(4)), lr=0.1)
    np.testing.assert_allclose(step, 0.1 * np.sign(g), rtol=1e-5, atol=0)
    assert float(state.t) == 1.0


def test_adam_constant_gradient_keeps_step_lr_times_sign() -> None:
    # with a constant gradient the bias-corrected m_hat = g and v_hat = g^2 at every t
    opt, g = Adam(), np.array([0.5, -2.0])
    state = opt.init(np.zeros(2))
    for _ in range(5):
        step, state = opt.update(g, state, lr=0.01)
        np.testing.assert_allclose(step, [0.01, -0.01], rtol=1e-6)


def test_adam_second_step_hand_computed() -> None:
    opt = Adam(beta1=0.9, beta2=0.999, eps=0.0)
    state = opt.init(np.zeros(1))
    _, state = opt.update(np.array([1.0]), state, lr=1.0)
    step, _ = opt.update(np.array([3.0]), state, lr=1.0)
    m = (0.9 * 0.1 * 1 + 0.1 * 3) / (1 - 0.9**2)
    v = (0.999 * 0.001 * 1 + 0.001 * 9) / (1 - 0.999**2)
    np.testing.assert_allclose(step, [m / math.sqrt(v)], rtol=1e-12)


def test_sgd_with_momentum() -> None:
    opt = make_optimizer("sgd", momentum=0.5)
    state = opt.init(np.zeros(2))
    step, state = opt.update(np.array([1.0, 2.0]), state, lr=0.1)
    np.testing.assert_allclose(step, [0.1, 0.2])
    step, state = opt.update(np.array([1.0, 2.0]), state, lr=0.1)
    np.testing.assert_allclose(step, [0.15, 0.3])  # v = 0.5 * g + g


def test_clipup_normalises_and_clips_speed() -> None:
    opt = ClipUp(momentum=0.9, max_speed=0.15)
    g = np.array([3.0, 4.0])  # unit direction (0.6, 0.8)
    state = opt.init(np.zeros(2))
    step, state = opt.update(g, state, lr=0.1)
    np.testing.assert_allclose(step, [0.06, 0.08])  # lr * g / ||g||, under max_speed
    step, state = opt.update(g, state, lr=0.1)
    # unclipped: 0.9 * 0.1 + 0.1 = 0.19 > 0.15 -> rescaled to speed 0.15, same direction
    np.testing.assert_allclose(np.linalg.norm(step), 0.15)
    np.testing.assert_allclose(step / np.linalg.norm(step), [0.6, 0.8])
    np.testing.assert_array_equal(state.velocity, step)


def test_clipup_default_max_speed_is_twice_lr() -> None:
    opt, g = ClipUp(momentum=0.9), np.array([0.0, -5.0])
    state = opt.init(np.zeros(2))
    speeds = []
    for _ in range(4):
        step, state = opt.update(g, state, lr=0.1)
        speeds.append(float(np.linalg.norm(step)))
    # 0.1, 0.19, 0.271 -> clipped to 0.2, then stays at 0.2
    np.testing.assert_allclose(speeds, [0.1, 0.19, 0.2, 0.2])


def test_clipup_zero_gradient_is_finite() -> None:
    step, _ = ClipUp().update(np.zeros(3), ClipUp().init(np.zeros(3)), lr=0.1)
    np.testing.assert_array_equal(step, np.zeros(3))


def test_unknown_optimizer() -> None:
    with pytest.raises(UnknownNameError, match=r"optimizer must be one of \['adam', 'clipup', 'sgd'\]"):
        make_optimizer("rmsprop")


@pytest.mark.parametrize("case", CPU_CASES)
@pytest.mark.parametrize("name", ["sgd", "adam", "clipup"])
def test_optimizers_same_on_every_backend(case: BackendCase, name: str) -> None:
    grads = np.random.default_rng(1).standard_normal((3, 4))
    ref_opt, opt = make_optimizer(name), make_optimizer(name)
    ref_state, state = ref_opt.init(np.zeros(4)), opt.init(case.array(np.zeros(4)))
    for g in grads:
        ref_step, ref_state = ref_opt.update(g, ref_state, lr=0.05)
        step, state = opt.update(case.array(g), state, lr=0.05)
        assert case.is_native(step)
        np.testing.assert_allclose(to_numpy(step), ref_step, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("popsize", [7, 5000])
def test_jax_rank_weights_need_no_loop_and_match_numpy(popsize) -> None:
    """JAX's default searchsorted is a while loop (a kernel launch per step on a GPU)."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    rng = np.random.default_rng(popsize)
    f = np.round(rng.normal(size=popsize), 1).astype(np.float32)  # many ties
    f[3] = np.nan
    u = nes_utilities(popsize, np, np.float32)
    hlo = jax.jit(rank_weights).lower(jnp.asarray(f), jnp.asarray(u)).as_text()
    assert "while" not in hlo
    np.testing.assert_allclose(np.asarray(jax.jit(rank_weights)(jnp.asarray(f), jnp.asarray(u))),
                               rank_weights(f, u), rtol=1e-5, atol=1e-7)
