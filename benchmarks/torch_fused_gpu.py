"""Eager vs fused (``torch.compile``) torch ``tell`` on a GPU, against EvoTorch (issue 17 item 4).

For sep-CMA-ES, CMA-ES, xNES and PGPE at d = 100 and 1000 (float32, default populations)
it times, per generation:

- ``tell``: the strategy's ``tell`` alone, eager and fused (one
  :class:`~evostrat.backends.torch_fused.FusedProgram` per ``torch.compile`` mode: the
  default inductor mode and ``reduce-overhead``, i.e. CUDA graphs), replaying the inputs
  of a recorded run so CMA-ES's lazy decompositions are included at their real rate;
- ``generation``: ``ask`` + sphere + ``tell`` (eager or fused);
- ``evotorch``: EvoTorch's ``searcher.step()`` on the same sphere, where it is installed.

A round is a block of generations (CMA-ES: its decomposition gap) ending with
``torch.cuda.synchronize()``; the table gives the median and minimum milliseconds per
generation over the rounds and each row's ratio to the eager ``tell`` (or generation)
and to EvoTorch. ``launches`` counts CUDA kernels per generation (``torch.profiler``),
``host reads`` the device values read on the host (``aten::_local_scalar_dense``: each one
a synchronisation on a GPU). Without CUDA it runs a small CPU version (d = 10, CPU ops
counted instead of kernels) so the script itself stays checked; GPU rows need a GPU.

Run: ``python benchmarks/torch_fused_gpu.py [--dims 100 1000] [--rounds 30]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
import warnings
from typing import Any, Callable

import torch

from evostrat.backends.torch_fused import FusedProgram
from evostrat.strategies.cma_es import CMAES
from evostrat.strategies.pgpe import PGPE
from evostrat.strategies.sep_cma_es import SepCMAES
from evostrat.strategies.xnes import XNES

STRATEGIES = {"sep_cma_es": SepCMAES, "cma_es": CMAES, "xnes": XNES, "pgpe": PGPE}


def sphere(X: torch.Tensor) -> torch.Tensor:
    return (X * X).sum(dim=1)


def make(name: str) -> Any:
    return STRATEGIES[name](sigma0=0.1 if name == "pgpe" else 1.0)


def block(strategy: Any, dim: int) -> int:
    """Generations per round: CMA-ES's decomposition gap, else 1 (see benchmarks/_matrix.py)."""
    return strategy.eigen_every(dim) if isinstance(strategy, CMAES) else 1


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(round_fn: Callable[[], None], rounds: int, per_round: int, device: str) -> list[float]:
    """Milliseconds per generation of ``rounds`` rounds (after five warm-up rounds: the first
    call of a fused program is eager, the second compiles, CUDA graphs record after that)."""
    for _ in range(5):
        round_fn()
    sync(device)
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        round_fn()
        sync(device)
        out.append((time.perf_counter() - start) * 1e3 / per_round)
    return out


