"""The torch stack kernel's faster paths on the CPU give the bits of its plain torch steps
(:mod:`evostrat.kernels.cma_torch_stack`): the steps between the products done with numpy
(:mod:`evostrat.kernels.cma_stack_steps`), the draws into a buffer the kernel keeps
(:mod:`evostrat.kernels.stack_draws`), the weights of a generation without ties by one
scatter, and ``finite_rows`` skipped where every step is within ``ymax``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from evostrat import ES, vectorized
from evostrat.backends import get_backend
from evostrat.strategies.cma_base import candidate_weights
from evostrat.strategies.cma_es import CMAES
from evostrat.strategies.sep_cma_es import SepCMAES

torch = pytest.importorskip("torch")

from stack_states import stack_states as _states  # noqa: E402

from evostrat.kernels import cma_torch_stack  # noqa: E402
from evostrat.run.batch import fit_batch  # noqa: E402
from evostrat.run.batch_stack import RunStack  # noqa: E402

BE = get_backend("torch")


def _poisoned(X: Any) -> Any:
    """``X`` with a NaN, an infinity and a huge entry (finite_rows zeroes their steps)."""
    X = X.clone()
    X[0, 1, 2] = float("nan")
    X[-1, 0, 0] = -float("inf")
    X[-1, 2, 1] = torch.finfo(X.dtype).max / 4
    return X


def _generations(strategy: Any, states: list, fitness: Any, generations: int, host: bool, draws: bool,
                 poison: bool = False) -> list:
    """Every generation's ``X`` and stacked state of the kernel, with or without its CPU paths."""
    k = cma_torch_stack.kernel(strategy, BE)
    state, out = RunStack(states, BE).as_state(), []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cma_torch_stack, "HOST_STEPS", host)
        for g in range(generations):
            X, state = k.ask(state) if draws else cma_torch_stack.ask(strategy, BE, state)
            if poison and g % 2 == 0:
                X = _poisoned(X)
            f = fitness(X)
            state = k.tell(state, X, torch.where(torch.isnan(f), torch.zeros_like(f), f) if poison else f)
            out.append((X.clone(), state, k.read(state)))
    return out


def _equal(a: Any, b: Any) -> bool:
    """The same numbers, NaN where NaN."""
    return bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all())


def _assert_same(a: list, b: list) -> None:
    for g, ((Xa, sa, ra), (Xb, sb, rb)) in enumerate(zip(a, b)):
        assert _equal(Xa, Xb) and Xa.stride() == Xb.stride(), g
        for name, x, y in zip(sa._fields, sa, sb):
            if isinstance(x, torch.Tensor):
                # NaN nowhere in a state; the layout too (products sum by their operands' layout)
                assert torch.equal(x, y) and x.stride() == y.stride(), (g, name)
            else:
                assert np.array_equal(x, y), (g, name)
        assert torch.equal(ra[0], rb[0]) and all(torch.equal(ra[1][k], rb[1][k]) for k in ra[1]), g


def _sphere(X: Any) -> Any:
    return (X * X).sum(-1)


def _tied(X: Any) -> Any:
    f = torch.round(_sphere(X))
    f[1, 2] = float("nan")
    f[0, 3] = f[0, 4] = float("inf")
    return f


@pytest.mark.parametrize("strategy, runs, dim, dtype, warm", [
    # 64 runs: torch's vectorised exp and sqrt on the runs' (64,) arrays (below 16 values, its scalar loop)
    (CMAES(), 64, 10, torch.float64, 0), (SepCMAES(), 64, 10, torch.float64, 0), (CMAES(popsize=7), 3, 5, torch.float64, 0),
    (CMAES(active=False, lr_mean=0.5), 3, 6, torch.float64, 0), (CMAES(lazy_eigen=3), 4, 6, torch.float64, 1),
    (CMAES(), 4, 20, torch.float64, 0), (CMAES(), 3, 6, torch.float32, 0),
    (SepCMAES(), 5, 10, torch.float64, 0), (SepCMAES(), 3, 6, torch.float32, 0),
])
@pytest.mark.parametrize("fitness", [_sphere, _tied])
def test_the_cpu_paths_give_the_torch_steps_bits(strategy: Any, runs: int, dim: int, dtype: Any, warm: int,
                                                  fitness: Any) -> None:
    states = _states(strategy, runs, dim, dtype, warm)
    plain = _generations(strategy, states, fitness, 12, host=False, draws=False)
    _assert_same(plain, _generations(strategy, states, fitness, 12, host=True, draws=True))


