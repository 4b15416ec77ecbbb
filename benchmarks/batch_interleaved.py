"""``fit_batch`` on JAX against a hand-written ``jax.vmap`` of evosax's CMA-ES, interleaved (issue 19).

The same comparison as ``benchmarks/test_batch_speed.py`` (``batch-jax``: 64 runs of
CMA-ES on the 10-D sphere, 200 generations each, compilation excluded), but the rounds
alternate in one process (the order rotated round by round), so that all see the same
load; the Python loop of 64 ``ES.fit`` calls (``batch-jax-vs-loop``) takes part too
unless ``LOOP=0``. XLA runs on one thread, the process bound to one CPU
(``EVOSTRAT_BENCH_CPU`` chooses it). The script prints the medians and minimums of CPU
time (``time.process_time``) and their ratios. Targets: batch at most 1.0x evosax's
vmap; at most 0.05x the loop (judged infeasible for JAX on a CPU: the batch is eigh-bound
and the loop's fits are compiled too; torch is near it: 0.046-0.054 on earlier days,
0.059-0.060 on 2026-12-07, when the same code before that day's batched record gave 0.069-0.070). ``BACKEND=torch``: the
torch rows (``batch-torch-vs-loop``: the batch and the loop of 64 ``ES.fit`` on torch CPU);
``STRATEGY=sep_cma_es`` runs those for sep-CMA-ES.

Every round of every side starts after ``gc.collect()`` (not timed): otherwise the garbage
that earlier rounds left (the batch's 64 fitted estimators and their histories among it)
sets off full collections inside whichever round comes next, 100-160 ms of a torch batch
round that belong to no side.

Run (from the repository root)::

    ROUNDS=21 EVOSTRAT_BENCH_CPU=0 python benchmarks/batch_interleaved.py
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _single_thread  # noqa: E402

_single_thread.pin()


def build(loop: bool, backend: str = "jax", name: str = "cma_es") -> dict[str, Callable[[], Any]]:
    """The rounds of the pytest benchmark (evosax's vmap, the batch, the loop; on torch the
    batch and the loop of strategy ``name``), each run once (compilation, caches)."""
    from test_batch_speed import DIM, batch_round, evosax_vmap_round, loop_round

    if backend == "torch":
        import torch

        x0 = torch.ones(DIM, dtype=torch.float64)
        rounds = {"batch": batch_round(x0, name), "loop": loop_round(x0, name)}
        for f in rounds.values():
            f()
        return rounds
    import jax

    x0 = jax.numpy.ones(DIM)
    rounds = {"evosax": evosax_vmap_round(jax), "batch": batch_round(x0)}
    if loop:
        rounds["loop"] = loop_round(x0)
    for f in rounds.values():
        f()
    return rounds


def measure(rounds: int, loop: bool, backend: str = "jax", name: str = "cma_es") -> None:
    """Time the rounds interleaved and print the CPU-time medians, minimums and ratios."""
    fns = build(loop, backend, name)
    labels = list(fns)
    cpu: dict[str, list[float]] = {k: [] for k in labels}
    for r in range(rounds):
        order = labels[r % len(labels):] + labels[:r % len(labels)]
        for label in order:
            gc.collect()  # every side alike: no earlier round's garbage collected inside this one
            c = time.process_time()
            fns[label]()
            cpu[label].append(time.process_time() - c)
    med = {k: statistics.median(v) for k, v in cpu.items()}
    low = {k: min(v) for k, v in cpu.items()}
    print("CPU ms, median / min: " + ", ".join(f"{k} {med[k] * 1e3:.1f} / {low[k] * 1e3:.1f}" for k in labels))
    if "evosax" in med:
        print(f"batch / evosax vmap: ratio of medians {med['batch'] / med['evosax']:.3f}, "
              f"of minimums {low['batch'] / low['evosax']:.3f}", flush=True)
    if "loop" in med:
        print(f"batch / loop: ratio of medians {med['batch'] / med['loop']:.3f}, "
              f"of minimums {low['batch'] / low['loop']:.3f}", flush=True)


def main() -> None:
    measure(int(os.environ.get("ROUNDS", "21")), os.environ.get("LOOP", "1") != "0",
            os.environ.get("BACKEND", "jax"), os.environ.get("STRATEGY", "cma_es"))


if __name__ == "__main__":
    main()
