"""Shared fixtures: the backend cases every suite runs over, and array helpers.

A :class:`BackendCase` describes one way a user hands ``x0`` to evostrat
(numpy float64, torch float32 / float64 on the CPU, torch on CUDA when there is
one, JAX float32) together with what evostrat must hand back: the dtype and the
device of the population. torch and JAX are imported only when a case needs
them, so suites that do not use them stay light.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from evostrat.plugins import registry

#: Where the suite keeps JAX's compiled programs between its workers and runs (see
#: :func:`share_jax_compilations`); ``EVOSTRAT_TEST_JAX_CACHE`` names another folder, or ``off``.
JAX_CACHE_VARIABLE = "EVOSTRAT_TEST_JAX_CACHE"
#: The process that chose the cache's folder (and prunes it); not set when the user chose it.
JAX_CACHE_OWNER_VARIABLE = "EVOSTRAT_TEST_JAX_CACHE_OWNER"
#: The cache folder's size after :func:`prune_jax_compilations`, when it has grown past twice this.
JAX_CACHE_KEEP_BYTES = 512 << 20


def share_jax_compilations(environ: Any = os.environ) -> str | None:
    """Let the suite's processes share JAX's compiled programs: JAX's persistent compilation cache
    in a folder of the user's cache (``$XDG_CACHE_HOME`` or ``~/.cache``,
    ``evostrat/jax-test-compilations``), kept under 1 GiB by :func:`prune_jax_compilations` at the
    end of each session.

    Most of the compiled-driver suites' time is XLA compiling the same chunk programs: for the
    same strategy, shape and criteria every test builds an identical program, compiled again in
    each test (a new objective is a new program key) and in each of the four workers. A program
    read from the cache is the very executable the compilation made, so results are unchanged;
    ``tests/jax_compiles.py`` counts cache reads as compilations. The variables are set before JAX
    is imported (JAX reads them then), and inherited by the workers and the subprocesses tests
    start; any that is set already is left as it is. ``EVOSTRAT_TEST_JAX_CACHE=off`` turns the
    sharing off, a path puts the cache there. Returns the folder (``None``: off).

    JAX's own size limit (``JAX_COMPILATION_CACHE_MAX_SIZE``) is not set: with it every lookup of
    every worker takes one file lock, and every write lists and reads the whole folder under it
    (with 10,000 programs kept, two test files took 109 s against 45 s without the cache).
    """
    setting = environ.get(JAX_CACHE_VARIABLE, "").strip()
    if setting.lower() in ("off", "0", "no", "false"):
        return None
    home = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = setting or os.path.join(home, "evostrat", "jax-test-compilations")
    if "JAX_COMPILATION_CACHE_DIR" not in environ:  # (a worker's was set by the session's first process)
        environ["JAX_COMPILATION_CACHE_DIR"] = folder
        environ[JAX_CACHE_OWNER_VARIABLE] = str(os.getpid())
    environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")  # not the many tiny programs
    if "jax" in sys.modules:  # imported before this file: too late for the variables
        import jax

        jax.config.update("jax_compilation_cache_dir", environ["JAX_COMPILATION_CACHE_DIR"])
        jax.config.update("jax_persistent_cache_min_compile_time_secs",
                          float(environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
    return environ["JAX_COMPILATION_CACHE_DIR"]


def prune_jax_compilations(folder: str | None, keep_bytes: int = JAX_CACHE_KEEP_BYTES) -> int:
    """Delete the oldest programs of the cache ``folder`` (by modification time: a program is
    written once) when it holds more than ``2 * keep_bytes``, down to ``keep_bytes``; also the
    access-time files an earlier JAX size limit left. Returns the number of files deleted."""
    if not folder or not os.path.isdir(folder):
        return 0
    entries, total, deleted = [], 0, 0
    with os.scandir(folder) as found:
        for entry in found:
            if not entry.is_file(follow_symlinks=False):
                continue
            if entry.name.endswith("-atime"):  # left by JAX's size limit, which is not used
                os.unlink(entry.path)
                deleted += 1
            elif entry.name.endswith("-cache"):
                info = entry.stat(follow_symlinks=False)
                entries.append((info.st_mtime, info.st_size, entry.path))
                total += info.st_size
    if total <= 2 * keep_bytes:
        return deleted
    for _, size, path in sorted(entries):
        if total <= keep_bytes:
            break
        try:
            os.unlink(path)
        except FileNotFoundError:  # another session pruned it
            pass
        total -= size
        deleted += 1
    return deleted


share_jax_compilations()


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dev dependency
        return False
    return bool(torch.cuda.is_available())


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@dataclass(frozen=True)
class BackendCase:
    """One backend/dtype/device combination of ``x0``.

    Attributes
    ----------
    id : str
        Test id (``"numpy"``, ``"torch-float32"``, ...).
    backend : str
        The evostrat backend name the case must select.
    dtype : str
        Floating dtype name of ``x0`` and of everything evostrat returns.
    device : str or None
        torch device of ``x0`` (``None`` for numpy and JAX).
    """

    id: str
    backend: str
    dtype: str
    device: str | None = None

    def array(self, values: Any) -> Any:
        """``values`` (array-like) as an array of this case's kind."""
        host = np.asarray(values, dtype=self.dtype)
        if self.backend == "numpy":
            return host
        if self.backend == "torch":
            import torch

            return torch.as_tensor(host, dtype=getattr(torch, self.dtype), device=self.device)
        import jax.numpy as jnp

        return jnp.asarray(host, dtype=self.dtype)

    def dtype_of(self, x: Any) -> str:
        """Portable dtype name of an array of this case."""
        return str(x.dtype).replace("torch.", "")

    def device_of(self, x: Any) -> str | None:
        """Device of ``x`` as a comparable string (``None`` for numpy)."""
        if self.backend == "torch":
            return str(x.device)
        if self.backend == "jax":
            return str(next(iter(x.devices())))
        return None

    def is_native(self, x: Any) -> bool:
        """Whether ``x`` is an array of this case's library (not a numpy copy)."""
        if self.backend == "numpy":
            return isinstance(x, np.ndarray)
        if self.backend == "torch":
            import torch

            return isinstance(x, torch.Tensor)
        import jax

        return isinstance(x, jax.Array)


