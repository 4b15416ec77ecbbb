"""The run's termination criteria as pure array functions, for the compiled driver.

The compiled JAX chunks (:mod:`evostrat.run.compiled`) decide inside the
compiled program, generation by generation, whether the run stops, so a chunk
ends exactly where the host loop would and nothing is re-run. These functions
compute the same criteria, in the same order and with the same definitions, as
:class:`~evostrat.run.termination.Termination` (pycma's), over a
:class:`Progress` value of arrays instead of Python lists. Thresholds that are
integers on the host (window lengths, pycma's stagnation bounds) are computed
in integer arithmetic or tabulated on the host, so both paths agree exactly.

Examples
--------
>>> import jax                                                      # doctest: +SKIP
>>> import jax.numpy as jnp                                         # doctest: +SKIP
>>> from evostrat.run.termination import Termination                # doctest: +SKIP
>>> rules = Rules.from_termination(Termination(max_generations=2), popsize=3, capacity=4)  # doctest: +SKIP
>>> p = jax.device_put(initial_progress(rules, jnp.float32))        # doctest: +SKIP
>>> values, best, sigma = jnp.asarray([1.0, 2.0, 3.0]), jnp.asarray(1.0), jnp.asarray(0.5)  # doctest: +SKIP
>>> p, code, due = check(rules, p, values, 1, 3, best, sigma)       # doctest: +SKIP
>>> int(code), REASONS[int(code)]                                   # doctest: +SKIP
(0, '')
>>> p, code, due = check(rules, p, values, 2, 6, best, sigma)       # doctest: +SKIP
>>> REASONS[int(code)]                                              # doctest: +SKIP
'maxiter'
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
from evostrat.backends.trees import replace
from evostrat.run.order_statistics import median_of, order_statistics, window_medians
from evostrat.run.row_reductions import extremes
from evostrat.run.chunk_inputs import Budget, Directed, budget, threshold
from evostrat.run.thresholds import below, directed
from evostrat.run.termination import HIST_EVERY, HIST_KEEP

__all__ = ["REASONS", "THRESHOLDS", "BUDGETS", "INT32_MAX", "Directed", "Budget", "budget", "Rules", "history_capacity", "reached", "Progress", "initial_progress",
           "progress_from_host", "progress_for_device", "threshold", "directed", "below", "device_constant", "progress_to_host", "is_fresh", "check", "criteria",
           "stagnation_holds", "stagnation_window"]

#: Stop codes of :func:`check`: index -> reason (0: none); strategy criteria follow.
REASONS = ("", "ftarget", "maxfevals", "maxiter", "tolfun", "tolx", "tolfunhist",
           "tolstagnation", "tolflatfitness")


#: The criteria's thresholds a compiled chunk takes as an input (:meth:`Rules.thresholds`), not as
#: constants of its program: a new ``ftarget`` or tolerance runs on the program already compiled.
THRESHOLDS = ("ftarget", "tolfun", "tolx", "tolfunhist")

#: The budgets a compiled chunk takes as an input (:meth:`Rules.budgets`, int32), for the same
#: reason: a new ``max_evals`` or ``max_generations`` used to cost a new compilation (seconds).
BUDGETS = ("max_evals", "max_generations")

#: The largest budget an int32 input holds (a run's counters are int32 on the device).
INT32_MAX = 2**31 - 1


def reached(rules: "Rules", best: Any) -> Any:
    """Whether the best value so far ``best`` (user's sense) reached ``rules.ftarget``: ``-inf``
    reaches any target when minimising (``+inf`` when maximising), as in pycma; NaN and the other
    infinity, the best before any value was seen, never do."""
    import jax.numpy as jnp

    target = threshold(rules.ftarget, best, up=rules.maximize)
    seen = (best == best) & (best != (-jnp.inf if rules.maximize else jnp.inf))
    return seen & ((best >= target) if rules.maximize else (best <= target))


@dataclass(frozen=True)
class Rules:
    """The settings of the criteria (hashable; :meth:`structure` is part of the compiled program's key).

    Examples
    --------
    >>> from evostrat.run.termination import Termination
    >>> def rules(ftarget):
    ...     return Rules.from_termination(Termination(max_generations=9, ftarget=ftarget), popsize=3, capacity=10)
    >>> rules(1e-8).structure() == rules(0.5).structure() != rules(None).structure()
    True
    >>> rules(1e-8).thresholds()[0], rules(1e-8).structure().with_thresholds([0.5, 0.0, 0.0, 0.0]).ftarget
    (1e-08, 0.5)
    >>> def budget(n):
    ...     return Rules.from_termination(Termination(max_generations=n), popsize=3, capacity=n + 1)
    >>> budget(300).structure() == budget(302).structure(), budget(300).budgets()
    (True, (0, 300))
    """

    maximize: bool
    ftarget: float | None
    max_evals: int | None
    max_generations: int | None
    tolfun: float | None
    tolx: float | None
    tolfunhist: float | None
    tolstagnation: int | None
    tolflatfitness: int | None
    window: int
    popsize: int
    capacity: int  # entries of the stagnation history's buffers (one every HIST_EVERY generations)
    warmup: int  # stagnation needs generation > warmup

    def structure(self) -> "Rules":
        """These rules with each set threshold (:data:`THRESHOLDS`) replaced by ``0.0`` and each
        set budget (:data:`BUDGETS`) by ``0``: what a compiled chunk depends on (which criteria
        apply, lengths)."""
        return dataclasses.replace(self, **{n: 0.0 for n in THRESHOLDS if getattr(self, n) is not None},
                                   **{n: 0 for n in BUDGETS if getattr(self, n) is not None})

    def thresholds(self) -> tuple[float, ...]:
        """The values of :data:`THRESHOLDS` (NaN where unset), in that order."""
        return tuple(math.nan if getattr(self, n) is None else float(getattr(self, n)) for n in THRESHOLDS)

    def threshold_inputs(self, dtype: Any) -> np.ndarray:
        """:meth:`thresholds` as a compiled chunk's input of ``dtype``, each rounded in the direction
        of its comparison (:func:`threshold`: ``ftarget`` down when minimising, the others up)."""
        ups = (self.maximize, True, True, True)
        return np.asarray([directed(v, dtype, up)[()] for v, up in zip(self.thresholds(), ups)], dtype)

    def with_thresholds(self, values: Any, directed: bool = False) -> "Rules":
        """These rules with each set threshold read from ``values`` (a vector in the order of
        :data:`THRESHOLDS`; traced inside a compiled chunk); ``directed``: they are
        :meth:`threshold_inputs`, each a :class:`Directed`."""
        return dataclasses.replace(self, **{n: Directed(values, i) if directed else values[i]
                                            for i, n in enumerate(THRESHOLDS) if getattr(self, n) is not None})

    def budgets(self) -> tuple[int, ...]:
        """The values of :data:`BUDGETS` (``0`` where unset), at most :data:`INT32_MAX`."""
        return tuple(0 if getattr(self, n) is None else min(int(getattr(self, n)), INT32_MAX) for n in BUDGETS)

    def with_budgets(self, values: Any) -> "Rules":
        """These rules with each set budget read from ``values`` (a vector in the order of
        :data:`BUDGETS`; traced inside a compiled chunk)."""
        return dataclasses.replace(self, **{n: Budget(values, i) for i, n in enumerate(BUDGETS) if getattr(self, n) is not None})

    @classmethod
    def from_termination(cls, t: Any, popsize: int, capacity: int) -> "Rules":
        """The rules of a host :class:`~evostrat.run.termination.Termination` for a run of at most
        ``capacity`` generations (``tolstagnation`` 0 is off, as on the host), whose stagnation
        history holds :func:`history_capacity` entries."""
        stag = bool(t.tolstagnation)
        return cls(
            maximize=bool(t.maximize), ftarget=t.ftarget, max_evals=t.max_evals,
            max_generations=t.max_generations, tolfun=t.tolfun, tolx=t.tolx,
            tolfunhist=t.tolfunhist, tolstagnation=t.tolstagnation if stag else None,
            tolflatfitness=t.tolflatfitness, window=int(t.window), popsize=int(popsize),
            capacity=history_capacity(int(capacity) // HIST_EVERY) if stag else 1,
            warmup=int(math.floor(t.dim * (5 + 100 / t.popsize))),
        )


def history_capacity(records: int) -> int:
    """Entries of a stagnation history that takes ``records`` records: more than ``records``, in
    steps of an eighth of the next power of two (at most a quarter more), so that runs whose
    budgets differ a little share a compiled chunk, and the median test sorts little more.

    >>> [history_capacity(n) for n in (0, 7, 60, 63, 64, 100, 1555)]
    [1, 8, 64, 64, 80, 112, 1792]
    """
    step = 1 << max(0, records.bit_length() - 3)
    return (records // step + 1) * step


class Progress(NamedTuple):
    """What the criteria have seen: the run's arrays (minimisation sense where noted)."""

    recent: Any  # (window,) generation-best values (user's sense), ring buffer
    n_recent: Any  # how many were appended
    hist_best: Any  # (capacity,) every HIST_EVERY-th generation's best value, minimisation sense
    hist_median: Any  # (capacity,) and its median, minimisation sense
    n_hist: Any
    run_best: Any
    run_best_evals: Any  # the evaluation that found run_best (pycma's best.evals)
    flat_generations: Any


def initial_progress(rules: Rules, dtype: Any) -> Progress:
    """Nothing seen yet (host arrays: the compiled chunk takes them in its first call).

    ``dtype`` is a name (``"float32"``) or a numpy or JAX dtype or scalar type (``jnp.float32``).
    """
    dtype = np.dtype(dtype if isinstance(dtype, type) else str(dtype))
    zero = np.int32(0)
    return Progress(np.zeros(rules.window, dtype), zero, np.zeros(rules.capacity, dtype),
                    np.zeros(rules.capacity, dtype), zero, dtype.type(np.inf), zero, zero)


def progress_from_host(rules: Rules, values: dict[str, Any], dtype: Any) -> Progress:
    """The host criteria's :meth:`~evostrat.run.termination.Termination.progress_values` as a
    :class:`Progress` (a resumed run continues where its checkpoint left off)."""
    p = initial_progress(rules, dtype)
    recent = np.asarray(values["recent"], p.recent.dtype)[-rules.window:]
    hist_best = np.asarray(values["hist_best"], p.recent.dtype)[-rules.capacity:]
    hist_median = np.asarray(values["hist_median"], p.recent.dtype)[-rules.capacity:]
    p.recent[:recent.size] = recent
    p.hist_best[:hist_best.size] = hist_best
    p.hist_median[:hist_median.size] = hist_median
    return replace(p, n_recent=np.int32(recent.size), n_hist=np.int32(hist_best.size),
                   run_best=p.recent.dtype.type(values["run_best"]),
                   run_best_evals=np.int32(values["run_best_evals"]),
                   flat_generations=np.int32(values["flat_generations"]))


#: The host criteria's ``progress_values`` before a run's first generation.
_FRESH = {"recent": [], "hist_best": [], "hist_median": [], "run_best": math.inf, "run_best_evals": 0,
          "flat_generations": 0}


def is_fresh(values: dict[str, Any]) -> bool:
    """Whether the host criteria's ``progress_values`` are those of a run before its first generation."""
    return values == _FRESH


def progress_for_device(rules: Rules, values: dict[str, Any], dtype: Any, device: Any) -> Progress:
    """:func:`progress_from_host` committed to ``device``, as a chunk's outputs are (so a run's
    first chunk call and the later ones share one compiled program); before the first
    generation, device arrays made once per rules, dtype and device."""
    if is_fresh(values):
        return _fresh_progress(rules, str(dtype), device)
    import jax

    return jax.device_put(progress_from_host(rules, values, dtype), device)


@lru_cache(maxsize=32)
def _fresh_progress(rules: Rules, dtype: str, device: Any) -> Progress:
    import jax

    return jax.device_put(initial_progress(rules, dtype), device)


@lru_cache(maxsize=64)
def device_constant(value: float, dtype: str, device: Any = None) -> Any:
    """``value`` as a 0-d JAX array of ``dtype``, made once (JAX arrays are immutable); committed
    to ``device`` when given."""
    import jax

    return jax.device_put(np.asarray(value, dtype), device)


def progress_to_host(rules: Rules, p: Progress) -> dict[str, Any]:
    """``p`` as the host criteria's ``progress_values``: the recent values oldest first, the
    stagnation history's latest ``HIST_KEEP`` entries (pycma's)."""
    import jax

    p = jax.device_get(p)
    n, window = int(p.n_recent), rules.window
    recent = p.recent[:n] if n <= window else np.roll(p.recent, -(n % window))
    n_hist = int(p.n_hist)
    kept = min(n_hist, HIST_KEEP)
    return {"recent": recent.tolist(), "hist_best": p.hist_best[n_hist - kept:n_hist].tolist(),
            "hist_median": p.hist_median[n_hist - kept:n_hist].tolist(), "run_best": float(p.run_best),
            "run_best_evals": int(p.run_best_evals), "flat_generations": int(p.flat_generations)}


def stagnation_window(rules: Rules, n_hist: Any) -> tuple[Any, Any]:
    """pycma's stagnation history length (the latest ``HIST_KEEP`` of ``n_hist`` records) and its
    tenth ``l``."""
    import jax
    import jax.numpy as jnp

    length = jnp.minimum(n_hist, HIST_KEEP)
    # length // 10 of a count (>= 0) as lax.div: floor division's remainder and sign fix-up cost a kernel
    return length, jnp.maximum(rules.tolstagnation // 10, jax.lax.div(length, jnp.asarray(10, length.dtype)))


def _record_stagnation(rules: Rules, p: Progress, generation: Any, best: Any, median: Any,
                       best_evals: Any) -> Progress:
    """The run's best and the evaluation that found it; every ``HIST_EVERY``-th generation, its
    best and median appended to the stagnation history."""
    import jax.numpy as jnp

    improved = best < p.run_best
    due = generation % HIST_EVERY == 0
    slot = jnp.minimum(p.n_hist, rules.capacity - 1)
    return replace(p, hist_best=jnp.where(due, p.hist_best.at[slot].set(best), p.hist_best),
                   hist_median=jnp.where(due, p.hist_median.at[slot].set(median), p.hist_median),
                   n_hist=p.n_hist + due.astype(p.n_hist.dtype), run_best=jnp.where(improved, best, p.run_best),
                   run_best_evals=jnp.where(improved, best_evals, p.run_best_evals))


def stagnation_holds(rules: Rules, p: Progress, generation: Any) -> Any:
    """pycma's median test over the stagnation history, for a generation whose test is due.

    It sorts four windows of the history, so :func:`check` leaves it to the caller, to run
    only in the generations that :func:`check` reports as due (a ``lax.cond`` inside the
    generation would cost every generation a few microseconds on the CPU).
    """
    import jax.numpy as jnp

    end = p.n_hist
    _, l = stagnation_window(rules, end)
    # the latest l values of each history and the l before them, sorted together
    buffers = jnp.stack([p.hist_median, p.hist_median, p.hist_best, p.hist_best])
    medians = window_medians(buffers, jnp.stack([end - l, end - 2 * l, end - l, end - 2 * l]), l)
    return (medians[0] >= medians[1]) & (medians[2] >= medians[3])


def check(rules: Rules, p: Progress, values: Any, generation: Any, n_evals: Any, best: Any,
          sigma: Any) -> tuple[Progress, Any, Any]:
    """Record one generation's ``values`` (user's sense): ``(progress, stop code, due)``.

    The code indexes :data:`REASONS` (0: no criterion holds), in the order of
    :meth:`Termination.check <evostrat.run.termination.Termination.check>`, except
    the stagnation median test: when ``due`` is true the caller completes the code
    with :func:`stagnation_holds` (``"tolstagnation"`` ranks before any later code).
    """
    import jax.numpy as jnp

    finite = jnp.isfinite(values)
    n_finite = jnp.sum(finite)
    lo = jnp.min(jnp.where(finite, values, jnp.inf))
    hi = jnp.max(jnp.where(finite, values, -jnp.inf))
    append = n_finite > 0
    recent = jnp.where(append, p.recent.at[p.n_recent % rules.window].set(hi if rules.maximize else lo), p.recent)
    p = replace(p, recent=recent, n_recent=p.n_recent + append.astype(jnp.int32))
    if rules.tolstagnation is not None or rules.tolflatfitness is not None:  # best, median, 75th percentile
        popsize = values.shape[0]
        signed = jnp.where(jnp.isnan(values), jnp.inf, -values if rules.maximize else values)
        first, lower, upper, quarter = order_statistics(signed, (0, (popsize - 1) // 2, popsize // 2,
                                                                 int(0.75 * popsize)))
    if rules.tolstagnation is not None:  # the best's evaluation: its first position among the values
        best_evals = n_evals - popsize + jnp.argmin(signed).astype(jnp.int32) + 1
        p = _record_stagnation(rules, p, generation, first, median_of(lower, upper, popsize), best_evals)
    if rules.tolflatfitness is not None:
        p = replace(p, flat_generations=jnp.where(first == quarter, p.flat_generations + 1, 0))
    code, due = criteria(rules, p, n_finite == values.shape[0], (lo, hi), generation, n_evals, best, sigma)
    return p, code, due


def criteria(rules: Rules, p: Progress, all_finite: Any, span: tuple[Any, Any], generation: Any, n_evals: Any,
             best: Any, sigma: Any) -> tuple[Any, Any]:
    """:func:`check`'s ``(stop code, due)`` from the progress ``p`` after the generation.

    ``all_finite``: whether every value of the generation was finite; ``span``: its
    least and greatest finite values; ``best`` the run's best so far. The compiled
    chunk calls it on the progress after a block of generations (the block's last).
    """
    import jax.numpy as jnp

    recent_hi, recent_lo = extremes(p.recent, jnp.arange(rules.window) < p.n_recent)  # one reduction
    false = jnp.asarray(False)
    rows = [false]
    if rules.ftarget is not None:
        rows.append(reached(rules, best))
    else:
        rows.append(false)
    rows.append(false if rules.max_evals is None else n_evals >= budget(rules.max_evals))
    rows.append(false if rules.max_generations is None else generation >= budget(rules.max_generations))
    if rules.tolfun is not None:
        tol = threshold(rules.tolfun, recent_hi)
        rows.append((p.n_recent > (1 if rules.popsize == 1 else 0)) & all_finite & below(recent_hi, recent_lo, tol)
                    & below(span[1], span[0], tol))
    else:
        rows.append(false)
    rows.append(false if rules.tolx is None else sigma < threshold(rules.tolx, sigma))
    if rules.tolfunhist is not None:
        rows.append((p.n_recent >= min(10, rules.window))
                    & below(recent_hi, recent_lo, threshold(rules.tolfunhist, recent_hi)))
    else:
        rows.append(false)
    rows.append(false)  # tolstagnation: see stagnation_holds
    rows.append(false if rules.tolflatfitness is None else p.flat_generations > rules.tolflatfitness)
    due = false
    if rules.tolstagnation is not None:
        length, l = stagnation_window(rules, p.n_hist)
        t = rules.tolstagnation
        ready = ~((t > 10 * generation) | (length > 10 * generation)) & (generation > rules.warmup)
        aged = 2 * (n_evals - p.run_best_evals) > t * rules.popsize  # pycma: (evals - best.evals) / popsize > t / 2
        due = ready & aged & (length > 100) & (2 * l < length)
    code = jnp.asarray(0, jnp.int32)  # the first criterion that holds: a chain of selects (no reduction kernel)
    for n in reversed(range(1, len(rows))):
        if rows[n] is not false:
            code = jnp.where(rows[n], jnp.asarray(n, jnp.int32), code)
    return code, due
