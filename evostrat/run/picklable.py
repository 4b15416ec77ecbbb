"""Pickling and copying a stateful ask/tell runner (and so a fitted ``ES``).

A runner holds its strategy's compiled programs (``jax.jit`` functions, torch's
``FusedProgram`` with its lock) and, on JAX, a ``Device``: none of them pickles. They are
left out of a pickle or a deep copy and made again: the programs on their first use (the
compile caches share them between equal strategies), the device from the restored
initial mean. The strategy state, counters, best so far and pending population travel, so
a copy continues the run as the original would.

Examples
--------
>>> import pickle
>>> import numpy as np
>>> from evostrat.strategies.snes import SNES
>>> s = SNES(sigma0=0.5).initialize(np.ones(3), random_state=0)
>>> twin = pickle.loads(pickle.dumps(s))
>>> bool((twin.ask() == s.ask()).all())
True
"""

from __future__ import annotations

from typing import Any

__all__ = ["PicklableRunner"]

#: Attributes of a runner rebuilt after unpickling rather than pickled.
REBUILT = ("_ask", "_tell", "device")


class PicklableRunner:
    """``__getstate__``/``__setstate__`` for :class:`~evostrat.run.asktell.AskTell`."""

    def __getstate__(self) -> dict[str, Any]:
        if "_deferred" in self.__dict__:
            getattr(self, "state")  # a deferred state is resolved and pickled as a state
        return {k: v for k, v in self.__dict__.items() if k not in REBUILT}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.device = state["backend"].device(state["initial_mean"])
