"""Shared set-up of the benchmark suites (pytest-benchmark; not part of the tests).

Run with ``python -m pytest benchmarks/ -p no:cacheprovider``; results of
every suite are printed as a table of medians with ratios to the peers at the
end of the session.

- BLAS and XLA run single-threaded unless ``EVOSTRAT_BENCH_THREADS`` says
  otherwise: on a shared machine multi-threaded LAPACK timings are dominated by
  contention (an eigendecomposition at d = 1000 varied from 0.1 to 3 s here),
  and every library is measured under the same setting. Set before numpy loads.
- Peers that are not installed (``cma``, ``cmaes``, ``evosax``) are skipped
  with the reason; install them with ``pip install cma cmaes evosax``.
"""

from __future__ import annotations

import os

_THREADS = os.environ.get("EVOSTRAT_BENCH_THREADS", "1")
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, _THREADS)
if _THREADS == "1":
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import importlib.util  # noqa: E402
from collections import defaultdict  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

#: (suite, case) -> {library: (median seconds, mean seconds)} filled by the suites.
RESULTS: dict[tuple[str, str], dict[str, tuple[float, float]]] = defaultdict(dict)


def _require(module: str) -> Any:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"peer {module!r} is not installed (pip install {module})")
    try:
        return importlib.import_module(module)
    except Exception as err:  # noqa: BLE001 - a broken peer install is reported, not fatal
        pytest.skip(f"peer {module!r} failed to import: {type(err).__name__}: {err}")


def _record(suite: str, case: str, library: str, benchmark: Any, per_round: int = 1) -> None:
    stats = benchmark.stats.stats
    RESULTS[(suite, case)][library] = (stats.median / per_round, stats.mean / per_round)


@pytest.fixture
def require() -> Any:
    """``require("cma")``: import a peer or skip the benchmark that needs it."""
    return _require


@pytest.fixture
def record() -> Any:
    """``record(suite, case, library, benchmark, per_round=1)``: keep the finished
    benchmark's median and mean per generation for the end-of-session table."""
    return _record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    write = terminalreporter.write_line
    write("")
    write("per-generation time, median (mean) in microseconds; ratio = evostrat / fastest peer")
    for (suite, case), libs in sorted(RESULTS.items()):
        ours = {k: v for k, v in libs.items() if k.startswith("evostrat")}
        peers = {k: v for k, v in libs.items() if not k.startswith("evostrat")}
        cells = [f"{k}={m * 1e6:.1f} ({a * 1e6:.1f})" for k, (m, a) in sorted(libs.items())]
        ratio = ""
        if ours and peers:
            best = min(m for m, _ in peers.values())
            ratio = "  ratio " + ", ".join(f"{k}: {m / best:.2f}" for k, (m, _) in ours.items())
        write(f"{suite} {case}: " + "  ".join(cells) + ratio)
