"""IPOP and BIPOP CMA-ES on JAX: the compiled driver against the host loop (issue 15).

``ES("cma_es", restarts=kind, max_evals=100_000).fit(rastrigin, x0)`` on the 10-D
Rastrigin function from ``x0 = 3``, once with ``compiled_loop="auto"`` (each run of the
schedule in compiled chunks) and once with ``compiled_loop=False`` (a host round trip
per generation). A first fit compiles every population size's programs (timed apart,
wall time); the rounds after it (CPU time, one XLA thread, the process bound to one CPU)
reuse them, and the script prints their medians and ratio. The two paths run one after
the other, not interleaved: a BIPOP fit makes about 40 programs (a chunk and an initial
state per run), and the two paths' together overflow the compile cache of 64
(``evostrat.backends.programs``), so interleaved rounds would time compilation.

Run (from the repository root)::

    ROUNDS=5 python benchmarks/restarts_jax.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _single_thread  # noqa: E402

_single_thread.pin()


def main() -> None:
    import jax.numpy as jnp

    from evostrat import ES
    from evostrat.problems import rastrigin

    rounds = int(os.environ.get("ROUNDS", "5"))
    x0 = jnp.full(10, 3.0)
    for kind in ("ipop", "bipop"):
        paths = {"compiled": "auto", "host": False}
        first, cpu, shape = {}, {label: [] for label in paths}, {}
        for label, setting in paths.items():
            wall = time.perf_counter()
            ES("cma_es", restarts=kind, max_evals=100_000, random_state=0, compiled_loop=setting).fit(rastrigin, x0)
            first[label] = time.perf_counter() - wall
            for _ in range(rounds):
                start = time.process_time()
                es = ES("cma_es", restarts=kind, max_evals=100_000, random_state=0,
                        compiled_loop=setting).fit(rastrigin, x0)
                cpu[label].append(time.process_time() - start)
                shape[label] = (es.fast_path_, len(es.restarts_), es.n_generations_, es.fun_)
        med = {label: statistics.median(v) for label, v in cpu.items()}
        for label in paths:
            path, runs, generations, fun = shape[label]
            print(f"{kind} {label}: fast_path_={path}, {runs} runs, {generations} generations, fun_ {fun:.3g}; "
                  f"first fit {first[label]:.1f} s (compiling), then {med[label] * 1e3:.0f} ms CPU a fit "
                  f"({med[label] / generations * 1e6:.0f} us a generation)")
        print(f"{kind}: compiled / host = {med['compiled'] / med['host']:.3f}", flush=True)


if __name__ == "__main__":
    main()
