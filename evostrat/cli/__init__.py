"""The ``evostrat`` command line.

Commands (``evostrat COMMAND --help`` for each):

- ``evostrat run``: optimise a benchmark problem or your function
  (``-p module:function``, ``--x0 1,2,3`` or ``@x0.npy``); writes the history, the
  result, checkpoints and (``--plot``) figures to an output folder, and
  continues an interrupted run with ``--resume`` (:mod:`evostrat.cli.run`);
- ``evostrat plot RUN_DIR``: the diagnostic and convergence figures of a run folder
  (:mod:`evostrat.cli.plot`);
- ``evostrat demo``: convergence tables of a few default runs;
- ``evostrat plugins``: installed plugins, their packages and versions;
- ``evostrat bench``: the pytest-benchmark suites and their comparison
  table (:mod:`evostrat.cli.bench`);
- ``evostrat replay``: play a checkpointed Atari policy, print its return and write a
  GIF or MP4 (:mod:`evostrat.cli.replay`).

Wrong arguments print a message naming the option as typed (``--popsize``, not the Python
parameter ``popsize``) and the problem, and exit with status 2; a run interrupted by Ctrl-C
exits with 130, one ended by SIGTERM (or SIGHUP) with 143 (129), after writing its final
checkpoint (:mod:`evostrat.cli.signals`).

Examples
--------
>>> from evostrat.cli import main
>>> main(["plugins"])  # doctest: +ELLIPSIS
plugin ...
evostrat.strategies ...
0
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from evostrat import __version__
from evostrat.cli import bench, info, plot, replay, run
from evostrat.cli.signals import Terminated, terminate_as_interrupt
from evostrat.errors import EvostratError, InvalidArgumentError, InvalidTypeError, UnknownNameError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(prog="evostrat", description="Evolution strategies on numpy, torch and JAX.",
                                     epilog="Run 'evostrat COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"evostrat {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run.add_parser(sub)
    plot.add_parser(sub)
    info.add_parsers(sub)
    bench.add_parser(sub)
    replay.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``evostrat`` console script; returns the exit status.

    A usage error (an unknown option, a value the command refuses, ``--resume`` of a folder
    without a run, ...) prints the usage and the message to stderr and raises ``SystemExit(2)``,
    as :meth:`argparse.ArgumentParser.error` does; errors from the run itself return 2
    (invalid arguments) or 1 (other evostrat errors, and files or folders that cannot be read or
    written: ``OSError``), Ctrl-C returns 130 and SIGTERM 143.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with terminate_as_interrupt():  # SIGTERM, SIGHUP: as Ctrl-C, the run's last generation checkpointed
            return int(args.func(args))
    except run.UsageError as err:
        args.parser.error(str(err))  # prints usage and the message, exits with 2
    except (InvalidArgumentError, InvalidTypeError, UnknownNameError) as err:
        print(f"evostrat {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (EvostratError, OSError) as err:  # OSError: a folder that cannot be made or written, a full disk
        print(f"evostrat {args.command}: error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    except Terminated as err:
        print(f"\nevostrat {args.command}: {err}", file=sys.stderr)
        return err.exit_status
    except KeyboardInterrupt:
        print(f"\nevostrat {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0  # pragma: no cover - parser.error exits


if __name__ == "__main__":
    sys.exit(main())
