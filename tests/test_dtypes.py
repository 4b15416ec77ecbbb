"""Dtypes: every dtype of ``x0`` and every ``dtype=`` is either run or refused up front.

The rule (:meth:`evostrat.backends.base.Backend.float_dtype`, docs/guides/backends.md):
runs compute in float32 or float64; an integer, float16 or bfloat16 ``x0`` is computed
in the backend's default float (numpy float64, torch and JAX float32), because numpy
and torch lack random-number and eigendecomposition kernels for half precision; any
other ``x0`` dtype (bool, complex, longdouble, object) and any ``dtype=`` other than
float32/float64 raises :class:`~evostrat.errors.InvalidTypeError` naming ``x0`` or
``dtype`` before anything is computed. JAX without ``jax_enable_x64`` computes a float64
``x0`` from numpy in float32 (documented) and refuses ``dtype="float64"``.
"""

from __future__ import annotations

import numpy as np
import pytest

from evostrat import ES, vectorized
from evostrat.errors import InvalidTypeError
from evostrat.problems import sphere
from evostrat.strategies.snes import SNES

#: np.longdouble is float64 on some platforms (Windows, macOS on ARM): then it is supported.
LONGDOUBLE_IS_WIDE = np.dtype(np.longdouble).itemsize > 8


def _numpy(dtype):
    return lambda: np.ones(3, dtype=dtype)


def _torch(name):
    def make():
        torch = pytest.importorskip("torch")
        return torch.ones(3, dtype=getattr(torch, name))

    return make


def _jax(name):
    def make():
        jnp = pytest.importorskip("jax.numpy")
        return jnp.ones(3, dtype=getattr(jnp, name))

    return make


#: (id, x0 factory, expected result dtype name or None for "refused naming x0").
X0_CASES = [
    ("numpy-float16", _numpy(np.float16), "float64"),
    ("numpy-longdouble", _numpy(np.longdouble), None if LONGDOUBLE_IS_WIDE else "float64"),
    ("numpy-int32", _numpy(np.int32), "float64"),
    ("numpy-int64", _numpy(np.int64), "float64"),
    ("numpy-bool", _numpy(np.bool_), None),
    ("numpy-complex", _numpy(np.complex128), None),
    ("numpy-object", lambda: np.array([1.0, 2.0, 3.0], dtype=object), None),
    ("list-bool", lambda: [True, False, True], None),
    ("list-str", lambda: ["1", "2", "3"], None),
    ("torch-float16", _torch("float16"), "float32"),
    ("torch-bfloat16", _torch("bfloat16"), "float32"),
    ("torch-int32", _torch("int32"), "float32"),
    ("torch-complex64", _torch("complex64"), None),
    ("torch-bool", _torch("bool"), None),
    ("jax-float16", _jax("float16"), "float32"),
    ("jax-bfloat16", _jax("bfloat16"), "float32"),
    ("jax-int32", _jax("int32"), "float32"),
    ("jax-bool", _jax("bool_"), None),
]


def _dtype_name(x) -> str:
    return str(x.dtype).replace("torch.", "")


@pytest.mark.parametrize("strategy", ["snes", "cma_es"])  # cma_es needs eigh, snes only sampling
@pytest.mark.parametrize("make, expected", [c[1:] for c in X0_CASES], ids=[c[0] for c in X0_CASES])
def test_x0_dtype_runs_in_the_documented_dtype_or_is_refused(make, expected, strategy) -> None:
    x0 = make()
    # JAX on the host loop: a fresh objective per case is a fresh compiled chunk (~4 s of CPU each);
    # the host loop's ask/tell programs are shared by the cases and its objective sees real arrays.
    # The compiled loop's run of a float16 x0: test_float_dtype_argument_is_honoured[jax-...].
    jax_input = type(x0).__module__.startswith("jax")  # jaxlib's ArrayImpl
    es = ES(strategy, max_generations=3, random_state=0, **({"compiled_loop": False} if jax_input else {}))
    if expected is None:
        with pytest.raises(InvalidTypeError, match=r"^x0 must have a float32 or float64 dtype"):
            es.fit(sphere, x0)
        return
    seen = []
    es.fit(vectorized(lambda X: (seen.append(_dtype_name(X)), sphere(X))[1]), x0)
    assert _dtype_name(es.x_) == expected
    assert set(seen) == {expected}  # the objective sees the computed dtype, never float16
    assert type(es.x_).__module__.split(".")[0] == type(x0).__module__.split(".")[0]
    assert np.isfinite(es.fun_) and es.n_generations_ == 3


BAD_DTYPES = ["int32", "float8", "nonsense", 3, "float16", "bfloat16", "complex64", True, np.int64, "longdouble"]


@pytest.mark.parametrize("library", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=[repr(d) for d in BAD_DTYPES])
def test_bad_dtype_argument_is_refused_naming_dtype(library, dtype) -> None:
    lib = pytest.importorskip({"numpy": "numpy", "torch": "torch", "jax": "jax.numpy"}[library])
    x0 = lib.ones(3)
    with pytest.raises(InvalidTypeError, match=r"^dtype must be None or one of \('float32', 'float64'\), got"):
        ES("snes", max_generations=2, dtype=dtype).fit(sphere, x0)
    with pytest.raises(InvalidTypeError, match="^dtype must be"):  # the strategy's own entry point too
        SNES().init(x0, random_state=0, dtype=dtype)


