"""One thread for every library in a benchmark process (set before numpy, torch or JAX load).

``pin()`` is called by ``benchmarks/conftest.py`` and by the stand-alone comparison
scripts, so that every library is timed under the same setting:

- BLAS/OpenMP: ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``;
- XLA: ``--xla_cpu_multi_thread_eigen=false``, and the process is bound to one CPU
  (``os.sched_setaffinity``). XLA sizes its CPU thread pool from the CPUs the process
  may run on and runs independent parts of a program on it; no ``XLA_FLAGS`` entry
  turns that off, and on 2 cores the second thread made a 320-generation SNES
  ``lax.scan`` at d = 100 take 19-20 ms of wall time (25-30 ms of CPU) against 5.5-7.7 ms
  bound to one CPU. Bound, a round's CPU time equals its wall time.

``EVOSTRAT_BENCH_THREADS`` (default ``1``) changes the count: any other value leaves the
process unbound and sets the BLAS variables to it. ``EVOSTRAT_BENCH_CPU`` chooses the CPU
(default: the last one the process may use).

Examples
--------
>>> import _single_thread                    # doctest: +SKIP
>>> _single_thread.pin()                     # doctest: +SKIP
"""

from __future__ import annotations

import os

__all__ = ["pin", "XLA_FLAGS"]

#: The XLA setting of single-threaded runs (Eigen's own pool off).
XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false"


def pin() -> int | None:
    """Apply the thread setting; returns the CPU the process is bound to (``None``: unbound)."""
    threads = os.environ.get("EVOSTRAT_BENCH_THREADS", "1")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, threads)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if threads != "1":
        return None
    os.environ.setdefault("XLA_FLAGS", XLA_FLAGS)
    if not hasattr(os, "sched_setaffinity"):  # macOS, Windows: threads stay as the libraries set them
        return None
    allowed = sorted(os.sched_getaffinity(0))
    cpu = int(os.environ.get("EVOSTRAT_BENCH_CPU", allowed[-1]))
    os.sched_setaffinity(0, {cpu})
    return cpu
