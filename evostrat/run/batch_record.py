"""A torch batch's generations recorded for all its runs at once: numpy over the runs.

Used by :mod:`evostrat.run.batch_torch`. Each generation of a group's running runs gives
their values as one ``(runs, popsize)`` array; :class:`BatchRecord` does for all of them at
once what :meth:`Driver.record <evostrat.run.driver.Driver.record>` does for one run: the
best so far (its value, candidate and evaluation count), the history row (``generation``,
``n_evals``, ``best``, ``generation_best``, ``median``, ``sigma``, ``time``) and the
termination criteria's progress (:class:`~evostrat.run.termination.Termination`: the
``tolfun`` window, the ``tolstagnation`` history, the best's evaluation, the
``tolflatfitness`` count), with the same floating-point operations on the same values
(a stable sort ranks as Python's ``sorted``, ``argmin``/``argmax`` find the first best as
``list.index``), so the same numbers. The rows wait as arrays and become dicts when
``history_`` is read (a ``history_blocks`` entry of the run's
:class:`~evostrat.run.state.RunState`).

A run leaves this path for :meth:`Driver.record` (its best, rows so far and criteria
handed to its driver first; from then on recorded by its driver, as before) at the
first generation where it may need the general path: a value that is NaN or infinite,
a criterion that may hold (``ftarget``, ``maxfevals``, ``maxiter``, ``tolfun``,
``tolfunhist``, ``tolflatfitness``, the strategy's own), ``sigma`` below ``tolx`` (the
``sigma p_c`` test reads the run's state) or ``tolstagnation``'s test due (its medians).
The driver then decides that generation from the same progress, so every run stops
at the generation, and with the reason, its driver alone gives.

Examples
--------
>>> import torch
>>> from evostrat import ES
>>> from evostrat.run.batch import fit_batch
>>> res = fit_batch(ES("cma_es", max_generations=30), lambda X: (X * X).sum(1),
...                 torch.ones(4, dtype=torch.float64), seeds=3)
>>> [len(h) for h in res.histories], str(res.stop_reason[0])
([30, 30, 30], 'maxiter')
"""

from __future__ import annotations

import math
from functools import partial
from time import perf_counter
from typing import Any, Sequence

import numpy as np
import torch

from evostrat.run.batch_stack import RunStack, StackedRun
from evostrat.run.termination import HIST_EVERY, HIST_KEEP

__all__ = ["BatchRecord", "history_rows"]

#: the per-run arrays :meth:`BatchRecord.keep` keeps the rows of (numpy, leading runs axis)
_PER_RUN = ("base_generations", "generation0", "base_evals", "started", "has_ftarget", "ftarget", "budget", "tolfun",
            "tolx", "tolfunhist", "stagnation_on", "tolstagnation", "flat_on", "tolflatfitness", "warmup", "filled",
            "fast", "best", "best_t", "best_at", "recent", "recent_count", "hist_best", "hist_median", "hist_count",
            "run_best", "run_best_evals", "flat")


def _setting(value: Any, off: float) -> float:
    """A criterion's threshold as a float, ``off`` when it is ``None``."""
    return off if value is None else float(value)


def _any_on(settings: Any) -> bool:
    """Whether any of the runs' ``settings`` of a criterion is on (not ``None``)."""
    return any(v is not None for v in settings)


def history_rows(generations: np.ndarray, n_evals: np.ndarray, best: np.ndarray, generation_best: np.ndarray,
                 median: np.ndarray, sigma: np.ndarray, time: np.ndarray) -> list[dict[str, Any]]:
    """History rows (dicts of Python numbers, :data:`~evostrat.run.state.ROW_KEYS` order) from columns."""
    return [{"generation": g, "n_evals": e, "best": b, "generation_best": gb, "median": md, "sigma": s, "time": t}
            for g, e, b, gb, md, s, t in zip(generations.tolist(), n_evals.tolist(), best.tolist(),
                                              generation_best.tolist(), median.tolist(), sigma.tolist(),
                                              time.tolist())]


