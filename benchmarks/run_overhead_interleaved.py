"""``ES.fit`` on the compiled JAX path against a hand-written ``lax.scan``, interleaved (issue 15).

The same comparison as ``benchmarks/test_run_overhead.py`` (``jax-fit``: ``G = 320``
generations, compilation excluded), but the two alternate round by round in one
process (the scan first on even rounds, the fit first on odd ones), so that both see
the same load. XLA runs on one thread; the script prints the ratio of the medians of
CPU time (``time.process_time``), the ratio of the minimums and the ratio of the
wall-time medians. Target: at most 1.2x.

Run (from the repository root)::

    ROUNDS=21 python benchmarks/run_overhead_interleaved.py cma_es:10 snes:100

Each argument is ``strategy:dim`` (CMA-ES on Rosenbrock, the others on the sphere, as
in the pytest benchmark); without arguments, CMA-ES d = 10 and SNES d = 100.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _single_thread  # noqa: E402

_single_thread.pin()


def build(name: str, dim: int) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """The scan's round and the fit's round of one case, both compiled (the pytest benchmark's)."""
    import jax
    from test_run_overhead import fit_round, scan_round

    from evostrat.problems import rosenbrock, sphere

    objective = rosenbrock if name == "cma_es" else sphere
    return scan_round(jax, name, dim, objective), fit_round(jax, name, dim, objective)


def measure(name: str, dim: int, rounds: int) -> None:
    from test_run_overhead import G

    scan, fit = build(name, dim)
    times: dict[str, list[tuple[float, float]]] = {"scan": [], "fit": []}
    for r in range(rounds):
        order = [("scan", scan), ("fit", fit)] if r % 2 == 0 else [("fit", fit), ("scan", scan)]
        for label, f in order:
            c, w = time.process_time(), time.perf_counter()
            f()
            times[label].append((time.process_time() - c, time.perf_counter() - w))
    cpu = {k: [t[0] for t in v] for k, v in times.items()}
    wall = {k: [t[1] for t in v] for k, v in times.items()}
    med = statistics.median(cpu["fit"]) / statistics.median(cpu["scan"])
    mins = min(cpu["fit"]) / min(cpu["scan"])
    wmed = statistics.median(wall["fit"]) / statistics.median(wall["scan"])
    print(f"{name} d={dim} G={G}: scan {statistics.median(cpu['scan']) * 1e3:.1f} ms, fit "
          f"{statistics.median(cpu['fit']) * 1e3:.1f} ms (CPU medians); ratio of medians {med:.3f}, "
          f"of minimums {mins:.3f}, of wall medians {wmed:.3f}", flush=True)


def main(argv: list[str]) -> None:
    rounds = int(os.environ.get("ROUNDS", "21"))
    cases = [tuple(a.split(":")) for a in argv] or [("cma_es", "10"), ("snes", "100")]
    for name, dim in cases:
        measure(name, int(dim), rounds)


if __name__ == "__main__":
    main(sys.argv[1:])
