"""The numpy fast path of CMA-ES gives bit-identical states to the generic code."""

from __future__ import annotations

import numpy as np
import pytest
from plugin_fixtures import registered

from evostrat import hookimpl
from evostrat.backends import get_backend
from evostrat.kernels import Kernel, cma_numpy, resolve_kernel
from evostrat.strategies.cma_es import CMAES
from evostrat.strategies.sep_cma_es import SepCMAES


def _pair(**kwargs: object) -> tuple[CMAES, CMAES]:
    fast, generic = CMAES(**kwargs), CMAES(**kwargs)
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
        f = np.round(f, 0)  # many equal values
    elif kind == "nan":
        f = f.copy()
        f[rng.integers(0, len(f), size=2)] = np.nan
    elif kind == "inf_rows":
        X[rng.integers(0, len(X))] = np.inf  # a candidate that is not a sample of the model
    return f


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("lazy", [True, False, 3])
@pytest.mark.parametrize("kind", ["plain", "ties", "nan", "inf_rows"])
def test_fast_path_is_bit_identical(dtype: type, lazy: object, kind: str) -> None:
    fast, generic = _pair(sigma0=0.7, lazy_eigen=lazy)
    x0 = np.full(9, 2.0, dtype=dtype)
    a = b = fast.init(x0, random_state=3)
    rng = np.random.default_rng(0)
    for _ in range(40):
        Xa, a = fast.ask(a)
        Xb, b = generic.ask(b)
        np.testing.assert_array_equal(Xa, Xb)
        f = _fitness(Xa, kind, rng)
        a = fast.tell(a, Xa, f)
        b = generic.tell(b, Xa, f)
        _assert_same(a, b)
    assert int(a.generation) == 40


def test_fast_path_repair_is_bit_identical() -> None:
    """Eigenvalues out of RESCALE_RANGE: C's scale moves into sigma on both paths."""
    fast, generic = _pair(sigma0=1.0, lazy_eigen=False)
    state = fast.init(np.ones(6), random_state=0)
    X, state = fast.ask(state)
    state = state._replace(C=state.C * 1e12)
    f = np.sum(X * X, axis=1)
    a, b = fast.tell(state, X, f), generic.tell(state, X, f)
    _assert_same(a, b)
    assert float(np.max(a.D)) <= 1e5  # rescaled


def test_fast_path_is_used_and_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(cma_numpy, "tell", lambda *args: calls.append(1) or args[1])
    fast, generic = _pair()
    state = fast.init(np.ones(3), random_state=0)
    X, state = fast.ask(state)
    fast.tell(state, X, np.ones(len(X)))
    generic.tell(state, X, np.arange(len(X), dtype=float))
    assert calls == [1]


def _run_pair(fast: CMAES, generic: CMAES, x0: np.ndarray, fitness: object, gens: int) -> None:
    a = b = fast.init(x0, random_state=5)
    for _ in range(gens):
        Xa, a = fast.ask(a)
        Xb, b = generic.ask(b)
        np.testing.assert_array_equal(Xa, Xb, strict=True)
        f = fitness(Xa)  # type: ignore[operator]
        a = fast.tell(a, Xa, f)
        b = generic.tell(b, Xa, f)
        _assert_same(a, b)


@pytest.mark.parametrize(
    "special",
    ["one_nan", "nan_and_inf", "signed_zeros", "all_equal", "int", "float32", "list", "inf"],
)
def test_fast_path_ranking_edge_cases(special: str) -> None:
    """The Python ranking of a tie-free population and its fallback agree with the generic one."""
    fast, generic = _pair(sigma0=0.5, lazy_eigen=False)

    def fitness(X: np.ndarray) -> object:
        f = np.sum(X * X, axis=1)
        if special == "one_nan":
            f[1] = np.nan  # ranks last, as +inf, without a tie
        elif special == "nan_and_inf":
            f[0], f[2] = np.nan, np.inf  # a tie at +inf
        elif special == "signed_zeros":
            f[0], f[3] = 0.0, -0.0  # equal: a tie
        elif special == "all_equal":
            f[:] = 1.0
        elif special == "int":
            return np.round(f * 100).astype(np.int64)
        elif special == "float32":
            return f.astype(np.float32)
        elif special == "list":
            return f.tolist()
        elif special == "inf":
            f[-1], f[-2] = np.inf, -np.inf  # both infinities, no tie
        return f

    _run_pair(fast, generic, np.full(7, 1.5), fitness, 12)


@pytest.mark.parametrize(("dim", "lazy", "gens"), [(40, False, 6), (100, True, 5), (150, 3, 4)])
def test_fast_path_is_bit_identical_at_larger_dims(dim: int, lazy: object, gens: int) -> None:
    """BLAS/LAPACK calls (ndarray.dot, the eigh gufunc) round as the generic ``@``/``eigh``."""
    fast, generic = _pair(sigma0=0.3, lazy_eigen=lazy)
    _run_pair(fast, generic, np.linspace(-1.0, 1.0, dim), lambda X: np.sum(X * X, axis=1), gens)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_eigh_matches_numpy(dtype: type) -> None:
    rng = np.random.default_rng(0)
    for n in (1, 2, 9, 33):
        A = rng.standard_normal((n, n))
        C = (A @ A.T).astype(dtype)
        for got, want in zip(cma_numpy.eigh(C), np.linalg.eigh(C)):
            np.testing.assert_array_equal(got, want, strict=True)
    with pytest.raises(np.linalg.LinAlgError):
        cma_numpy.eigh(np.full((3, 3), np.nan, dtype=dtype))


