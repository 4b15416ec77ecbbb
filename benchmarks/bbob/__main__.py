"""Command line: ``python -m benchmarks.bbob run|report ...`` (see README.md)."""

from __future__ import annotations

import argparse
import os
import sys

import benchmarks.bbob  # noqa: F401  (pins BLAS threads before numpy loads)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.bbob.algorithms import ALGORITHMS

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bbob", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one configuration on bbob, writing COCO data and records")
    run.add_argument("--algo", required=True, choices=sorted(ALGORITHMS))
    run.add_argument("--dims", default="2,5,10,20", help="e.g. 2,5,10,20")
    run.add_argument("--instances", default="1-15", help="e.g. 1-15 or 1,3,5")
    run.add_argument("--functions", default="1-24", help="e.g. 1-24 or 1,7,21")
    run.add_argument("--budget", type=float, default=1000.0, help="evaluations per problem / dimension")
    run.add_argument("--sigma0", type=float, default=2.0)
    run.add_argument("--x0", choices=("proposal", "initial"), default="proposal",
                     help="COCO's initial_solution_proposal (a callable: a new start per restart) "
                          "or the fixed initial_solution")
    run.add_argument("--seed", type=int, default=1,
                     help="base seed (per problem: seed + 1000 instance + function)")
    run.add_argument("--out", required=True, help="output folder (must not hold a run)")
    run.add_argument("-q", "--quiet", action="store_true")
    rep = sub.add_parser("report", help="markdown table (and ECDF figures) from run folders")
    rep.add_argument("runs", nargs="+", help="folders written by `run`")
    rep.add_argument("-o", "--output", default="-", help="markdown file (default: stdout)")
    rep.add_argument("--figures", default=None,
                     help="folder for cocopp's ECDF PNGs, one per dimension and evostrat/pycma pair")
    rep.add_argument("--dpi", type=int, default=60, choices=(60, 300),
                     help="PNG resolution (cocopp's two settings)")
    args = parser.parse_args(argv)

    if args.command == "run":
        from benchmarks.bbob.experiment import parse_ints, run_experiment

        run_experiment(args.algo, args.out, parse_ints(args.dims), parse_ints(args.instances),
                       parse_ints(args.functions), args.budget, args.sigma0, args.x0, args.seed,
                       verbose=not args.quiet)
        return 0
    from benchmarks.bbob.report import write_report

    links_from = "." if args.output == "-" else os.path.dirname(os.path.abspath(args.output))
    text = write_report(args.runs, figures=args.figures, dpi=args.dpi, links_from=links_from)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
