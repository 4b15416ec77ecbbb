"""evostrat's CMA-ES against pycma generation by generation, and run lengths under one draw.

Issue 23 left one gap open: on BBOB f12 (bent cigar, 20-D) single runs from the origin took
about 10 % more evaluations with evostrat than with pycma 4.5. This module tells the two
apart in two ways:

- ``trace``: pycma asks (its own sampling, seeded), both libraries are told the *same*
  candidates and values, and after every generation the states are compared: mean, the
  distribution's covariance ``sigma^2 C``, sigma, the paths ``p_sigma`` and ``p_c``. Told
  the same points, two implementations of the same algorithm agree to rounding; the first
  generation where they do not, and the quantity that differs, names the difference.
  pycma's options are set to evostrat's defaults (``CMA_active``, the default population,
  no mirrors or injections); ``flat=True`` replaces pycma's initial ``C = diag(exp(1e-4 i /
  n))`` (a deliberate 1e-4 perturbation) by the identity, and ``match_chi=True`` gives
  pycma's step-size rule evostrat's ``E||N(0, I)||`` (see below).
- ``runs``: evaluations to f_opt + 1e-8 of single runs (no restarts, ``budget`` at most) of
  pycma, of evostrat's CMA-ES with its own draws (what ``ES("cma_es", random_state=seed)``
  runs: the same evaluations, checked), and of evostrat's update sampling ``m + sigma B D z``
  with pycma's normal draws (``np.random.RandomState(seed).randn``, the stream pycma seeds).
  The same ``z`` give the same candidates only in the first generation: C's eigenvalues are
  repeated at first, and the two eigendecompositions pick different bases of those
  eigenspaces (equal distributions, different points), so the runs are independent draws of
  run lengths. Many seeds compare the algorithms; "evostrat" against "evostrat with pycma's
  draws" isolates evostrat's random generator.

What the trace found (pycma 4.5 against evostrat at commit 732a463):

- ``h_sigma``: pycma (``CMAAdaptSigmaBase.hsig``) tests ``||p_s||^2 / (1 - (1 -
  c_s)^(2g)) / n < 2 + 4 / (n + 1)``, evostrat tested the tutorial's ``||p_s|| / sqrt(1 - (1
  - c_s)^(2g)) < (1.4 + 2 / (n + 1)) E||N(0, I)||`` (Hansen, "The CMA Evolution Strategy: A
  Tutorial", arXiv 1604.00772, eq. 45): at n = 20 thresholds of 43.81 and 43.61 on the
  squared length. On f12 (instance 1, seed 2) the states parted at generation 435, after
  the first collapse of sigma, when the length fell between them: evostrat stalled ``p_c``,
  pycma did not. evostrat now uses pycma's test (``CMAParameters.hsig_threshold2``).
- ``E||N(0, I)||`` in CSA: pycma's ``Mh.chiN(n)`` is, up to n = 100, the exact
  ``sqrt(2) Gamma((n + 1) / 2) / Gamma(n / 2)`` (4.416605 at n = 20); evostrat keeps the
  tutorial's ``sqrt(n) (1 - 1 / (4n) + 1 / (21 n^2))`` (4.416767, 3.7e-5 larger): sigma
  differs by 5e-6 after one generation and by about 2e-4 at most later.
- pycma's active update divides by ``(norm + 1e-9)^2``: 1e-11 in C.

With the second matched (``match_chi``, and ``flat``), the states agree to 1e-9 over the first
300 generations and to 1e-6 over 1,500 (COCO's f12, instances 1-5, seeds 1-2, from the
origin), except once values tie after the target (evostrat gives tied candidates their ranks'
mean weight, pycma an order).

Usage::

    python -m benchmarks.bbob.trace_compare trace --instance 1 --seed 1 --generations 1000
    python -m benchmarks.bbob.trace_compare runs --instances 1-5 --seeds 20

Needs ``cma`` (pycma) and ``cocoex`` (``pip install -e ".[bench]"``). BLAS on one thread.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import time
import warnings
from typing import Any, Callable, Iterator

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from evostrat.strategies.cma_es import CMAES  # noqa: E402

#: Compared quantities of :func:`trace`, in its records' order.
QUANTITIES = ("mean", "cov", "sigma", "ps", "pc")


class BBOBProblem:
    """A fresh COCO ``bbob`` problem (``final_target_hit`` unset), kept with its suite
    (the suite frees its problems when it goes)."""

    def __init__(self, function: int, instance: int, dim: int) -> None:
        import cocoex

        self.suite = cocoex.Suite("bbob", "", f"dimensions:{dim} instance_indices:{instance} "
                                  f"function_indices:{function}")
        self.problem = next(iter(self.suite))

    def __call__(self, x: np.ndarray) -> float:
        return float(self.problem(x))

    def hit(self) -> bool:
        """Whether some evaluation reached f_opt + 1e-8."""
        return bool(self.problem.final_target_hit)


@contextlib.contextmanager
def pycma_chi(dim: int, value: float | None) -> Iterator[None]:
    """pycma's ``E||N(0, I)||`` for ``dim`` set to ``value`` (``None``: unchanged) inside."""
    from cma.utilities.math import MathHelperFunctions

    table = MathHelperFunctions._chiN_dict
    missing = object()
    old = table.get(dim, missing)
    if value is not None:
        table[dim] = value
    try:
        yield
    finally:
        if old is missing:
            table.pop(dim, None)
        else:
            table[dim] = old


