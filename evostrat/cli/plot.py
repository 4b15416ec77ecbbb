"""``evostrat plot RUN_DIR``: the figures of an ``evostrat run`` output folder.

Reads ``RUN_DIR/history.csv``, ``distribution.jsonl`` (and ``config.json`` and
``result.json`` for the title) and writes ``diagnostics.png`` (six panels, as pycma's
``cma.plot``: ``f - f_best``, sigma and axis ratio, mean coordinates, principal axes
lengths, per-coordinate standard deviations, correlation spectrum) and ``convergence.png``
into the folder (:func:`evostrat.plot.plot_run_folder`). ``evostrat run`` writes the
distribution's records to ``distribution.jsonl``
(:class:`~evostrat.callbacks.DistributionRecorder`) and both files row by row, so a run
still going on can be plotted too.

Examples
--------
>>> import os, tempfile
>>> from evostrat.cli import main
>>> out = os.path.join(tempfile.mkdtemp(), "run")
>>> main(["run", "-s", "cma_es", "-p", "ellipsoid", "--dim", "4", "--max-evals", "400", "-o", out,
...       "--no-progress"])  # doctest: +ELLIPSIS
cma_es on 4-D ellipsoid ...
0
>>> main(["plot", out])  # doctest: +ELLIPSIS
wrote ...: diagnostics.png, convergence.png
0
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import Any

from evostrat.backends import get_backend
from evostrat.cli.types import positive_int
from evostrat.errors import PerCandidateWarning
from evostrat.evaluators.local import AutoEvaluator

__all__ = ["add_parser", "objective_on_grid"]


def _cmd_plot(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("matplotlib") is None:
        print("evostrat plot: error: needs matplotlib: pip install evostrat[plot]", file=sys.stderr)
        return 2
    from evostrat.plot import plot_run_folder

    written = plot_run_folder(args.run_dir, dpi=args.dpi)
    print(f"wrote {args.run_dir}: {', '.join(written)}")
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``plot`` to the subcommands ``sub``."""
    p = sub.add_parser(
        "plot", help="draw diagnostics.png and convergence.png of a run folder",
        description="Draw the six-panel diagnostic figure (as pycma's cma.plot) and the convergence figure "
                    "of an 'evostrat run' output folder from its history.csv, into that folder.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the output folder of 'evostrat run'")
    p.add_argument("--dpi", type=positive_int, default=120, help="resolution of the PNG files (default 120)")
    p.set_defaults(func=_cmd_plot, parser=p)
    return p


def objective_on_grid(objective: Any) -> Any:
    """A user's objective on the plot's grid, read as ``evaluator="auto"`` reads it (vectorised
    when it takes a population, else row by row; its warning was already given by the run)."""
    import warnings

    evaluator, numpy = AutoEvaluator(), get_backend("numpy")

    def values(X: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PerCandidateWarning)
            return evaluator.evaluate(objective, X, numpy)

    return values
