"""Snapshots of the search distribution, for plots of low-dimensional runs.

:class:`SearchRecorder` keeps, at chosen generations, the distribution's mean
and a sample drawn from it (mapped into ``bounds`` when the estimator has
them). Sampling uses the strategy's pure ``ask`` on a copy of the state, so
recording never changes the run: the same seed gives the same trajectory with
or without it. :func:`evostrat.plot.plot_search_2d` draws the snapshots.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.callbacks import SearchRecorder
>>> rec = SearchRecorder(n_samples=50)
>>> es = ES("snes", max_generations=20, random_state=0).fit(
...     lambda X: (X ** 2).sum(axis=1), np.ones(2), callbacks=[rec])
>>> [s["generation"] for s in rec.snapshots]
[0, 1, 2, 4, 8, 16, 20]
>>> rec.snapshots[-1]["samples"].shape
(50, 2)
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from evostrat.callbacks.base import Callback
from evostrat.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["SearchRecorder", "snapshot"]


def snapshot(es: Any, n_samples: int = 200) -> dict[str, Any]:
    """``{"generation", "n_evals", "mean", "samples"}`` of ``es``'s distribution now."""
    driver = es.run_
    runner = driver.runner
    be = runner.backend
    state, rows = runner.state, []
    while sum(len(r) for r in rows) < n_samples:
        X, state = runner.sample(state)  # pure: runner.state is untouched
        rows.append(np.asarray(be.to_numpy(driver.to_box(X)), dtype=np.float64))
    return {"generation": es.n_generations_, "n_evals": es.n_evals_,
            "mean": np.asarray(be.to_numpy(driver.to_box(runner.mean)), dtype=np.float64),
            "samples": np.concatenate(rows)[:n_samples]}


class SearchRecorder(Callback):
    """Record the search distribution at the start, every ``every`` generations and at the end.

    Parameters
    ----------
    every : int or "log"
        ``"log"`` (default): generations 1, 2, 4, 8, ...; an int: every that
        many generations.
    n_samples : int
        Points drawn per snapshot.

    Attributes
    ----------
    snapshots : list of dict
        ``generation``, ``n_evals``, ``mean`` (dim,), ``samples`` (n_samples, dim).
    """

    def __init__(self, every: Any = "log", n_samples: int = 200) -> None:
        if not (every == "log" or (isinstance(every, numbers.Integral) and not isinstance(every, bool))):
            raise InvalidTypeError(f"every must be 'log' or a positive int, got {every!r}")
        if every != "log" and every < 1:
            raise InvalidArgumentError(f"every must be 'log' or a positive int, got {every}")
        if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or n_samples < 2:
            raise InvalidArgumentError(f"n_samples must be an int >= 2, got {n_samples!r}")
        self.every = every
        self.n_samples = int(n_samples)
        self.snapshots: list[dict[str, Any]] = []

    def _due(self, generation: int) -> bool:
        if self.every == "log":
            return generation > 0 and generation & (generation - 1) == 0
        return generation % self.every == 0

    def on_fit_start(self, es: Any) -> None:
        self.snapshots = [snapshot(es, self.n_samples)]

    def __call__(self, es: Any) -> None:
        if self._due(es.n_generations_) and es.stop_reason_ is None:
            self.snapshots.append(snapshot(es, self.n_samples))

    def on_fit_end(self, es: Any) -> None:
        if not self.snapshots or self.snapshots[-1]["generation"] != es.n_generations_:
            self.snapshots.append(snapshot(es, self.n_samples))