def pycma_es(x0: np.ndarray, sigma0: float, seed: int, *, flat: bool = True,
             options: dict | None = None) -> Any:
    """pycma's CMA-ES with evostrat's defaults (active, default popsize, no mirrors).

    ``flat`` replaces pycma's initial ``diag(exp(1e-4 i / n))`` by the identity.
    """
    import cma

    n = len(x0)
    opts = {"seed": seed, "verbose": -9, "CMA_active": True, "CMA_mirrors": 0,
            "popsize": CMAES().resolved_popsize(n), **(options or {})}
    es = cma.CMAEvolutionStrategy(np.asarray(x0, dtype=float), sigma0, opts)
    if flat:
        es.sm.C, es.sm.B, es.sm.D = np.eye(n), np.eye(n), np.ones(n)
        es._updateBDfromSM(es.sm)
    return es


def _rel(a: Any, b: Any) -> float:
    """max |a - b| / max |a| (0 when both are 0)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = float(np.max(np.abs(a)))
    return float(np.max(np.abs(a - b))) / scale if scale > 0 else float(np.max(np.abs(b)))


def _pycma_cov(es: Any) -> np.ndarray:
    scaling = np.ones(es.N) * es.sigma_vec.scaling
    return es.sigma**2 * np.outer(scaling, scaling) * es.sm.C


def compare(es: Any, strategy: CMAES, state: Any) -> dict[str, float]:
    """Relative differences of :data:`QUANTITIES` between pycma's ``es`` and ``state``.

    ``cov`` is ``sigma^2 C`` (evostrat may move C's scale into sigma), ``pc`` is compared as
    ``sigma p_c`` for the same reason (pycma keeps C's scale).
    """
    cov = state.sigma**2 * strategy.current_cov(state)
    return {"mean": _rel(es.mean, state.mean), "cov": _rel(_pycma_cov(es), cov),
            "sigma": abs(float(state.sigma * np.exp(-0.5 * state.log_scale)) / es.sigma - 1.0),
            "ps": _rel(es.adapt_sigma.ps, state.ps),
            "pc": _rel(es.sigma * es.pc, state.sigma * state.pc)}


def trace(objective: Callable[[np.ndarray], float], x0: np.ndarray, sigma0: float = 2.0,
          seed: int = 1, generations: int = 300, *, flat: bool = True,
          match_chi: bool = True) -> list[dict[str, float]]:
    """Tell pycma and evostrat the candidates pycma asks; compare after every generation.

    Returns one record per generation: the relative differences of :func:`compare`, the
    generation's best value ``f``, pycma's ``sigma`` and ``||p_sigma||`` (``ps_norm``).

    Examples
    --------
    >>> cigar = lambda x: float(x[0] ** 2 + 1e6 * (x[1:] ** 2).sum())
    >>> rows = trace(cigar, np.ones(10), generations=30)
    >>> bool(max(max(r[q] for r in rows) for q in QUANTITIES) < 1e-9)
    True
    """
    x0 = np.asarray(x0, dtype=float)
    n = x0.size
    strategy = CMAES(sigma0=sigma0)
    state = strategy.init(x0.copy(), random_state=0)
    chi = strategy.parameters(n).chi_n if match_chi else None
    rows = []
    with pycma_chi(n, chi), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        es = pycma_es(x0, sigma0, seed, flat=flat)
        for _ in range(generations):
            X = np.array(es.ask())
            f = np.array([objective(x) for x in X])
            es.tell(list(X), list(f))
            state = strategy.tell(state, X, f)
            ps_norm = float(np.linalg.norm(es.adapt_sigma.ps))
            rows.append({**compare(es, strategy, state), "f": float(f.min()),
                         "sigma_pycma": es.sigma, "ps_norm": ps_norm})
    return rows


def run_length(kind: str, objective: Callable[[np.ndarray], float], hit: Callable[[], bool],
               x0: np.ndarray, seed: int, budget: int, sigma0: float = 2.0) -> float:
    """Evaluations until ``hit()`` (checked after each generation), ``inf`` past ``budget``.

    ``kind``: ``"pycma"`` (pycma 4.5 as it is, with evostrat's population size),
    ``"pycma-matched"`` (its initial C the identity, its ``E||N(0, I)||`` evostrat's),
    ``"evostrat"`` (:class:`~evostrat.strategies.cma_es.CMAES` with its own draws, as
    ``ES("cma_es", random_state=seed)`` runs it), ``"evostrat-pycma-draws"`` (the same
    update, ``z`` from ``np.random.RandomState(seed).randn(popsize, n)``, pycma's stream).
    """
    x0 = np.asarray(x0, dtype=float)
    n, evals = x0.size, 0
    if kind in ("pycma", "pycma-matched"):
        matched = kind == "pycma-matched"
        chi = CMAES().parameters(n).chi_n if matched else None
        with pycma_chi(n, chi), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            es = pycma_es(x0, sigma0, seed, flat=matched)
            while evals < budget:
                X = es.ask()
                es.tell(X, [objective(x) for x in X])
                evals += len(X)
                if hit():
                    return float(evals)
        return math.inf
    strategy = CMAES(sigma0=sigma0)
    state = strategy.init(x0.copy(), random_state=seed)
    draws = np.random.RandomState(seed) if kind == "evostrat-pycma-draws" else None
    if kind not in ("evostrat", "evostrat-pycma-draws"):
        raise ValueError(f"kind: 'pycma', 'pycma-matched', 'evostrat' or 'evostrat-pycma-draws', "
                         f"got {kind!r}")
    popsize = strategy.resolved_popsize(n)
    while evals < budget:
        if draws is None:
            X, state = strategy.ask(state)
        else:  # CMAES.sample's x = m + sigma B (D z) with pycma's z
            z = draws.randn(popsize, n)
            X = state.mean + state.sigma * ((z * state.D) @ state.B.T)
        state = strategy.tell(state, X, np.array([objective(x) for x in X]))
        evals += popsize
        if hit():
            return float(evals)
    return math.inf


def bootstrap_median(values: np.ndarray, resamples: int = 2000,
                     seed: int = 0) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the median of ``values``."""
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(values, (resamples, len(values))), axis=1)
    return float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))


def _ints(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def _trace_main(args: argparse.Namespace) -> None:
    problem = BBOBProblem(args.function, args.instance, args.dim)
    x0 = np.zeros(args.dim) if args.x0 == "origin" else \
        np.random.default_rng(100 + args.seed).uniform(-4.0, 4.0, args.dim)
    rows = trace(problem, x0, args.sigma0, args.seed, args.generations,
                 flat=not args.pycma_initial_c, match_chi=not args.pycma_chi)
    print("| generation | best f | pycma sigma | " + " | ".join(QUANTITIES) + " |")
    print("|---:" * (3 + len(QUANTITIES)) + "|")
    for g, row in enumerate(rows, 1):
        if g <= 5 or g % args.every == 0 or g == len(rows):
            print(f"| {g} | {row['f']:.6g} | {row['sigma_pycma']:.3g} | "
                  + " | ".join(f"{row[q]:.1e}" for q in QUANTITIES) + " |")
    worst = {q: max(r[q] for r in rows) for q in QUANTITIES}
    print("largest over all generations: " + ", ".join(f"{q} {v:.1e}" for q, v in worst.items()))


def _runs_main(args: argparse.Namespace) -> None:
    kinds = args.kinds.split(",")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(f"| f | instance | x0 | {' | '.join(kinds)} (median evaluations, solved) |")
    print("|---|---:|---|" + "---:|" * len(kinds))
    runs: dict[str, list[float]] = {k: [] for k in kinds}
    records: list[dict[str, Any]] = []
    for instance in _ints(args.instances):
        medians = []
        for kind in kinds:
            evals = []
            for seed in seeds:
                problem = BBOBProblem(args.function, instance, args.dim)
                x0 = np.zeros(args.dim) if args.x0 == "origin" else \
                    np.random.default_rng(100 + seed).uniform(-4.0, 4.0, args.dim)
                evals.append(run_length(kind, problem, problem.hit, x0, seed, args.budget,
                                        args.sigma0))
                records.append({"kind": kind, "function": args.function, "instance": instance,
                                "x0": args.x0, "seed": seed, "evals": evals[-1]})
            runs[kind].extend(evals)
            e = np.asarray(evals)
            medians.append(f"{np.median(e):.0f} ({int(np.isfinite(e).sum())}/{e.size})")
        print(f"| f{args.function} | {instance} | {args.x0} | " + " | ".join(medians) + " |")
    for kind, evals in runs.items():
        e = np.asarray(evals)
        low, high = bootstrap_median(e)
        print(f"all: {kind}: median {np.median(e):.0f} (95 % bootstrap {low:.0f}-{high:.0f}), "
              f"geometric mean {np.exp(np.mean(np.log(e))):.0f}, sd of ln {np.std(np.log(e)):.3f}")
    for kind in kinds[1:]:  # geometric-mean ratio to the first kind, with one standard error
        a, b = np.log(runs[kinds[0]]), np.log(runs[kind])
        se = math.sqrt(np.var(a) / a.size + np.var(b) / b.size)
        print(f"{kind} / {kinds[0]}: ratio of geometric means {math.exp(b.mean() - a.mean()):.3f} "
              f"(+- {se:.3f}, one standard error of the log ratio)")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(records, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("trace", "runs"):
        p = sub.add_parser(name)
        p.add_argument("--function", type=int, default=12)
        p.add_argument("--dim", type=int, default=20)
        p.add_argument("--sigma0", type=float, default=2.0)
        p.add_argument("--x0", choices=("origin", "uniform"), default="origin",
                       help="COCO's initial_solution (0) or uniform in [-4, 4]^d per seed")
    t = sub.choices["trace"]
    t.add_argument("--instance", type=int, default=1)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--generations", type=int, default=1000)
    t.add_argument("--every", type=int, default=100, help="print every this many generations")
    t.add_argument("--pycma-chi", action="store_true", help="keep pycma's E||N(0, I)||")
    t.add_argument("--pycma-initial-c", action="store_true",
                   help="keep pycma's initial diag(exp(1e-4 i / n))")
    r = sub.choices["runs"]
    r.add_argument("--instances", default="1-5")
    r.add_argument("--seeds", type=int, default=20)
    r.add_argument("--first-seed", type=int, default=1)
    r.add_argument("--json", help="write every run's evaluations to this JSON file")
    r.add_argument("--budget", type=int, default=60_000)
    r.add_argument("--kinds", default="pycma,evostrat,evostrat-pycma-draws")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    (_trace_main if args.command == "trace" else _runs_main)(args)
    print(f"wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
