"""Where ``ES.fit``'s time goes on the compiled JAX path, against the hand-written ``lax.scan`` (issue 15).

The fit of ``benchmarks/test_run_overhead.py`` (``G = 320`` generations, compilation excluded) is
split into three phases, each round right after a round of the scan (so that, as in
``run_overhead_interleaved.py``, the fit starts with the caches the scan left):

- ``before``: from ``ES(...)`` to the call of the compiled chunk (estimator, driver, strategy
  ``init`` and its program, the run's criteria, the chunk's inputs);
- ``chunk``: the chunk program, to its results being ready;
- ``after``: from there to ``x_`` being ready (host copies, ``absorb_chunk``, read-outs).

It prints the CPU-time medians and minimums of each (``time.process_time``; the process is bound
to one CPU, so XLA's work is counted where it runs), the scan's, and ``chunk / scan``. With
``HOT=1`` it also times a second fit right after the first (``(hot)``), whose host phases find
more of their code and data in the caches.

Run (from the repository root)::

    ROUNDS=150 python benchmarks/run_overhead_phases.py cma_es:10 snes:100
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _single_thread  # noqa: E402

_single_thread.pin()


def measure(name: str, dim: int, rounds: int, hot: bool) -> None:
    """Print the phases of ``name`` at ``dim`` (see the module docstring)."""
    import jax
    from test_run_overhead import G, scan_round

    import evostrat.run.compiled as compiled
    from evostrat import ES
    from evostrat.problems import rosenbrock, sphere

    objective = rosenbrock if name == "cma_es" else sphere
    x0 = jax.numpy.ones(dim)
    clock, marks = time.process_time, {}
    program_of = compiled.chunk_program

    def timed_program(*args: Any, **kwargs: Any) -> Any:
        program = program_of(*args, **kwargs)

        def call(*inputs: Any) -> Any:
            marks["call"] = clock()
            out = jax.block_until_ready(program(*inputs))
            marks["ready"] = clock()
            return out

        return call

    def fit() -> dict[str, float]:
        marks["start"] = clock()
        es = ES(name, max_generations=G, random_state=0).fit(objective, x0)
        jax.block_until_ready(es.x_)
        end = clock()
        assert es.fast_path_ == "compiled_loop" and es.n_generations_ == G
        return {"before": marks["call"] - marks["start"], "chunk": marks["ready"] - marks["call"],
                "after": end - marks["ready"]}

    compiled.chunk_program = timed_program
    try:
        scan = scan_round(jax, name, dim, objective)
        fit()  # compiles
        times: dict[str, list[float]] = {"scan": []}
        for _ in range(rounds):
            c = clock()
            scan()
            times["scan"].append(clock() - c)
            for label, value in fit().items():
                times.setdefault(label, []).append(value)
            if hot:
                for label, value in fit().items():
                    times.setdefault(f"{label} (hot)", []).append(value)
    finally:
        compiled.chunk_program = program_of
    scan_median = statistics.median(times["scan"])
    print(f"{name} d={dim} G={G}: scan {scan_median * 1e3:.3f} ms (CPU median)", flush=True)
    for label, values in times.items():
        if label != "scan":
            print(f"  {label:14s} median {statistics.median(values) * 1e3:7.3f} ms, minimum "
                  f"{min(values) * 1e3:7.3f} ms", flush=True)
    print(f"  chunk / scan: medians {statistics.median(times['chunk']) / scan_median:.3f}", flush=True)


def main(argv: list[str]) -> None:
    rounds = int(os.environ.get("ROUNDS", "150"))
    cases = [tuple(a.split(":")) for a in argv] or [("cma_es", "10"), ("snes", "100")]
    for name, dim in cases:
        measure(name, int(dim), rounds, os.environ.get("HOT") == "1")


if __name__ == "__main__":
    main(sys.argv[1:])
