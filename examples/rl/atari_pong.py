"""OpenAI-ES on Atari Pong with the pytorch-es Convnet-LSTM, on a fixed wall-clock budget.

The pytorch-es set-up (``PongDeterministic-v4 --n 10 --lr 0.01 --useAdam``): a population
of 10 (5 mirrored pairs), sigma 0.05, Adam with lr 0.01, the 588,710-weight
Convnet-LSTM of :class:`evostrat.problems.policies.ConvLSTMPolicy` on single grey 42x42
frames (rows 34-194 of the screen), 4 frames per action, up to 30 no-ops at the start
(ALE ``Pong-v5`` without sticky actions: the ``Deterministic-v4`` dynamics). Every
generation also plays the unperturbed centre with the population
(:class:`evostrat.callbacks.centre_rank.CentreRank`) and logs its return and rank; the
run checkpoints every generation (with the problem's spec, so ``evostrat replay`` can
rebuild it) and stops after ``--minutes``.

Run::

    python examples/rl/atari_pong.py --minutes 25 --log /tmp/pong.jsonl --checkpoint /tmp/pong.ckpt
    python examples/rl/atari_pong.py --plot-log /tmp/pong.jsonl --plot docs/guides/img/pong.png
    evostrat replay /tmp/pong.ckpt --out pong.gif

Examples
--------
>>> from examples.rl.atari_pong import run                    # doctest: +SKIP
>>> run(minutes=1, workers=0)["generations"] >= 1              # doctest: +SKIP
True
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any


def make_problem(max_steps: int | None = None, seed: int = 0, vbn: bool = False) -> Any:
    """The pytorch-es Pong problem: Convnet-LSTM (selu, or elu + VBN) on 1 x 42 x 42 frames."""
    import torch

    from evostrat.problems.atari import AtariProblem
    from evostrat.problems.policies import ConvLSTMPolicy

    torch.manual_seed(seed)
    policy = ConvLSTMPolicy(n_actions=6, activation="elu" if vbn else "selu", vbn=vbn)
    return AtariProblem("Pong", policy, size=42, stack=1, crop=(34, 194), max_steps=max_steps, seed=seed)


def run(minutes: float = 25.0, popsize: int = 10, sigma: float = 0.05, lr: float = 0.01, workers: int = 2,
        max_steps: int | None = None, seed: int = 0, log: str | None = None, checkpoint: str | None = None,
        vbn: bool = False, verbose: bool = True) -> dict[str, Any]:
    """Evolve for ``minutes`` of wall-clock time; returns the per-generation records."""
    from evostrat import ES
    from evostrat.callbacks.centre_rank import CentreRank
    from evostrat.checkpoint import Checkpointer

    problem = make_problem(max_steps=max_steps, seed=seed, vbn=vbn)
    rank = CentreRank("executor", {"max_workers": workers}) if workers > 0 else CentreRank("serial")
    start = time.perf_counter()
    records: list[dict[str, Any]] = []
    out = open(log, "w") if log else None

    def monitor(es: ES) -> bool:
        entry = es.history_[-1]
        wall = time.perf_counter() - start
        record = {"generation": es.n_generations_, "wall_s": round(wall, 1), "best": entry["generation_best"],
                  "median": entry["median"], "centre": entry.get("centre_value"),
                  "centre_rank": entry.get("centre_rank"), "popsize": popsize}
        records.append(record)
        if out is not None:
            out.write(json.dumps(record) + "\n")
            out.flush()
        if verbose:
            print(f"gen {record['generation']:4d}  best {record['best']:6.1f}  median {record['median']:6.1f}  "
                  f"centre {record['centre']:6.1f} (rank {record['centre_rank']}/{popsize + 1})  "
                  f"{wall:7.1f} s", flush=True)
        return wall >= minutes * 60

    callbacks: list[Any] = [rank, monitor]
    if checkpoint:
        callbacks.append(Checkpointer(checkpoint, every=1, metadata={"atari": problem.spec()}))
    es = ES("openai_es", sigma0=sigma, popsize=popsize, maximize=True, max_generations=100_000,
            strategy_options={"lr": lr, "optimizer": "adam"}, evaluator=rank, random_state=seed)
    try:
        es.fit(problem, problem.init_params(), callbacks=callbacks)
    finally:
        if out is not None:
            out.close()
    return {"generations": es.n_generations_, "records": records, "wall_s": time.perf_counter() - start,
            "mean": es.strategy_.mean, "problem": problem}


def plot(records: list[dict[str, Any]], path: str, title: str = "") -> None:
    """Learning curve: the centre's return and the population's best and median per generation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [r["wall_s"] / 60 for r in records]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(minutes, [r["centre"] for r in records], label="centre (unperturbed)", lw=1.5)
    ax.plot(minutes, [r["best"] for r in records], label="population best", lw=0.8, alpha=0.7)
    ax.plot(minutes, [r["median"] for r in records], label="population median", lw=0.8, alpha=0.7)
    ax.set_xlabel("wall-clock minutes")
    ax.set_ylabel("episode return")
    ax.set_ylim(-21.5, max(-15, max(r["best"] for r in records) + 1))
    ax.set_title(title or "OpenAI-ES, Pong, pytorch-es Convnet-LSTM", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=25.0, help="wall-clock budget")
    parser.add_argument("--popsize", type=int, default=10)
    parser.add_argument("--sigma", type=float, default=0.05)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--workers", type=int, default=2, help="process-pool workers (0: serial)")
    parser.add_argument("--max-steps", type=int, default=None, help="episode-length cap (agent steps)")
    parser.add_argument("--vbn", action="store_true", help="elu + virtual batch normalisation instead of selu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", default=None, help="write one JSON line per generation here")
    parser.add_argument("--checkpoint", default=None, help="checkpoint every generation here")
    parser.add_argument("--plot", default=None, help="save the learning curve to this PNG")
    parser.add_argument("--plot-log", default=None, help="plot an earlier run's --log instead of running")
    parser.add_argument("--title", default="", help="title of the --plot figure")
    args = parser.parse_args(argv)
    if args.plot_log:
        with open(args.plot_log) as f:
            records = [json.loads(line) for line in f if line.strip()]
        plot(records, args.plot or "pong.png", title=args.title)
        return None
    result = run(minutes=args.minutes, popsize=args.popsize, sigma=args.sigma, lr=args.lr, workers=args.workers,
                 max_steps=args.max_steps, seed=args.seed, log=args.log, checkpoint=args.checkpoint, vbn=args.vbn)
    print(f"done: {result['generations']} generations in {result['wall_s'] / 60:.1f} min")
    if args.plot:
        plot(result["records"], args.plot, title=args.title)
    return result


if __name__ == "__main__":
    main()
