"""The host criteria of a torch CMA-ES run (:mod:`evostrat.kernels.cma_torch`): the generic answers, fewer operations.

``CMABase.stop`` on a torch state is decided on Python floats where bounds decide it, and by
the generic torch operations elsewhere; every answer must be the generic one, along runs and at
states placed on each criterion's threshold (where the bounds must hand over), and a run must
stop at the same generation, for the same reason, with the same history, as with the generic
criteria (``torch_kernel = False``).
"""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from evostrat import ES  # noqa: E402
from evostrat.backends.trees import replace  # noqa: E402
from evostrat.kernels import cma_torch  # noqa: E402
from evostrat.strategies.cma_es import CMAES  # noqa: E402
from evostrat.strategies.sep_cma_es import SepCMAES  # noqa: E402

DTYPES = [torch.float64, torch.float32]


def generic(s, state):
    return {name: bool(hit) for name, hit in s.generic_stop(state).items()}


def told_states(cls, dtype, dim, generations, seed):
    """A run's states on an ill-conditioned ellipsoid, from a random start and step size."""
    rng = np.random.default_rng(seed)
    s = cls(sigma0=float(10 ** rng.uniform(-3, 2)))
    state = s.init(torch.tensor(rng.normal(size=dim) * 10 ** rng.uniform(-3, 3), dtype=dtype), random_state=seed)
    scales = torch.arange(1, dim + 1, dtype=dtype) ** rng.uniform(0, 6)
    for _ in range(generations):
        X, state = s.ask(state)
        state = s.tell(state, X, (X * X * scales).sum(1))
        yield s, state


def edge_states(s, state):
    """``state`` with sigma scaled to the criteria's ranges, and placed on tolfacupx's and
    tolconditioncov's thresholds (and one float either side)."""
    for scale in (1e-7, 1e-12, 1e-15, 1e-17, 1e3, 1e10, 1e20, 1e25):
        yield replace(state, sigma=state.sigma * scale)
    diag = state.C if s.separable else state.diag_C
    at = (state.std0 * s.tolfacupx / torch.sqrt(diag)).min()
    for toward in (-math.inf, math.inf):
        yield replace(state, sigma=torch.nextafter(at, torch.tensor(toward, dtype=at.dtype)))
    yield replace(state, sigma=at)
    for rel in (-1e-6, -1e-15, 0.0, 1e-15, 1e-6):
        if s.separable:
            C = state.C.clone()
            C[0] = C.max() / s.tolconditioncov * (1 + rel)
            yield replace(state, C=C)
        else:
            D = state.D.clone()
            D[0] = D.max() / math.sqrt(s.tolconditioncov) * (1 + rel)
            yield replace(state, D=torch.sort(D).values)


@pytest.mark.parametrize("cls", [CMAES, SepCMAES])
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_host_criteria_answer_as_the_generic_operations(cls, dtype):
    hits = collections.Counter()
    for dim, seed in ((2, 0), (5, 1), (12, 2)):
        for s, state in told_states(cls, dtype, dim, 40, seed):
            assert s.kernel(state) is not None
            for st in (state, *edge_states(s, state)):
                expected = generic(s, st)
                got = s.stop(st)
                assert {k: bool(v) for k, v in got.items()} == expected
                hits.update(k for k, v in expected.items() if v)
                assert s.kernel(st).host_sigma(st) == float(s.generic_sigma(st))
    assert set(hits) == {"tolconditioncov", "noeffectaxis", "noeffectcoord", "tolupsigma", "tolfacupx"}


@pytest.mark.parametrize("cls", [CMAES, SepCMAES])
def test_a_state_not_finite_takes_the_generic_operations(cls):
    s, state = next(told_states(cls, torch.float64, 4, 1, 3))
    for field, value in (("mean", math.nan), ("mean", math.inf), ("sigma", math.nan), ("sigma", 0.0)):
        bad = replace(state, **{field: getattr(state, field) * 0 + value})
        assert {k: bool(v) for k, v in s.stop(bad).items()} == generic(s, bad)


class Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_usual_generation_reads_the_criteria_in_a_few_operations(dtype):
    *_, (s, state) = told_states(CMAES, dtype, 10, 20, 4)
    with Ops() as ops:
        assert not any(s.stop(state).values())
    with Ops() as generic_ops:
        assert not any(map(bool, s.generic_stop(state).values()))
    assert ops.count <= 8 < 20 <= generic_ops.count  # was about 30


def test_a_subclass_overriding_the_criteria_keeps_its_own():
    class Custom(CMAES):
        def generic_stop(self, state):
            return dict(super().generic_stop(state), tolfacupx=torch.tensor(True))

    s = Custom()
    state = s.init(torch.ones(3, dtype=torch.float64), random_state=0)
    assert not cma_torch.applies(s) and s.kernel(state) is None
    assert bool(s.stop(state)["tolfacupx"])


def test_under_vmap_the_criteria_are_the_generic_ones():
    s = CMAES()
    states = [s.init(torch.full((3,), float(i + 1), dtype=torch.float64), random_state=i) for i in range(2)]
    stacked = type(states[0])(*[torch.stack([a, b]) if isinstance(a, torch.Tensor) else a
                                for a, b in zip(*states)])
    mapped = torch.func.vmap(lambda st: tuple(s.stop(st).values()), in_dims=(
        type(stacked)(*[0 if isinstance(v, torch.Tensor) else None for v in stacked]),))(stacked)
    for i, st in enumerate(states):
        assert [bool(v[i]) for v in mapped] == list(generic(s, st).values())


@pytest.mark.parametrize("name", ["cma_es", "sep_cma_es"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_fit_stops_as_with_the_generic_criteria(name, dtype, monkeypatch):
    def fit():
        es = ES(name, random_state=3, max_generations=3000, tolfun=None, tolx=None, tolfunhist=None,
                tolstagnation=None, tolflatfitness=None)
        return es.fit(lambda X: ((X - 1) ** 2 * torch.arange(1, 7, dtype=dtype)).sum(1), torch.full((6,), 2.0, dtype=dtype))

    fast = fit()
    monkeypatch.setattr(CMAES, "torch_kernel", False)
    monkeypatch.setattr(SepCMAES, "torch_kernel", False)
    slow = fit()
    assert fast.stop_reason_ in {"tolconditioncov", "noeffectaxis", "noeffectcoord", "tolupsigma", "tolfacupx"}
    assert (fast.stop_reason_, fast.n_generations_, fast.fun_) == (slow.stop_reason_, slow.n_generations_, slow.fun_)
    assert torch.equal(fast.x_, slow.x_)
    keys = ("generation", "best", "median", "sigma")
    assert [[r[k] for k in keys] for r in fast.history_] == [[r[k] for k in keys] for r in slow.history_]


@pytest.mark.parametrize("cls", [CMAES, SepCMAES])
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_joined_read_gives_the_separate_reads(cls, dtype):
    """A GPU state's vectors cross in one concatenation (one synchronisation); on the CPU each is
    read alone: the same floats either way."""
    for s, state in told_states(cls, dtype, 7, 12, 5):
        for axis in (True, False):
            assert cma_torch.read(state, axis, joined=True) == cma_torch.read(state, axis, joined=False)
