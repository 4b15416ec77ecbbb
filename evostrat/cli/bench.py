"""``evostrat bench``: run the pytest-benchmark suites and print the comparison table.

Runs ``python -m pytest <path> --benchmark-only`` on the suites of the repository's
``benchmarks/`` folder (not installed with the package: run from a checkout or pass
``--path``); the suites add per-generation medians with the ratio of evostrat to the
fastest peer, and ``--report`` writes the tables of ``BENCHMARKS.md`` with
``benchmarks/report.py``. Needs the ``dev`` extra (and ``bench`` for the peers).

Examples
--------
>>> from evostrat.cli import main
>>> try:                                            # a usage error exits, as argparse's do
...     main(["bench", "--path", "no/such/folder"])  # stderr: ... error: no benchmark suite at ...
... except SystemExit as exit:
...     print(exit.code)
2
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from typing import Any

from evostrat.cli.run import UsageError

__all__ = ["add_parser", "pytest_command"]


def pytest_command(args: argparse.Namespace) -> list[str]:
    """The pytest command line ``evostrat bench`` runs."""
    cmd = [sys.executable, "-m", "pytest", args.path, "--benchmark-only", "-p", "no:cacheprovider",
           "-q", "--benchmark-columns=min,median,mean,stddev,rounds", "--benchmark-sort=fullname"]
    if args.k:
        cmd += ["-k", args.k]
    if args.save:
        cmd += [f"--benchmark-save={args.save}"]
    if args.compare is not None:
        cmd += ["--benchmark-compare"] if args.compare == "latest" else [f"--benchmark-compare={args.compare}"]
    if args.json or getattr(args, "report", None):
        cmd += [f"--benchmark-json={args.json or _default_json(args)}"]
    extra = list(args.pytest_args)
    return cmd + (extra[1:] if extra[:1] == ["--"] else extra)


def _default_json(args: argparse.Namespace) -> str:
    """Where the JSON goes when only ``--report`` was asked for."""
    return os.path.splitext(args.report)[0] + ".json"


def _cmd_bench(args: argparse.Namespace) -> int:
    if not os.path.exists(args.path):
        raise UsageError(
            f"no benchmark suite at {args.path!r}; run from the evostrat repository root "
            "(its benchmarks/ folder) or pass --path"
        )
    from evostrat.checkpoint.format import check_writable

    for option, path in (("--json", args.json), ("--report", args.report)):  # refused now, not after the suites
        if path is not None:
            if os.path.isdir(path):
                raise UsageError(f"argument {option}: {path!r} is a folder; name a file")
            check_writable(path, f"{option} {path!r}")
    missing = [m for m in ("pytest", "pytest_benchmark") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"evostrat bench: error: needs {', '.join(missing)}: pip install evostrat[dev]", file=sys.stderr)
        return 1
    cmd = pytest_command(args)
    print("$ " + " ".join(cmd[2:]), flush=True)
    code = subprocess.call(cmd)
    if code == 5:
        print("evostrat bench: error: no benchmark was selected (check -k and --path)", file=sys.stderr)
        return 2
    if args.report and code in (0, 1):  # 1: some benchmark failed; report the others
        folder = args.path if os.path.isdir(args.path) else os.path.dirname(args.path) or "."
        script = os.path.join(folder, "report.py")  # next to the suites
        made = subprocess.call([sys.executable, script, args.json or _default_json(args),
                                "-o", args.report])
        if made == 0:
            print(f"evostrat bench: wrote {args.report}", flush=True)
        code = code or made
    return code


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``bench`` to the subcommands ``sub``."""
    p = sub.add_parser(
        "bench", help="run the benchmark suites (pytest-benchmark) and print the comparison table",
        description="Run the pytest-benchmark suites (backends x strategies x dimensions, peers side by side) "
                    "and print their timing and comparison tables. Arguments after -- go to pytest.",
    )
    p.add_argument("-k", metavar="EXPR", default=None, help="only benchmarks matching this pytest -k expression")
    p.add_argument("--path", default="benchmarks", help="folder or file of the suites (default benchmarks)")
    p.add_argument("--save", metavar="NAME", default=None, help="save the results under NAME (.benchmarks/)")
    p.add_argument("--compare", metavar="ID", nargs="?", const="latest", default=None,
                   help="compare with a saved run (default: the latest)")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the results as JSON")
    p.add_argument("--report", metavar="FILE", default=None,
                   help="write the markdown comparison table (ratios, targets) to FILE")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="further pytest arguments, after --")
    p.set_defaults(func=_cmd_bench, parser=p)
    return p
