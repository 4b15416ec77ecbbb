"""One configuration on the ``bbob`` suite: COCO's data folder plus our own records.

``run_experiment`` writes, under ``out``:

- ``exdata/<algorithm>/``: COCO's data (``cocoex.Observer``), read by ``cocopp``;
- ``records.jsonl``: one line per problem with the evaluations used and, when the
  final target (f_opt + 1e-8) was reached, the evaluation that reached it
  (``hit_evals``), counted by a wrapper around the problem;
- ``run.json``: the settings and the wall time.

All work on a problem happens inside the suite loop: ``cocoex`` frees a problem
when the iterator advances.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks.bbob.algorithms import ALGORITHMS


def parse_ints(text: str) -> list[int]:
    """``"1-3,7"`` -> ``[1, 2, 3, 7]``."""
    values: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            values.extend(range(int(lo), int(hi) + 1))
        else:
            values.append(int(part))
    return values


class Counted:
    """The problem behind a counter that notes the evaluation reaching the final target."""

    def __init__(self, problem: Any) -> None:
        self.problem = problem
        self.hit_evals: int | None = None

    def __call__(self, x: Any) -> float:
        value = self.problem(x)
        if self.hit_evals is None and self.problem.final_target_hit:
            self.hit_evals = int(self.problem.evaluations)
        return value

    def hit(self) -> bool:
        return self.hit_evals is not None


def run_experiment(algorithm: str, out: str | os.PathLike, dims: Sequence[int], instances: Sequence[int],
                   functions: Sequence[int], budget_multiplier: float = 1000.0, sigma0: float = 2.0,
                   x0: str = "proposal", seed: int = 1, verbose: bool = True) -> Path:
    """Run ``algorithm`` on the chosen ``bbob`` problems; returns the output folder."""
    import cocoex

    if algorithm not in ALGORITHMS:
        raise SystemExit(f"unknown algorithm {algorithm!r}; choose from {', '.join(ALGORITHMS)}")
    if x0 not in ("proposal", "initial"):
        raise SystemExit(f"x0 must be 'proposal' or 'initial', got {x0!r}")
    solve = ALGORITHMS[algorithm][0]
    out = Path(out).resolve()
    if (out / "records.jsonl").exists() or (out / "exdata" / algorithm).exists():
        raise SystemExit(f"{out} already holds a run; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    settings = dict(algorithm=algorithm, description=ALGORITHMS[algorithm][1], dims=list(dims),
                    instances=list(instances), functions=list(functions),
                    budget_multiplier=budget_multiplier, sigma0=sigma0, x0=x0, seed=seed,
                    python=platform.python_version(), versions=_versions())
    suite = cocoex.Suite("bbob", "instances: " + ",".join(map(str, instances)),
                         "dimensions: " + ",".join(map(str, dims))
                         + " function_indices: " + ",".join(map(str, functions)))
    t_start = time.perf_counter()
    n = 0
    # cocoex writes under ./exdata/<result_folder>: run inside `out` (restored afterwards).
    with contextlib.chdir(out), open("records.jsonl", "w") as records:
        observer = cocoex.Observer("bbob", f"result_folder: {algorithm} algorithm_name: {algorithm}")
        for problem in suite:
            problem.observe_with(observer)
            dim = int(problem.dimension)
            budget = int(budget_multiplier * dim)
            counted = Counted(problem)
            start = (problem.initial_solution_proposal if x0 == "proposal"
                     else np.array(problem.initial_solution))
            run_seed = seed + 1000 * int(problem.id_instance) + int(problem.id_function)
            t0 = time.perf_counter()
            error = None
            try:
                solve(counted, dim, budget, sigma0, run_seed, start, counted.hit)
            except Exception as exc:  # recorded, never hidden: the report counts it as a failure
                error = f"{type(exc).__name__}: {exc}"
            record = dict(algorithm=algorithm, function=int(problem.id_function), dimension=dim,
                          instance=int(problem.id_instance), budget=budget,
                          evals=int(problem.evaluations), hit_evals=counted.hit_evals,
                          best_f=float(problem.best_observed_fvalue1), seed=run_seed,
                          seconds=round(time.perf_counter() - t0, 3), error=error)
            records.write(json.dumps(record) + "\n")
            records.flush()
            n += 1
            if verbose:
                mark = "hit" if counted.hit() else "   "
                print(f"{algorithm} {problem.id} {mark} evals={record['evals']} "
                      f"{record['seconds']:.2f}s" + (f" ERROR {error}" if error else ""), flush=True)
        observer = None  # noqa: F841 (closes COCO's files before the wall time is taken)
    settings["problems"] = n
    settings["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    (out / "run.json").write_text(json.dumps(settings, indent=1) + "\n")
    return out


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("evostrat", "cma", "coco-experiment", "cocopp", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    try:  # the commit evostrat was run at, when it runs from a checkout
        import evostrat

        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(evostrat.__file__).parent,
                              capture_output=True, text=True, timeout=10)
        if head.returncode == 0:
            found["evostrat_commit"] = head.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return found
