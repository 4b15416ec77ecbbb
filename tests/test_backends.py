"""Backends: selection, functional RNG keys, conversions, compile/cond/eigh,
and the import-lightness promise of ``import evostrat``."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import BACKEND_CASES, LIBRARY_CASES, BackendCase, to_numpy

from evostrat.backends import Backend, backend_names, get_backend
from evostrat.errors import InvalidArgumentError, InvalidTypeError, UnknownNameError


@pytest.fixture(params=BACKEND_CASES)
def case_be(request: pytest.FixtureRequest) -> tuple[BackendCase, Backend]:
    case = request.param
    return case, get_backend(case.array([0.0]))


# -- selection ----------------------------------------------------------------------------


def test_backend_names() -> None:
    assert {"numpy", "torch", "jax"} <= set(backend_names())


def test_selection_from_arrays_and_names(case_be) -> None:
    case, be = case_be
    assert be.name == case.backend
    assert get_backend(case.backend) is be  # cached per name and per type
    assert get_backend(be) is be
    assert be.owns(case.array([1.0]))
    assert not get_backend("numpy").owns(object())


def test_unknown_backend_name() -> None:
    expected = r"backend must be one of \['jax', 'numpy', 'torch'\] or 'auto', got 'cupy'"
    with pytest.raises(UnknownNameError, match=expected):
        get_backend("cupy")


@pytest.mark.parametrize("obj", [[1.0, 2.0], None, 3.0, {"x": 1}], ids=["list", "None", "float", "dict"])
def test_unknown_type(obj) -> None:
    expected = r"no installed backend handles objects of type builtins\.\w+.*\['jax', 'numpy', 'torch'\]"
    with pytest.raises(InvalidTypeError, match=expected):
        get_backend(obj)


def test_get_backend_works_on_jax_tracers() -> None:
    jax = pytest.importorskip("jax")
    names = []

    @jax.jit
    def f(x):
        be = get_backend(x)
        names.append(be.name)
        assert be.device(x) is None  # a tracer has no device; must not raise
        return x * 2

    np.testing.assert_array_equal(np.asarray(f(jax.numpy.ones(2))), [2.0, 2.0])
    assert names == ["jax"]


# -- random keys ---------------------------------------------------------------------------


def test_same_key_same_numbers(case_be) -> None:
    case, be = case_be
    dtype = be.dtype_from_name(case.dtype)
    dev = be.device(case.array([0.0]))
    a = to_numpy(be.normal(be.key(42), (3, 4), dtype, dev))
    b = to_numpy(be.normal(be.key(42), (3, 4), dtype, dev))
    c = to_numpy(be.normal(be.key(43), (3, 4), dtype, dev))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    u1 = to_numpy(be.uniform(be.key(42), (5,), dtype, dev))
    np.testing.assert_array_equal(u1, to_numpy(be.uniform(be.key(42), (5,), dtype, dev)))


def test_split_keys_differ(case_be) -> None:
    case, be = case_be
    dtype = be.dtype_from_name(case.dtype)
    parent = be.key(0)
    keys = be.split(parent, 3)
    assert len(keys) == 3 and all(be.is_key(k) for k in keys)
    draws = [tuple(to_numpy(be.normal(k, (4,), dtype))) for k in (parent, *keys)]
    assert len(set(draws)) == 4  # parent and children all differ
    again = be.split(be.key(0), 3)  # splitting is deterministic
    for k1, k2 in zip(keys, again):
        np.testing.assert_array_equal(be.key_to_numpy(k1), be.key_to_numpy(k2))
    assert be.split(parent)[0] is not None and len(be.split(parent)) == 2


def test_key_numpy_round_trip(case_be) -> None:
    case, be = case_be
    dtype = be.dtype_from_name(case.dtype)
    key = be.split(be.key(7))[1]
    data = be.key_to_numpy(key)
    assert isinstance(data, np.ndarray) and data.dtype != object
    restored = be.key_from_numpy(data.copy())
    assert be.is_key(restored)
    np.testing.assert_array_equal(
        to_numpy(be.normal(key, (6,), dtype)), to_numpy(be.normal(restored, (6,), dtype))
    )


def test_normal_and_uniform_samples(case_be) -> None:
    case, be = case_be
    dtype = be.dtype_from_name(case.dtype)
    dev = be.device(case.array([0.0]))
    z = be.normal(be.key(1), (20000,), dtype, dev)
    u = be.uniform(be.key(2), (20000,), dtype, dev)
    for x in (z, u):
        assert case.is_native(x) and case.dtype_of(x) == case.dtype
        assert case.device_of(x) == case.device_of(case.array([0.0]))
    z, u = to_numpy(z).astype(np.float64), to_numpy(u).astype(np.float64)
    # standard errors: mean 1/sqrt(n) = 0.007; 6 of them
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1.0) < 0.05
    assert u.min() >= 0.0 and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.05


def test_random_state_none_draws_fresh_entropy(case_be) -> None:
    _, be = case_be
    assert not np.array_equal(be.key_to_numpy(be.key(None)), be.key_to_numpy(be.key(None)))


@pytest.mark.parametrize(
    "seed, error", [(-1, InvalidArgumentError), (1.0, InvalidTypeError), (True, InvalidTypeError)]
)
def test_bad_seed(seed, error) -> None:
    with pytest.raises(error, match="random_state"):
        get_backend("numpy").key(seed)


# -- conversions and dtypes ----------------------------------------------------------------


def test_asarray_to_numpy_round_trip(case_be) -> None:
    case, be = case_be
    host = np.array([1.5, -2.0, 3.25])
    x = be.asarray(host, dtype=be.dtype_from_name(case.dtype), device=be.device(case.array([0.0])))
    assert case.is_native(x)
    np.testing.assert_array_equal(be.to_numpy(x), host)
    assert isinstance(be.to_numpy(x), np.ndarray)
    # arrays of the other libraries convert too
    for other in BACKEND_CASES:
        other_case = other.values[0]
        if other_case.device == "cuda" and case.device != "cuda":
            continue
        try:
            foreign = other_case.array(host)
        except Exception:  # library missing: covered by its own skip
            continue
        np.testing.assert_array_equal(be.to_numpy(be.asarray(foreign)), host)


def test_dtype_names_round_trip(case_be) -> None:
    case, be = case_be
    dtype = be.dtype_from_name(case.dtype)
    assert be.dtype_name(dtype) == case.dtype
    assert be.dtype_name(case.array([0.0]).dtype) == case.dtype
    assert be.dtype_name(be.default_float) in ("float32", "float64")  # a scalar type too
    assert be.dtype_from_name(be.dtype_name(be.default_float)) == be.default_float


def test_float_dtype(case_be) -> None:
    case, be = case_be
    assert be.float_dtype(case.array([0.0])) == case.array([0.0]).dtype
    ints = be.asarray(np.arange(3))
    assert be.float_dtype(ints) == be.default_float
    assert be.float_dtype(be.asarray(np.ones(2, dtype=np.float16))) == be.default_float  # widened
    for bad in (np.complex64, np.bool_):
        with pytest.raises(InvalidTypeError, match="x0 must have a float32 or float64 dtype"):
            be.float_dtype(be.asarray(np.ones(2, dtype=bad)))


def test_default_floats() -> None:
    assert get_backend("numpy").default_float == np.float64
    torch = pytest.importorskip("torch")
    assert get_backend("torch").default_float == torch.float32


# -- compile, cond, eigh, stop_gradient ----------------------------------------------------


def test_compile_and_cond(case_be) -> None:
    case, be = case_be
    xp = be.xp

    def f(x):
        return be.cond(xp.sum(x) > 0, lambda v: v * 2, lambda v: v - 1, x)

    g = be.compile(f)
    assert (g is f) == (not be.traceable)
    pos, neg = case.array([1.0, 2.0]), case.array([-1.0, -2.0])
    np.testing.assert_array_equal(to_numpy(g(pos)), [2.0, 4.0])
    np.testing.assert_array_equal(to_numpy(g(neg)), [-2.0, -3.0])
    assert be.traceable == (case.backend == "jax")


def test_eigh(case_be) -> None:
    case, be = case_be
    a = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, 0.0], [0.5, 0.0, 2.0]])
    w, v = be.eigh(case.array(a))
    w, v = to_numpy(w).astype(np.float64), to_numpy(v).astype(np.float64)
    assert np.all(np.diff(w) >= 0)  # ascending
    tol = 1e-10 if case.dtype == "float64" else 1e-5
    np.testing.assert_allclose(v @ np.diag(w) @ v.T, a, atol=tol * 10)
    np.testing.assert_allclose(w, np.linalg.eigvalsh(a), rtol=tol)


def test_stop_gradient_torch() -> None:
    torch = pytest.importorskip("torch")
    be = get_backend("torch")
    x = torch.ones(3, requires_grad=True)
    y = (be.stop_gradient(x * 2) * x).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])  # d/dx (c * x) with c held constant


def test_stop_gradient_jax() -> None:
    jax = pytest.importorskip("jax")
    be = get_backend("jax")
    grad = jax.grad(lambda x: (be.stop_gradient(x * x) * x).sum())(jax.numpy.full(2, 3.0))
    np.testing.assert_array_equal(np.asarray(grad), [9.0, 9.0])


def test_jax_ask_and_tell_compile_once() -> None:
    """The initial and restored states are committed like ask/tell outputs: no recompiles."""
    jnp = pytest.importorskip("jax.numpy")
    from evostrat.strategies.snes import SNES

    # hyper-parameters no other test uses: equal strategies share one program per process, which
    # another test file in the same worker may have called with another signature
    runner = SNES(popsize=13, lr_sigma=0.123).initialize(jnp.ones(3), random_state=0)
    for _ in range(3):
        X = runner.ask()
        runner.tell(X, (X**2).sum(axis=1))
    runner.load_state_dict(runner.state_dict())
    X = runner.ask()
    runner.tell(X, (X**2).sum(axis=1))
    assert runner._ask._cache_size() == 1
    assert runner._tell._cache_size() == 1


# -- import lightness ----------------------------------------------------------------------


def test_import_evostrat_is_light() -> None:
    code = textwrap.dedent(
        """
        import sys
        import evostrat
        heavy = {'torch', 'jax', 'sklearn', 'ray'} & set(sys.modules)
        assert not heavy, f"import evostrat imported {sorted(heavy)}"
        import numpy as np
        from evostrat.strategies.snes import SNES
        runner = SNES().initialize(np.ones(3), random_state=0)
        X = runner.ask(); runner.tell(X, (X ** 2).sum(axis=1))
        heavy = {'torch', 'jax'} & set(sys.modules)
        assert not heavy, f"a numpy run imported {sorted(heavy)}"
        evostrat.ES  # the estimator needs neither scikit-learn nor torch/jax (tests/test_import_light.py)
        assert not {'sklearn', 'torch', 'jax'} & set(sys.modules)
        print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"


