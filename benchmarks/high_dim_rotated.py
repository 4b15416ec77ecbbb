"""Rotated ellipsoid at high dimension: LM-MA-ES and the low-rank NES against sep-CMA-ES and SNES.

``f(x) = sum_i 1e4^(i / (d - 1)) (R x)_i^2`` (condition 1e4) with an orthogonal ``R``: a dense
random rotation (QR of a Gaussian matrix) up to ``--dense-max`` dimensions, above it a cheap
structured one, ``R = B2 P B1`` with ``B1``, ``B2`` block-diagonal random rotations of 10 x 10
blocks and ``P`` a random permutation (O(10 d) per candidate, every coordinate coupled to 100).
Each run starts at ``x0 = R^T 1`` (so ``f(x0)`` is the unrotated ellipsoid's at ``1``), sigma0 = 1,
and stops at ``f < 1e-8`` or ``--budget`` evaluations. Prints one JSON line per run: evaluations,
best value, the state's bytes (the memory the strategy keeps between generations) and wall time.

Threads are pinned to one (set before numpy loads). Run::

    python benchmarks/high_dim_rotated.py --dim 1000 --budget 3000000 --seeds 0 1 2 \\
        --strategies lm_ma_es sep_cma_es snes nes_low_rank

``--profile`` runs the pure ``init``/``ask``/``tell`` instead of ``ES.fit`` for ``--budget``
evaluations and prints the tracemalloc peak and CPU time of one generation, the state's size,
the best value seen and ``f`` at the final mean (the d = 100,000 numbers in BENCHMARKS.md)::

    python benchmarks/high_dim_rotated.py --profile --dim 100000 --budget 3800 --strategies vkd_cma sep_cma_es
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

from evostrat import ES  # noqa: E402

STRATEGIES = {
    "lm_ma_es": ("lm_ma_es", {}),
    "sep_cma_es": ("sep_cma_es", {}),
    "snes": ("snes", {}),
    "nes_low_rank": ("nes", {"distribution": "low_rank_normal"}),
    "vkd_cma": ("vkd_cma", {}),  # k from --vkd-k
}


class RotatedEllipsoid:
    """Vectorised rotated ellipsoid (rows of ``X`` are candidates)."""

    def __init__(self, dim: int, seed: int, dense_max: int = 2000, block: int = 10) -> None:
        rng = np.random.default_rng(1000 + seed)
        self.coef = 1e4 ** (np.arange(dim) / max(dim - 1, 1))
        self.dense = dim <= dense_max
        if self.dense:
            q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
            self.R = q * np.sign(np.diag(r))
        else:
            assert dim % block == 0, "the structured rotation needs dim divisible by the block size"
            self.block = block
            self.B1, self.B2 = (self._blocks(rng, dim // block, block) for _ in range(2))
            self.perm = rng.permutation(dim)

    @staticmethod
    def _blocks(rng: np.random.Generator, n: int, b: int) -> np.ndarray:
        q, r = np.linalg.qr(rng.normal(size=(n, b, b)))
        return q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]

    def _apply_blocks(self, B: np.ndarray, X: np.ndarray, transpose: bool = False) -> np.ndarray:
        Y = X.reshape(X.shape[0], B.shape[0], B.shape[1])
        return np.einsum("nkj,kij->nki" if not transpose else "nki,kij->nkj", Y, B).reshape(X.shape)

    def rotate(self, X: np.ndarray) -> np.ndarray:
        if self.dense:
            return X @ self.R.T
        return self._apply_blocks(self.B2, self._apply_blocks(self.B1, X)[:, self.perm])

    def unrotate(self, Y: np.ndarray) -> np.ndarray:
        if self.dense:
            return Y @ self.R
        Z = self._apply_blocks(self.B2, Y, transpose=True)
        out = np.empty_like(Z)
        out[:, self.perm] = Z
        return self._apply_blocks(self.B1, out, transpose=True)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(X)
        Y = self.rotate(X)
        return (Y * Y) @ self.coef


def run(name: str, dim: int, seed: int, budget: int, dense_max: int, vkd_k: int | str = 10) -> dict:
    f = RotatedEllipsoid(dim, seed, dense_max)
    x0 = f.unrotate(np.ones((1, dim)))[0]
    strategy, options = STRATEGIES[name]
    if name == "vkd_cma":
        options = {"k": vkd_k}
    k_changes: list[tuple[int, int]] = []  # vkd_cma: (evaluations, k) whenever k changes

    def track_k(es: ES) -> None:
        k = int(es.strategy_.state.k)
        if not k_changes or k_changes[-1][1] != k:
            k_changes.append((int(es.n_evals_), k))
    es = ES(strategy, sigma0=1.0, ftarget=1e-8, max_evals=budget, random_state=seed,
            strategy_options=options or None, tolfun=None, tolx=None, tolfunhist=None,
            tolstagnation=None, tolflatfitness=None, evaluator="vectorized")
    start = time.perf_counter()
    es.fit(f, x0, callbacks=[track_k] if name == "vkd_cma" else None)
    state = es.run_.runner.state
    nbytes = sum(int(np.asarray(v).nbytes) for v in _leaves(state))
    reached = {}
    for target in (1e2, 1.0, 1e-4, 1e-8):
        hit = next((h["n_evals"] for h in es.history_ if h["best"] < target), None)
        reached[f"{target:g}"] = hit
    return {"evals_to": reached, "strategy": name, "dim": dim, "seed": seed, "evals": int(es.n_evals_), "fun": float(es.fun_),
            "stop": es.stop_reason_, **({"k": vkd_k, "k_changes": k_changes} if name == "vkd_cma" else {}), "state_bytes": nbytes, "seconds": round(time.perf_counter() - start, 1),
            "rotation": "dense" if f.dense else "blocks",
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def profile(name: str, dim: int, seed: int, budget: int, dense_max: int, vkd_k: int | str = "auto",
            vkd_k_max: int | None = None) -> dict:
    """``budget // popsize`` generations of the pure ``init``/``ask``/``tell`` (no run driver):
    the tracemalloc peak inside ``ask`` and inside ``tell`` above what lives before each (the
    population counts in ``ask``'s), process CPU time per generation, the state's bytes and the
    best value seen."""
    from evostrat.plugins import registry

    f = RotatedEllipsoid(dim, seed, dense_max)
    x0 = f.unrotate(np.ones((1, dim)))[0]
    strategy_name, options = STRATEGIES[name]
    if name == "vkd_cma":
        options = {"k": vkd_k, "k_max": vkd_k_max}
    strategy = registry("strategies")[strategy_name](sigma0=1.0, **options)
    state = strategy.init(x0, random_state=seed)
    generations = budget // strategy.resolved_popsize(dim)
    best, peaks, cpu = math.inf, [], 0.0
    tracemalloc.start()
    for _ in range(generations):
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        start = time.process_time()
        X, state = strategy.ask(state)
        cpu += time.process_time() - start
        peak_ask = tracemalloc.get_traced_memory()[1] - base
        values = f(X)
        best = min(best, float(np.min(values)))
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        start = time.process_time()
        state = strategy.tell(state, X, values)
        cpu += time.process_time() - start
        peaks.append(max(peak_ask, tracemalloc.get_traced_memory()[1] - base + X.nbytes))
        del X, values
    tracemalloc.stop()
    return {"strategy": name, "dim": dim, "seed": seed, "generations": generations,
            "evals": generations * strategy.resolved_popsize(dim), "best": best, "f_x0": float(f(x0)[0]),
            "f_mean": float(f(np.asarray(strategy.mean(state)))[0]),
            "state_mb": round(sum(int(np.asarray(v).nbytes) for v in _leaves(state)) / 1e6, 1),
            "peak_mb_per_generation": round(max(peaks) / 1e6, 1),
            "cpu_s_per_generation": round(cpu / generations, 3),
            **({"k": vkd_k, "k_max": vkd_k_max, "k_end": float(state.k)} if name == "vkd_cma" else {})}


def _leaves(tree):
    if isinstance(tree, tuple):
        for v in tree:
            yield from _leaves(v)
    elif hasattr(tree, "nbytes"):
        yield tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=1000)
    parser.add_argument("--budget", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    parser.add_argument("--dense-max", type=int, default=2000)
    parser.add_argument("--vkd-k", type=lambda v: v if v == "auto" else int(v), default="auto",
                        help="vkd_cma's number of directions k, or 'auto' (online selection)")
    parser.add_argument("--vkd-k-max", type=int, default=None,
                        help="vkd_cma's k_max (k='auto'; default min(d - 1, 100))")
    parser.add_argument("--profile", action="store_true",
                        help="memory and CPU of one generation (tracemalloc; pure ask/tell) and the best "
                             "value after --budget")
    args = parser.parse_args()
    for seed in args.seeds:
        for name in args.strategies:
            if args.profile:
                out = profile(name, args.dim, seed, args.budget, args.dense_max, args.vkd_k, args.vkd_k_max)
            else:
                out = run(name, args.dim, seed, args.budget, args.dense_max, args.vkd_k)
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
