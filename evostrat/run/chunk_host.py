"""The host's side of a compiled run: the run value a chunk starts from, and what it brings back.

:mod:`evostrat.run.compiled` runs chunks of generations in one XLA program. This module
builds the chunk's input from the driver's run (:func:`run_rules`, :func:`device_run`) and
folds a chunk's output back into the driver (:func:`absorb_chunk`): counters, ``history_``
rows (built when read), best so far, the criteria's progress and the stop reason. With
restarts (IPOP, BIPOP: :mod:`evostrat.run.restarts`) it also keeps the run's record in
``restarts_`` and starts the next run when a local criterion ended this one, through the
host loop's :func:`~evostrat.run.restarts.after_run`, so a compiled run with restarts
makes the same runs as the host loop.

Examples
--------
>>> chunk_length(10), chunk_length(10**6)
(512, 16)
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache, partial
from typing import Any, Iterator, NamedTuple

import numpy as np

from evostrat.backends.programs import program_key
from evostrat.errors import NonFiniteFitnessWarning
from evostrat.run.device_termination import (REASONS, Progress, Rules, device_constant, initial_progress, is_fresh,
                                             progress_for_device, progress_from_host, progress_to_host)
from evostrat.run.restarts import after_run

__all__ = ["CHUNK", "chunk_length", "DeviceRun", "PackedRun", "RUN_INTS", "RUN_BEST_EVALS", "pack", "unpack", "chunk_counts", "run_rules",
           "shared_generations", "strategy_stop_names", "device_run", "packed_run", "absorb_chunk"]

#: Most generations per compiled chunk (the loop leaves earlier when the run stops); fewer
#: for large populations, so that a chunk's fitness block stays under 2**22 values.
CHUNK = 512


def chunk_length(popsize: int) -> int:
    """Generations per chunk for ``popsize`` candidates: :data:`CHUNK`, or fewer (>= 16)."""
    return int(min(CHUNK, max(16, 2**22 // max(popsize, 1))))


class DeviceRun(NamedTuple):
    """The run value on the device: strategy state, best so far, criteria, counters."""

    state: Any
    best_f: Any
    best_x: Any
    progress: Any
    generation: Any
    n_evals: Any
    code: Any


class PackedRun(NamedTuple):
    """A :class:`DeviceRun` as the unbatched chunk program takes and returns it: the strategy state
    and the best point as they are, every other number of the run in two vectors.

    Each input and output array of an XLA program costs a call a few microseconds on the CPU
    (an identity program of CMA-ES d = 10's 28 run arrays took 147 us, of 18 arrays 99 us).
    ``floats`` (the run's dtype): ``best_f``, then the progress's ``run_best``, ``recent``,
    ``hist_best`` and ``hist_median``; ``ints`` (int32): ``generation``, ``n_evals``, ``code``,
    the progress's ``n_recent``, ``n_hist``, ``run_best_evals``, ``flat_generations``,
    then the last chunk's generations and non-finite values (:func:`pack`'s ``done``).
    """

    state: Any
    best_x: Any
    floats: Any
    ints: Any


def pack(xp: Any, run: DeviceRun, done: tuple[Any, Any] = (0, 0)) -> PackedRun:
    """``run`` as a :class:`PackedRun` (``xp``: ``numpy`` or ``jax.numpy``)."""
    p = run.progress
    head = xp.stack([xp.asarray(run.best_f, p.recent.dtype), xp.asarray(p.run_best, p.recent.dtype)])
    floats = xp.concatenate([head, p.recent, p.hist_best, p.hist_median])
    numbers = (run.generation, run.n_evals, run.code, p.n_recent, p.n_hist, p.run_best_evals,
               p.flat_generations, *done)
    return PackedRun(run.state, run.best_x, floats, xp.stack([xp.asarray(v, "int32") for v in numbers]))


#: The run's own numbers at the start of :attr:`PackedRun.ints`; the chunk's counts follow.
RUN_INTS = 7
#: Where :attr:`PackedRun.ints` holds the progress's ``run_best_evals`` (:func:`pack`'s order).
RUN_BEST_EVALS = 5


def chunk_counts(ints: Any) -> tuple[int, int]:
    """The generations the last chunk ran and the non-finite values among their fitness, from a
    :class:`PackedRun`'s ``ints`` on the host."""
    return int(ints[RUN_INTS]), int(ints[RUN_INTS + 1])


def unpack(rules: Rules, run: PackedRun) -> DeviceRun:
    """The :class:`DeviceRun` of a :class:`PackedRun` (views of its vectors, on the host or in a program).

    On the host (numpy vectors) the counts are Python ints, converted at once.

    Examples
    --------
    >>> from evostrat.run.device_termination import initial_progress
    >>> from evostrat.run.termination import Termination
    >>> rules = Rules.from_termination(Termination(max_generations=5, dim=2, popsize=3), 3, capacity=6)
    >>> packed = pack(np, DeviceRun(None, 1.5, None, initial_progress(rules, "float64"), 4, 12, 0))
    >>> packed.ints.tolist(), float(unpack(rules, packed).best_f)
    ([4, 12, 0, 0, 0, 0, 0, 0, 0], 1.5)
    """
    f, i = run.floats, run.ints
    if type(i) is np.ndarray:  # on the host: the counts in one conversion
        i = i.tolist()
    w, c = rules.window, rules.capacity
    progress = Progress(f[2:2 + w], i[3], f[2 + w:2 + w + c], f[2 + w + c:2 + w + 2 * c], i[4], f[1], i[5], i[6])
    return DeviceRun(run.state, f[0], run.best_x, progress, i[0], i[1], i[2])


def run_rules(driver: Any) -> tuple[Rules, tuple[str, ...]]:
    """The device criteria of ``driver``'s run and the names of its strategy's own stop criteria.

    The stagnation history holds the records of :func:`shared_generations` generations, not of the
    run's budget alone: runs whose budgets differ run on one compiled chunk."""
    runner, termination = driver.runner, driver.termination
    budget = termination.max_generations
    if budget is None and termination.max_evals is not None:
        budget = math.ceil(termination.max_evals / runner.popsize)
    generations = chunk_length(runner.popsize) + 1 if budget is None else shared_generations(budget, runner.popsize)
    rules = Rules.from_termination(termination, runner.popsize, capacity=generations)
    return rules, strategy_stop_names(runner.strategy, runner.state, runner.dim,
                                      runner.backend.dtype_name(runner.dtype))


def shared_generations(budget: int, popsize: int) -> int:
    """The generations a run of at most ``budget`` generations sizes its stagnation history for:
    more than ``budget``, a power of two, at least :func:`chunk_length`. The history's records and its
    median test are the same in a larger buffer, so a run is the one it is with a buffer of its budget's
    size; lone fits whose budgets fall in one power of two, or are all below a chunk's length, share the
    compiled chunk (the shape of its input), as batched runs do (:mod:`evostrat.run.batch_jax`).

    >>> [shared_generations(g, 10) for g in (1, 320, 511, 512, 1000, 5000)]
    [512, 512, 512, 1024, 1024, 8192]
    """
    return 1 << max(int(budget), chunk_length(popsize) - 1).bit_length()


_STOP_NAMES: dict[Any, tuple[str, ...]] = {}  # by program key: stop(state) runs a compiled program


def strategy_stop_names(strategy: Any, state: Any, dim: int, dtype: str) -> tuple[str, ...]:
    """The names of ``strategy.stop(state)``, read once per class, hyper-parameters and signature."""
    key = program_key(strategy.stop, "names", dim, dtype)
    if key[0] is not type(strategy):  # not keyed by hyper-parameters
        return _stop_names(strategy, state)
    if key not in _STOP_NAMES:
        if len(_STOP_NAMES) >= 256:
            _STOP_NAMES.clear()
        _STOP_NAMES[key] = _stop_names(strategy, state)
    return _STOP_NAMES[key]


def _stop_names(strategy: Any, state: Any) -> tuple[str, ...]:
    """The keys of ``strategy.stop(state)``, traced abstractly where it traces (no program is
    compiled and run for them: ~0.08 s per population size for CMA-ES on the CPU)."""
    import jax

    names: list[str] = []

    def stop(state: Any) -> Any:  # the names in stop's own order (eval_shape's dict comes back sorted)
        out = strategy.stop(state)
        names[:] = list(out)
        return out

    try:
        jax.eval_shape(stop, state)
    except Exception:  # noqa: BLE001 - host-side logic in stop: call it
        return tuple(strategy.stop(state))
    return tuple(names)


def device_run(driver: Any, rules: Rules) -> DeviceRun:
    """``driver``'s run as the compiled chunk's value (strategy state, best so far, criteria, counters),
    committed to the run's device as the chunk's outputs are: the first chunk call of a run and the
    later ones then share one compiled program (an uncommitted input compiles a second one). A new
    run's criteria and counters are device arrays made once (no copies from the host)."""
    runner, state = driver.runner, driver.state
    dtype, device = runner.backend.dtype_name(runner.dtype), runner.device
    progress = progress_for_device(rules, driver.termination.progress_values(), dtype, device)
    if runner.generation == 0 and state.n_evals == 0:
        zero = device_constant(0, "int32", device)
        return DeviceRun(runner.state, device_constant(float(state.best_f), dtype, device), state.best_x, progress,
                         zero, zero, zero)
    import jax  # a resumed run or a restart's: counters from the host

    best_f, best_x, generation, n_evals, code = jax.device_put(
        (np.asarray(state.best_f, dtype), state.best_x, np.int32(runner.generation), np.int32(state.n_evals),
         np.int32(0)), device)
    return DeviceRun(runner.state, best_f, best_x, progress, generation, n_evals, code)


def packed_run(driver: Any, rules: Rules) -> PackedRun:
    """:func:`device_run` as the unbatched chunk program takes it (:class:`PackedRun`): a new run's
    vectors are device arrays made once per rules, dtype, device and starting best; otherwise
    the host's values, in two transfers."""
    runner, state = driver.runner, driver.state
    dtype, device = runner.backend.dtype_name(runner.dtype), runner.device
    values = driver.termination.progress_values()
    if runner.generation == 0 and state.n_evals == 0 and is_fresh(values):
        floats, ints = _fresh_vectors(rules, dtype, device, float(state.best_f))
        return PackedRun(runner.state, state.best_x, floats, ints)
    import jax

    host = DeviceRun(None, state.best_f, None, progress_from_host(rules, values, dtype), runner.generation,
                     state.n_evals, 0)
    best_x, floats, ints = jax.device_put((state.best_x, *pack(np, host)[2:]), device)
    return PackedRun(runner.state, best_x, floats, ints)


@lru_cache(maxsize=32)
def _fresh_vectors(rules: Rules, dtype: str, device: Any, best_f: float) -> tuple[Any, Any]:
    import jax

    host = DeviceRun(None, best_f, None, initial_progress(rules, dtype), 0, 0, 0)
    return tuple(jax.device_put(pack(np, host)[2:], device))


def absorb_chunk(driver: Any, rules: Rules, stop_names: tuple[str, ...], strategy_state: Any, progress: Any,
                 best_x: Any, best_f: Any, code: Any, fitness: np.ndarray, sigmas: np.ndarray, done: int,
                 bad: int | None = None) -> None:
    """Advance ``driver``'s run by a chunk's ``done`` generations (``bad``: non-finite values, ``None``:
    counted here): counters, history rows, best so far, criteria, stop reason (host values; ``progress``
    is read when the criteria next need it).

    With restarts the run's ``restarts_`` record is updated and, when a local criterion ended
    the run, the next run starts (``driver.runner`` is then a new runner) as
    :func:`~evostrat.run.restarts.after_run` does after a host generation."""
    runner, termination, state = driver.runner, driver.termination, driver.state
    driver.settled = False  # an interrupt while absorbing leaves the run half-advanced: no final checkpoint
    fitness = fitness[:done]  # read (as float64) when the rows are
    _warn_nonfinite(driver.config.nonfinite, fitness, bad)
    columns = () if state.plan is None else (("run", state.plan.run), ("popsize", runner.popsize))
    state.history_blocks.append(partial(_history_rows, fitness, sigmas[:done], state.n_generations,
                                        state.n_evals, runner.popsize, state.best_f, driver.maximize,
                                        state.elapsed(), columns))
    state.n_generations += done
    state.n_evals += done * runner.popsize
    runner.advance(strategy_state, done)
    termination.pending = partial(progress_to_host, rules, progress)
    if float(best_f) != state.best_f:
        state.best_f, state.best_x = float(best_f), best_x
        # searched when read (evals_best_): the first read of the chunk's rows costs ~30 us right after it
        state.best_evals = partial(_found_at, fitness, state.best_f, state.n_evals - done * runner.popsize,
                                   runner.popsize)
    code = int(code)
    reason = None
    if code:
        reason = REASONS[code] if code < len(REASONS) else stop_names[code - len(REASONS)]
    if state.plan is not None:  # restarts: the run's record, and the next run after a local criterion
        state.stop_reason = after_run(driver, reason, _chunk_best(fitness, driver.maximize))
    elif reason is not None:
        state.stop_reason = reason
    driver.settled = True


def _found_at(fitness: np.ndarray, best: float, e0: int, popsize: int) -> int:
    """The evaluation count at which a chunk's rows (started after ``e0`` evaluations) first hold
    ``best``, the chunk's new best so far, counted as the host loop counts it (pycma's ``evals_best``)."""
    # in the rows' own dtype: ``best`` is one of their values (a run's best so far, of its dtype), so it
    # compares as in float64, without a float64 copy of the chunk's rows
    hits = np.flatnonzero(fitness == fitness.dtype.type(best)) if fitness.dtype.kind == "f" else np.flatnonzero(
        np.asarray(fitness, dtype=np.float64) == best)
    return e0 + int(hits[0]) + 1 if hits.size else e0 + fitness.shape[0] * popsize


def _generation_bests(fitness: np.ndarray, maximize: bool) -> np.ndarray:
    """Each row's best value, as the host's generation gives it (NaN ranks worst)."""
    ranked = np.where(np.isnan(fitness), -np.inf if maximize else np.inf, fitness)
    return ranked.max(axis=1) if maximize else ranked.min(axis=1)


def _chunk_best(fitness: np.ndarray, maximize: bool) -> float:
    """The best generation best of a chunk's rows (the worst value when there are none)."""
    bests = _generation_bests(fitness, maximize)
    if not bests.size:
        return -math.inf if maximize else math.inf
    return float(bests.max() if maximize else bests.min())


def _history_rows(fitness: np.ndarray, sigmas: np.ndarray, g0: int, e0: int, popsize: int, best: float,
                  maximize: bool, now: float, columns: tuple[tuple[str, Any], ...] = ()) -> Iterator[dict[str, Any]]:
    """The ``history_`` rows of a chunk's ``fitness`` (generations ``g0 + 1 ..``), built when read;
    ``columns``: ``(key, value)`` pairs every row ends with (a restart run's ``run`` and ``popsize``)."""
    fitness = np.asarray(fitness, dtype=np.float64)
    gen_best = _generation_bests(fitness, maximize)
    running = (np.maximum if maximize else np.minimum).accumulate(np.concatenate([[best], gen_best]))[1:]
    if np.isfinite(fitness).all():
        medians = np.median(fitness, axis=1)
    else:
        medians = np.array([np.median(r[np.isfinite(r)]) if np.isfinite(r).any() else math.nan for r in fitness])
    n = fitness.shape[0]
    keys = ("generation", "n_evals", "best", "generation_best", "median", "sigma", "time", *(k for k, _ in columns))
    values = (range(g0 + 1, g0 + n + 1), range(e0 + popsize, e0 + (n + 1) * popsize, popsize), running.tolist(),
              gen_best.tolist(), medians.tolist(), np.asarray(sigmas, np.float64).tolist(), [now] * n,
              *([v] * n for _, v in columns))
    return (dict(zip(keys, row)) for row in zip(*values))


def _warn_nonfinite(policy: str, fitness: np.ndarray, bad: int | None = None) -> None:
    if policy == "ignore" or bad == 0:
        return
    bad = int(np.sum(~np.isfinite(fitness))) if bad is None else bad
    if bad:
        warnings.warn(
            f"{bad} fitness values in the last {fitness.shape[0]} generations are NaN or "
            "infinite; NaN ranks worst and +/-inf rank by their order (nonfinite='ignore' "
            "silences this)",
            NonFiniteFitnessWarning,
            stacklevel=5,
        )