def _good_dtypes():
    out = [("numpy", "float32", "float32"), ("numpy", np.float32, "float32"), ("numpy", "f8", "float64")]
    out += [("torch", "float64", "float64"), ("torch", "torch.float64", "float64"), ("jax", "float32", "float32")]
    return out


@pytest.mark.parametrize("library, dtype, expected", _good_dtypes())
def test_float_dtype_argument_is_honoured(library, dtype, expected) -> None:
    lib = pytest.importorskip({"numpy": "numpy", "torch": "torch", "jax": "jax.numpy"}[library])
    if dtype == "torch.float64":
        dtype = lib.float64
    es = ES("cma_es", max_generations=3, random_state=0, dtype=dtype).fit(sphere, lib.ones(3, dtype=lib.float16))
    assert _dtype_name(es.x_) == expected
    assert es.fast_path_ == ("compiled_loop" if library == "jax" else None)  # a float16 x0 compiled too


def test_jax_float64_without_x64_is_documented_and_explicit_float64_refused() -> None:
    jax = pytest.importorskip("jax")
    if jax.config.jax_enable_x64:
        pytest.skip("x64 is on in this process")
    es = ES("snes", backend="jax", max_generations=3, random_state=0).fit(sphere, np.ones(3))
    assert _dtype_name(es.x_) == "float32"  # JAX's own rule without x64 (docs/guides/backends.md)
    with pytest.raises(InvalidTypeError, match="dtype 'float64' on JAX needs .*jax_enable_x64"):
        ES("snes", backend="jax", dtype="float64").fit(sphere, np.ones(3))


@pytest.mark.parametrize("name", ["snes", "cma_es"])
def test_jax_float64_with_x64(name: str) -> None:
    """float64 under x64, on the compiled loop too (its stop codes stay int32) and on the host loop."""
    jax = pytest.importorskip("jax")
    with jax.enable_x64(True):
        for compiled in ("auto", False):
            es = ES(name, backend="jax", dtype="float64", max_generations=30, random_state=0,
                    compiled_loop=compiled).fit(sphere, np.ones(3))
            assert _dtype_name(es.x_) == "float64"
            assert es.fast_path_ == ("compiled_loop" if compiled == "auto" else None)
            assert (es.n_generations_, es.stop_reason_) == (30, "maxiter")


def test_jax_float32_run_of_an_objective_returning_float64_under_x64() -> None:
    """The compiled loop tells the values in the run's dtype, as the host loop does (it raised a
    while_loop carry type error: best_f float32 in, float64 out)."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    with jax.enable_x64(True):
        def f(X):
            return jnp.sum(X.astype(jnp.float64) ** 2, axis=1)

        runs = [ES("snes", max_generations=5, random_state=0, compiled_loop=compiled).fit(f, jnp.ones(3, jnp.float32))
                for compiled in ("auto", False)]
        assert [es.fast_path_ for es in runs] == ["compiled_loop", None]
        assert _dtype_name(runs[0].x_) == "float32" and runs[0].fun_ == pytest.approx(runs[1].fun_, rel=1e-6)


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("name", ["openai_es", "pgpe", "snes", "xnes", "nes"])
def test_float64_fitness_keeps_a_float32_state_float32(library, name) -> None:
    """The pure ask/tell API told float64 values (a numpy objective's) by a float32 run:
    OpenAI-ES and PGPE moved their state to float64 (SNES and xNES kept float32)."""
    from conftest import strategy_class

    strategy = strategy_class(name)(popsize=6)
    x0 = _numpy(np.float32)() if library == "numpy" else _torch("float32")()
    state = strategy.init(x0, random_state=0)
    for _ in range(2):
        X, state = strategy.ask(state)
        fitness = (np.asarray(X.cpu() if library == "torch" else X, dtype=np.float64) ** 2).sum(axis=1)
        if library == "torch":
            fitness = pytest.importorskip("torch").as_tensor(fitness)  # float64
        state = strategy.tell(state, X, fitness)
    leaves = list(_float_leaves(state))
    assert leaves and {_dtype_name(v) for v in leaves} == {"float32"}, name


def _float_leaves(tree):
    if hasattr(tree, "_fields"):
        for value in tree:
            yield from _float_leaves(value)
    elif "float" in str(getattr(tree, "dtype", "")):
        yield tree


@pytest.mark.parametrize("told", [list, tuple])
def test_python_floats_told_to_a_torch_float64_run_keep_their_precision(told):
    """A list of Python floats told to a torch float64 run is read as float64, not through
    torch's default float32 (which rounded 0.1 + 1e-12 and 0.1 to one tie before the cast)."""
    torch = pytest.importorskip("torch")
    es = ES("snes", random_state=0, max_generations=100).initialize(torch.ones(3, dtype=torch.float64))
    X = es.ask()
    values = [0.1 + 1e-12 * (len(X) - i) for i in range(len(X))]
    assert es.run_.runner.check_values(told(values), len(X)).tolist() == values
    es.tell(X, told(values))
    assert es.history_[0]["best"] == min(values) and es.history_[0]["generation_best"] == values[-1]
    with pytest.raises(InvalidTypeError, match="real numbers"):
        es.run_.runner.check_values([1j] * len(X), len(X))
