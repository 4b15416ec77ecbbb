"""Snapshots of the search distribution, for plots.

:class:`DistributionRecorder` adds the distribution's ``mean``, per-coordinate standard
deviations ``stds``, principal axis lengths ``axes`` and correlation spectrum
``correlations`` to ``es.history_`` (what :func:`evostrat.plot.plot_diagnostics` draws,
as pycma's ``cma.plot``). :class:`SearchRecorder` keeps, at chosen generations, the distribution's mean
and a sample drawn from it (mapped into ``bounds`` when the estimator has
them). Sampling uses the strategy's pure ``ask`` on a copy of the state, so
recording never changes the run: the same seed gives the same trajectory with
or without it. :func:`evostrat.plot.plot_search_2d` draws the snapshots.

Both classes carry a runnable example.
"""

from __future__ import annotations

import json
import numbers
import os
import time
from typing import Any

import numpy as np

from evostrat.callbacks.base import Callback
from evostrat.callbacks.loggers import open_unlinked
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.strategies.readout import host_readout, readout_covariance, resolve_readout

__all__ = ["DistributionRecorder", "SearchRecorder", "distribution_summary", "snapshot"]


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

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.callbacks import SearchRecorder
    >>> rec = SearchRecorder(n_samples=5)
    >>> es = ES("snes", max_generations=8, random_state=0).fit(
    ...     lambda X: (X ** 2).sum(axis=1), np.ones(2), callbacks=[rec])
    >>> [s["generation"] for s in rec.snapshots], rec.snapshots[0]["samples"].shape
    ([0, 1, 2, 4, 8], (5, 2))
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


def distribution_summary(strategy: Any, state: Any, backend: Any) -> dict[str, list[float]]:
    """The search distribution's ``mean``, ``stds``, ``axes`` and ``correlations`` (host lists).

    ``stds`` are the per-coordinate standard deviations ``sqrt(diag(S))`` of the
    distribution's covariance ``S`` (``sigma^2 C`` for CMA-ES), ``axes`` the principal axis
    lengths ``sqrt(eig(S))`` in increasing order (their ratio is pycma's *axis ratio*),
    ``correlations`` the eigenvalues of the correlation matrix ``S_ij / (s_i s_j)`` in
    increasing order (all 1 for diagonal strategies; pycma's correlation spectrum,
    Hansen, *The CMA Evolution Strategy: A Tutorial*, arXiv 1604.00772). They are computed
    from the distribution the strategy declares
    (:meth:`~evostrat.strategies.base.Strategy.gaussian_readout`): CMA-ES's eigen-decomposition
    (the last one, as pycma, with the current diagonal), a factor or a dense covariance
    (xNES, CMA-ES's ``covariance="factor"``), a diagonal plus ``k`` directions (VkD-CMA, LM-MA-ES,
    built dense here: one ``O(dim^3)`` decomposition), a diagonal
    (sep-CMA-ES, SNES, PGPE); a strategy that declares none is seen through its ``sigma``
    (:func:`~evostrat.strategies.readout.resolve_readout`; a scalar is an isotropic distribution).

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat.backends import get_backend
    >>> from evostrat.strategies.sep_cma_es import SepCMAES
    >>> s = SepCMAES(sigma0=np.array([1.0, 4.0]))
    >>> summary = distribution_summary(s, s.init(np.zeros(2), random_state=0), get_backend("numpy"))
    >>> summary["stds"], summary["axes"], summary["correlations"]
    ([1.0, 4.0], [1.0, 4.0], [1.0, 1.0])
    """
    r = host_readout(resolve_readout(strategy, state), backend)
    mean = np.asarray(backend.to_numpy(strategy.mean(state)), dtype=np.float64)
    dim, sigma, cov = mean.shape[0], r.sigma, None
    if r.B is not None and r.D is not None and sigma.ndim == 0:  # an eigen-decomposition (CMA-ES)
        D, B = r.D, r.B
        s = np.sqrt(np.maximum(np.einsum("ij,j,ij->i", B, D**2, B), 0.0))
        stds = sigma * (s if r.diagonal is None else np.sqrt(np.maximum(r.diagonal, 0.0)))
        axes = np.sort(sigma * D)
        corr = (B * D**2) @ B.T / np.outer(s, s) if np.all(s > 0) else np.eye(dim)
        spectrum = np.linalg.eigvalsh(corr)
    elif (r.B is not None and r.D is not None) or r.A is not None or r.covariance is not None or r.U is not None:
        cov = readout_covariance(r)  # a factor (xNES, CMA-ES's factor model), a dense C, B and D with per-coordinate sigma
    else:  # a diagonal (sep-CMA-ES), per-coordinate (SNES, PGPE) or isotropic (OpenAI-ES) sigma
        diagonal = np.ones(dim) if r.diagonal is None else np.maximum(r.diagonal, 0.0)
        stds = np.broadcast_to(sigma * np.sqrt(diagonal), (dim,)).astype(np.float64)
        axes, spectrum = np.sort(stds), np.ones(dim)
    if cov is not None:
        stds = np.sqrt(np.maximum(np.diag(cov), 0.0))
        axes = np.sqrt(np.maximum(np.linalg.eigvalsh(cov), 0.0))
        corr = cov / np.outer(stds, stds) if np.all(stds > 0) else np.eye(dim)
        spectrum = np.linalg.eigvalsh(corr)
    return {"mean": mean.tolist(), "stds": stds.tolist(), "axes": np.sort(axes).tolist(),
            "correlations": np.clip(np.sort(spectrum), 0.0, None).tolist()}


