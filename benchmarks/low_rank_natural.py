"""The low-rank NES with natural-gradient steps against its plain (Adam) steps (issue 21).

Two measurements, numpy float64, threads pinned to one:

- ``quality``: the rotated ellipsoid ``f(x) = sum_i 1e4^(i/(d-1)) (R x)_i^2`` with a dense random
  rotation (the construction of ``tests/rotated_problems.py``), ``x0 = R^T 1``, sigma0 = 1, every
  criterion but ``ftarget = 1e-8`` and the budget off; one JSON line per run (evaluations, best f,
  wall time).
- ``tell``: process CPU time of one ``tell`` at ``--dim`` (default 1000) and ``--rank`` (8), median
  of 25 generations after 5 of warm-up, natural against plain.

Run::

    python benchmarks/low_rank_natural.py quality --dim 100 --budget 200000 --ranks 4 16
    python benchmarks/low_rank_natural.py tell --dim 1000 --rank 8
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from evostrat import ES  # noqa: E402
from evostrat.strategies.nes import NES  # noqa: E402

OFF = dict(tolfun=None, tolx=None, tolfunhist=None, tolstagnation=None, tolflatfitness=None)


def rotated_ellipsoid(dim: int, seed: int = 0):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    R = q * np.sign(np.diag(r))
    coef = 1e4 ** (np.arange(dim) / (dim - 1))
    return (lambda X: ((np.atleast_2d(X) @ R.T) ** 2) @ coef), R.T @ np.ones(dim)


def quality(args: argparse.Namespace) -> None:
    f, x0 = rotated_ellipsoid(args.dim)
    for rank in args.ranks:
        for gradient in ("auto", "plain"):
            t = time.time()
            es = ES("nes", distribution="low_rank_normal", sigma0=1.0, ftarget=1e-8, max_evals=args.budget,
                    random_state=args.seed, evaluator="vectorized",
                    strategy_options=dict(gradient=gradient, distribution_options={"rank": rank}), **OFF).fit(f, x0)
            print(json.dumps(dict(dim=args.dim, rank=rank, gradient="natural" if gradient == "auto" else "plain",
                                  evals=int(es.n_evals_), f=float(es.fun_), stop=es.stop_reason_,
                                  wall_s=round(time.time() - t, 1))), flush=True)


def tell(args: argparse.Namespace) -> None:
    weights = np.linspace(1.0, 100.0, args.dim)
    for gradient in ("auto", "plain"):
        s = NES(distribution="low_rank_normal", distribution_options={"rank": args.rank}, gradient=gradient)
        state = s.init(np.ones(args.dim), random_state=0)
        times = []
        for _ in range(30):
            X, state = s.ask(state)
            fx = (X * X) @ weights
            t = time.process_time()
            state = s.tell(state, X, fx)
            times.append(time.process_time() - t)
        print(json.dumps(dict(dim=args.dim, rank=args.rank, gradient="natural" if gradient == "auto" else "plain",
                              tell_cpu_ms=round(1e3 * float(np.median(times[5:])), 2))), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["quality", "tell"])
    parser.add_argument("--dim", type=int, default=None)
    parser.add_argument("--budget", type=int, default=200_000)
    parser.add_argument("--ranks", type=int, nargs="+", default=[4])
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.dim = args.dim or (100 if args.what == "quality" else 1000)
    (quality if args.what == "quality" else tell)(args)


if __name__ == "__main__":
    main()