@pytest.mark.parametrize("strategy", [CMAES(), SepCMAES()])
def test_steps_beyond_ymax_and_nan_candidates_are_zeroed_on_every_path(strategy: Any) -> None:
    states = _states(strategy, 3, 5)
    plain = _generations(strategy, states, _sphere, 6, host=False, draws=False, poison=True)
    _assert_same(plain, _generations(strategy, states, _sphere, 6, host=True, draws=True, poison=True))
    # and each run as the generic tell alone (finite_rows) would have it, to the batched rounding
    state = RunStack(states, BE).as_state()
    X, state = cma_torch_stack.ask(strategy, BE, state)
    X = _poisoned(X)
    told = RunStack([states[0]], BE).with_state(cma_torch_stack.tell(strategy, BE, state, X, _sphere(X).nan_to_num()))
    for i, alone in enumerate(states):
        alone = strategy.tell(strategy.ask(alone)[1], X[i], _sphere(X[i]).nan_to_num())
        torch.testing.assert_close(told.run_state(i).mean, alone.mean, rtol=1e-12, atol=1e-15)


def test_weights_without_ties_are_the_generic_weights_bit_for_bit() -> None:
    constants = {dtype: CMAES().constants(BE, 10, dtype, torch.device("cpu")) for dtype in (torch.float64, torch.float32)}
    draw = torch.Generator().manual_seed(3)
    one_nan = torch.randn(64, 10, generator=draw, dtype=torch.float64)
    one_nan[::3, 4] = float("nan")  # ranked worst, no ties: the fast path
    for values in (torch.randn(64, 10, generator=draw, dtype=torch.float64), one_nan,
                   torch.randn(64, 10, generator=draw, dtype=torch.float64).to(torch.float32),
                   torch.randn(64, 10, generator=draw, dtype=torch.float64).round(),  # ties in most runs
                   torch.where(torch.rand(64, 10, generator=draw) < 0.2, float("nan"), 1.0 * torch.arange(10.0))):
        cumulative = constants[values.dtype].cumulative
        w_mean, w_cov = cma_torch_stack._weights(values, cumulative)
        for r in range(64):
            alone = candidate_weights(values[r], cumulative, BE.xp)
            assert torch.equal(w_mean[r], alone[0]) and torch.equal(w_cov[r], alone[1]), r


def test_the_draws_buffer_is_reused_and_never_handed_out() -> None:
    for strategy in (CMAES(), SepCMAES()):
        k = cma_torch_stack.kernel(strategy, BE)
        draws = k.ask.keywords["draws"]
        state = RunStack(_states(strategy, 3, 4), BE).as_state()
        X1, state = k.ask(state)
        kept, buffer = X1.clone(), draws.buffer
        X2, state = k.ask(state)
        assert draws.buffer is buffer  # one buffer from generation to generation
        assert torch.equal(X1, kept) and not torch.equal(X1, X2)  # the candidates are their own tensors
        assert buffer.data_ptr() not in (X1.data_ptr(), X2.data_ptr())


@vectorized
def _batch_sphere(X: Any) -> Any:
    return (X * X).sum(-1)


def test_fit_batch_runs_equal_the_plain_kernels_runs_bit_for_bit(monkeypatch) -> None:
    """A batch whose runs stop at different generations (a grid of budgets) and decompose C at
    different generations (lazy_eigen=2 with a grid of ``max_generations``), as with the kernel's
    plain torch steps."""
    x0 = torch.linspace(-1.0, 2.0, 8, dtype=torch.float64)
    settings = dict(strategy_options={"lazy_eigen": 2})
    grid = {"max_generations": [7, 30, 31]}
    fast = fit_batch(ES("cma_es", **settings), _batch_sphere, x0, seeds=2, grid=grid)
    monkeypatch.setattr(cma_torch_stack, "HOST_STEPS", False)
    monkeypatch.setattr(cma_torch_stack, "kernel", lambda s, b: cma_torch_stack.StackKernel(
        ask=lambda state: cma_torch_stack.ask(s, b, state), tell=lambda *a: cma_torch_stack.tell(s, b, *a),
        read=lambda state: cma_torch_stack.read(s, state)))
    plain = fit_batch(ES("cma_es", **settings), _batch_sphere, x0, seeds=2, grid=grid)
    assert fast.fast_path == plain.fast_path == "batched"
    assert list(fast.n_generations) == list(plain.n_generations) == [7, 7, 30, 30, 31, 31]
    for a, b in zip(fast.estimators, plain.estimators):
        assert [{k: v for k, v in row.items() if k != "time"} for row in a.history_] == \
            [{k: v for k, v in row.items() if k != "time"} for row in b.history_]
        assert a.fun_ == b.fun_ and torch.equal(a.x_, b.x_)
