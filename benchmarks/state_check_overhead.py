"""Host cost of the state-type check of the functional API (:mod:`evostrat.strategies.state_type`).

``ask``, ``tell`` and the read-outs of a strategy refuse another strategy's state; the check reads
``type(state)`` only. This script times, per call on numpy (d = 10), each checked method against
the same method without the check (its ``__wrapped__``), and ``tell`` against the shape check alone
(the wrapper before the state check, rebuilt here), interleaved round by round in one process, and
prints the median and minimum of the per-call times and of the difference (what the check adds).
SNES declares one state class; CMA-ES two (a tuple: the decomposed and factor models).

Run (from the repository root, on one core)::

    taskset -c 1 python benchmarks/state_check_overhead.py

``ROUNDS`` (default 31) and ``CALLS`` (per round, default 20000) change the sample.
"""

from __future__ import annotations

import functools
import os
import statistics
import timeit
from typing import Any, Callable

import numpy as np

from evostrat.strategies.cma_es import CMAES
from evostrat.strategies.snes import SNES
from evostrat.strategies.told import check_told

ROUNDS = int(os.environ.get("ROUNDS", 31))
CALLS = int(os.environ.get("CALLS", 20000))


def shape_checked_tell(raw: Callable[..., Any]) -> Callable[..., Any]:
    """``tell`` with the shape check alone: the wrapper of ``checking_tell`` before the state check."""
    @functools.wraps(raw)
    def checked(self: Any, state: Any, X: Any, fitness: Any, *args: Any, **kwargs: Any) -> Any:
        check_told(self, state, X, fitness)
        return raw(self, state, X, fitness, *args, **kwargs)
    return checked


def cases(strategy: Any) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """``{name: (checked call, baseline call)}`` for ``strategy`` on a numpy state of d = 10."""
    state = strategy.init(np.zeros(10), random_state=0)
    X, state = strategy.ask(state)
    f = (X ** 2).sum(axis=1)
    cls = type(strategy)
    raw_tell = cls.tell.__wrapped__
    old_tell = shape_checked_tell(raw_tell)
    out = {}
    for name in ("ask", "mean", "sigma"):
        checked, raw = getattr(cls, name), getattr(cls, name).__wrapped__
        out[name] = (functools.partial(checked, strategy, state), functools.partial(raw, strategy, state))
    out["tell"] = (functools.partial(cls.tell, strategy, state, X, f), functools.partial(old_tell, strategy, state, X, f))
    return out


def main() -> None:
    for strategy in (SNES(), CMAES()):
        table = cases(strategy)
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in table}
        for r in range(ROUNDS):
            for name, (checked, base) in table.items():
                pair = [checked, base] if r % 2 else [base, checked]
                t = [timeit.timeit(fn, number=CALLS) / CALLS * 1e9 for fn in pair]
                times[name].append((t[0], t[1]) if r % 2 else (t[1], t[0]))
        print(f"{strategy.name} (d = 10, numpy), ns per call over {ROUNDS} rounds of {CALLS} calls:")
        for name, rows in times.items():
            checked, base = [c for c, _ in rows], [b for _, b in rows]
            diff = [c - b for c, b in rows]
            print(f"  {name:6s} checked median {statistics.median(checked):8.0f} min {min(checked):8.0f} | "
                  f"without median {statistics.median(base):8.0f} min {min(base):8.0f} | "
                  f"added median {statistics.median(diff):5.0f} min(checked) - min(without) {min(checked) - min(base):5.0f}")


if __name__ == "__main__":
    main()
