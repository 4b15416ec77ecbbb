"""The ``evostrat`` command line.

Commands: ``evostrat demo`` (convergence tables on the numpy default) and
``evostrat plugins`` (installed plugins with versions). Wrong arguments print
a message and exit with status 2.

Examples
--------
>>> from evostrat.cli import main
>>> main(["plugins"])  # doctest: +ELLIPSIS
evostrat.backends ...
0
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence


def _cmd_demo(args: argparse.Namespace) -> int:
    from evostrat.demo import run_demo

    run_demo(dim=args.dim, seed=args.seed)
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    from evostrat import list_plugins

    for plugin in list_plugins():
        provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in plugin["provides"].items())
        print(f"{plugin['name']} ({plugin['distribution']} {plugin['version']}) {provides}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evostrat", description="Evolution strategies.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the demo and print convergence tables")
    demo.add_argument("--dim", type=int, default=10, help="problem dimension (default 10)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(func=_cmd_demo)
    plugins = sub.add_parser("plugins", help="list installed plugins and versions")
    plugins.set_defaults(func=_cmd_plugins)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``evostrat`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
