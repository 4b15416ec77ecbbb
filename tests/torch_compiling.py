"""What the torch compile tests share: ``tell`` compiled in one graph, with a fresh budget.

``torch.compile`` recompiles a code object at most 8 times per process (dynamo's limit);
CMA-ES and sep-CMA-ES share ``tell``'s code object, and the suite compiles it in several
files, so each compile starts from :func:`torch.compiler.reset`. array_api_compat's type
tests are ``lru_cache``'d, which dynamo warns about while tracing (harmless).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import torch


def one_graph(fn: Callable, backend: Any = "eager") -> Callable:
    """``torch.compile(fn, fullgraph=True, backend=backend)`` after a reset; its calls (the
    first one traces) run with dynamo's ``lru_cache`` warning silenced."""
    torch.compiler.reset()
    compiled = torch.compile(fn, fullgraph=True, backend=backend)

    def call(*args: Any) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*functools.lru_cache")
            return compiled(*args)

    return call


def graph_capture() -> tuple[Callable, list]:
    """A dynamo backend that keeps each graph it is given (and runs it as traced), and the list."""
    graphs: list = []

    def capture(gm: Any, example_inputs: Any) -> Callable:
        graphs.append(gm)
        return gm.forward

    return capture, graphs
