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
in the pytest benchmark); without arguments, CMA-ES d = 10 and SNES d = 100. The argument
``numpy`` times the ``numpy-asktell`` case instead (CMA-ES d = 10 on the sphere, ``ES.ask``/``ES.tell``
against the functional core): a fresh run per round, ``G`` generations each timed, the two
alternating round by round; it prints the ratio of the per-generation medians (pytest-benchmark's
statistic; target 1.1x) and of the whole rounds, which include one read of ``history_``. The argument ``torch`` times ``ES.fit`` of CMA-ES
d = 10 on a torch sphere (float64, CPU) for ``G_TORCH = 300`` generations, every criterion checked (``tolfun``, ``tolx`` 1e-300, ``tolfunhist`` off) and
none firing, against a loop of ``strategy.ask``/objective/``strategy.tell`` over the functional core
for as many generations, the two alternating round by round (ratios of the medians and minimums of
the rounds' CPU time).

With ``FLOOR=1`` each JAX case also times, in the same rotation, the fit's compiled chunk called
alone on a fit's first inputs (``chunk``) and the least a fit on this driver must do
(``floor``): the strategy's ``init`` from ``x0``, that chunk, and the host copies of the outputs
the driver reads. ``fit / floor`` is then the share of the estimator's own host work (setting up
the run, its criteria and its record), ``floor / scan`` what no host-side change can remove.
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


def floor_rounds(name: str, dim: int) -> dict[str, Callable[[], Any]]:
    """``chunk`` and ``floor`` of the ``FLOOR=1`` mode (see the module docstring), both compiled."""
    import jax
    import numpy as np
    from test_run_overhead import G

    from evostrat import ES
    from evostrat.problems import rosenbrock, sphere
    from evostrat.run.chunk_host import chunk_counts, chunk_length, packed_run, run_rules
    from evostrat.run.compiled import chunk_program
    from evostrat.run.device_termination import device_constant

    objective = rosenbrock if name == "cma_es" else sphere
    x0 = jax.numpy.ones(dim)
    driver = ES(name, max_generations=G, random_state=0).initialize(x0).run_
    runner = driver.runner
    rules, stop_names = run_rules(driver)
    program = chunk_program(runner.strategy, objective, runner.backend, rules, stop_names)
    first, limit = packed_run(driver, rules), device_constant(chunk_length(runner.popsize), "int32")

    def chunk() -> Any:
        return jax.block_until_ready(program(*first, limit))

    def floor() -> Any:
        state = runner.strategy.init(x0, random_state=0)
        run, record = program(*first._replace(state=state), limit)
        out = [np.asarray(v) for v in (run.floats, run.ints, record)]
        assert chunk_counts(out[1])[0] == G  # the whole budget in the one chunk, as the fit's
        return jax.block_until_ready(run.state)

    chunk(), floor()  # compiled
    return {"chunk": chunk, "floor": floor}


def measure(name: str, dim: int, rounds: int) -> None:
    from test_run_overhead import G

    scan, fit = build(name, dim)
    extra = floor_rounds(name, dim) if os.environ.get("FLOOR") == "1" else {}
    times: dict[str, list[tuple[float, float]]] = {"scan": [], "fit": [], **{k: [] for k in extra}}
    for r in range(rounds):
        order = [("scan", scan), ("fit", fit)] if r % 2 == 0 else [("fit", fit), ("scan", scan)]
        order += list(extra.items())[:: 1 if r % 2 == 0 else -1]
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
    for label in extra:
        print(f"  {label}: {statistics.median(cpu[label]) * 1e3:.2f} ms, / scan: medians "
              f"{statistics.median(cpu[label]) / statistics.median(cpu['scan']):.3f}, minimums "
              f"{min(cpu[label]) / min(cpu['scan']):.3f}", flush=True)