# -- the device argument ------------------------------------------------------------------


@pytest.mark.parametrize("case", LIBRARY_CASES)
def test_a_device_named_cpu_gives_the_run_without_it(case: BackendCase) -> None:
    from evostrat import ES
    from evostrat.problems import sphere

    runs = [ES("snes", max_generations=5, random_state=0, **extra).fit(sphere, case.array(np.ones(3)))
            for extra in ({}, {"device": "cpu"})]
    assert np.array_equal(to_numpy(runs[0].x_), to_numpy(runs[1].x_))
    assert get_backend(runs[1].x_).name == case.backend


@pytest.mark.parametrize("case", LIBRARY_CASES)
@pytest.mark.parametrize("device", ["bogus", "cuda:7", "gpu:x"])
def test_a_device_the_library_or_machine_lacks_is_refused_naming_it(case: BackendCase, device: str) -> None:
    from evostrat import ES
    from evostrat.problems import sphere

    if case.backend == "torch" and device == "cuda:7" and __import__("torch").cuda.device_count() > 7:
        pytest.skip("this machine has an eighth CUDA device")
    with pytest.raises(InvalidArgumentError, match="device"):
        ES("snes", max_generations=2, device=device).fit(sphere, case.array(np.ones(3)))


def test_jax_takes_device_names_and_torch_devices() -> None:
    jax = pytest.importorskip("jax")
    torch = pytest.importorskip("torch")
    from evostrat.backends.devices import jax_device

    cpu = jax.devices("cpu")[0]
    assert jax_device("cpu") == jax_device("CPU:0") == jax_device(torch.device("cpu")) == jax_device(cpu) == cpu
    assert jax_device(None) is None


def test_torch_takes_jaxs_gpu_names_and_numpy_says_how_to_reach_a_gpu() -> None:
    # "gpu" was refused by torch ("must be a torch device such as 'cpu' or 'cuda:0'") while JAX took "cuda"
    torch = pytest.importorskip("torch")
    from evostrat import ES
    from evostrat.backends.devices import torch_device
    from evostrat.problems import sphere

    if torch.cuda.is_available():
        assert torch_device("gpu") == torch.device("cuda") and torch_device("GPU:0") == torch.device("cuda:0")
    else:
        with pytest.raises(InvalidArgumentError, match=r"device 'gpu': torch has no 'cuda' device"):
            torch_device("gpu")
    with pytest.raises(InvalidArgumentError, match=r"got 'cuda'; for a GPU .* backend='torch' or backend='jax'"):
        ES("snes", max_generations=2, device="cuda").fit(sphere, np.ones(3))
