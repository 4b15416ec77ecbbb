"""evostrat's augmented Lagrangian CMA-ES against pycma's ``fmin_con2``.

Problems (``g(x) <= 0``; the constrained optimum ``f*`` is computed by scipy's
SLSQP from several starts, to about 1e-12):

- ``sphere_linear``: ``||x||^2``, ``x_0 + 0.1 <= 0`` (pycma's own test, 3-D).
- ``al_doc``: ``sum(x[2:]^2) + sum((x[:2] - 1)^2) - 2``, ``x_0 <= 0, x_1 <= 0``
  (pycma's ``AugmentedLagrangian`` doctest, 3-D, x0 = 1, sigma0 = 1).
- ``sphere_ball``: ``||x - 1||^2``, ``||x||^2 - 1 <= 0`` (nonlinear, 5-D).
- ``rosen_linear``: Rosenbrock, ``sum(x) - 2 <= 0`` (5-D).
- ``rosen_disk``: Rosenbrock, ``||x||^2 - 1 <= 0`` (nonlinear, 5-D).

Both optimisers get the same start, ``sigma0`` and budget, and the same wrappers
count evaluations (one evaluation = ``f`` and ``g`` at one candidate, as pycma
counts): *evaluations* is the count at the first **feasible** candidate whose ``f``
is within ``1e-6`` of ``f*``. The run then continues to its own termination; the
report also checks the final returned point (evostrat ``x_``, the best feasible
candidate; pycma ``es.best_feasible.x``).

Run: ``python benchmarks/constraints_vs_pycma.py [--seeds 10]`` (prints a
Markdown table for BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

TOL = 1e-6


def rosen(x):
    x = np.asarray(x)
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


PROBLEMS = {
    "sphere_linear": dict(f=lambda x: float(np.dot(x, x)), g=lambda x: [x[0] + 0.1], x0=np.ones(3), sigma0=1.0),
    "al_doc": dict(f=lambda x: float(np.sum(x[2:] ** 2) + np.sum((x[:2] - 1) ** 2) - 2), g=lambda x: [x[0], x[1]],
                   x0=np.ones(3), sigma0=1.0),
    "sphere_ball": dict(f=lambda x: float(np.sum((x - 1.0) ** 2)), g=lambda x: [float(np.dot(x, x)) - 1.0],
                        x0=np.zeros(5), sigma0=0.5),
    "rosen_linear": dict(f=rosen, g=lambda x: [float(np.sum(x)) - 2.0], x0=np.zeros(5), sigma0=0.5),
    "rosen_disk": dict(f=rosen, g=lambda x: [float(np.dot(x, x)) - 1.0], x0=np.zeros(5), sigma0=0.5),
}


def reference(p) -> float:
    """The constrained optimum by SLSQP (best of several starts)."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(0)
    best = np.inf
    for _ in range(20):
        start = p["x0"] + 0.5 * rng.standard_normal(p["x0"].shape)
        r = minimize(p["f"], start, method="SLSQP", tol=1e-14, options={"maxiter": 2000},
                     constraints=[{"type": "ineq", "fun": lambda x: -np.asarray(p["g"](x), dtype=float)}])
        if r.success and np.all(np.asarray(p["g"](r.x)) <= 1e-12):
            best = min(best, float(r.fun))
    return best


class Counter:
    """Wraps f and g; remembers the evaluation at which f* + TOL was first met feasibly."""

    def __init__(self, p, fstar):
        self.p, self.fstar, self.n, self.hit = p, fstar, 0, None
        self._g = {}

    def f(self, x):
        self.n += 1
        v = self.p["f"](x)
        g = self.p["g"](x)
        if self.hit is None and np.all(np.asarray(g) <= 0) and v <= self.fstar + TOL:
            self.hit = self.n
        return v

    def g(self, x):
        return self.p["g"](x)


def run_evostrat(p, fstar, seed, budget):
    from evostrat import ES

    c = Counter(p, fstar)
    es = ES("cma_es", sigma0=p["sigma0"], max_evals=budget, random_state=seed, evaluator="serial")
    es.fit(c.f, p["x0"].copy(), constraints=c.g)
    return c.hit, es.n_evals_, np.asarray(es.x_), es.fun_


def run_pycma(p, fstar, seed, budget):
    import cma

    c = Counter(p, fstar)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, es = cma.fmin_con2(c.f, p["x0"].copy(), p["sigma0"], c.g,
                              options={"verbose": -9, "seed": seed + 1, "maxfevals": budget})
    x = es.best_feasible.x
    return c.hit, es.countevals, None if x is None else np.asarray(x), es.best_feasible.f


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=30000)
    parser.add_argument("--problems", nargs="*", default=list(PROBLEMS))
    args = parser.parse_args()
    rows = []
    for name in args.problems:
        p = PROBLEMS[name]
        fstar = reference(p)
        res = {"evostrat": [], "pycma": []}
        times = {"evostrat": 0.0, "pycma": 0.0}
        for seed in range(args.seeds):  # interleaved
            for lib, fn in (("evostrat", run_evostrat), ("pycma", run_pycma)):
                t = time.perf_counter()
                hit, n, x, fx = fn(p, fstar, seed, args.budget)
                times[lib] += time.perf_counter() - t
                ok = x is not None and np.all(np.asarray(p["g"](x)) <= 0) and fx - fstar <= TOL
                res[lib].append((hit, n, ok))
        line = [name, f"{fstar:.10g}"]
        med = {}
        for lib in ("evostrat", "pycma"):
            hits = [h for h, _, _ in res[lib] if h is not None]
            med[lib] = float(np.median(hits)) if hits else float("nan")
            final_ok = sum(ok for _, _, ok in res[lib])
            line += [f"{len(hits)}/{args.seeds}", f"{med[lib]:.0f}", f"{final_ok}/{args.seeds}",
                     f"{np.median([n for _, n, _ in res[lib]]):.0f}"]
        line.append(f"{med['evostrat'] / med['pycma']:.2f}")
        line.append(f"{times['evostrat'] / times['pycma']:.2f}")
        rows.append(line)
        print(name, line, flush=True)
    print()
    print("| problem | f* | evostrat hits | evostrat median evals to f*+1e-6 | evostrat final ok | evostrat total "
          "evals | pycma hits | pycma median evals | pycma final ok | pycma total evals | evals ratio | time ratio |")
    print("|" + " --- |" * 12)
    for line in rows:
        print("| " + " | ".join(line) + " |")


if __name__ == "__main__":
    main()
