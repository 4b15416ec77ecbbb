"""``evostrat demo`` and ``evostrat plugins``.

Examples
--------
>>> from evostrat.cli import main
>>> main(["demo", "--dim", "0"])
Traceback (most recent call last):
...
SystemExit: 2
"""

from __future__ import annotations

import argparse
from typing import Any

from evostrat import list_plugins
from evostrat.cli.types import nonnegative_int, positive_int

__all__ = ["add_parsers"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from evostrat.cli.demo import run_demo

    run_demo(dim=args.dim, seed=args.seed)
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    plugins = list_plugins()
    rows = [
        (p["name"], str(p["distribution"]), str(p["version"]),
         "; ".join(f"{k}: {', '.join(v)}" for k, v in p["provides"].items()))
        for p in plugins
    ]
    header = ("plugin", "package", "version", "provides")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(3)]
    for row in [header] + rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3])
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``demo`` and ``plugins`` to the subcommands ``sub``."""
    demo = sub.add_parser(
        "demo", help="run the demo and print convergence tables",
        description="SNES and OpenAI-ES on the sphere and the ellipsoid, from x0 = 3 (numpy).",
    )
    demo.add_argument("--dim", type=positive_int, default=10, help="problem dimension (default 10)")
    demo.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default 0)")
    demo.set_defaults(func=_cmd_demo, parser=demo)
    plugins = sub.add_parser(
        "plugins", help="list installed plugins and versions",
        description="Every plugin of the 'evostrat' entry-point group: its package, version and what it provides.",
    )
    plugins.set_defaults(func=_cmd_plugins, parser=plugins)