@pytest.fixture
def jax_on_host() -> Any:
    """JAX's default device set to the CPU for one test (a GPU where JAX sees one).

    Seed-compressed populations are built on the host by design; modules that
    test them use ``pytestmark = pytest.mark.usefixtures("jax_on_host")`` so that
    their JAX cases stay CPU cases on a GPU machine too.
    """
    if not _installed("jax"):
        yield None
        return
    import jax

    with jax.default_device(jax.devices("cpu")[0]):
        yield None


def to_numpy(x: Any) -> np.ndarray:
    """Host copy of a numpy/torch/JAX array (bit-exact)."""
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _case_params() -> list[Any]:
    no_torch = pytest.mark.skipif(not _installed("torch"), reason="torch is not installed")
    no_jax = pytest.mark.skipif(not _installed("jax"), reason="jax is not installed")
    no_cuda = pytest.mark.skipif(not _cuda_available(), reason="torch.cuda.is_available() is False")
    cases = [
        (BackendCase("numpy", "numpy", "float64"), ()),
        (BackendCase("torch-float32", "torch", "float32", "cpu"), (no_torch,)),
        (BackendCase("torch-float64", "torch", "float64", "cpu"), (no_torch,)),
        (BackendCase("jax-float32", "jax", "float32"), (no_jax,)),
        (BackendCase("torch-cuda", "torch", "float32", "cuda"), (no_torch, no_cuda)),
    ]
    return [pytest.param(case, id=case.id, marks=marks) for case, marks in cases]


#: Every backend case, for ``@pytest.mark.parametrize("case", BACKEND_CASES)``.
BACKEND_CASES = _case_params()
#: The float64 cases and the default float32 ones, without CUDA duplicates.
CPU_CASES = [p for p in BACKEND_CASES if p.values[0].device != "cuda"]
#: One case per library (numpy float64, torch float32, JAX float32).
LIBRARY_CASES = [
    p for p in BACKEND_CASES if p.values[0].id in ("numpy", "torch-float32", "jax-float32")
]


def strategy_names() -> list[str]:
    """Every registered strategy, so strategies added later are covered automatically."""
    return sorted(registry("strategies"))


def strategy_class(name: str) -> type:
    return registry("strategies")[name]


def fitness_strategy_names() -> list[str]:
    """Registered strategies whose ``tell`` takes one fitness value per candidate."""
    return [n for n in strategy_names() if not getattr(strategy_class(n), "needs_behaviours", False)]


@pytest.fixture(params=BACKEND_CASES)
def case(request: pytest.FixtureRequest) -> BackendCase:
    """Each backend case in turn."""
    return request.param


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Keep the shared JAX cache's folder small (:func:`prune_jax_compilations`): once, in the
    process that chose it (which started the workers, now finished); a folder that
    ``JAX_COMPILATION_CACHE_DIR`` named before the suite started is left as it is."""
    if os.environ.get(JAX_CACHE_OWNER_VARIABLE) == str(os.getpid()):
        prune_jax_compilations(os.environ.get("JAX_COMPILATION_CACHE_DIR"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print how many hypothesis cases the reliability suites ran (``tests/hypothesis_profiles.py``)."""
    import sys

    profiles = sys.modules.get("hypothesis_profiles")
    if profiles is not None and profiles.CASES:
        counts = ", ".join(f"{suite}={n}" for suite, n in sorted(profiles.CASES.items()))
        terminalreporter.write_line(
            f"hypothesis cases run: {counts} (profile {profiles.PROFILE}, scale {profiles.SCALE})"
        )


def _limit_blas(threads: int) -> None:
    """``threads`` threads for the BLAS/OpenMP pools loaded in this process (threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn's dependency
        return
    try:  # scipy's own OpenBLAS too (the numpy CMA-ES kernel's syevd), which a later import would leave
        import scipy.linalg  # noqa: F401  at its default: the kernel is bit-identical to numpy's eigh
    except ImportError:  # pragma: no cover  # only when both libraries use the same number of threads
        pass
    threadpool_limits(limits=threads)


def pytest_configure(config: pytest.Config) -> None:
    """One BLAS thread in the test process (see :func:`pytest_runtest_setup`)."""
    import os

    threads = int(os.environ.get("EVOSTRAT_TEST_THREADS", "1"))
    if threads > 0:
        _limit_blas(threads)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """One intra-op torch thread in the test process (``EVOSTRAT_TEST_THREADS`` to change it, 0 to leave it).

    ``make test`` runs four workers on machines of two CPUs: with the libraries' default of a
    thread per CPU in each of them, OpenMP and OpenBLAS threads spin against each other, and small
    products take milliseconds instead of microseconds (a 100 x 100 ``eigh`` and product: 87 ms
    against 3 ms; the Atari guide's two generations: 17-23 s against 6-11 s on a busy 2-CPU
    machine). Results do not depend on it (the sizes of the suite are below the libraries'
    thresholds for threading, and runs compared across processes use the same code paths), and
    processes that tests start keep the libraries' defaults: only this process is limited.
    Tests that change torch's threads restore the value they found.
    """
    import os
    import sys

    torch = sys.modules.get("torch")
    threads = int(os.environ.get("EVOSTRAT_TEST_THREADS", "1"))
    if torch is not None and threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
