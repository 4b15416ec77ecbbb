"""Objectives that worker processes import by name, never rebuild from pickled code.

A closure defined in a test travels to a worker process by value (cloudpickle), and how
its code is rebuilt there (its file name, hence the source lines in a worker's traceback)
depends on the cloudpickle version (3.1.3 names such files ``<dynamic-code>``). Instances
of these classes travel by reference: the worker imports this file (the pools that use
them put ``tests/`` on their workers' path), so tracebacks show the real source lines
whatever the pickler.
"""

from __future__ import annotations

from typing import Any


class RaisingOn:
    """``float(x[0])``, raising ``ValueError`` on the candidate whose ``x[0]`` is ``index``."""

    def __init__(self, index: int) -> None:
        self.index = index

    def __call__(self, x: Any) -> float:
        if int(x[0]) == self.index:
            raise ValueError(f"boom on {self.index}")
        return float(x[0])
