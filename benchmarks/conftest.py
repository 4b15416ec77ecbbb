"""Shared set-up of the benchmark suites (pytest-benchmark; not part of the tests).

Run with ``python -m pytest benchmarks/ -p no:cacheprovider``; results of
every suite are printed as a table of medians with ratios to the peers at the
end of the session.

- BLAS and XLA run on one thread, the process bound to one CPU, unless
  ``EVOSTRAT_BENCH_THREADS`` says otherwise (``benchmarks/_single_thread.py``): on a
  shared machine multi-threaded LAPACK timings are dominated by contention (an
  eigendecomposition at d = 1000 varied from 0.1 to 3 s here), XLA's CPU runtime
  otherwise runs parts of a program on a second thread, and every library is measured
  under the same setting. Set before numpy loads.
- Peers that are not installed (``cma``, ``cmaes``, ``evosax``, ``evotorch``,
  ``evograd``) are skipped with the reason; install the pinned set with
  ``pip install -e ".[bench]"``.
- JAX runs on the CPU unless ``JAX_PLATFORMS`` is set (``JAX_PLATFORMS=cuda,cpu``
  on a GPU machine enables the ``jax-gpu`` cases; ``torch-cuda`` cases need only
  a CUDA build of torch). Without a GPU those cases are skipped.
- ``--benchmark-json=out.json`` then ``python benchmarks/report.py out.json``
  turns the run into the markdown table of ``BENCHMARKS.md``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# `benchmarks/` has no __init__.py, so pytest puts it (not the project root) on sys.path when it
# imports `benchmarks/bbob/*` for --doctest-modules; those modules import `benchmarks.bbob...`.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import _single_thread  # noqa: E402

_single_thread.pin()

import importlib.util  # noqa: E402
import statistics  # noqa: E402
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


_UNSET: Any = object()


def _record(suite: str, case: str, library: str, benchmark: Any, per_round: int = 1, *,
            strategy: str | None = None, dim: int | None = None, popsize: int | None = None,
            target: Any = _UNSET, times: list[float] | None = None, **extra: Any) -> None:
    if benchmark.stats is None:  # --benchmark-disable: a smoke run of the code, nothing timed
        return
    if times:  # rounds timed by the suite itself (interleaved with a peer's): they replace the stats
        ordered = sorted(times)
        median = statistics.median(ordered)
        extra.update(median_s=median, min_s=ordered[0], mean_s=statistics.fmean(ordered),
                     rounds=len(ordered))
        RESULTS[(suite, case)][library] = (median / per_round, extra["mean_s"] / per_round)
    else:
        stats = benchmark.stats.stats
        RESULTS[(suite, case)][library] = (stats.median / per_round, stats.mean / per_round)
    if target is _UNSET:
        from _matrix import target as default_target

        target = default_target(suite, strategy, dim)
    # Everything benchmarks/report.py needs travels in the JSON (--benchmark-json);
    # a benchmark recorded under several rows (cmaes in test_cma_speed) lists them all.
    row = dict(suite=suite, case=case, library=library, per_round=per_round,
               strategy=strategy, dim=dim, popsize=popsize, target=target, **extra)
    info = benchmark.extra_info
    info.setdefault("rows", []).append(row)
    if len(info["rows"]) == 1:
        info.update(row)


@pytest.fixture
def require() -> Any:
    """``require("cma")``: import a peer or skip the benchmark that needs it."""
    return _require


@pytest.fixture
def record() -> Any:
    """``record(suite, case, library, benchmark, per_round=1, *, strategy, dim, popsize,
    target, times=None, **extra)``: keep the finished benchmark's median and mean per generation
    for the end-of-session table, and tag the benchmark's ``extra_info`` with the row
    (suite, case, library, per_round, strategy, dim, popsize, target and ``extra``,
    e.g. ``compile_s``) for ``benchmarks/report.py``. ``times``: the seconds of each round when
    the suite timed the rounds itself (interleaved with a peer's); their median,
    minimum and mean then replace the benchmark's statistics in the row (``median_s``, ``min_s``,
    ``mean_s``, ``rounds``), so one benchmark can carry both libraries' rows. ``target`` defaults to
    :func:`_matrix.target` of the suite, strategy and dimension."""
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
