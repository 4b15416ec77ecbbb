"""CMA-ES on noisy spheres, with and without uncertainty handling (UH-CMA-ES).

Problems (4-D, ``x0 = 1``, ``sigma0 = 1``), as in pycma's noise examples:

- ``multiplicative``: ``||x||^2 (1 + 4 N(0, 1) / n)`` (pycma's ``NoiseHandler`` doctest; the
  sign of the value flips often);
- ``additive``: ``||x||^2 + 0.1 U(0, 1)`` (the offset of ``cma.ff.noisysphere``).

Plain: ``ES("cma_es")`` with its default termination; UH: ``noise_handling=dict(max_evaluations=1000)``
(``tolfacupx`` off, as pycma's ``fmin`` turns it off with a noise handler). Both have the same
evaluation budget; the table shows the median over seeds of the true ``||m||^2`` of the mean at
each quarter of the budget (a run that stopped keeps its last value).

Run: ``python benchmarks/noisy_sphere.py [--seeds 5] [--budget 40000]``.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

DIM = 4


def objective(kind: str, seed: int) -> Any:
    rng = np.random.default_rng([seed, 7])

    def f(X: np.ndarray) -> np.ndarray:
        s = (X ** 2).sum(axis=1)
        if kind == "multiplicative":
            return s * (1 + 4 * rng.standard_normal(len(X)) / X.shape[1])
        return s + 0.1 * rng.random(len(X))

    return f


def run(kind: str, seed: int, budget: int, handled: bool) -> list[float]:
    """True ``||m||^2`` at each quarter of ``budget``."""
    from evostrat import ES

    marks: list[float] = []

    def mark(es: Any) -> None:
        if es.n_evals_ >= budget * (len(marks) + 1) / 4:
            marks.append(float((np.asarray(es.strategy_.mean) ** 2).sum()))

    options: dict[str, Any] = dict(sigma0=1.0, max_evals=budget, random_state=seed, evaluator="vectorized")
    if handled:
        options.update(noise_handling=dict(max_evaluations=1000), strategy_options=dict(tolfacupx=None))
    es = ES("cma_es", **options).fit(objective(kind, seed), np.ones(DIM), callbacks=[mark])
    last = float((np.asarray(es.strategy_.mean) ** 2).sum())
    return (marks + [last] * 4)[:4]


def study(kind: str, seeds: Any = range(5), budget: int = 40_000) -> dict[str, list[float]]:
    """Median over ``seeds`` of the quarter marks, ``{"plain": [...], "uh": [...]}``."""
    out = {}
    for name, handled in (("plain", False), ("uh", True)):
        rows = np.array([run(kind, seed, budget, handled) for seed in seeds])
        out[name] = np.median(rows, axis=0).tolist()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=40_000)
    args = parser.parse_args()
    print("| noise | CMA-ES | 25 % | 50 % | 75 % | 100 % of the budget |")
    print("| --- | --- | --- | --- | --- | --- |")
    for kind in ("multiplicative", "additive"):
        rows = study(kind, range(args.seeds), args.budget)
        for name, label in (("plain", "plain"), ("uh", "with uncertainty handling")):
            print(f"| {kind} | {label} | " + " | ".join(f"{v:.1e}" for v in rows[name]) + " |", flush=True)


if __name__ == "__main__":
    main()
