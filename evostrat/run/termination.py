"""Run-level termination criteria, named as pycma names them.

The estimator checks these after every generation, in this order, and reports
the first that holds in ``stop_reason_`` (``ES.ask``/``ES.tell`` without restarts
defers the checks until the reason is read: :meth:`Termination.defer`, same answers):

- ``"ftarget"``: the best value so far reached ``ftarget`` (``<=`` when
  minimising, ``>=`` when maximising).
- ``"maxfevals"``: ``n_evals >= max_evals``.
- ``"maxiter"``: ``n_generations >= max_generations``.
- ``"tolfun"``: the range of the generation-best values over the last
  ``floor(10 + 30 d / popsize)`` generations (all of them in a run's first
  generations: a flat objective stops after one), and the range of the latest
  generation's values, are both below ``tolfun`` (pycma's ``tolfun`` and its history length;
  with ``popsize`` 1, whose generation has no range, the window must hold two generations).
- ``"tolx"``: the largest per-coordinate standard deviation is below ``tolx`` and, for a
  strategy with ``tolx_parts`` and ``tolx_path`` (CMA-ES), so is every ``sigma p_c_j`` (pycma's).
- ``"tolfunhist"``: the range of the generation-best values over the same
  window (at least 10 generations) is below ``tolfunhist`` (pycma: 1e-12).
- ``"tolstagnation"``: pycma's (4.5) stagnation test. Every 5th generation records the
  generation's best value and its median (mean of the middle two for an even population),
  the latest 20,000 of them kept. The test holds after more than ``d (5 + 100 / popsize)``
  generations, with more than 100 recorded, when the run's best value was found more than
  ``tolstagnation / 2`` generations' worth of evaluations ago (counted from the evaluation
  that found it, as pycma's ``best.evals``), and the median of the recorded bests and of the
  recorded medians over the latest ``l = max(tolstagnation / 10, len(history) / 10)``
  records (``l`` at most the generation, ``2 l`` fewer than the records) is no better than
  over the ``l`` records before (pycma's default ``tolstagnation`` is
  ``int(100 + 100 d^1.5 / popsize)``; ``0`` turns it off, as in pycma).
- ``"tolflatfitness"``: the best and the 75th-percentile value of a generation
  are equal in more than ``tolflatfitness`` consecutive generations (pycma: 1).
- any name a strategy's ``stop(state)`` reports (CMA-ES adds its own).
- ``"callback"``: a callback returned ``True``.

Examples
--------
>>> from evostrat.run.termination import Termination
>>> t = Termination(max_generations=3)
>>> t.check(generation=3, n_evals=30, best=1.0, values=[1.0, 2.0], sigma=0.1)
'maxiter'
>>> t.defer(generation=4, n_evals=40, best=1.0, values=[1.0, 2.0], sigma=0.1)  # checked later
>>> t.flush()
'maxiter'
"""

from __future__ import annotations

import math
from collections import deque
from numbers import Integral, Real
from typing import Any, Callable, Sequence

from evostrat.errors import CheckpointError
from evostrat.params import Interval, check_params
from evostrat.run.memo import Memo, plain_key
from evostrat.run.state import first_stop, is_count, is_real, is_reals

__all__ = ["CRITERIA_CONSTRAINTS", "HIST_EVERY", "HIST_KEEP", "PROGRESS_SCHEMA", "Termination", "pending_reason"]

#: pycma's stagnation history: a best and median every ``HIST_EVERY`` generations, ``HIST_KEEP`` kept.
HIST_EVERY, HIST_KEEP = 5, 20_000
#: The fields of :meth:`Termination.progress_values` and the values they can hold: ``recent`` only finite
#: values, the bests never NaN (a NaN ranks as ``inf``); a median of ``-inf`` and ``inf`` is NaN.
PROGRESS_SCHEMA: dict[str, tuple[Any, str]] = {
    "recent": (lambda v: is_reals(v) and all(map(math.isfinite, v)), "a list of finite numbers"),
    "hist_best": (lambda v: is_reals(v) and len(v) <= HIST_KEEP and not any(map(math.isnan, v)),
                  f"a list of at most {HIST_KEEP} numbers (not NaN)"),
    "hist_median": (lambda v: is_reals(v) and len(v) <= HIST_KEEP, f"a list of at most {HIST_KEEP} numbers"),
    "run_best": (lambda v: is_real(v) and not math.isnan(v), "a real number (not NaN)"),
    **dict.fromkeys(("run_best_evals", "flat_generations"), (is_count, "an int >= 0 and < 2**63")),
}


