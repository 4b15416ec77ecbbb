"""The run's termination criteria checked for a block of generations at once (compiled driver).

The compiled chunk (:mod:`evostrat.run.compiled`) runs generations without
:func:`~evostrat.run.device_termination.check`, which costs a few dozen small XLA
operations per generation. Each generation computes only :func:`may_stop`, a few
scalars that are false whenever no criterion holds; the chunk leaves its inner loop
after a generation where it is true, or after a block of generations, and
:func:`check_block` then computes :func:`~evostrat.run.device_termination.check`'s
answers for every generation of the block at once (cumulative minima, maxima and
counts over the block's rows: the same numbers). The first generation where a
criterion holds is then the block's last, so the run stops where the generation by
generation check stops it, and no generation runs twice. After a block where
:func:`may_stop` never held, no criterion holds in it: the progress then only advances
by its rows (the same numbers, without the criteria's windows). The chunk calls
:func:`block_progress`, which does one or the other.

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

from evostrat.backends.trees import replace
from evostrat.run.device_termination import (REASONS, Progress, Rules, order_statistics, stagnation_holds,
                                             stagnation_window)

__all__ = ["Watch", "watch", "summary", "may_stop", "check_block", "block_progress"]


class Watch(NamedTuple):
    """What :func:`may_stop` carries from generation to generation."""

    last_best: Any  # the latest generation best appended to Progress.recent (user's sense; NaN: none)
    run_best: Any  # as Progress.run_best (minimisation sense)
    run_best_generation: Any


def watch(rules: Rules, p: Progress) -> Watch:
    """The :class:`Watch` of a run whose criteria have seen ``p``."""
    import jax.numpy as jnp

    last = jnp.where(p.n_recent > 0, p.recent[(p.n_recent - 1) % rules.window], jnp.nan)
    return Watch(last.astype(p.recent.dtype), p.run_best, p.run_best_generation)


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
             sigma: Any, bounds: tuple[Any, Any] | None = None) -> tuple[Watch, Any]:
    """Whether a criterion may hold after a generation: ``False`` only when none does.

    The compiled chunk checks its generations with :func:`check_block` after one where
    this holds (or after :data:`~evostrat.run.compiled.BLOCK` generations), so it stops
    where the generation by generation check
    (:func:`~evostrat.run.device_termination.check`) stops. ``top`` is the generation's best
    value with NaN ranked worst, ``best`` the run's best so far (user's sense). The tests
    are necessary conditions of the criteria, a few scalars per generation: ``ftarget``,
    the budgets and ``tolx`` exactly; ``tolfun`` and
    ``tolfunhist`` need the step between the latest two generation bests (both in the
    window) below the tolerance; ``tolflatfitness`` a flat generation; the stagnation test
    a best value older than ``tolstagnation / 2`` generations after the warm-up. ``bounds``: the
    least and greatest finite values when known (:func:`summary`).
    """
    import jax.numpy as jnp

    lo, hi = summary(values, rules.maximize)[2:] if bounds is None else bounds
    gen_best = hi if rules.maximize else lo
    appended = lo <= hi
    step = jnp.abs(gen_best - w.last_best)
    maybe = jnp.asarray(False)
    if rules.ftarget is not None:
        maybe |= jnp.isfinite(best) & ((best >= rules.ftarget) if rules.maximize else (best <= rules.ftarget))
    if rules.max_evals is not None:
        maybe |= n_evals >= rules.max_evals
    if rules.max_generations is not None:
        maybe |= generation >= rules.max_generations
    if rules.tolfun is not None:
        maybe |= (hi - lo < rules.tolfun) & (step < rules.tolfun)
    if rules.tolx is not None:
        maybe |= sigma < rules.tolx
    if rules.tolfunhist is not None:
        maybe |= appended & (step < rules.tolfunhist)
    if rules.tolflatfitness is not None:  # the best and the 75th percentile are equal
        ranked = jnp.where(jnp.isnan(values), -jnp.inf if rules.maximize else jnp.inf, values)
        maybe |= jnp.sum(ranked == top) > int(0.75 * values.shape[0])
    run_best, run_best_generation = w.run_best, w.run_best_generation
    if rules.tolstagnation is not None:
        first = -top if rules.maximize else top  # the generation's best, minimisation sense
        improved = first < run_best
        run_best = jnp.where(improved, first, run_best)
        run_best_generation = jnp.where(improved, generation, run_best_generation)
        maybe |= (generation > rules.warmup) & (2 * (generation - run_best_generation) > rules.tolstagnation)
    return Watch(jnp.where(appended, gen_best, w.last_best), run_best, run_best_generation), maybe


def check_block(rules: Rules, p: Progress, values: Any, sigmas: Any, ran: Any, generation: Any, n_evals: Any,
                best: Any, last_code: Any) -> tuple[Progress, Any, Any]:
    """The criteria over a block of generations at once: ``(progress, m, code)``.

    ``values`` ``(B, popsize)`` and ``sigmas`` ``(B,)`` are the rows of the generations
    after ``generation`` (``n_evals``, best so far ``best``), of which the first ``ran``
    happened; ``last_code`` is the strategy's own stop code of the last of them (0: none).
    ``code`` is the stop code of the first of them whose criteria hold, with the stagnation
    median test (:func:`stagnation_holds`) completed, and ``m`` that generation's index + 1
    (``ran`` and 0 when none holds); ``progress`` has seen the first ``m`` rows. The answers
    are those of :func:`~evostrat.run.device_termination.check` generation by generation (its
    windows are cumulative maxima, minima and counts over the rows: the same numbers).
    """
    r = _block_rows(rules, p, values, ran, generation)
    m, code = _block_code(rules, p, r, values, sigmas, ran, n_evals, best, last_code)
    return _progress_after(rules, p, r, m), m, code


def block_progress(rules: Rules, p: Progress, values: Any, sigmas: Any, ran: Any, generation: Any, n_evals: Any,
                   best: Any, last_code: Any, maybe: Any) -> tuple[Progress, Any, Any]:
    """:func:`check_block`'s answer: computed where ``maybe`` (:func:`may_stop` held after the
    block's last generation; a ``lax.cond``), else read off without the criteria: no criterion of
    the run holds in the block (``may_stop`` is necessary for each), so the progress has seen all
    ``ran`` rows and the code is the strategy's own, ``last_code``.

    The block's per-row numbers and the progress after its first ``m`` rows are computed once,
    outside the ``cond``: both answers need them, and a copy in each branch compiled them twice
    (CMA-ES d = 10's chunk: 225 -> 202 fusions, 6 -> 5 sorts, XLA compile 2.83 -> 2.75 s).
    """
    import jax
    import jax.numpy as jnp

    r = _block_rows(rules, p, values, ran, generation)
    m, code = jax.lax.cond(maybe, lambda c: _block_code(rules, p, r, values, sigmas, ran, n_evals, best, c),
                           lambda c: (jnp.asarray(ran, jnp.int32), jnp.asarray(c, jnp.int32)), last_code)
    return _progress_after(rules, p, r, m), m, code


def _block_code(rules: Rules, p: Progress, r: "_Rows", values: Any, sigmas: Any, ran: Any, n_evals: Any,
                best: Any, last_code: Any) -> tuple[Any, Any]:
    """``(m, code)`` of :func:`check_block` from the block's rows ``r``."""
    import jax
    import jax.numpy as jnp

    size, popsize = values.shape
    rows, live, g, window = r.rows, r.live, r.g, rules.window
    # the window of generation bests after each row: append numbers >= n_recent - window, from the
    # previous ring buffer (append numbers n_recent0 - window ..) and the block's rows
    old_number = p.n_recent - window + jnp.arange(window)
    old = p.recent[old_number % window]
    first = (r.n_recent - window)[:, None]
    in_old = (old_number >= 0)[None, :] & (old_number[None, :] >= first)
    in_new = r.append[None, :] & (rows[None, :] <= rows[:, None]) & (r.new_number[None, :] >= first)
    top = jnp.maximum(jnp.max(jnp.where(in_old, old, -jnp.inf), axis=1),
                      jnp.max(jnp.where(in_new, r.gen_best, -jnp.inf), axis=1))
    bottom = jnp.minimum(jnp.min(jnp.where(in_old, old, jnp.inf), axis=1),
                         jnp.min(jnp.where(in_new, r.gen_best, jnp.inf), axis=1))
    recent_range = top - bottom
    lo, hi, n_recent = r.lo, r.hi, r.n_recent
    false = jnp.zeros(size, bool)
    hits = [false]
    if rules.ftarget is not None:
        bad = -jnp.inf if rules.maximize else jnp.inf
        gen = jnp.where(jnp.isnan(values), bad, values)
        if rules.maximize:
            running = jax.lax.cummax(jnp.maximum(jnp.max(gen, axis=1), best))
            hits.append(jnp.isfinite(running) & (running >= rules.ftarget))
        else:
            running = jax.lax.cummin(jnp.minimum(jnp.min(gen, axis=1), best))
            hits.append(jnp.isfinite(running) & (running <= rules.ftarget))
    else:
        hits.append(false)
    hits.append(false if rules.max_evals is None else n_evals + (rows + 1) * popsize >= rules.max_evals)
    hits.append(false if rules.max_generations is None else g >= rules.max_generations)
    if rules.tolfun is not None:
        hits.append((n_recent >= window) & (r.n_finite == popsize) & (recent_range < rules.tolfun)
                    & (hi - lo < rules.tolfun))
    else:
        hits.append(false)
    hits.append(false if rules.tolx is None else sigmas < rules.tolx)
    if rules.tolfunhist is not None:
        hits.append((n_recent >= min(10, window)) & (recent_range < rules.tolfunhist))
    else:
        hits.append(false)
    hits.append(false)  # tolstagnation: below
    hits.append(false if rules.tolflatfitness is None else r.flat_generations > rules.tolflatfitness)
    hits = jnp.stack(hits, axis=1)
    code = jnp.where(jnp.any(hits, axis=1), jnp.argmax(hits, axis=1), 0).astype(jnp.int32)
    code = jnp.where((rows == ran - 1) & (code == 0), last_code, code)
    if rules.tolstagnation is not None:
        code = _block_stagnation(rules, p, r.history, code, g, live, ran)
    stops = live & (code != 0)
    stopped = jnp.any(stops)
    m = jnp.where(stopped, jnp.argmax(stops) + 1, ran).astype(jnp.int32)
    return m, jnp.where(stopped, code[jnp.maximum(m - 1, 0)], 0).astype(jnp.int32)


class _Rows(NamedTuple):
    """The per-row numbers of a block that both answers of :func:`block_progress` share."""

    rows: Any
    live: Any
    g: Any
    n_finite: Any
    lo: Any
    hi: Any
    gen_best: Any
    append: Any
    n_recent: Any
    new_number: Any
    flat_generations: Any
    history: Any


def _block_rows(rules: Rules, p: Progress, values: Any, ran: Any, generation: Any) -> _Rows:
    import jax
    import jax.numpy as jnp

    size, popsize = values.shape
    rows = jnp.arange(size)
    live = rows < ran
    g = generation + 1 + rows.astype(jnp.int32)
    finite = jnp.isfinite(values)
    n_finite = jnp.sum(finite, axis=1)
    lo = jnp.min(jnp.where(finite, values, jnp.inf), axis=1)
    hi = jnp.max(jnp.where(finite, values, -jnp.inf), axis=1)
    append = (n_finite > 0) & live
    count = jnp.cumsum(append.astype(jnp.int32))
    flat_generations = history = None
    if rules.tolstagnation is not None or rules.tolflatfitness is not None:  # best, median, 75th percentile
        ranked = order_statistics(jnp.where(jnp.isnan(values), jnp.inf, -values if rules.maximize else values),
                                  (0, popsize // 2, int(0.75 * popsize)))
    if rules.tolflatfitness is not None:
        flat = ranked[:, 0] == ranked[:, 2]
        since = jax.lax.cummax(jnp.where(flat, -1, rows))  # the latest row that was not flat
        flat_generations = jnp.where(since < 0, p.flat_generations + rows + 1, rows - since).astype(jnp.int32)
    if rules.tolstagnation is not None:
        history = _block_history(rules, p, ranked, g, live)
    return _Rows(rows, live, g, n_finite, lo, hi, hi if rules.maximize else lo, append, p.n_recent + count,
                 p.n_recent + count - 1, flat_generations, history)


def _progress_after(rules: Rules, p: Progress, r: _Rows, m: Any) -> Progress:
    """``p`` after the first ``m`` rows of the block ``r``."""
    import jax.numpy as jnp

    window = rules.window
    last = jnp.maximum(m - 1, 0)

    def at(sequence: Any, before: Any) -> Any:  # the value after the first m rows
        return jnp.where(m > 0, sequence[last], before)

    used = r.append & (r.rows < m)
    slot = r.new_number % window
    writer = jnp.max(jnp.where(used[None, :] & (slot[None, :] == jnp.arange(window)[:, None]), r.rows, -1), axis=1)
    p = replace(p, recent=jnp.where(writer >= 0, r.gen_best[jnp.maximum(writer, 0)], p.recent),
                n_recent=at(r.n_recent, p.n_recent))
    if rules.tolstagnation is not None:
        best_seq, median_seq, run_best, run_best_generation = r.history[:4]
        p = replace(p, hist_best=_appended(rules, p, p.hist_best, best_seq, m),
                    hist_median=_appended(rules, p, p.hist_median, median_seq, m), n_hist=p.n_hist + m,
                    run_best=at(run_best, p.run_best), run_best_generation=at(run_best_generation,
                                                                              p.run_best_generation))
    if rules.tolflatfitness is not None:
        p = replace(p, flat_generations=at(r.flat_generations, p.flat_generations))
    return p


def _appended(rules: Rules, p: Progress, buffer: Any, block: Any, m: Any) -> Any:
    """``buffer`` (``hist_best`` or ``hist_median``) after the appends of the first ``m`` values
    of ``block`` (each at ``min(n_hist, capacity - 1)``, as the generation by generation check)."""
    import jax.numpy as jnp

    q = jnp.arange(rules.capacity)
    writer = jnp.where(q < rules.capacity - 1, q - p.n_hist, m - 1)
    written = (writer >= 0) & (writer < m) & (p.n_hist + writer >= q)
    return jnp.where(written, block[jnp.clip(writer, 0, block.shape[0] - 1)], buffer)


def _block_history(rules: Rules, p: Progress, ranked: Any, g: Any, live: Any) -> tuple[Any, ...]:
    """Per row: the stagnation history's appended best and median, the run's best and its
    generation, the history's length and whether the median test is due (as the generation by
    generation check)."""
    import jax
    import jax.numpy as jnp

    rows = jnp.arange(ranked.shape[0])
    best, median = ranked[:, 0], ranked[:, 1]  # order_statistics of ranks 0 and popsize // 2
    run_best = jax.lax.cummin(jnp.minimum(best, p.run_best))
    before = jnp.concatenate([p.run_best[None], run_best[:-1]])
    improved = jax.lax.cummax(jnp.where(best < before, rows, -1))
    run_best_generation = jnp.where(improved >= 0, g[jnp.maximum(improved, 0)], p.run_best_generation)
    n_hist = p.n_hist + 1 + rows.astype(jnp.int32)
    length, l = stagnation_window(rules, n_hist, g)
    t = rules.tolstagnation
    ready = ~((t > 10 * g) | (length > 10 * g)) & (g > rules.warmup)
    due = live & ready & (2 * (g - run_best_generation) > t) & (length > 100) & (2 * l < length)
    return best, median, run_best, run_best_generation, n_hist, due


def _block_stagnation(rules: Rules, p: Progress, history: tuple[Any, ...], code: Any, g: Any, live: Any,
                      ran: Any) -> Any:
    """``code`` with ``"tolstagnation"`` at the first row whose due median test holds, for the
    rows up to the first other stop (it ranks before later codes, as generation by generation)."""
    import jax
    import jax.numpy as jnp

    best, median, _, _, n_hist, due = history
    stagnation = REASONS.index("tolstagnation")
    rows = jnp.arange(code.shape[0])
    other = live & (code != 0)
    until = jnp.where(jnp.any(other), jnp.argmax(other), ran)
    grown = replace(p, hist_best=_appended(rules, p, p.hist_best, best, ran),
                    hist_median=_appended(rules, p, p.hist_median, median, ran))

    def next_due(j: Any) -> Any:
        after = due & (rows >= j)
        return jnp.where(jnp.any(after), jnp.argmax(after), code.shape[0])

    def more(carry: Any) -> Any:
        j, hit = carry
        return ~hit & (j <= until) & (j < ran)

    def test(carry: Any) -> Any:
        j, _ = carry
        holds = stagnation_holds(rules, replace(grown, n_hist=n_hist[j]), g[j])
        hit = holds & ((code[j] == 0) | (code[j] > stagnation))
        return jnp.where(hit, j, next_due(j + 1)), hit

    j, hit = jax.lax.while_loop(more, test, (next_due(0), jnp.asarray(False)))
    return jnp.where(hit & (rows == j), stagnation, code)
