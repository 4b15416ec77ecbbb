"""``evostrat run``: optimise a benchmark or your function and keep everything in a folder.

``--problem module:function`` (or ``file.py:function``) and a vector or ``@FILE`` ``--x0``
are read by :mod:`evostrat.cli.inputs`.

The output folder (``--output``, default ``runs/<strategy>-<problem>-<dim>d-seed<seed>``)
receives ``config.json`` (the configuration), ``history.csv`` (one row per generation),
``checkpoint.ckpt`` (every ``--checkpoint-every`` generations and at the end, also after
Ctrl-C, SIGTERM or SIGHUP: the last finished generation),
``result.json`` (best point and value, evaluations, generations, stop reason) and, with
``--plot``, ``convergence.png``, ``diagnostics.png`` and for 2-D problems ``search.png``
(``evostrat plot DIR`` draws the first two from ``history.csv`` and ``distribution.jsonl``, the
distribution's mean, standard deviations, axes and correlation spectrum, at any time). ``evostrat run
--resume -o DIR`` continues a run interrupted in ``DIR`` from its last checkpoint, with the
saved configuration, to the result the uninterrupted run gives (bit for bit);
``--max-evals``/``--max-generations`` with ``--resume`` extend its budget, and a run its
budget stopped goes on as if the new budget had been given from the start.

Examples
--------
>>> import json, os, tempfile
>>> from evostrat.cli import main
>>> out = os.path.join(tempfile.mkdtemp(), "run")
>>> main(["run", "--strategy", "snes", "--problem", "sphere", "--dim", "3", "--seed", "1",
...       "--ftarget", "1e-8", "--output", out, "--no-progress"])   # doctest: +ELLIPSIS
snes on 3-D sphere (numpy, seed 1): best f = ... (stop: ftarget; ...)
wrote ...: config.json, history.csv, distribution.jsonl, result.json, checkpoint.ckpt
0
>>> json.load(open(os.path.join(out, "result.json")))["stop_reason"]
'ftarget'
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from typing import Any

from evostrat import ES, __version__
from evostrat.backends import backend_names
from evostrat.backends.points import physical_memory
from evostrat.cli.inputs import (check_saved_config, is_user_problem, load_objective, problem_label, read_x0,
                                 run_config)
from evostrat.cli.outdir import new_output, recover_overwritten, replacing
from evostrat.cli.plot import objective_on_grid
from evostrat.cli.types import (
    finite_float, nonnegative_float, nonnegative_int, positive_float, positive_int, strategy_option,
)
from evostrat.errors import EvostratError, InvalidArgumentError, InvalidTypeError, UnknownNameError
from evostrat.plugins import registry
from evostrat.problems import FUNCTIONS

__all__ = ["add_parser", "UsageError", "CONFIG_DEFAULTS"]

#: The configuration of a run: option name -> default. ``--resume`` takes these from the checkpoint.
CONFIG_DEFAULTS: dict[str, Any] = {
    "strategy": "cma_es", "problem": "sphere", "dim": 10, "x0": 3.0, "sigma0": None, "popsize": None,
    "backend": "numpy", "device": None, "dtype": None, "evaluator": "auto", "workers": None,
    "max_evals": None, "max_generations": None, "ftarget": None, "restarts": None, "seed": 0,
    "patience": None, "min_delta": 0.0, "checkpoint_every": 10, "strategy_options": None, "maximize": False,
}
CHECKPOINT = "checkpoint.ckpt"
#: The files of a run in its folder (``--overwrite`` replaces them all).
RUN_FILES = (CHECKPOINT, "config.json", "history.csv", "distribution.jsonl", "result.json", "convergence.png",
             "diagnostics.png", "search.png")
BUDGETS = ("max_evals", "max_generations")  # what --resume may change
#: The option behind each parameter of ``ES``/``ES.resume``/the callbacks that ``evostrat run`` sets: a
#: Python error names the parameter (``popsize must be >= 2``), the command line names the option.
OPTIONS = {**{name: "--" + name.replace("_", "-") for name in CONFIG_DEFAULTS if name != "seed"},
           "strategy_options": "--strategy-option", "distribution": "-O distribution", "random_state": "--seed", "max_workers": "--workers", "num_workers": "--workers"}


class UsageError(Exception):
    """Wrong or conflicting arguments: printed with the usage, exit status 2."""


def as_options(message: str) -> str:
    """``message``, an error of the Python API, naming the options instead of the parameters: the
    parameter it starts with and any ``resume(name=value)`` (:data:`OPTIONS`).

    Examples
    --------
    >>> as_options("popsize must be >= 2 for cma_es, got 1")
    '--popsize must be >= 2 for cma_es, got 1'
    >>> as_options("resume(max_evals=3) is below the 30 evaluations the run has already made")
    '--max-evals 3 is below the 30 evaluations the run has already made'
    >>> as_options("the objective returned 3 values")
    'the objective returned 3 values'
    """
    message = re.sub(r"\bresume\((\w+)=([^)]*)\)",
                     lambda m: f"{OPTIONS[m[1]]} {m[2]}" if m[1] in OPTIONS else m[0], message)
    first = re.match(r"(\w+)(?=[ =:'])", message)
    return OPTIONS[first[1]] + message[first.end():] if first and first[1] in OPTIONS else message


def _fitness_strategies() -> list[str]:
    return sorted(name for name, cls in registry("strategies").items()
                  if not getattr(cls, "needs_behaviours", False))


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``run`` to the subcommands ``sub``."""
    p = sub.add_parser(
        "run", help="optimise a benchmark or your function; write history, result, checkpoints, plots",
        description="Optimise a benchmark problem or your function (-p module:function) and write config.json, "
                    "history.csv, checkpoint.ckpt, result.json (and with --plot convergence.png, diagnostics.png, search.png) to the "
                    "output folder. --resume continues an interrupted run from its checkpoint (--max-evals N: "
                    "with a new budget).",
    )
    d = CONFIG_DEFAULTS
    what = p.add_argument_group("problem and strategy")
    strategies, problems = _fitness_strategies(), sorted(FUNCTIONS)
    what.add_argument("-s", "--strategy", choices=strategies, default=None, metavar="NAME",
                      help=f"one of {', '.join(strategies)} (default {d['strategy']})")
    what.add_argument("-p", "--problem", default=None, metavar="NAME",
                      help=f"one of {', '.join(problems)} (default {d['problem']}), or your function: "
                           "module:function or path/to/file.py:function (imported: its code runs)")
    what.add_argument("-d", "--dim", type=positive_int, default=None,
                      help=f"dimension (default {d['dim']}, or the length of a vector --x0)")
    what.add_argument("--x0", default=None, metavar="X0",
                      help=f"initial mean: a number for every coordinate (default {d['x0']}), a vector 1,2,3 or "
                           "'[1, 2, 3]', or @FILE (.npy, .json, or text of numbers)")
    what.add_argument("--sigma0", type=positive_float, default=None, help="initial step size (default: the strategy's)")
    what.add_argument("--popsize", type=positive_int, default=None, help="population size (default: the strategy's)")
    what.add_argument("--restarts", choices=["ipop", "bipop"], default=None, help="restart schedule (default none)")
    what.add_argument("--maximize", action="store_true", default=None,
                      help="maximise your function (a return, a reward: GymProblem) instead of minimising it")
    what.add_argument("-O", "--strategy-option", dest="strategy_options", action="append", type=strategy_option,
                      metavar="NAME=VALUE", help="a hyper-parameter of the strategy, repeatable (-O distribution=laplace "
                      "-O lr_mean=0.5); VALUE is read as JSON, else taken as a string")
    how = p.add_argument_group("backend and evaluation")
    how.add_argument("-b", "--backend", choices=backend_names(), default=None, help=f"array backend (default {d['backend']})")
    how.add_argument("--device", default=None, help="torch/JAX device, e.g. cuda (default: the backend's)")
    how.add_argument("--dtype", choices=["float32", "float64"], default=None, help="floating dtype (default: the backend's)")
    evaluators = sorted(registry("evaluators"))
    how.add_argument("-e", "--evaluator", choices=evaluators, default=None, metavar="NAME",
                     help=f"how candidates are evaluated: {', '.join(evaluators)} (default {d['evaluator']})")
    how.add_argument("--workers", type=positive_int, default=None, help="worker processes of the executor/ray evaluators")
    stop = p.add_argument_group("budget and stopping")
    stop.add_argument("--max-evals", type=positive_int, default=None,
                      help="evaluation budget (with --resume: the new budget of the saved run)")
    stop.add_argument("--max-generations", type=positive_int, default=None,
                      help="generation budget (with --resume: the new budget of the saved run)")
    stop.add_argument("--ftarget", type=finite_float, default=None, help="stop once the best value reaches this")
    stop.add_argument("--patience", type=positive_int, default=None,
                      help="early stopping: generations without improvement of the best value")
    stop.add_argument("--min-delta", type=nonnegative_float, default=None,
                      help="early stopping: smallest improvement that counts (default 0)")
    stop.add_argument("--seed", type=nonnegative_int, default=None, help=f"random seed (default {d['seed']})")
    out = p.add_argument_group("output")
    out.add_argument("-o", "--output", default=None,
                     help="output folder (default runs/<strategy>-<problem>-<dim>d-seed<seed>)")
    out.add_argument("--checkpoint-every", type=positive_int, default=None,
                     help=f"generations between checkpoints (default {d['checkpoint_every']})")
    out.add_argument("--no-checkpoint", action="store_true", help="write no checkpoints")
    out.add_argument("--resume", action="store_true", help="continue the run saved in --output")
    out.add_argument("--overwrite", action="store_true", help="replace a previous run in --output")
    out.add_argument("--plot", action="store_true", help="write convergence.png, diagnostics.png (and search.png in 2-D)")
    bar = out.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="show the progress bar even when stderr is not a terminal")
    bar.add_argument("--no-progress", dest="progress", action="store_false",
                     help="no progress bar (default: shown on a terminal)")
    p.set_defaults(func=_cmd_run, parser=p)
    return p