class BatchRecord:
    """The record of one torch batch group's runs (:mod:`evostrat.run.batch_torch`).

    Parameters
    ----------
    drivers : list of Driver
        The group's runs, in the stack's order (one strategy, popsize, dtype, device,
        ``maximize``), initialised and not started by any generation of the batch yet.
    X : tensor, shape (runs, popsize, dim)
        A population of the group's (the runs' dtype and device).
    """

    def __init__(self, drivers: Sequence[Any], X: torch.Tensor) -> None:
        self.drivers = list(drivers)
        #: the runs' best candidates found here (numpy on the CPU)
        host = X.device.type == "cpu" and X.dtype in (torch.float64, torch.float32)
        self.best_x: Any = (np.zeros((X.shape[0], X.shape[2]), X.numpy().dtype) if host else
                            X.new_zeros((X.shape[0], X.shape[2])))
        self.maximize = bool(self.drivers[0].maximize)
        self.popsize = int(self.drivers[0].runner.popsize)
        self.generation = 0  # the batch's generations so far (every run's, in lockstep)
        terms = [d.termination for d in self.drivers]
        progress = [t.progress_values() for t in terms]  # deferred checks done, a checkpoint's loaded
        states, runners = [d.state for d in self.drivers], [d.runner for d in self.drivers]
        self.window = max(t.window for t in terms)
        self.base_generations = np.array([s.run_start[1] + r.generation for s, r in zip(states, runners)], np.int64)
        self.generation0 = np.array([r.generation for r in runners], np.int64)  # the criteria's generation
        self.base_evals = np.array([s.run_start[0] + r.n_evals for s, r in zip(states, runners)], np.int64)
        self.started = np.array([s.started for s in states], np.float64)
        self.has_ftarget = np.array([t.ftarget is not None for t in terms])
        self.ftarget = np.array([_setting(t.ftarget, 0.0) for t in terms])
        # the batch generation from which maxfevals or maxiter holds (n_evals >= max_evals, generation >= max_generations)
        self.budget = np.array([min(math.inf if t.max_evals is None else -((e - t.max_evals) // self.popsize),
                                    math.inf if t.max_generations is None else t.max_generations - g)
                                for t, e, g in zip(terms, self.base_evals.tolist(), self.generation0.tolist())])
        self.tolfun, self.tolx, self.tolfunhist = (np.array([_setting(getattr(t, name), -math.inf) for t in terms])
                                                   for name in ("tolfun", "tolx", "tolfunhist"))
        self.stagnation_on = np.array([bool(t.tolstagnation) for t in terms])
        self.tolstagnation = np.array([float(t.tolstagnation or 0) for t in terms])
        self.flat_on = np.array([t.tolflatfitness is not None for t in terms])
        self.tolflatfitness = np.array([t.tolflatfitness or 0 for t in terms], np.int64)
        self.warmup = np.array([t.dim * (5 + 100 / t.popsize) for t in terms])  # as Termination's
        self.filled = np.array([min(10, t.window) for t in terms], np.int64)
        # a run leaves when it may need the general path (and a window the group does not share: from the start)
        self.fast = np.array([t.window == self.window for t in terms])
        self.any_fast, self.all_fast, self.rows = bool(self.fast.any()), bool(self.fast.all()), np.arange(len(terms))
        self.first_budget = float(self.budget.min())
        #: the criteria any run has on (the others are not computed)
        self.uses = {"tolx": _any_on(t.tolx for t in terms), "ftarget": bool(self.has_ftarget.any()),
                     "tolfun": _any_on(t.tolfun for t in terms), "tolfunhist": _any_on(t.tolfunhist for t in terms),
                     "tolstagnation": bool(self.stagnation_on.any()), "tolflatfitness": bool(self.flat_on.any())}
        self.best = np.array([s.best_f for s in states], np.float64)
        #: the batch generation (0: none) and position of each run's best found here
        self.best_t, self.best_at = np.zeros((2, len(terms)), np.int64)
        # the tolfun window, a ring shared by the runs (next slot: self.slot); a run's values are
        # the last recent_count slots before it, the other slots copies of them (max and min kept)
        self.recent = np.zeros((len(terms), self.window))
        self.recent_count = np.array([len(p["recent"]) for p in progress], np.int64)
        self.slot, self.any_empty = 0, bool((self.recent_count == 0).any())
        for i, p in enumerate(progress):
            if p["recent"]:
                self.recent[i] = p["recent"][0]
                self.recent[i, self.window - len(p["recent"]):] = p["recent"]
        longest = max([len(p["hist_best"]) for p in progress] + [0])
        self.hist_best, self.hist_median = np.zeros((2, len(terms), max(64, 2 * longest)))
        self.hist_count = np.array([len(p["hist_best"]) for p in progress], np.int64)
        for i, p in enumerate(progress):
            self.hist_best[i, :len(p["hist_best"])] = p["hist_best"]
            self.hist_median[i, :len(p["hist_median"])] = p["hist_median"]
        self.run_best = np.array([p["run_best"] for p in progress], np.float64)
        self.run_best_evals = np.array([p["run_best_evals"] for p in progress], np.int64)
        self.flat = np.array([p["flat_generations"] for p in progress], np.int64)
        #: the history columns best, generation_best, median and sigma: of each generation (columns), and
        #: of the generations before as (runs, generations) arrays (built)
        self.columns: list[tuple[np.ndarray, ...]] = []
        self.built = [np.zeros((len(terms), 0)) for _ in range(4)]
        self.times: list[float] = []

    def keep(self, rows: Sequence[int]) -> None:
        """Keep runs ``rows`` only, in that order (as :meth:`RunStack.keep`)."""
        index = np.asarray(rows, dtype=np.int64)
        self._rows_of(0, 0)  # the columns built
        self.built = [a[index] for a in self.built]
        for name in _PER_RUN:
            setattr(self, name, getattr(self, name)[index])
        self.best_x = self.best_x[index if isinstance(self.best_x, np.ndarray) else
                                  torch.as_tensor(index, device=self.best_x.device)]
        self.drivers = [self.drivers[i] for i in rows]
        self.rows = np.arange(len(self.drivers))
        self.any_fast, self.all_fast = bool(self.fast.any()), bool(self.fast.all())

    def record(self, stack: RunStack, X: torch.Tensor, values: np.ndarray, sigmas: Sequence[float],
               stops: Sequence[dict[str, Any]]) -> list[int]:
        """Record the generation of every run: ``X`` ``(runs, popsize, dim)``, its ``values``
        ``(runs, popsize)`` in the user's sense on the host, each run's ``sigma`` and strategy
        criteria (``{name: hit}``) on its new state in ``stack``. Returns the runs that stopped."""
        self.generation += 1
        general, leaving = ~self.fast, None
        if self.any_fast:
            with np.errstate(all="ignore"):  # inf - inf, overflow: NaN and inf as Python's floats give them
                general, leaving = self._fast_generation(stack, X, values.astype(np.float64, copy=False),
                                                         sigmas, stops)
        stopped = []
        if general.any():
            for i in np.flatnonzero(general).tolist():
                d = self.drivers[i]
                if leaving is None or not leaving[i]:  # (a leaving run's runner is at this generation already)
                    d.runner.advance(StackedRun(stack, i), 1)
                d.record(values[i].tolist(), partial(_candidate, X, i), sigmas[i], stops[i])
                if d.state.stop_reason is not None:
                    stopped.append(i)
            self.fast &= ~general
            self.any_fast, self.all_fast = bool(self.fast.any()), bool(self.fast.all())
        return stopped

    def _fast_generation(self, stack: RunStack, X: torch.Tensor, V: np.ndarray, sigmas: Sequence[float],
                         stops: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Record the generation of the runs that stay on this path; hand the runs that leave it to
        their drivers. Returns the runs recorded by their drivers, and those that leave now."""
        t, now, p, maximize = self.generation, perf_counter(), V.shape[1], self.maximize
        sigma = np.array(sigmas, dtype=np.float64)
        ranked = np.sort(V, axis=1, kind="stable")  # sorted(values), row by row
        at = V.argmax(1) if maximize else V.argmin(1)  # the first best, as values.index(...)
        gen_best = V[self.rows, at]
        improved = gen_best > self.best if maximize else gen_best < self.best
        best = np.where(improved, gen_best, self.best)
        median = _medians(ranked)
        # the criteria (Termination.check's, in the minimising sense where it ranks): a run leaves when one may
        # hold; hit collects them (a finite sum: no value is NaN or infinite; the budgets: a run's may be reached)
        hits = [] if self.all_fast else [~self.fast]
        if not math.isfinite(V.sum()):
            hits.append(~np.isfinite(V).all(1))
        if t >= self.first_budget:
            hits.append(t >= self.budget)
        if self.uses["tolx"]:
            hits.append(sigma < self.tolx)
        if self.uses["ftarget"]:
            reached = best >= self.ftarget if maximize else best <= self.ftarget
            hits.append(self.has_ftarget & reached & (best == best) & (best != (-math.inf if maximize else math.inf)))
        recent_count = np.minimum(self.recent_count + 1, self.window)
        recent = None
        if self.uses["tolfun"] or self.uses["tolfunhist"]:
            recent = self._appended(gen_best)
            spread = recent.max(1) - recent.min(1)
            if self.uses["tolfun"]:
                hits.append((spread < self.tolfun) & ((p > 1) | (recent_count > 1))
                            & (ranked[:, -1] - ranked[:, 0] < self.tolfun))
            if self.uses["tolfunhist"]:
                hits.append((recent_count >= self.filled) & (spread < self.tolfunhist))
        stagnation = None
        if self.uses["tolstagnation"]:
            stagnation = self._stagnation(t, p, gen_best, at)
            hits.append(stagnation[-1])
        if self.uses["tolflatfitness"]:
            q = int(0.75 * p)
            flat = np.where(ranked[:, p - 1] == ranked[:, p - 1 - q] if maximize else ranked[:, 0] == ranked[:, q],
                            self.flat + 1, 0)
            hits.append(self.flat_on & (flat > self.tolflatfitness))
        first = stops[0]
        if not (stops.count(first) == len(stops) and not any(first.values())):  # (the usual: one dict of no hits)
            hits.append(np.array([any(s.values()) for s in stops]))
        # (the usual generation: no criterion may hold, one zeros array for both)
        hit = np.logical_or.reduce(hits) if hits else np.zeros(len(self.rows), bool)
        leaving = hit & self.fast if hits else hit
        for i in np.flatnonzero(leaving).tolist():  # from the progress before this generation
            self._hand_over(i, stack)
        # this generation's progress, of every run (those recorded elsewhere from now on do not read theirs)
        self.best, self.best_t, self.best_at = best, np.where(improved, t, self.best_t), np.where(
            improved, at, self.best_at)
        if isinstance(self.best_x, np.ndarray):  # on the CPU: numpy views of the tensors
            self.best_x = np.where(improved[:, None], X.numpy()[self.rows, at], self.best_x)
        else:
            moved = np.flatnonzero(improved)
            index = torch.as_tensor(moved, device=self.best_x.device)
            self.best_x[index] = X[index, torch.as_tensor(at[moved], device=self.best_x.device)]
        self.recent = self._appended(gen_best) if recent is None else recent
        self.recent_count, self.slot = recent_count, (self.slot + 1) % self.window
        if stagnation is not None:
            self.run_best, self.run_best_evals, due = stagnation[:3]
            if due.any():
                self._add_hist(due, V)
        if self.uses["tolflatfitness"]:
            self.flat = np.where(self.flat_on, flat, self.flat)  # counted while tolflatfitness is on
        self.columns.append((best, gen_best, median, sigma))
        self.times.append(now)
        return hit, leaving

    def _rows_of(self, i: int, k: int) -> list[np.ndarray]:
        """Run ``i``'s history columns ``best``, ``generation_best``, ``median`` and ``sigma`` of the
        batch's first ``k`` generations (its own copies)."""
        if self.columns:  # this generation's are not read
            new = [np.stack(c, axis=1) for c in zip(*self.columns)]
            self.built = [np.concatenate([a, b], axis=1) for a, b in zip(self.built, new)]
            self.columns = []
        return [a[i, :k].copy() for a in self.built]

    def _appended(self, gen_best: np.ndarray) -> np.ndarray:
        """The ``tolfun`` window with this generation's best added (a new array)."""
        recent = self.recent.copy()
        recent[:, self.slot] = gen_best
        if self.any_empty:
            empty = self.recent_count == 0
            recent[empty] = gen_best[empty, None]
            self.any_empty = False  # from this generation on (a leaving run's window is read before)
        return recent

    def _stagnation(self, t: int, p: int, gen_best: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, ...]:
        """``tolstagnation``'s progress after this generation (run best, its evaluation, the runs
        whose history records it) and the runs whose test is due (then left to their drivers)."""
        generation, n_evals = self.generation0 + t, self.base_evals + t * p
        signed_best = -gen_best if self.maximize else gen_best  # ranked[0] of the minimising sense
        on = self.stagnation_on
        new_best = on & (signed_best < self.run_best)
        run_best = np.where(new_best, signed_best, self.run_best)
        run_best_evals = np.where(new_best, n_evals - p + at + 1, self.run_best_evals)
        due = on & (generation % HIST_EVERY == 0)
        count = self.hist_count + due
        length = np.maximum(self.tolstagnation / 10.0, count / 10.0)
        test = on & ~((length > generation) | (generation <= self.warmup) | (count <= 100)
                      | (2 * (n_evals - run_best_evals) <= self.tolstagnation * p))  # _stagnated's medians
        return run_best, run_best_evals, due, test | (count > HIST_KEEP)

    def _add_hist(self, due: np.ndarray, V: np.ndarray) -> None:
        """``tolstagnation``'s record of this generation for the runs ``due``: its best and median
        (of the values ranked in the minimising sense, as Termination ranks them)."""
        rows = np.flatnonzero(due)
        ranked = np.sort(-V[rows] if self.maximize else V[rows], axis=1, kind="stable")  # sorted([-v ...])
        median = _medians(ranked)
        at = self.hist_count[rows]
        if at.max() >= self.hist_best.shape[1]:
            self.hist_best, self.hist_median = _grown(self.hist_best, at.max() + 1), _grown(self.hist_median,
                                                                                              at.max() + 1)
        self.hist_best[rows, at], self.hist_median[rows, at] = ranked[:, 0], median
        self.hist_count[rows] = at + 1

    def _hand_over(self, i: int, stack: RunStack) -> None:
        """Give run ``i``'s driver what this path recorded for it before this generation (its rows
        as a history block, best so far, counters and criteria's progress) and advance its runner
        to this generation's state in ``stack``."""
        d, k = self.drivers[i], self.generation - 1
        state = d.state
        if k:
            gens = np.arange(1, k + 1)
            state.history_blocks.append(partial(
                history_rows, self.base_generations[i] + gens, self.base_evals[i] + gens * self.popsize,
                *self._rows_of(i, k), np.asarray(self.times[:k]) - self.started[i]))
        if self.best_t[i]:  # found here: its evaluation (pycma's evals_best) and candidate
            evals = int(self.base_evals[i]) + int(self.best_t[i] - 1) * self.popsize + int(self.best_at[i]) + 1
            state.best_f, state.best_evals = float(self.best[i]), evals
            x = self.best_x[i]
            state.best_x = torch.from_numpy(x.copy()) if isinstance(x, np.ndarray) else x.clone()
        state.n_generations = int(self.base_generations[i]) + k
        state.n_evals = int(self.base_evals[i]) + k * self.popsize
        count, window = int(self.recent_count[i]), self.window
        hist = int(self.hist_count[i])
        d.termination.load_progress_values({
            "recent": [float(self.recent[i, (self.slot - count + j) % window]) for j in range(count)],
            "hist_best": self.hist_best[i, :hist].tolist(), "hist_median": self.hist_median[i, :hist].tolist(),
            "run_best": float(self.run_best[i]), "run_best_evals": int(self.run_best_evals[i]),
            "flat_generations": int(self.flat[i])})
        d.runner.advance(StackedRun(stack, i), k + 1)


def _medians(ranked: np.ndarray) -> np.ndarray:
    """The median of each row of ``ranked`` (sorted rows): the mean of the middle two for an even
    length, as ``Driver.record`` and ``Termination`` compute it."""
    m = ranked.shape[1] // 2
    return ranked[:, m] if ranked.shape[1] % 2 else 0.5 * (ranked[:, m - 1] + ranked[:, m])


def _grown(a: np.ndarray, columns: int) -> np.ndarray:
    """``a`` with at least ``columns`` columns (doubled), the new ones zero."""
    out = np.zeros((a.shape[0], max(columns, 2 * a.shape[1])), dtype=a.dtype)
    out[:, :a.shape[1]] = a
    return out


def _candidate(X: torch.Tensor, run: int, i: int) -> torch.Tensor:
    """Candidate ``i`` of run ``run`` in its own memory (a best so far kept by the run)."""
    return X[run, i].clone()