_TOLERANCE = [Interval(Real, 0, None), None]
_COUNT = [Interval(Integral, 0, None), None]
#: The criteria's constraints (:mod:`evostrat.params`), checked by ``Termination`` and ``ES``.
CRITERIA_CONSTRAINTS: dict[str, list[Any]] = {
    **dict.fromkeys(("max_evals", "max_generations"), [Interval(Integral, 0, None, closed="neither"), None]),
    "ftarget": [Interval(Real, None, None), None], **dict.fromkeys(("tolfun", "tolx", "tolfunhist"), _TOLERANCE),
    "tolstagnation": _COUNT, "tolflatfitness": _COUNT,
}
_CHECKED = Memo()  # Termination's criteria settings, checked and converted, by their plain values


class Termination:
    """Stateful checker of the run-level criteria (one per run)."""

    def __init__(
        self, max_evals: int | None = None, max_generations: int | None = None, ftarget: float | None = None,
        tolfun: float | None = 1e-11, tolx: float | None = 1e-11, maximize: bool = False,
        history_length: int = 10, tolfunhist: float | None = None, tolstagnation: int | None = None,
        tolflatfitness: int | None = None, dim: int = 1, popsize: int = 1,
    ) -> None:
        settings = (max_evals, max_generations, ftarget, tolfun, tolx, tolfunhist, tolstagnation, tolflatfitness)
        key = plain_key(settings)  # plain settings: checked and converted once (~10 us with cold caches)
        known = _CHECKED.get(key)
        if known is None:
            vars(self).update(zip(CRITERIA_CONSTRAINTS, settings))  # (CRITERIA_CONSTRAINTS' order)
            check_params(self, CRITERIA_CONSTRAINTS)
            known = _CHECKED.keep(key, tuple(None if v is None else (int if c[0].kind is Integral else float)(v)
                                             for v, c in zip(settings, CRITERIA_CONSTRAINTS.values())))  # Python's
        (self.max_evals, self.max_generations, self.ftarget, self.tolfun, self.tolx, self.tolfunhist,
         self.tolstagnation, self.tolflatfitness) = known
        self.maximize = maximize
        self._recent: deque[float] = deque(maxlen=max(1, history_length))
        self.dim, self.popsize = int(dim), int(popsize)
        # stagnation needs generation > _warmup; tolfunhist needs _filled values
        self._warmup = self.dim * (5 + 100 / self.popsize)
        self._filled = min(10, self.window)
        # pycma's histbest/histmedian (every 5th generation, most recent last), minimisation sense
        self._hist_best: list[float] = []
        self._hist_median: list[float] = []
        self._run_best = math.inf
        self._run_best_evals = 0  # the evaluation that found _run_best (pycma's best.evals)
        self._flat_generations = 0
        #: ``() -> progress_values`` of a compiled chunk, loaded when the host next needs them
        self.pending: Callable[[], dict[str, Any]] | None = None
        #: generations recorded by :meth:`defer`, checked in order by :meth:`flush`
        self.deferred: list[tuple[Any, ...]] = []
        #: what :meth:`check` returned for the latest generation checked
        self.last: str | None = None
        #: at most this many generations wait (about 2**16 values of theirs)
        self.defer_limit = max(1, min(4096, 2**16 // max(1, self.popsize)))
        #: called before deferred generations are checked: adds those a run's RunState holds (its ``sign``,
        #: through a :class:`~evostrat.run.weak.WeakCall`: the state holds these criteria)
        self.before_flush: Callable[[], None] | None = None
        #: the strategy's own criteria, ``stops(state)``, and the latest generation's state
        #: (:meth:`latest_reason`)
        self.stops: Callable[[Any], dict[str, Any]] = no_stops
        self.told_state: Any = None
        #: the strategy, whose ``tolx_parts(state)`` and ``tolx_path(parts)`` :meth:`path_of` reads
        self.paths: Any = None

    def path_of(self, state: Any) -> Any:
        """What ``tolx`` keeps of a generation's ``state`` for its path test (``None``: nothing)."""
        return None if self.paths is None or self.tolx is None else self.paths.tolx_parts(state)

    @property
    def window(self) -> int:
        """Generations in the ``tolfun``/``tolfunhist`` window."""
        return int(self._recent.maxlen or 1)

    def setting(self, reason: str, max_generations: int | None = None, max_restarts: int | None = None,
                strategy: Any = None) -> Any:
        """pycma's ``stop()`` value of ``reason``: the criterion's setting (``maxiter``: the run's
        ``max_generations`` when given; a criterion of ``strategy``'s own ``stop(state)``: its
        threshold of that name, such as CMA-ES's ``tolfacupx``), ``True`` for criteria without one."""
        value = {"maxfevals": self.max_evals, "maxiter": max_generations or self.max_generations,
                 "ftarget": self.ftarget, "tolfun": self.tolfun, "tolx": self.tolx, "tolfunhist": self.tolfunhist,
                 "tolstagnation": self.tolstagnation, "tolflatfitness": self.tolflatfitness,
                 "maxrestarts": max_restarts}.get(reason, getattr(strategy, reason, None))
        return True if value is None or isinstance(value, bool) or not isinstance(value, Real) else value

    def progress_values(self) -> dict[str, Any]:
        """What the criteria have seen so far, as plain data (:data:`PROGRESS_SCHEMA`)."""
        self.flush()
        if self.pending is not None:
            self.load_progress_values(self.pending())
        return {"recent": list(self._recent), "hist_best": list(self._hist_best),
                "hist_median": list(self._hist_median), "run_best": self._run_best,
                "run_best_evals": self._run_best_evals, "flat_generations": self._flat_generations}

    def load_progress_values(self, values: dict[str, Any]) -> None:
        """Restore :meth:`progress_values` (checked against :data:`PROGRESS_SCHEMA` by the caller)."""
        self.pending, self.deferred = None, []
        self._recent = deque((float(v) for v in values["recent"]), maxlen=self._recent.maxlen)
        best, median = values["hist_best"], values["hist_median"]
        if len(best) != len(median):  # the stagnation test pairs them (an empty median raised IndexError)
            raise CheckpointError("checkpoint termination fields 'hist_best' and 'hist_median' differ in length")
        self._hist_best, self._hist_median = [float(v) for v in best], [float(v) for v in median]
        self._run_best = float(values["run_best"])
        self._run_best_evals = int(values["run_best_evals"])
        self._flat_generations = int(values["flat_generations"])

    def defer(self, generation: int, n_evals: int, best: float, values: Sequence[float], sigma: float,
              presorted: bool = False, best_index: int | None = None, path: Any = None) -> None:
        """Record one generation for :meth:`check`, checked when :meth:`flush` (or anything
        that reads the criteria) next runs: the same calls in the same order, so the same
        answers, without the work while nobody asks (ask/tell loops). ``sigma`` may be a
        history row whose ``"sigma"`` :attr:`before_flush` fills in."""
        deferred = self.deferred
        deferred.append((generation, n_evals, best, values, sigma, presorted, best_index, path))
        if len(deferred) >= self.defer_limit:
            self.flush()

    def latest_reason(self) -> str | None:
        """:func:`pending_reason` of the latest generation, :attr:`told_state`."""
        return pending_reason(self, self.stops, self.told_state)

    def flush(self) -> str | None:
        """Check the deferred generations in order; what :meth:`check` returned for the latest."""
        if self.before_flush is not None:  # generations recorded elsewhere join the deferred ones
            self.before_flush()
        deferred, self.deferred = self.deferred, []
        for args in deferred:
            self.last = self._check(*args)
        return self.last

    def check(self, generation: int, n_evals: int, best: float, values: Sequence[float], sigma: float,
              presorted: bool = False, best_index: int | None = None, path: Any = None) -> str | None:
        """The first criterion that holds, or ``None``.

        ``best`` and ``values`` are in the user's sense (maximised when
        ``maximize``); non-finite values are ignored by ``tolfun``. ``presorted``
        says that ``values`` are finite and sorted ascending, and that the run
        minimises (the driver's usual case): they are then read as they are.
        ``best_index``: the position of the generation's best value among its values as they
        were evaluated (``tolstagnation`` dates the best from it, as pycma's ``best.evals``);
        ``None``: its first position in ``values`` (presorted: 0). ``path``: :meth:`path_of` its state, or its runner.
        """
        if self.deferred or self.before_flush is not None:
            self.flush()
        self.last = self._check(generation, n_evals, best, values, sigma, presorted, best_index, path)
        return self.last

    def _check(self, generation: int, n_evals: int, best: float, values: Sequence[float], sigma: float,
               presorted: bool, best_index: int | None, path: Any = None) -> str | None:
        if self.pending is not None:
            self.load_progress_values(self.pending())
        total, finite = 0.0, values
        if not presorted:
            total = sum(values)  # finite: every value is; NaN: some value is
            if not -math.inf < total < math.inf:
                finite = [v for v in values if math.isfinite(v)]
        if finite:
            self._recent.append(finite[0] if presorted else max(finite) if self.maximize else min(finite))
        if self.ftarget is not None and best == best and best != (-math.inf if self.maximize else math.inf):
            if (best >= self.ftarget) if self.maximize else (best <= self.ftarget):  # -inf reaches any target
                return "ftarget"
        if self.max_evals is not None and n_evals >= self.max_evals:
            return "maxfevals"
        if self.max_generations is not None and generation >= self.max_generations:
            return "maxiter"
        if (
            self.tolfun is not None
            and self._recent  # pycma: whatever part of the window the run has seen
            and len(finite) == len(values) > 0
            and (len(values) > 1 or len(self._recent) > 1)  # one value has no spread: two generations
            and self._spread_below(self.tolfun)
            and (finite[-1] - finite[0] if presorted else max(finite) - min(finite)) < self.tolfun
        ):
            return "tolfun"
        if self.tolx is not None and sigma < self.tolx and (path is None or self._path_below(path, self.tolx)):
            return "tolx"
        if len(values) == 0:
            return None
        if presorted:
            ranked = values
        elif total != total:  # NaN ranks worst
            ranked = sorted((-v if self.maximize else v) if v == v else math.inf for v in values)
        else:
            ranked = sorted([-v for v in values] if self.maximize else values)
        if self.tolfunhist is not None and len(self._recent) >= self._filled:
            if self._spread_below(self.tolfunhist):
                return "tolfunhist"
        if self.tolstagnation and self._stagnated(generation, n_evals, values, ranked, best_index):
            return "tolstagnation"
        if self.tolflatfitness is not None:  # pycma's tolflatfitness
            flat = ranked[0] == ranked[int(0.75 * len(ranked))]
            self._flat_generations = self._flat_generations + 1 if flat else 0
            if self._flat_generations > self.tolflatfitness:
                return "tolflatfitness"
        return None

    def _path_below(self, path: Any, tol: float) -> bool:
        """pycma's ``all(sigma * pc < tolx)`` (NaN fails) of a :meth:`check` ``path``."""
        parts = self.path_of(path.state) if hasattr(path, "state") else path  # a runner: read now
        return parts is None or float(self.paths.tolx_path(parts)) < tol

    def _spread_below(self, tol: float) -> bool:
        """``max(recent) - min(recent) < tol``. The distance of the latest value to the
        oldest and to the previous one bounds the range from below (rounding is
        monotone), which usually decides without the scan."""
        recent = self._recent
        last = recent[-1]
        if len(recent) > 1 and not (abs(last - recent[0]) < tol and abs(last - recent[-2]) < tol):
            return False
        return max(recent) - min(recent) < tol

    def _stagnated(self, generation: int, n_evals: int, values: Sequence[float], ranked: list[float],
                   best_index: int | None) -> bool:
        """pycma's ``tolstagnation`` on the generation's ``values``, ``ranked`` in the minimisation sense."""
        best, hist_best, hist_median = ranked[0], self._hist_best, self._hist_median
        if best < self._run_best:  # pycma's best.evals: the evaluation that found it
            if best_index is None:
                signed = [-v for v in values] if self.maximize else values
                best_index = next((i for i, v in enumerate(signed) if v == best), 0)
            self._run_best, self._run_best_evals = best, n_evals - len(values) + best_index + 1
        if generation % HIST_EVERY == 0:
            hist_best.append(best)
            hist_median.append(_median(ranked, presorted=True))
            if len(hist_best) > HIST_KEEP:
                del hist_best[0], hist_median[0]
        t, n = self.tolstagnation, len(hist_best)
        length = max(t / 10.0, n / 10.0)
        if (length > generation or generation <= self._warmup or n <= 100
                or 2 * (n_evals - self._run_best_evals) <= t * self.popsize):
            return False
        l = int(length)
        if 2 * l >= n:
            return False
        recent_b, older_b = hist_best[-l:], hist_best[-2 * l : -l]
        recent_m, older_m = hist_median[-l:], hist_median[-2 * l : -l]
        return _median(recent_m) >= _median(older_m) and _median(recent_b) >= _median(older_b)


def pending_reason(termination: Termination, stops: Callable[[Any], dict[str, Any]], state: Any) -> str | None:
    """The stop reason of the latest generation: ``termination``'s criteria (the deferred ones
    checked first), then the strategy's own, ``stops(state)`` on that generation's state."""
    reason = termination.flush()
    return first_stop(stops(state)) if reason is None else reason


def no_stops(state: Any) -> dict[str, Any]:
    """The strategy criteria of a run whose driver has not set its strategy's: none."""
    return {}


def _median(values: Sequence[float], presorted: bool = False) -> float:
    ordered = values if presorted else sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])