def _recover(out: str) -> None:
    """Settle what an ``--overwrite`` killed mid-way left in ``out`` (the old run back, or its files
    removed), telling the user on stderr."""
    for note in recover_overwritten(out, RUN_FILES, CHECKPOINT):
        print(f"evostrat run: {note}", file=sys.stderr)


def _config(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration from the arguments (new run) or the checkpoint (``--resume``)."""
    given = {k: getattr(args, k) for k in CONFIG_DEFAULTS if getattr(args, k, None) is not None}
    if "strategy_options" in given:  # [(name, value), ...] -> {name: value}, the last of a name winning
        given["strategy_options"] = dict(given["strategy_options"])
    if args.problem is not None:  # a file's path made absolute: resumable from any folder
        where, _, name = args.problem.rpartition(":")
        given["problem"] = f"{os.path.abspath(where)}:{name}" if where.endswith(".py") else args.problem
    if args.resume:
        if set(given) - set(BUDGETS) - {"problem"}:
            raise UsageError(
                "--resume continues the saved run with its own configuration (but a new --max-evals or "
                "--max-generations); drop " + ", ".join(OPTIONS.get(k, "--" + k) for k in given
                                                        if k not in (*BUDGETS, "problem")))
        if args.output is None:
            raise UsageError("--resume needs --output DIR, the folder of the run to continue")
        if args.overwrite or args.no_checkpoint:
            raise UsageError("--resume cannot be combined with --overwrite or --no-checkpoint")
        _recover(args.output)
        path = os.path.join(args.output, CHECKPOINT)
        if not os.path.isfile(path):
            raise UsageError(f"--resume: no checkpoint {path!r}; was the run started with this --output?")
        from evostrat.checkpoint import checkpoint_info
        from evostrat.checkpoint.format import read_checkpoint

        saved = checkpoint_info(path)["user"].get("cli")
        # runs from before -O and --maximize existed
        saved = {"strategy_options": None, "maximize": False, **saved} if isinstance(saved, dict) else saved
        if not isinstance(saved, dict) or set(saved) != set(CONFIG_DEFAULTS):
            raise UsageError(f"--resume: {path!r} was not written by 'evostrat run'; use ES.resume() in Python")
        config = check_saved_config(saved, path, CONFIG_DEFAULTS)
        config = run_config(config, read_checkpoint(path)[0])  # the run's own values, whatever the config says
        mine = is_user_problem(config["problem"])
        if given.get("problem", config["problem"] if not mine else None) != config["problem"]:
            raise UsageError(f"--resume: the saved run optimised {config['problem']!r}; " + (
                f"give -p {config['problem']} (your function is imported only when you name it)" if mine
                else "drop --problem"))
        return {**config, **given}
    config = {**CONFIG_DEFAULTS, **given}
    if config["problem"] not in FUNCTIONS and not is_user_problem(config["problem"]):
        raise UsageError(f"argument -p/--problem: {config['problem']!r} is neither a benchmark "
                         f"({', '.join(sorted(FUNCTIONS))}) nor module:function or path/to/file.py:function")
    x0 = read_x0(args.x0) if args.x0 is not None else config["x0"]
    if isinstance(x0, list):
        if args.dim is not None and args.dim != len(x0):
            raise UsageError(f"--x0 has {len(x0)} coordinates but --dim is {args.dim}")
        config["dim"] = len(x0)
    config["x0"] = "@" + os.path.abspath(args.x0.strip()[1:]) if args.x0 and args.x0.strip()[0] == "@" else x0
    if config["patience"] is None and "min_delta" in given:
        raise UsageError("--min-delta needs --patience")
    if config["workers"] is not None and config["evaluator"] not in ("executor", "ray"):
        raise UsageError("--workers needs --evaluator executor or ray")
    return config


def _output(args: argparse.Namespace, config: dict[str, Any]) -> str:
    out = args.output or os.path.join(
        "runs", f"{config['strategy']}-{problem_label(config['problem'])}-{config['dim']}d-seed{config['seed']}"
    )
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"argument -o/--output: {out!r} exists and is not a folder")
    from evostrat.checkpoint.format import check_writable

    check_writable(os.path.join(out, CHECKPOINT), f"--output {out!r}")  # before a long run, not at its end
    if not args.resume:  # --resume: in _config, before it reads the checkpoint
        _recover(out)
    if not args.resume and not args.overwrite:
        previous = [f for f in (CHECKPOINT, "result.json") if os.path.exists(os.path.join(out, f))]
        if previous:
            raise UsageError(
                f"{out!r} already holds a run ({', '.join(previous)}); pass --resume to continue it, "
                "--overwrite to replace it, or another --output"
            )
    return out


def _estimator(config: dict[str, Any]) -> Any:
    try:  # a wrong -O is a usage error naming the option
        registry("strategies")[config["strategy"]]().set_params(**(config["strategy_options"] or {})).validate_params()
    except (EvostratError, TypeError) as err:
        raise UsageError(f"argument -O/--strategy-option: {err}") from err
    options = None
    if config["workers"] is not None:  # the executor's pool size, or Ray's task parallelism
        key = "num_workers" if config["evaluator"] == "ray" else "max_workers"
        options = {key: config["workers"]}
    return ES(
        config["strategy"], sigma0=config["sigma0"], popsize=config["popsize"],
        max_evals=config["max_evals"], max_generations=config["max_generations"],
        ftarget=config["ftarget"], restarts=config["restarts"], backend=config["backend"],
        device=config["device"], dtype=config["dtype"], evaluator=config["evaluator"],
        evaluator_options=options, random_state=config["seed"], strategy_options=config["strategy_options"],
        maximize=bool(config["maximize"]),
    )


def _callbacks(config: dict[str, Any], out: str, plot: bool) -> tuple[list[Any], Any]:
    from evostrat.callbacks import CSVLogger, DistributionRecorder, EarlyStopping, SearchRecorder

    # the distribution's mean, stds, axes, correlations for evostrat plot RUN_DIR, beside history.csv
    distribution = DistributionRecorder(history=False, path=os.path.join(out, "distribution.jsonl"), overhead=0.02)
    callbacks: list[Any] = [CSVLogger(os.path.join(out, "history.csv")), distribution]
    if config["patience"] is not None:
        callbacks.append(EarlyStopping(config["patience"], config["min_delta"]))
    recorder = SearchRecorder() if plot and config["dim"] == 2 else None
    return callbacks + ([recorder] if recorder is not None else []), recorder


def _result(es: Any, config: dict[str, Any], elapsed: float, resumed_from: int | None) -> dict[str, Any]:
    import numpy as np

    x = np.asarray(es.strategy_.backend.to_numpy(es.x_), dtype=np.float64)
    return {
        "strategy": config["strategy"], "problem": config["problem"], "dim": config["dim"],
        "backend": config["backend"], "seed": config["seed"],
        "fun": float(es.fun_), "x": x.tolist(), "n_evals": es.n_evals_,
        "n_generations": es.n_generations_, "stop_reason": es.stop_reason_,
        "restarts": len(es.restarts_) - 1 if es.restarts_ else 0,
        "wall_time_s": elapsed, "resumed_from_generation": resumed_from, "evostrat_version": __version__,
    }


def _write_json(path: str, data: Any) -> None:
    """Write ``data`` to ``path`` atomically, never through a link (a fresh ``O_EXCL`` temporary file)."""
    from evostrat.checkpoint.format import atomic_file

    with atomic_file(path, prefix=".") as f:
        f.write((json.dumps(data, indent=2) + "\n").encode("utf-8"))


def _fit(args: argparse.Namespace, config: dict[str, Any], out: str, objective: Any, callbacks: list[Any],
         progress: Any, checkpoint: Any) -> tuple[Any, int | None]:
    """The fitted (or resumed) estimator and the generation it resumed from (``None``: a new run)."""
    import numpy as np

    from evostrat.checkpoint import checkpoint_info
    from evostrat.checkpoint.format import remove_stale_temps

    if args.resume:
        path = os.path.join(out, CHECKPOINT)
        remove_stale_temps(path)  # of writes killed mid-way
        resumed_from = checkpoint_info(path)["n_generations"]
        budgets = {k: getattr(args, k) for k in BUDGETS if getattr(args, k) is not None}
        es = ES.resume(path, objective, callbacks, progress=progress, checkpoint=checkpoint, **budgets)
        if budgets:
            _write_json(os.path.join(out, "config.json"), config)
    else:
        resumed_from = None

        if not isinstance(config["x0"], list) and 8 * config["dim"] > physical_memory():  # np.full below
            raise UsageError(f"--dim {config['dim']}: a start point of that many float64 coordinates needs "
                             f"{8 * config['dim'] / 2**30:.3g} GiB, more than the "
                             f"{physical_memory() / 2**30:.3g} GiB of memory")
        es, made = _estimator(config), lambda: getattr(es, "n_generations_", 0)
        saved = lambda: made() > 0 and (checkpoint is None or checkpoint.n_written > 0)  # noqa: E731
        # --overwrite keeps the old run until the new one has a checkpoint; a failed start leaves nothing (outdir)
        with replacing(out, RUN_FILES if args.overwrite else (), saved) as check, new_output(
                out, RUN_FILES[1:4], made, CHECKPOINT):
            _write_json(os.path.join(out, "config.json"), config)
            x0 = config["x0"] if not isinstance(config["x0"], str) else read_x0(config["x0"])
            x0 = np.asarray(x0, dtype=np.float64) if isinstance(x0, list) else np.full(config["dim"], float(x0))
            es.fit(objective, x0, [*callbacks, check], progress=progress, checkpoint=checkpoint)
    return es, resumed_from


def _cmd_run(args: argparse.Namespace) -> int:
    config = _config(args)  # usage errors first, before the heavier imports
    out = _output(args, config)
    if args.plot:
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            raise UsageError("--plot needs matplotlib: pip install evostrat[plot]")
    from evostrat.checkpoint import Checkpointer

    problem = config["problem"]
    objective = load_objective(problem) if is_user_problem(problem) else FUNCTIONS[problem]
    if not config["maximize"] and getattr(objective, "negate", None) is False:  # GymProblem, GymnaxProblem
        print(f"evostrat run: warning: {problem} returns episode returns, to maximise, and evostrat run "
              f"minimises: pass --maximize (or make it with negate=True)", file=sys.stderr)
    callbacks, recorder = _callbacks(config, out, args.plot)
    progress = {None: "auto", True: "always", False: False}[args.progress]
    checkpoint = None
    if not args.no_checkpoint:
        checkpoint = Checkpointer(os.path.join(out, CHECKPOINT), every=config["checkpoint_every"],
                                  metadata={"cli": config})
    t0 = time.perf_counter()
    try:
        es, resumed_from = _fit(args, config, out, objective, callbacks, progress, checkpoint)
    except (InvalidArgumentError, InvalidTypeError, UnknownNameError) as err:  # named as the options
        err.args = (as_options(str(err)),)
        raise
    elapsed = time.perf_counter() - t0
    _write_json(os.path.join(out, "result.json"), _result(es, config, elapsed, resumed_from))
    written = ["config.json", "history.csv", "distribution.jsonl", "result.json"] + ([CHECKPOINT] if checkpoint else [])
    if args.plot:
        from evostrat.plot import save_run_plots

        grid = objective_on_grid(objective) if is_user_problem(problem) else objective
        written += save_run_plots(out, es, grid, recorder, problem=problem_label(problem),
                                  distribution=next(c for c in callbacks if hasattr(c, "records")))
    where = f"resumed at generation {resumed_from}, " if resumed_from is not None else ""
    print(
        f"{config['strategy']} on {config['dim']}-D {problem_label(problem)} ({config['backend']}, seed "
        f"{config['seed']}): best f = {es.fun_:.6g} after {es.n_evals_} evaluations, "
        f"{es.n_generations_} generations (stop: {es.stop_reason_}; {where}{elapsed:.2f} s)"
    )
    print(f"wrote {out}: {', '.join(written)}")
    sys.stdout.flush()
    return 0
