"""Objectives that learn from their evaluations: the generation protocol.

Some objectives gather information while candidates are evaluated and fold it into
their own state: ``GymProblem(obs_norm=True)`` normalises observations with running
statistics of all observations seen. Were each evaluating process to update its own copy,
a process pool's driver would never see the statistics and the values would depend on
which worker ran which candidate. An objective avoids that by implementing three methods:

``generation_start()``
    The driver calls it on its objective before evaluating a generation, and
    :func:`~evostrat.evaluators.worker.run_chunk` on a worker's copy before its chunk
    (thread pools get a copy per chunk, as process pools do): from then on evaluations
    use the state as it is and gather *records* instead of changing it.
``collect() -> list``
    Called where candidates were evaluated, after them: the records gathered since
    the last call, one per candidate evaluated, in evaluation order; then forgotten.
``merge(records)``
    Called on the driver's objective after the generation (after every evaluation the
    generation made: re-evaluations of noise handling, the centre of
    :class:`~evostrat.callbacks.centre_rank.CentreRank`) with all its records in
    population order, wherever the candidates ran: folds them into the state, and ends
    the generation (calls outside one may update the state at once).

Every candidate then sees the state of the generation's start and the state after it does
not depend on the evaluator: a serial run and a process-pool run give the same values,
and a checkpoint taken between generations holds the state. Records travel back with each
chunk's values (:class:`~evostrat.evaluators.worker.ChunkResult`), so they must pickle.
``ES.fit`` wraps each generation's evaluation in :func:`generation`; an evaluator of
chunks hands the records it received to :func:`hand_back`.

Examples
--------
>>> from evostrat.evaluators.sync import generation, hand_back, syncs
>>> class Counter:
...     def __init__(self):
...         self.seen, self._pending = 0, None
...     def __call__(self, x):
...         if self._pending is None:
...             self.seen += 1          # outside a generation: at once
...         else:
...             self._pending.append(1)
...         return float(self.seen)
...     def generation_start(self):
...         self._pending = []
...     def collect(self):
...         out, self._pending = self._pending or [], ([] if self._pending is not None else None)
...         return out
...     def merge(self, records):
...         self.seen, self._pending = self.seen + sum(records), None
>>> f = Counter()
>>> syncs(f)
True
>>> with generation(f):
...     values = [f(x) for x in range(3)]      # in process: all see the start's state
...     hand_back(f, [1, 1])                   # two more candidates, evaluated elsewhere
>>> values, f.seen
([0.0, 0.0, 0.0], 5)
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Callable, ContextManager

__all__ = ["Generation", "generation", "hand_back", "syncs"]

#: Methods of the protocol (see the module docstring).
PROTOCOL = ("generation_start", "collect", "merge")


def syncs(objective: Any) -> bool:
    """Whether ``objective`` implements the generation protocol (all three methods)."""
    return all(callable(getattr(objective, name, None)) for name in PROTOCOL)


class Generation:
    """The generations of a synced objective on the driver (a context manager entered once
    per generation).

    Entering calls ``objective.generation_start()``; :func:`hand_back` adds records of
    candidates evaluated elsewhere; leaving merges the records the objective gathered in
    process and those handed back (none when the evaluation raised).
    """

    def __init__(self, objective: Any) -> None:
        self.objective = objective
        self.records: list = []
        self._token: Any = None

    def __enter__(self) -> "Generation":
        self.objective.generation_start()
        self.records = []
        self._token = _ACTIVE.set(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        _ACTIVE.reset(self._token)
        local = list(self.objective.collect())
        self.objective.merge(local + self.records if kind is None else [])


def generation(objective: Callable) -> ContextManager[Any]:
    """A :class:`Generation` for a synced objective, else a context that does nothing; both may
    be entered once per generation, so a run asks :func:`syncs` once."""
    return Generation(objective) if syncs(objective) else contextlib.nullcontext()


def hand_back(objective: Any, records: list) -> None:
    """Records of ``objective``'s candidates evaluated in workers (population order).

    Inside its :func:`generation` they join the generation's; outside one (an evaluator
    used on its own) they are merged at once: the call was a generation.
    """
    active = _ACTIVE.get()
    if active is not None and active.objective is objective:
        active.records.extend(records)
    else:
        objective.merge(list(records))


_ACTIVE: ContextVar[Generation | None] = ContextVar("evostrat_generation", default=None)
