"""The run's termination criteria checked for a block of generations at once (compiled driver).

The compiled chunk (:mod:`evostrat.run.compiled`) runs generations without
:func:`~evostrat.run.device_termination.check`, which costs a few dozen small XLA
operations per generation. Each generation computes only :func:`may_stop`, a few
scalars that are false whenever no criterion holds; the chunk leaves its inner loop
after a generation where it is true, or after a block of generations. No criterion can
have held before the block's last generation, so :func:`check_block` advances the
criteria's progress over the block's rows at once (cumulative minima, maxima and counts:
the numbers of the generation by generation check) and evaluates the criteria
(:func:`~evostrat.run.device_termination.criteria`, the second half of
:func:`~evostrat.run.device_termination.check`) once, on the progress after the last row:
the run stops where the generation by generation check stops it, and no generation runs
twice. Evaluating them after the last row alone, rather than after every row of the block,
cut the CPU time of compiling CMA-ES d = 10's chunk from about 4.3 s to 3.4-3.6 s; taking the
rows' numbers and running values in a few variadic reductions (:mod:`evostrat.run.row_reductions`)
cut the block's XLA kernels from 46 to 26, each ~10-15 ms of compiling (issue 15).

Examples
--------
>>> import jax.numpy as jnp                                              # doctest: +SKIP
>>> from evostrat.run.device_termination import Rules, initial_progress  # doctest: +SKIP
>>> from evostrat.run.termination import Termination                     # doctest: +SKIP
>>> rules = Rules.from_termination(Termination(max_generations=2), popsize=3, capacity=4)  # doctest: +SKIP
>>> p = initial_progress(rules, "float32")                              # doctest: +SKIP
>>> rows = jnp.asarray([[1.0, 2.0, 3.0], [0.5, 2.0, 3.0], [0.0, 0.0, 0.0]])  # doctest: +SKIP
>>> p, m, code = check_block(rules, p, rows, jnp.ones(3), 2, 0, 0, jnp.inf, 0)  # doctest: +SKIP
>>> int(m), REASONS[int(code)]                                           # doctest: +SKIP
(2, 'maxiter')
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from evostrat.backends.trees import replace
from evostrat.run.device_termination import (REASONS, Progress, Rules, below, budget, criteria,
                                             reached, stagnation_holds, threshold)
from evostrat.run.order_statistics import median_of, order_statistics
from evostrat.run.row_reductions import latest, prefix, row_summary
from evostrat.run.termination import HIST_EVERY

__all__ = ["Watch", "watch", "summary", "may_stop", "check_block", "block_progress", "block_outcome", "tolx_sigma"]


class Watch(NamedTuple):
    """What :func:`may_stop` carries from generation to generation (the two bests in one vector: one
    kernel a generation, not two)."""

    bests: Any  # (2,): the latest generation best appended to Progress.recent (user's sense; NaN: none),
    #             and the run's best as Progress.run_best (minimisation sense)
    run_best_evals: Any
    tolx_sigma: Any  # the latest generation's tolx_sigma (NaN: none yet)

    @property
    def last_best(self) -> Any:
        return self.bests[0]

    @property
    def run_best(self) -> Any:
        return self.bests[1]


def watch(rules: Rules, p: Progress) -> Watch:
    """The :class:`Watch` of a run whose criteria have seen ``p``."""
    import jax.numpy as jnp

    last = jnp.where(p.n_recent > 0, p.recent[(p.n_recent - 1) % rules.window], jnp.nan)
    return Watch(jnp.stack([last.astype(p.recent.dtype), jnp.asarray(p.run_best, p.recent.dtype)]), p.run_best_evals,
                 jnp.asarray(jnp.nan, p.recent.dtype))


def tolx_sigma(strategy: Any, state: Any, sigma: Any) -> Any:
    """What ``tolx`` compares with on the device: ``sigma``, or for a strategy with ``tolx_parts``
    (CMA-ES) the greater of it and ``max_j sigma p_c_j`` (pycma's ``tolx`` tests
    both; NaN in either fails it)."""
    import jax.numpy as jnp

    parts = strategy.tolx_parts(state)
    if parts is None:
        return sigma
    return jnp.maximum(sigma, jnp.asarray(strategy.tolx_path(parts), jnp.result_type(sigma)))


def summary(values: Any, maximize: bool) -> tuple[Any, Any, Any, Any]:
    """``(top, i, lo, hi)`` of a generation's ``values`` in one reduction: the best value with NaN
    ranked worst and its first index (``jnp.argmin``'s, or ``argmax``'s when maximising), and the
    least and greatest finite values (``inf`` and ``-inf`` when none is finite)."""
    import jax
    import jax.numpy as jnp

    bad = -jnp.inf if maximize else jnp.inf
    finite = jnp.isfinite(values)
    n = values.shape[0]

    def pick(a: Any, b: Any) -> Any:
        first = ((a[0] > b[0]) if maximize else (a[0] < b[0])) | ((a[0] == b[0]) & (a[1] < b[1]))
        return (jnp.where(first, a[0], b[0]), jnp.where(first, a[1], b[1]), jnp.minimum(a[2], b[2]),
                jnp.maximum(a[3], b[3]))

    operands = (jnp.where(jnp.isnan(values), bad, values), jax.lax.iota(jnp.int32, n),
                jnp.where(finite, values, jnp.inf), jnp.where(finite, values, -jnp.inf))
    init = tuple(jnp.asarray(v, o.dtype) for v, o in zip((bad, n, jnp.inf, -jnp.inf), operands))
    return jax.lax.reduce(operands, init, pick, (0,))


def may_stop(rules: Rules, w: Watch, values: Any, top: Any, best: Any, generation: Any, n_evals: Any,
             sigma: Any, bounds: tuple[Any, Any] | None = None, top_index: Any = None) -> tuple[Watch, Any]:
    """Whether a criterion may hold after a generation: ``False`` only when none does.

    The compiled chunk checks its generations with :func:`check_block` after one where
    this holds (or after :data:`~evostrat.run.compiled.BLOCK` generations), so it stops
    where the generation by generation check
    (:func:`~evostrat.run.device_termination.check`) stops. ``top`` is the generation's best
    value with NaN ranked worst, ``best`` the run's best so far (user's sense). The tests
    are necessary conditions of the criteria, a few scalars per generation: ``ftarget``,
    the budgets and ``tolx`` exactly; ``tolfun`` and
    ``tolfunhist`` need the step between the latest two generation bests (both in the
    window) below the tolerance (``tolfun``: or a run's first generation best); ``tolflatfitness`` a flat generation; the stagnation test
    a best value older than ``tolstagnation / 2`` generations' worth of evaluations after the
    warm-up. ``bounds``: the least and greatest finite values when known, ``top_index`` the
    position of ``top`` among ``values`` (:func:`summary`'s). ``sigma``: :func:`tolx_sigma`
    (kept in the :class:`Watch` for :func:`block_progress`).
    """
    import jax.numpy as jnp

    if bounds is None or top_index is None:
        _, top_index, lo, hi = summary(values, rules.maximize)
    else:
        lo, hi = bounds
    gen_best = hi if rules.maximize else lo
    appended = lo <= hi
    near, far = jnp.minimum(gen_best, w.last_best), jnp.maximum(gen_best, w.last_best)  # the step: far - near
    maybe = jnp.asarray(False)
    if rules.ftarget is not None:
        maybe |= reached(rules, best)
    if rules.max_evals is not None:
        maybe |= n_evals >= budget(rules.max_evals)
    if rules.max_generations is not None:
        maybe |= generation >= budget(rules.max_generations)
    if rules.tolfun is not None:
        unseen = w.last_best != w.last_best  # no generation best yet: the window is this one's alone
        tol = threshold(rules.tolfun, hi)
        maybe |= below(hi, lo, tol) & (below(far, near, tol) | unseen)
    if rules.tolx is not None:
        maybe |= sigma < threshold(rules.tolx, sigma)
    if rules.tolfunhist is not None:
        maybe |= appended & below(far, near, threshold(rules.tolfunhist, far))
    if rules.tolflatfitness is not None:  # the best and the 75th percentile are equal
        ranked = jnp.where(jnp.isnan(values), -jnp.inf if rules.maximize else jnp.inf, values)
        maybe |= jnp.sum(ranked == top) > int(0.75 * values.shape[0])
    run_best, run_best_evals = w.run_best, w.run_best_evals
    if rules.tolstagnation is not None:
        first = -top if rules.maximize else top  # the generation's best, minimisation sense
        improved = first < run_best
        run_best = jnp.where(improved, first, run_best)
        run_best_evals = jnp.where(improved, n_evals - values.shape[0] + top_index.astype(jnp.int32) + 1,
                                   run_best_evals)
        aged = 2 * (n_evals - run_best_evals) > rules.tolstagnation * rules.popsize
        maybe |= (generation > rules.warmup) & aged
    bests = jnp.stack([jnp.where(appended, gen_best, w.last_best), run_best]).astype(w.bests.dtype)
    return Watch(bests, run_best_evals, jnp.asarray(sigma, w.tolx_sigma.dtype)), maybe


def check_block(rules: Rules, p: Progress, values: Any, sigmas: Any, ran: Any, generation: Any, n_evals: Any,
                best: Any, last_code: Any) -> tuple[Progress, Any, Any]:
    """The criteria after a block of generations: ``(progress, m, code)``.

    ``values`` ``(B, popsize)`` and ``sigmas`` ``(B,)`` are the rows of the generations
    after ``generation`` (``n_evals``), of which the first ``ran``
    (at least one) happened; ``last_code`` is the strategy's own stop code of the last of
    them (0: none), ``best`` the run's best so far after it (user's sense, NaN ranked worst: the
    chunk's). The block must be one the chunk runs: :func:`may_stop` did not hold
    after any of its generations but the last, so no criterion held there and only the last
    can stop the run. ``progress`` has seen the ``ran`` rows, ``m`` is ``ran``, and ``code``
    is the stop code after the last row (0: none), as the generation by generation check
    gives them: :func:`~evostrat.run.device_termination.criteria` on the progress after the
    last row, the stagnation median test where due, then ``last_code``.
    """
    return block_progress(rules, p, values, sigmas, ran, generation, n_evals, best, last_code, True)


def block_progress(rules: Rules, p: Progress, values: Any, sigmas: Any, ran: Any, generation: Any, n_evals: Any,
                   best: Any, last_code: Any, maybe: Any, last_sigma: Any = None) -> tuple[Progress, Any, Any]:
    """:func:`check_block` in the chunk: ``maybe`` is whether :func:`may_stop` held after the
    block's last generation; ``last_sigma``: what ``tolx`` compares with after it (``None``: the
    last row's sigma; the chunk: its :func:`tolx_sigma`). Where it did not, no criterion holds and the stagnation median
    test (a sort of four windows of the history, in a ``lax.cond``) is skipped; the answer is
    the same.

    The criteria are evaluated once, on the progress after the block's rows, from the last
    row's numbers that the progress update computed anyway.
    """
    import jax.numpy as jnp

    progress, code, _ = block_outcome(rules, p, values, sigmas, ran, generation, n_evals, best, last_code, maybe,
                                      last_sigma)
    return progress, jnp.asarray(ran, jnp.int32), code


def block_outcome(rules: Rules, p: Progress, values: Any, sigmas: Any, ran: Any, generation: Any, n_evals: Any,
                  best: Any, last_code: Any, maybe: Any, last_sigma: Any = None) -> tuple[Progress, Any, Any]:
    """:func:`block_progress`'s ``(progress, code)`` and the number of non-finite values in the
    ``ran`` rows (the chunk's count for its warning), from the reduction that counts the rows'
    appends: ``(progress, code, bad)``."""
    import jax
    import jax.numpy as jnp

    r = _block_rows(rules, p, values, ran, generation, n_evals)
    last = jnp.maximum(ran - 1, 0)
    g = generation + ran
    progress = _progress_after(rules, p, r, ran)
    code, due = criteria(rules, progress, r.n_finite[last] == values.shape[1], (r.lo[last], r.hi[last]), g,
                         n_evals + ran * values.shape[1], best, sigmas[last] if last_sigma is None else last_sigma)
    code = jnp.where(code == 0, last_code, code)
    if rules.tolstagnation is not None:
        stagnation = REASONS.index("tolstagnation")
        holds = jax.lax.cond(due & maybe, lambda: stagnation_holds(rules, progress, g), lambda: jnp.asarray(False))
        code = jnp.where(holds & ((code == 0) | (code > stagnation)), stagnation, code)
    return progress, code.astype(jnp.int32), r.n_bad[-1]


class _Rows(NamedTuple):
    """The per-row numbers of a block: the progress after its rows, and the last row's for the criteria."""

    rows: Any
    n_finite: Any
    lo: Any
    hi: Any
    gen_best: Any
    append: Any
    n_recent: Any
    new_number: Any
    flat_generations: Any
    history: Any
    n_bad: Any  # the non-finite values in the rows so far (only the rows that ran)


def _block_rows(rules: Rules, p: Progress, values: Any, ran: Any, generation: Any, n_evals: Any) -> _Rows:
    import jax
    import jax.numpy as jnp

    size, popsize = values.shape
    rows = jnp.arange(size)
    live = rows < ran
    stagnation, flat = rules.tolstagnation is not None, rules.tolflatfitness is not None
    signed = (jnp.where(jnp.isnan(values), jnp.inf, -values if rules.maximize else values)
              if stagnation or flat else None)
    # counts, finite range and first best of every row: one reduction (row_reductions)
    n_finite, lo, hi, *first = row_summary(values, signed if stagnation else None)
    append = (n_finite > 0) & live
    flat_generations = history = None
    if stagnation or flat:  # best, median, 75th percentile
        ranked = order_statistics(signed, (0, (popsize - 1) // 2, popsize // 2, int(0.75 * popsize)))
    columns = [(append.astype(jnp.int32), "sum"), (jnp.where(live, popsize - n_finite, 0).astype(jnp.int32), "sum")]
    if flat:  # the latest row that was not flat
        columns.append((jnp.where(ranked[:, 0] == ranked[:, 3], -1, rows), "max"))
    if stagnation:  # the run's best after each row
        columns.append((jnp.minimum(ranked[:, 0], p.run_best), "min"))
    count, n_bad, *running = prefix(*columns)  # the running numbers of the rows: one reduction
    if flat:
        since = running.pop(0)
        flat_generations = jnp.where(since < 0, p.flat_generations + rows + 1, rows - since).astype(jnp.int32)
    if stagnation:
        # the rows' first evaluations less n_evals as a constant: loop-invariant arithmetic on an iota is hoisted
        # into the program's entry as a kernel of its own (so the masks below, issue 15), and XLA turns a
        # constant 0, p, 2p, ... back into one (not one starting at 1)
        best_evals = n_evals + (np.arange(size, dtype=np.int32) * popsize + 1) + first[1].astype(jnp.int32)
        # the rows recorded in the stagnation history (generations generation + 1 + row that HIST_EVERY
        # divides): the first, and how many of the `ran`, from one division of two counts (>= 0: lax.div;
        # a remainder and a floor division were a kernel each)
        ends = jnp.stack([jnp.asarray(generation), generation + jnp.asarray(ran)])
        q = jax.lax.div(ends, jnp.asarray(HIST_EVERY, ends.dtype))
        history = _block_history(p, ranked, popsize, best_evals, HIST_EVERY * q[0] + (HIST_EVERY - 1) - ends[0],
                                 running[0]) + (q[1] - q[0],)
    return _Rows(rows, n_finite, lo, hi, hi if rules.maximize else lo, append, p.n_recent + count,
                 p.n_recent + count - 1, flat_generations, history, n_bad)


def _progress_after(rules: Rules, p: Progress, r: _Rows, m: Any) -> Progress:
    """``p`` after the first ``m`` rows of the block ``r`` (``m``: the ``ran`` of :func:`_block_rows`, whose
    stagnation history counts its records of those rows)."""
    import jax.numpy as jnp

    window = rules.window
    last = jnp.maximum(m - 1, 0)

    def at(sequence: Any, before: Any) -> Any:  # the value after the first m rows
        return jnp.where(m > 0, sequence[last], before)

    used = r.append & (r.rows < m)
    # each row's slot, new_number % window: the slot before the block (watch's remainder, the same kernel)
    # advanced by the row's appends (>= 0), wrapped by subtraction (a remainder per row cost a kernel)
    slot = (p.n_recent - 1) % window + (r.new_number - (p.n_recent - 1))
    for _ in range(r.rows.shape[0] // window + 1):
        slot = jnp.where(slot >= window, slot - window, slot)
    # the row that wrote each slot last, and its generation best: one reduction
    writer, written = latest(used[None, :] & (slot[None, :] == jnp.arange(window)[:, None]), r.gen_best)
    p = replace(p, recent=jnp.where(writer >= 0, written, p.recent),
                n_recent=at(r.n_recent, p.n_recent))
    if rules.tolstagnation is not None:
        best_seq, median_seq, run_best, run_best_evals, first, count = r.history  # count: of the m rows
        p = replace(p, hist_best=_appended(rules, p, p.hist_best, best_seq, first, count),
                    hist_median=_appended(rules, p, p.hist_median, median_seq, first, count),
                    n_hist=p.n_hist + count, run_best=at(run_best, p.run_best),
                    run_best_evals=at(run_best_evals, p.run_best_evals))
    if rules.tolflatfitness is not None:
        p = replace(p, flat_generations=at(r.flat_generations, p.flat_generations))
    return p


def _appended(rules: Rules, p: Progress, buffer: Any, block: Any, first: Any, count: Any) -> Any:
    """``buffer`` (``hist_best`` or ``hist_median``) after the appends of the ``count`` values of
    ``block`` recorded (rows ``first``, ``first + HIST_EVERY``, ...), each at
    ``min(n_hist, capacity - 1)``, as the generation by generation check."""
    import jax.numpy as jnp

    q = jnp.arange(rules.capacity)
    k = jnp.where(np.arange(rules.capacity) < rules.capacity - 1, q - p.n_hist, count - 1)  # the record written at q
    written = (k >= 0) & (k < count) & (p.n_hist + k >= q)
    return jnp.where(written, block[jnp.clip(first + HIST_EVERY * k, 0, block.shape[0] - 1)], buffer)


def _block_history(p: Progress, ranked: Any, popsize: int, best_evals: Any, first: Any,
                   run_best: Any) -> tuple[Any, ...]:
    """Per row: the generation's best and median (``ranked``: the order statistics of ranks 0,
    ``(popsize - 1) // 2`` and ``popsize // 2``), the run's best (``run_best``, after each row) and
    the evaluation that found it (``best_evals``: each row's best's), as the generation by
    generation check; and ``first``, the block's first row recorded in the stagnation history."""
    import jax.numpy as jnp

    rows = jnp.arange(ranked.shape[0])
    best, median = ranked[:, 0], median_of(ranked[:, 1], ranked[:, 2], popsize)
    before = jnp.concatenate([p.run_best[None], run_best[:-1]])
    # each row's latest improving row (at or before it), and the evaluation that found its best
    improved, evals = latest(np.tri(len(rows), dtype=bool) & (best < before)[None, :], best_evals)  # rows j <= i
    run_best_evals = jnp.where(improved >= 0, evals, p.run_best_evals)
    return best, median, run_best, run_best_evals, first
