"""The numpy kernel of sep-CMA-ES (evostrat.kernels.sep_cma_numpy) gives the generic
steps' trajectory bit for bit, and is what numpy states run by default (issue 17 item 3)."""

from __future__ import annotations

import numpy as np
import pytest

from evostrat import ES
from evostrat.backends import get_backend
from evostrat.kernels import resolve_kernel
from evostrat.kernels.sep_cma_numpy import rank_weights
from evostrat.problems import ellipsoid
from evostrat.strategies.cma_base import STOP_NAMES, candidate_weights
from evostrat.strategies.sep_cma_es import SepCMAES


def _pair(**kwargs: object) -> tuple[SepCMAES, SepCMAES]:
    fast, generic = SepCMAES(**kwargs), SepCMAES(**kwargs)
    generic.numpy_kernel = False
    return fast, generic


def _assert_same(a: object, b: object) -> None:
    for name, x, y in zip(a._fields, a, b):  # type: ignore[attr-defined]
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name, strict=True)


def _fitness(X: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    f = np.sum((X - 0.5) ** 2 * np.arange(1, X.shape[1] + 1), axis=1)
    if kind == "ties":
        f = np.round(f, 0)
    elif kind == "nan":
        f = f.copy()
        f[rng.integers(0, len(f), size=2)] = np.nan
    elif kind == "inf_rows":
        X[rng.integers(0, len(X))] = np.inf  # a candidate that is not a sample of the model
    return f


def test_numpy_states_get_the_kernel() -> None:
    numpy = get_backend("numpy")
    assert resolve_kernel(SepCMAES(), numpy) is not None
    off = SepCMAES()
    off.numpy_kernel = False
    assert resolve_kernel(off, numpy) is None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["plain", "ties", "nan", "inf_rows"])
@pytest.mark.parametrize("popsize", [None, 40])
def test_kernel_is_bit_identical_to_the_generic_steps(dtype: type, kind: str, popsize: object) -> None:
    fast, generic = _pair(sigma0=np.linspace(0.3, 1.2, 9), popsize=popsize)
    a = b = fast.init(np.full(9, 2.0, dtype=dtype), random_state=3)
    rng = np.random.default_rng(0)
    for _ in range(60):
        Xa, a = fast.ask(a)
        Xb, b = generic.ask(b)
        np.testing.assert_array_equal(Xa, Xb, strict=True)
        f = _fitness(Xa, kind, rng)
        a = fast.tell(a, Xa, f)
        b = generic.tell(b, Xa, f)
        _assert_same(a, b)
    assert int(a.generation) == 60


def test_rescaling_and_floors_are_bit_identical() -> None:
    """C's largest entry pushed past the rescale range (moved into sigma), and up from tiny."""
    fast, generic = _pair(sigma0=1.0)
    for C in (np.full(6, 1e12), np.full(6, 1e-12), np.array([1e-300, 1, 1, 1, 1, 1.0])):
        a = b = fast.init(np.ones(6), random_state=1)._replace(C=C)
        for _ in range(5):
            X, a = fast.ask(a)
            _, b = generic.ask(b)
            f = (X ** 2).sum(axis=1)
            a, b = fast.tell(a, X, f), generic.tell(b, X, f)
            _assert_same(a, b)
        assert float(a.log_scale) != 0.0 or C[1] == 1


def test_whole_run_matches_the_generic_path() -> None:
    runs = []
    for flag in (True, False):
        SepCMAES.numpy_kernel = flag
        try:
            runs.append(ES("sep_cma_es", sigma0=2.0, ftarget=1e-8, random_state=0)
                        .fit(ellipsoid, np.full(8, 3.0)))
        finally:
            SepCMAES.numpy_kernel = True
    (a, b) = runs
    assert a.stop_reason_ == "ftarget" and a.n_evals_ == b.n_evals_
    np.testing.assert_array_equal(a.x_, b.x_)


@pytest.mark.parametrize("values", [[3.0, 1.0, 2.0, 0.5], [1.0, 1.0, 2.0, -0.0], [0.0, -0.0, 1.0, 2.0],
                                    [np.nan, 1.0, 2.0, 3.0], [np.inf, -np.inf, 0.0, 1.0]])
def test_rank_weights_equal_candidate_weights(values: list[float]) -> None:
    s = SepCMAES(popsize=4)
    made = s.constants(get_backend("numpy"), 3, np.float64, None)
    from evostrat.kernels.sep_cma_numpy import factors

    K = factors(s, 3, np.float64)
    f = np.array(values)
    w_mean, w_cov, keep = rank_weights(f, K)
    ref_mean, ref_cov = candidate_weights(f, made.cumulative, get_backend("numpy").xp)
    np.testing.assert_array_equal(w_mean, ref_mean, strict=True)
    np.testing.assert_array_equal(w_cov, ref_cov, strict=True)
    np.testing.assert_array_equal(keep, ~(ref_cov < 0))