class DistributionRecorder(Callback):
    """Add the distribution's mean, stds, principal axes and correlation spectrum to ``history_``.

    The entry of a recorded generation gets ``mean``, ``stds``, ``axes`` and
    ``correlations`` (lists of floats, see :func:`distribution_summary`; with ``bounds``
    the mean is mapped into the box, as ``x_``); the first generation of a run and the last
    of a fit are always recorded. Put it before loggers in
    ``callbacks`` so that they write these columns too. Recording reads the state and
    never changes the run. On JAX's compiled loop observers run between chunks, so the
    chunks' last generations are recorded.

    Parameters
    ----------
    every : int or "auto"
        Record every that many generations; ``"auto"`` (default): at generations 1, 2, 4,
        8, ... and whenever the time spent recording so far is at most ``overhead`` of the
        fit's time, so the cost stays bounded at any dimension (the correlation spectrum of
        a full covariance is an ``O(dim^3)`` decomposition) and the records spread over the
        run's time.
    overhead : float
        The share of the run's time ``"auto"`` may spend, as timed around the records
        (default 0.005; allocation and garbage collection they cause come on top: about
        4x more, measured at dimension 10 and 100).
    history : bool
        Add the fields to ``es.history_`` (default); ``False`` keeps ``history_`` (and
        the loggers' files) as they are.
    path : str or os.PathLike, optional
        Also write each record, with ``generation`` and ``n_evals``, as a JSON line to
        this file (``evostrat run`` writes ``distribution.jsonl``). A resumed run keeps
        the records up to the generation it resumes from, the interrupted fit's record of that
        generation only where ``every`` records it in any run (an int's multiples, ``"auto"``'s
        powers of 2), and records no extra first generation: with an int ``every`` the file and
        ``history_`` equal the uninterrupted run's (``"auto"``'s time-based records depend on the clock).

    Attributes
    ----------
    records : list of dict
        ``generation``, ``n_evals`` and the four fields of each record of the last fit.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.callbacks import DistributionRecorder
    >>> es = ES("cma_es", max_generations=5, random_state=0).fit(
    ...     lambda X: (X ** 2).sum(axis=1), np.ones(3), callbacks=[DistributionRecorder(every=1)])
    >>> sorted(k for k in es.history_[-1] if k in ("mean", "stds", "axes", "correlations"))
    ['axes', 'correlations', 'mean', 'stds']
    >>> [len(row["mean"]) for row in es.history_]
    [3, 3, 3, 3, 3]
    """

    def __init__(self, every: Any = "auto", overhead: float = 0.005, history: bool = True,
                 path: str | os.PathLike | None = None) -> None:
        if not (every == "auto" or (isinstance(every, numbers.Integral) and not isinstance(every, bool))):
            raise InvalidTypeError(f"every must be 'auto' or a positive int, got {every!r}")
        if every != "auto" and every < 1:
            raise InvalidArgumentError(f"every must be 'auto' or a positive int, got {every}")
        if isinstance(overhead, bool) or not isinstance(overhead, numbers.Real) or not 0 < overhead <= 1:
            raise InvalidArgumentError(f"overhead must be a number in (0, 1], got {overhead!r}")
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise InvalidTypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        self.every = every
        self.overhead = float(overhead)
        self.history = bool(history)
        self.path = os.fspath(path) if path is not None else None
        self.records: list[dict[str, Any]] = []
        self._last = -1
        self._start = self._spent = 0.0

    def _record(self, es: Any) -> None:
        if not es.history_ or self._last == es.n_generations_:
            return
        t = time.perf_counter()
        driver = es.run_
        runner = driver.runner
        summary = distribution_summary(runner.strategy, runner.state, runner.backend)
        if driver.bounds is not None:  # the mean in the user's box, as x_ (stds stay the strategy's)
            mean = driver.to_box(runner.mean)
            summary["mean"] = np.asarray(runner.backend.to_numpy(mean), dtype=np.float64).tolist()
        if driver.fixed is not None:  # fixed_variables: their stds are 0, as ES.stds_'s
            summary["stds"] = driver.fixed.full_stds(np.asarray(summary["stds"])).tolist()
        if self.history:
            es.history_[-1].update(summary)
        record = {"generation": es.n_generations_, "n_evals": es.n_evals_, **summary}
        self.records.append(record)
        if self.path is not None:
            with open_unlinked(self.path, append=True, owner="recorder") as file:
                file.write(json.dumps(record) + "\n")
        self._last = es.n_generations_
        self._spent += time.perf_counter() - t

    def _scheduled(self, generation: int) -> bool:
        """Whether ``every`` records ``generation`` in any run (``"auto"``: its powers of 2 only)."""
        if self.every == "auto":
            return generation > 0 and generation & (generation - 1) == 0
        return generation == 1 or generation % self.every == 0

    def on_fit_start(self, es: Any) -> None:
        self._last, self._start, self._spent, self.records = -1, time.perf_counter(), 0.0, []
        resumed = es.n_generations_
        if resumed:  # a resumed run goes on as the uninterrupted one: no record for its first generation
            self._last = resumed if self._scheduled(resumed) else -2
            if not self._scheduled(resumed) and self.history and es.history_:  # the previous fit's last record
                for key in ("mean", "stds", "axes", "correlations"):
                    es.history_[-1].pop(key, None)
        if resumed and self.every == "auto":  # waits as after a record (timed), not from the first generation
            t, runner = time.perf_counter(), es.run_.runner
            distribution_summary(runner.strategy, runner.state, runner.backend)
            self._spent = time.perf_counter() - t
        if self.path is not None:
            kept = _records_up_to(self.path, resumed, self._scheduled) if resumed else []
            with open_unlinked(self.path, append=False, owner="recorder") as file:
                file.writelines(kept)

    def __call__(self, es: Any) -> None:
        if self.every == "auto":
            g = es.n_generations_
            due = g & (g - 1) == 0 or self._spent <= self.overhead * (time.perf_counter() - self._start)
        else:
            due = es.n_generations_ % self.every == 0
        if due or self._last == -1 or es.stop_reason_ is not None:  # a run's first generation too
            self._record(es)

    def on_fit_end(self, es: Any) -> None:
        self._record(es)

    def __repr__(self) -> str:
        return f"DistributionRecorder(every={self.every!r}, overhead={self.overhead!r})"


def _records_up_to(path: str, generation: int, scheduled: Any) -> list[str]:
    """The JSON lines of ``path`` before ``generation``, and its own if ``scheduled(generation)``: a
    resumed run redoes the later ones, and an interrupted fit's last record is not the uninterrupted run's."""
    if not os.path.isfile(path):
        return []
    kept = []
    with open(path, encoding="utf-8") as file:
        for line in file:
            try:
                g = int(json.loads(line)["generation"])
                if g < generation or g == generation and scheduled(g):
                    kept.append(line if line.endswith("\n") else line + "\n")
            except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
                continue  # a line cut by a kill, or not a record (nested past the recursion limit)
    return kept