def measure_numpy(rounds: int) -> None:
    """The ``numpy-asktell`` case: per-generation and whole-round ratios (see the module docstring)."""
    import numpy as np
    from test_run_overhead import G

    from evostrat import ES
    from evostrat.plugins.factories import make_strategy
    from evostrat.problems import sphere

    clock = time.process_time

    def core() -> list[float]:
        s = make_strategy("cma_es", None)
        state, times = s.init(np.ones(10), random_state=0), []
        for _ in range(G):
            c = clock()
            X, state = s.ask(state)
            state = s.tell(state, X, sphere(X))
            times.append(clock() - c)
        return times

    def fit() -> list[float]:
        es = ES("cma_es", max_generations=10**6, tolfun=None, tolx=None, random_state=0).initialize(np.ones(10))
        times = []
        for _ in range(G):
            c = clock()
            X = es.ask()
            es.tell(X, sphere(X))
            times.append(clock() - c)
        c = clock()
        es.history_
        return times + [clock() - c]

    per: dict[str, list[float]] = {"core": [], "es": []}
    whole: dict[str, list[float]] = {"core": [], "es": []}
    for r in range(rounds + 1):
        for label, f in ([("core", core), ("es", fit)] if r % 2 == 0 else [("es", fit), ("core", core)]):
            times = f()
            if r:  # the first round warms up
                per[label] += times[20:G]
                whole[label].append(sum(times))
    med = {k: statistics.median(v) for k, v in per.items()}
    print(f"numpy-asktell cma_es d=10 G={G}: core {med['core'] * 1e6:.1f} us, ES {med['es'] * 1e6:.1f} us a "
          f"generation (CPU medians); ratio of per-generation medians {med['es'] / med['core']:.3f}, of whole "
          f"rounds: medians {statistics.median(whole['es']) / statistics.median(whole['core']):.3f}, minimums "
          f"{min(whole['es']) / min(whole['core']):.3f}", flush=True)


G_TORCH = 300


def measure_torch(rounds: int) -> None:
    """The ``torch`` case: ``ES.fit`` against the functional core's loop (see the module docstring)."""
    import torch

    from evostrat import ES
    from evostrat.plugins.factories import make_strategy
    from evostrat.problems import sphere

    torch.set_num_threads(1)
    x0 = torch.ones(10, dtype=torch.float64)

    def core() -> Any:
        s = make_strategy("cma_es", None)
        state = s.init(x0, random_state=0)
        for _ in range(G_TORCH):
            X, state = s.ask(state)
            state = s.tell(state, X, sphere(X))
        return state

    def fit() -> Any:
        es = ES("cma_es", max_generations=G_TORCH, tolfun=1e-300, tolx=1e-300,
                tolfunhist=None, random_state=0).fit(sphere, x0)
        assert es.n_generations_ == G_TORCH and es.stop_reason_ == "maxiter", es.stop_reason_
        return es

    times: dict[str, list[float]] = {"core": [], "fit": []}
    for r in range(rounds + 1):
        for label, f in ([("core", core), ("fit", fit)] if r % 2 == 0 else [("fit", fit), ("core", core)]):
            c = time.process_time()
            f()
            if r:  # the first round warms up
                times[label].append(time.process_time() - c)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"torch-fit cma_es d=10 G={G_TORCH}: core {med['core'] * 1e3:.1f} ms, fit {med['fit'] * 1e3:.1f} ms "
          f"(CPU medians); ratio of medians {med['fit'] / med['core']:.3f}, of minimums "
          f"{min(times['fit']) / min(times['core']):.3f}", flush=True)


def main(argv: list[str]) -> None:
    rounds = int(os.environ.get("ROUNDS", "21"))
    cases = [tuple(a.split(":")) for a in argv] or [("cma_es", "10"), ("snes", "100")]
    for case in cases:
        if case == ("numpy",):
            measure_numpy(rounds)
        elif case == ("torch",):
            measure_torch(rounds)
        else:
            measure(case[0], int(case[1]), rounds)


if __name__ == "__main__":
    main(sys.argv[1:])