def profile(round_fn: Callable[[], None], per_round: int, device: str) -> tuple[float, float]:
    """(kernels or CPU ops, host reads) per generation of one round."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        round_fn()
        sync(device)
    events = prof.events()
    if device == "cuda":
        launches = sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
    else:
        launches = sum(1 for e in events if e.name.startswith("aten::"))
    reads = sum(1 for e in events if e.name == "aten::_local_scalar_dense")
    return launches / per_round, reads / per_round


def recorded_inputs(strategy: Any, state: Any, generations: int) -> list[tuple]:
    """``(state, X, f)`` of ``generations`` consecutive eager generations."""
    out = []
    for _ in range(generations):
        X, state = strategy.ask(state)
        f = sphere(X)
        out.append((state, X, f))
        state = strategy.tell(state, X, f)
    return out


def evotorch_round(name: str, strategy: Any, dim: int, device: str) -> Callable[[], None] | None:
    if importlib.util.find_spec("evotorch") is None:
        return None
    import logging

    from test_matrix_torch import evotorch_searcher  # the matrix's peers (this script's folder)

    logging.getLogger("evotorch").setLevel(logging.WARNING)
    searcher = evotorch_searcher(name, strategy, dim, sphere, device)
    n = block(strategy, dim)

    def run() -> None:
        for _ in range(n):
            searcher.step()

    return run


def rows_for(name: str, dim: int, device: str, modes: list[str | None], compiler: str,
             rounds: int) -> list[dict]:
    strategy = make(name)
    n = block(strategy, dim)
    state0 = strategy.init(torch.ones(dim, dtype=torch.float32, device=device), random_state=0)
    inputs = recorded_inputs(strategy, state0, n)
    tells: dict[str, Callable] = {"eager": strategy.tell}
    for mode in modes:
        tells[f"fused[{mode or 'default'}]"] = FusedProgram(strategy.tell, "always", mode, compiler)
    rows = []
    for label, tell in tells.items():
        torch.compiler.reset()  # each variant compiles afresh (CMA-ES and sep-CMA-ES share tell's
        # code, whose compiled entries would otherwise reach dynamo's recompile limit)

        def tell_round(tell: Callable = tell) -> None:
            for state, X, f in inputs:
                tell(state, X, f)

        box = {"state": state0}

        def generation_round(tell: Callable = tell) -> None:
            state = box["state"]
            for _ in range(n):
                X, state = strategy.ask(state)
                state = tell(state, X, sphere(X))
            box["state"] = state

        for what, fn in (("tell", tell_round), ("generation", generation_round)):
            times = timed(fn, rounds, n, device)
            launches, reads = profile(fn, n, device)
            failure = getattr(tell, "failure", None)
            rows.append(dict(strategy=name, dim=dim, what=what, variant=label,
                             median=statistics.median(times), min=min(times),
                             launches=launches, reads=reads, note=failure or ""))
    peer = evotorch_round(name, strategy, dim, device)
    if peer is not None:
        times = timed(peer, rounds, n, device)
        launches, reads = profile(peer, n, device)
        rows.append(dict(strategy=name, dim=dim, what="generation", variant="evotorch",
                         median=statistics.median(times), min=min(times), launches=launches,
                         reads=reads, note=""))
    return rows


def print_table(rows: list[dict], device: str) -> None:
    unit = "kernels" if device == "cuda" else "CPU ops"
    print(f"\n{'strategy':<11}{'d':>6}  {'what':<11}{'variant':<26}{'median ms':>10}{'min ms':>9}"
          f"{'x eager':>9}{'x evotorch':>11}{unit:>9}{'host reads':>11}")
    for row in rows:
        same = [r for r in rows if r["strategy"] == row["strategy"] and r["dim"] == row["dim"]]
        eager = next(r for r in same if r["what"] == row["what"] and r["variant"] == "eager"
                     ) if row["variant"] != "evotorch" else next(
            r for r in same if r["what"] == "generation" and r["variant"] == "eager")
        peer = next((r for r in same if r["variant"] == "evotorch"), None)
        vs_peer = (f"{row['median'] / peer['median']:.2f}" if peer and row["what"] == "generation"
                   else "")
        print(f"{row['strategy']:<11}{row['dim']:>6}  {row['what']:<11}{row['variant']:<26}"
              f"{row['median']:>10.3f}{row['min']:>9.3f}{row['median'] / eager['median']:>9.2f}"
              f"{vs_peer:>11}{row['launches']:>9.0f}{row['reads']:>11.1f}"
              + (f"  ({row['note'].splitlines()[0][:60]})" if row["note"] else ""))


def main(argv: list[str] | None = None) -> list[dict]:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--dims", type=int, nargs="+", default=[100, 1000] if cuda else [10])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--rounds", type=int, default=30 if cuda else 5)
    parser.add_argument("--compiler", default="inductor")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--modes", nargs="+", default=None,
                        help="torch.compile modes ('default', 'reduce-overhead', ...)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not cuda:
        print("no CUDA device: the GPU rows need one (run with --device cpu for the CPU check)")
        return []
    if args.threads:
        torch.set_num_threads(args.threads)
    modes = args.modes or (["default", "reduce-overhead"] if args.device == "cuda" else ["default"])
    modes = [None if m == "default" else m for m in modes]
    print(f"torch {torch.__version__}, device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else "")
          + f", float32, {args.rounds} rounds, compiler {args.compiler}")
    rows: list[dict] = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*functools.lru_cache")
        for dim in args.dims:
            for name in args.strategies:
                rows += rows_for(name, dim, args.device, modes, args.compiler, args.rounds)
    print_table(rows, args.device)
    fallbacks = [r for r in rows if r["note"]]
    if fallbacks:
        print(f"{len(fallbacks)} fused rows fell back to eager (see their notes)")
    return rows


if __name__ == "__main__":
    main()