class _CountingKernelPlugin:
    """A third-party plugin offering a kernel for CMA-ES on numpy (it wraps the generic steps)."""

    def __init__(self) -> None:
        self.resolved: list[object] = []
        self.calls: list[str] = []

    @hookimpl
    def evostrat_kernel(self, strategy: object, backend: object) -> object:
        if not isinstance(strategy, CMAES) or backend.name != "numpy":  # type: ignore[attr-defined]
            return None
        self.resolved.append(strategy)

        def ask(state: object) -> object:
            self.calls.append("ask")
            return strategy.sample(state)

        def tell(state: object, X: object, f: object) -> object:
            self.calls.append("tell")
            return strategy.generic_tell(state, X, f)

        return Kernel(ask=ask, tell=tell)


@pytest.fixture
def counting_plugin() -> object:
    with registered(_CountingKernelPlugin(), "test-counting-kernel", fresh=False) as plugin:
        yield plugin


def test_a_third_party_kernel_wins_and_is_resolved_once(counting_plugin: object) -> None:
    s = CMAES(sigma0=0.5)
    state = s.init(np.ones(4), random_state=0)
    for _ in range(5):
        X, state = s.ask(state)
        state = s.tell(state, X, np.sum(X * X, axis=1))
    assert counting_plugin.resolved == [s]  # type: ignore[attr-defined]
    assert counting_plugin.calls == ["ask", "tell"] * 5  # type: ignore[attr-defined]
    s.set_params(popsize=8)  # a hyper-parameter changed: resolved again
    X, _ = s.ask(s.init(np.ones(4), random_state=0))
    assert len(X) == 8 and counting_plugin.resolved == [s, s]  # type: ignore[attr-defined]


def test_kernel_resolution_for_builtins() -> None:
    numpy = get_backend("numpy")
    assert resolve_kernel(CMAES(), numpy) is not None
    assert resolve_kernel(SepCMAES(), numpy) is not None  # evostrat.kernels.sep_cma_numpy
    off = CMAES()
    off.numpy_kernel = False
    assert resolve_kernel(off, numpy) is None
    s = CMAES()
    state = s.init(np.ones(3), random_state=0)
    assert s.kernel(state) is s.kernel(state)  # cached per instance
    s.numpy_kernel = False  # any attribute change drops the cache
    assert s.kernel(state) is None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", [{}, {"tolconditioncov": 1e2, "tolupsigma": 1e-3, "tolfacupx": 1e-2},
                                     {"noeffectaxis": False, "noeffectcoord": False, "tolconditioncov": None}])
def test_kernel_read_outs_equal_the_generic_ones(dtype: type, options: dict) -> None:
    """The kernel's ``sigma`` and ``stop`` give the generic read-outs' values, also as criteria fire."""
    fast, generic = _pair(sigma0=0.3, **options)
    kernel = resolve_kernel(fast, get_backend("numpy"))
    assert kernel.stop is not None
    state = fast.init(np.linspace(-1, 1, 6).astype(dtype), random_state=3)
    fired, parts, hosts = set(), [], []
    for g in range(150):
        X, state = fast.ask(state)
        f = np.sum((X * np.arange(1, 7)) ** 2, axis=1) * 10.0 ** (g % 3)
        state = fast.tell(state, X, f)
        assert fast.sigma(state) == generic.sigma(state)
        host = kernel.host_sigma(state)  # the history rows' read-out: the same Python float
        assert type(host) is float and host == float(generic.sigma(state))
        parts.append(kernel.sigma_parts(state))
        hosts.append(host)
        mine, theirs = fast.stop(state), generic.stop(state)
        assert list(mine) == list(theirs)
        assert {k: bool(v) for k, v in mine.items()} == {k: bool(v) for k, v in theirs.items()}
        fired |= {k for k, v in mine.items() if v}
    if options.get("tolfacupx"):
        assert fired  # the thresholds above make criteria fire: both paths were compared on them
    # read later: all at once (vectorised) and a few (one by one), the same floats
    assert kernel.host_sigmas(parts) == hosts and kernel.host_sigmas(parts[:3]) == hosts[:3]
    assert all(type(v) is float for v in kernel.host_sigmas(parts))


@pytest.mark.parametrize("diag", [[1.0, np.nan, 0.5], [-1.0, -2.0, -0.5]])
def test_host_sigma_of_a_broken_diagonal_is_numpys(diag: float) -> None:
    """A NaN or negative ``max diag C`` takes numpy's ``sigma * sqrt(max diag C)``, as ``sigma`` does."""
    s = CMAES()
    state = s.init(np.ones(3), random_state=0)
    state = state._replace(diag_C=np.array(diag))
    with np.errstate(invalid="ignore"):
        want = float(state.sigma * np.sqrt(state.diag_C.max()))
        kernel = resolve_kernel(s, get_backend("numpy"))
        got = kernel.host_sigma(state)
        many = kernel.host_sigmas([kernel.sigma_parts(state)] * 9 + [kernel.sigma_parts(state._replace(
            diag_C=np.array([1.0, 4.0, 0.5])))])
    assert type(got) is float and np.isnan(got) and np.isnan(want)
    assert np.isnan(many[:9]).all() and many[9] == float(state.sigma) * 2.0  # NaN stays in its row
