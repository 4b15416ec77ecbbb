"""Torch states of several runs of one strategy, for the stack kernel's tests (import after
``pytest.importorskip("torch")``)."""

from __future__ import annotations

from typing import Any

import torch


def stack_states(strategy: Any, runs: int, dim: int, dtype: Any = torch.float64, warm: int = 0) -> list:
    """``runs`` states of ``strategy``; run ``r`` first does ``warm * r`` generations alone, so the
    runs' counters (and lazy queues) differ."""
    states = []
    for r in range(runs):
        state = strategy.init(torch.linspace(-1.0, 2.0, dim, dtype=dtype), random_state=r)
        for _ in range(warm * r):
            X, state = strategy.ask(state)
            state = strategy.tell(state, X, (X * X).sum(-1))
        states.append(state)
    return states
