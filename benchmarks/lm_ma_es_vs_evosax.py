"""Evaluations to f < 1e-8 of evostrat's LM-MA-ES and evosax's ``LM_MA_ES`` on the same problems.

Both start at ``x0 = 3 * ones`` (rotated ellipsoid: ``R^T ones``) with sigma0 = 2 and the
population ``4 + floor(3 ln n)``; evosax runs in float64 under one ``jax.lax.scan`` per 100
generations. Problems: sphere (n = 10, 40, 100) and the rotated ellipsoid of condition 1e4
(n = 100, ``benchmarks/high_dim_rotated.py``'s dense rotation). The two implementations differ in
their step-size rule: evostrat follows the paper (``c_s = 2 lambda / n``, ``exp(c_s / 2 (|p|^2 / n - 1))``),
evosax uses CMA-ES's path-length control (``c_s = (mu_w + 2) / (n + mu_w + 5)``, ``|p| / chi_n``).
Prints one JSON line per (problem, n): both medians over the seeds, ``None`` for a miss.

    python benchmarks/lm_ma_es_vs_evosax.py --seeds 0 1 2 --budget 400000
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _single_thread  # noqa: E402

_single_thread.pin()

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from high_dim_rotated import RotatedEllipsoid  # noqa: E402

from evostrat import ES  # noqa: E402


def problem(name: str, n: int):
    if name == "sphere":
        return (lambda X: np.sum(np.atleast_2d(X) ** 2, axis=1)), np.full(n, 3.0), None
    f = RotatedEllipsoid(n, 0)
    return f, 3.0 * f.unrotate(np.ones((1, n)))[0], f


def evostrat_evals(name: str, n: int, seed: int, budget: int) -> int | None:
    f, x0, _ = problem(name, n)
    es = ES("lm_ma_es", sigma0=2.0, ftarget=1e-8, max_evals=budget, random_state=seed, tolfun=None,
            tolx=None, tolfunhist=None, tolstagnation=None, tolflatfitness=None,
            evaluator="vectorized").fit(f, x0)
    return int(es.n_evals_) if es.stop_reason_ == "ftarget" else None


def evosax_evals(name: str, n: int, seed: int, budget: int) -> int | None:
    import jax
    import jax.numpy as jnp
    from evosax.algorithms import LM_MA_ES

    jax.config.update("jax_enable_x64", True)
    _, x0, rot = problem(name, n)
    if rot is None:
        def f(X):
            return jnp.sum(X**2, axis=-1)
    else:
        R, coef = jnp.asarray(rot.R), jnp.asarray(rot.coef)

        def f(X):
            Y = X @ R.T
            return (Y * Y) @ coef
    lam = 4 + int(np.floor(3 * np.log(n)))
    es = LM_MA_ES(population_size=lam, solution=jnp.zeros(n))
    params = es.default_params.replace(std_init=2.0)
    key = jax.random.PRNGKey(seed)
    state = es.init(key, jnp.asarray(x0), params)

    def step(carry, _):
        key, state = carry
        key, k1, k2 = jax.random.split(key, 3)
        X, state = es.ask(k1, state, params)
        fit = f(X)
        state, _ = es.tell(k2, X, fit, state, params)
        return (key, state), jnp.min(fit)

    chunk = jax.jit(lambda c: jax.lax.scan(step, c, None, length=100))
    carry, used = (key, state), 0
    while used < budget:
        carry, fs = chunk(carry)
        hit = np.nonzero(np.asarray(fs) < 1e-8)[0]
        if hit.size:
            return used + int(hit[0] + 1) * lam
        used += 100 * lam
    return None


def median(values: list) -> float | None:
    hits = [v for v in values if v is not None]
    return float(np.median(hits)) if len(hits) == len(values) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=400_000)
    args = parser.parse_args()
    for name, n in (("sphere", 10), ("sphere", 40), ("sphere", 100), ("rotated_ellipsoid", 100)):
        ours = [evostrat_evals(name, n, s, args.budget) for s in args.seeds]
        theirs = [evosax_evals(name, n, s, args.budget) for s in args.seeds]
        m_ours, m_theirs = median(ours), median(theirs)
        ratio = None if m_ours is None or m_theirs is None else round(m_ours / m_theirs, 3)
        print(json.dumps({"problem": name, "n": n, "evostrat": ours, "evosax": theirs,
                          "median_evostrat": m_ours, "median_evosax": m_theirs, "ratio": ratio}), flush=True)


if __name__ == "__main__":
    main()