@pytest.mark.parametrize("options", [{}, {"tolconditioncov": None, "tolupsigma": None, "tolfacupx": None,
                                          "noeffectaxis": False, "noeffectcoord": False}])
def test_stop_matches_the_generic_criteria(options: dict) -> None:
    fast, generic = _pair(sigma0=np.linspace(0.5, 1.5, 5), **options)
    state = fast.init(np.full(5, 3.0), random_state=2)
    edited = [
        {},
        {"sigma": np.float64(1e-300)},  # no effect along coordinates and axes
        {"sigma": np.float64(1e30)},  # tolfacupx, tolupsigma
        {"C": np.array([1e-16, 1.0, 1.0, 1.0, 1.0])},  # tolconditioncov
        {"mean": np.array([np.nan, 1.0, 2.0, 3.0, 4.0])},
        {"C": np.array([np.nan, 1.0, 1.0, 1.0, 1.0]), "generation": state.generation + 3},
        {"log_scale": np.float64(-80.0)},
    ]
    for change in edited:
        s = state._replace(**change)
        for g in range(6):
            s = s._replace(generation=s.generation + 1)
            a, b = fast.stop(s), generic.stop(s)
            assert list(a) == list(b)
            assert {k: bool(v) for k, v in a.items()} == {k: bool(v) for k, v in b.items()}, change
    X, s = fast.ask(state)
    triggered = fast.stop(state._replace(sigma=np.float64(1e-300)))
    assert bool(triggered["noeffectcoord"]) == ("noeffectcoord" not in options)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("options", "fires"), [
    ({}, {"noeffectaxis", "noeffectcoord", "tolfacupx"}),
    ({"tolconditioncov": 1e2, "tolupsigma": 1e-3, "tolfacupx": 1e-2}, set(STOP_NAMES)),
    ({"noeffectaxis": False, "noeffectcoord": False, "tolconditioncov": None}, {"tolfacupx"})])
def test_kernel_read_outs_equal_the_generic_ones(dtype: type, options: dict, fires: set) -> None:
    """The kernel's ``stop`` and the history rows' sigma (``host_sigma``, ``sigma_parts`` read by
    ``host_sigmas``) give the generic read-outs' values, also as criteria fire."""
    fast, generic = _pair(sigma0=0.3, **options)
    kernel = resolve_kernel(fast, get_backend("numpy"))
    state = fast.init(np.linspace(-1, 1, 6).astype(dtype), random_state=3)
    fired, parts, hosts = set(), [], []
    for g in range(150):
        X, state = fast.ask(state)
        state = fast.tell(state, X, np.sum((X * np.arange(1, 7)) ** 2, axis=1) * 10.0 ** (g % 3))
        host = kernel.host_sigma(state)
        assert type(host) is float and host == float(generic.sigma(state))
        parts.append(kernel.sigma_parts(state))
        hosts.append(host)
        for s in (state, state._replace(sigma=state.sigma * dtype(1e-17)), state._replace(sigma=state.sigma * 1e9)):
            mine, theirs = fast.stop(s), generic.stop(s)
            assert list(mine) == list(theirs)
            assert {k: bool(v) for k, v in mine.items()} == {k: bool(v) for k, v in theirs.items()}, (g, s)
            fired |= {k for k, v in mine.items() if v}
    assert fired == fires  # both paths compared where each criterion fires
    assert kernel.host_sigmas(parts) == hosts and kernel.host_sigmas(parts[:3]) == hosts[:3]


def test_a_float64_run_reads_its_criteria_on_python_floats(monkeypatch: pytest.MonkeyPatch) -> None:
    """A usual float64 fit decides every generation's criteria without the element-wise numpy
    fallback, and stops where the generic path stops."""
    import evostrat.kernels.sep_cma_numpy as sep_kernel

    calls = []
    fallback = sep_kernel.stop_arrays
    monkeypatch.setattr(sep_kernel, "stop_arrays", lambda *a: calls.append(1) or fallback(*a))
    a = ES("sep_cma_es", sigma0=0.5, max_generations=400, random_state=1).fit(ellipsoid, np.full(8, 2.0))
    generic = SepCMAES(sigma0=0.5)
    generic.numpy_kernel = False
    b = ES(generic, max_generations=400, random_state=1).fit(ellipsoid, np.full(8, 2.0))
    assert calls == []
    assert a.stop_reason_ == b.stop_reason_ and a.n_evals_ == b.n_evals_ and a.fun_ == b.fun_
    assert [r["sigma"] for r in a.history_] == [r["sigma"] for r in b.history_]
