"""The same update on every backend: one ``tell`` on an injected population.

Backends draw different random numbers, so trajectories differ; the *update*
must not. Each registered strategy is initialised with the pure
``init`` on numpy, torch and JAX around the same ``x0``, then told the same
population ``X`` (built in numpy from fixed noise) with the same fitness (or, for
strategies with ``needs_behaviours``, the same (popsize, 2) behaviours). The
resulting states (every leaf but the random key) must agree:

- numpy float64 vs torch float64: to 1e-10 (same maths, different kernels);
- numpy float64 vs JAX float32 (the default): to float32 precision;
- numpy float64 vs JAX float64: to 1e-10, in a subprocess with
  ``JAX_ENABLE_X64=1`` so the flag is never flipped in the test process.

Eigenvector matrices (CMA-ES's ``B``) are compared up to the sign of each
column, the only freedom an eigendecomposition of distinct eigenvalues has.

``tell`` goes through ``backend.compile`` (``jax.jit`` on JAX) as ``AskTell``
does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import strategy_class, strategy_names, to_numpy

from evostrat.backends import get_backend

DIM = 5
X0 = np.array([0.5, -1.0, 2.0, 0.0, 1.5])
STRATEGIES = strategy_names()
ROOT = Path(__file__).resolve().parents[1]


def injected(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A population around X0 from fixed noise, and its (tie-free) fitness."""
    s = strategy_class(name)()
    n = s.resolved_popsize(DIM)
    scale = float(np.max(np.asarray(s.sigma0, dtype=np.float64)))
    z = np.random.default_rng(20240611).standard_normal((n, DIM))
    X = X0 + scale * z
    f = np.sum((X - 0.25) ** 2, axis=1)  # a shifted sphere: informative for every update
    assert len(np.unique(f)) == n
    if s.needs_behaviours:  # behaviour strategies are told (popsize, 2) descriptors
        return X, np.stack([f, X[:, 0] * X[:, 1]], axis=1)
    return X, f


def leaves(state: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """Every non-key leaf of a (nested) NamedTuple state, as float64 numpy."""
    out: dict[str, np.ndarray] = {}
    for field, value in zip(state._fields, state):
        path = f"{prefix}{field}"
        if hasattr(value, "_fields"):
            out.update(leaves(value, f"{path}."))
        elif field != "key":
            out[path] = np.asarray(to_numpy(value), dtype=np.float64)
    return out


def one_tell(name: str, backend: str, dtype: str) -> dict[str, np.ndarray]:
    be = get_backend(backend)
    dt = be.dtype_from_name(dtype)
    s = strategy_class(name)()
    X, f = injected(name)
    state = s.init(be.asarray(X0, dtype=dt), random_state=0)
    new = be.compile(s.tell)(state, be.asarray(X, dtype=dt), be.asarray(f, dtype=dt))
    return leaves(new)


#: Leaves holding eigenvectors as columns: an eigenvector is defined up to its sign,
#: and LAPACK builds may pick either, so columns are compared after aligning signs.
EIGENVECTOR_LEAVES = {"B"}


def align_columns(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """``got`` with each column's sign flipped to point the way of ``ref``'s."""
    signs = np.sign(np.sum(ref * got, axis=0))
    signs[signs == 0] = 1.0
    return got * signs


def assert_states_close(ref: dict, got: dict, rtol: float, atol: float, label: str) -> None:
    assert ref.keys() == got.keys(), label
    for path in ref:
        assert ref[path].shape == got[path].shape, f"{label}: {path} shape"
        if path.rsplit(".", 1)[-1] in EIGENVECTOR_LEAVES and ref[path].ndim == 2:
            got = {**got, path: align_columns(ref[path], got[path])}
        np.testing.assert_allclose(got[path], ref[path], rtol=rtol, atol=atol, err_msg=f"{label}: {path}")


@pytest.mark.parametrize("name", STRATEGIES)
def test_tell_moves_the_state(name: str) -> None:
    """The comparison below is meaningful: one tell changes the mean."""
    s = strategy_class(name)()
    before = leaves(s.init(X0, random_state=0))
    after = one_tell(name, "numpy", "float64")
    assert not np.allclose(before["mean"], after["mean"])
    assert all(np.all(np.isfinite(v)) for v in after.values())


@pytest.mark.parametrize("name", STRATEGIES)
def test_torch_float64_matches_numpy(name: str) -> None:
    pytest.importorskip("torch")
    ref = one_tell(name, "numpy", "float64")
    got = one_tell(name, "torch", "float64")
    assert_states_close(ref, got, rtol=1e-10, atol=1e-12, label=f"{name} torch float64")


@pytest.mark.parametrize("name", STRATEGIES)
def test_jax_float32_matches_numpy(name: str) -> None:
    pytest.importorskip("jax")
    ref = one_tell(name, "numpy", "float64")
    got = one_tell(name, "jax", "float32")
    assert_states_close(ref, got, rtol=2e-4, atol=2e-5, label=f"{name} jax float32")


@pytest.mark.parametrize("name", STRATEGIES)
def test_torch_float32_matches_numpy(name: str) -> None:
    pytest.importorskip("torch")
    ref = one_tell(name, "numpy", "float64")
    got = one_tell(name, "torch", "float32")
    assert_states_close(ref, got, rtol=2e-4, atol=2e-5, label=f"{name} torch float32")


_X64_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {tests!r})
    import jax
    assert jax.config.jax_enable_x64
    from test_cross_backend import one_tell
    out = {{name: {{k: v.tolist() for k, v in one_tell(name, "jax", "float64").items()}}
            for name in {names!r}}}
    print(json.dumps(out))
    """
)


def test_jax_float64_matches_numpy_in_subprocess() -> None:
    pytest.importorskip("jax")
    env = dict(os.environ, JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu")
    script = _X64_SCRIPT.format(tests=str(ROOT / "tests"), names=STRATEGIES)
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(results) == sorted(STRATEGIES)
    for name in STRATEGIES:
        ref = one_tell(name, "numpy", "float64")
        got = {k: np.asarray(v, dtype=np.float64) for k, v in results[name].items()}
        assert_states_close(ref, got, rtol=1e-10, atol=1e-12, label=f"{name} jax float64")
