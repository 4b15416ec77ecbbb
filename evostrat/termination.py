"""Run-level termination criteria, named as pycma names them.

The estimator checks these after every generation, in this order, and reports
the first that holds in ``stop_reason_``:

- ``"ftarget"``: the best value so far reached ``ftarget`` (``<=`` when
  minimising, ``>=`` when maximising).
- ``"maxfevals"``: ``n_evals >= max_evals``.
- ``"maxiter"``: ``n_generations >= max_generations``.
- ``"tolfun"``: over the last ``10 + ceil(30 d / popsize)`` generations the
  range of generation-best values, and the range of the latest generation's
  values, are both below ``tolfun`` (pycma's ``tolfun``).
- ``"tolx"``: the largest per-coordinate standard deviation is below ``tolx``.
- any name a strategy's ``stop(state)`` reports (CMA-ES adds its own).
- ``"callback"``: a callback returned ``True``.

Examples
--------
>>> from evostrat.termination import Termination
>>> t = Termination(max_generations=3)
>>> t.check(generation=3, n_evals=30, best=1.0, values=[1.0, 2.0], sigma=0.1)
'maxiter'
"""

from __future__ import annotations

import math
from collections import deque
from typing import Sequence

__all__ = ["Termination", "default_max_generations"]


def default_max_generations(dim: int, popsize: int) -> int:
    """pycma's default ``maxiter``: ``100 + 150 (d + 3)^2 / sqrt(popsize)``."""
    return int(100 + 150 * (dim + 3) ** 2 // math.sqrt(popsize))


class Termination:
    """Stateful checker of the run-level criteria (one per run)."""

    def __init__(
        self,
        max_evals: int | None = None,
        max_generations: int | None = None,
        ftarget: float | None = None,
        tolfun: float | None = 1e-11,
        tolx: float | None = 1e-11,
        maximize: bool = False,
        history_length: int = 10,
    ) -> None:
        self.max_evals = max_evals
        self.max_generations = max_generations
        self.ftarget = ftarget
        self.tolfun = tolfun
        self.tolx = tolx
        self.maximize = maximize
        self._recent: deque[float] = deque(maxlen=max(1, history_length))

    def check(
        self,
        generation: int,
        n_evals: int,
        best: float,
        values: Sequence[float],
        sigma: float,
    ) -> str | None:
        """The first criterion that holds, or ``None``.

        ``best`` and ``values`` are in the user's sense (maximised when
        ``maximize``); non-finite values are ignored by ``tolfun``.
        """
        finite = [v for v in values if math.isfinite(v)]
        if finite:
            self._recent.append(min(finite) if not self.maximize else max(finite))
        if self.ftarget is not None and math.isfinite(best):
            if (best >= self.ftarget) if self.maximize else (best <= self.ftarget):
                return "ftarget"
        if self.max_evals is not None and n_evals >= self.max_evals:
            return "maxfevals"
        if self.max_generations is not None and generation >= self.max_generations:
            return "maxiter"
        if (
            self.tolfun is not None
            and len(self._recent) == self._recent.maxlen
            and len(finite) == len(values)
            and max(self._recent) - min(self._recent) < self.tolfun
            and max(finite) - min(finite) < self.tolfun
        ):
            return "tolfun"
        if self.tolx is not None and sigma < self.tolx:
            return "tolx"
        return None
