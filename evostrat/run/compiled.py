"""The driver compiled: whole chunks of generations in one XLA program on JAX.

``ES.fit`` takes this path automatically (``compiled_loop="auto"``) when

- the backend compiles (JAX) and the objective traces to ``popsize`` values
  for a population (:func:`evostrat.run.compiled_loop.is_traceable`; an
  objective marked ``vectorized = False`` never does);
- the evaluator is ``"auto"`` or ``"vectorized"`` without options;
- the run has no behaviour strategies and the non-finite policy is not ``"raise"``
  (restarts run each of their runs in chunks; with bounds the objective sees the
  candidates mapped into the box inside the program, with ``fixed_variables`` full
  vectors, the fixed values inserted, with ``integer`` the integer coordinates encoded
  and, for the CMA family, the margin corrected before each ask inside the program:
  :mod:`evostrat.run.integers_device`).

A chunk is the driver's generation (ask, evaluate, tell, record) inside a
``jax.lax.while_loop``: best so far, the termination criteria
(:mod:`evostrat.run.device_termination`) and the strategy's own stop criteria
are computed on the device, the loop leaves as soon as one holds, and the
chunk's fitness values, sigmas and result cross to the host in one transfer.
The run's criteria are checked for blocks of up to :data:`BLOCK` generations at
once (:mod:`evostrat.run.block_termination`): a generation computes only a few
scalars that hold whenever a criterion may, which end the block early, so the
run stops at the same generation and no generation runs twice (issue 15); after a
block, the criteria's progress advances over its rows at once and the criteria are evaluated
once, after its last row, the only one where a criterion can hold (``block_progress``).
On the CPU, a small problem's generations run in stages of a few generations
(:func:`stage_sizes`), whose rows stay small enough for XLA to run the loop body's
kernels sequentially; the run's counters and the criteria's progress stay packed in two vectors
from the program's input to its output, a generation's bests, ``may_stop``'s answer and tolx's sigma
in one (fewer kernels: :mod:`evostrat.run.chunk_kernels`). The host keeps the chunk's values and builds its ``history_`` rows when they
are read. The run stops at the generation, and with the state, of the host
loop; values agree with it to float rounding (XLA fuses the whole step, and
the objective is evaluated inside the program: both may round differently from
the host loop's eager evaluation). The criteria decide on the same numbers as the host's
(thresholds rounded in their comparison's direction), but in float32 an ill-conditioned run
can diverge: rosenbrock at d = 12 (CMA-ES, seed 0) differs in generation 1's best by an ulp
and stops at generation 768 compiled, 745 on the host loop (both ``noeffectaxis``).

Observers (callbacks, the progress bar, checkpoints) run between chunks, and a
run with observers takes one generation per chunk of the *same* compiled
program, so observing a run never changes it: ``fit()`` and
``fit(callbacks=..., progress=True, checkpoint=...)`` give the same run bit for
bit, and a resumed run continues on the same program. A generation for which ``inject``
has queued candidates (a callback's, or a checkpoint's) runs on the host, as the host loop
runs it, and the chunks continue from its state.

``fast_path_`` on the fitted estimator is ``"compiled_loop"`` when this path ran.

Examples
--------
>>> import jax.numpy as jnp                                    # doctest: +SKIP
>>> from evostrat import ES                                    # doctest: +SKIP
>>> from evostrat.problems import sphere                       # doctest: +SKIP
>>> es = ES("cma_es", ftarget=1e-8, random_state=0).fit(sphere, jnp.ones(10))  # doctest: +SKIP
>>> es.fast_path_                                              # doctest: +SKIP
'compiled_loop'
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from evostrat.backends.programs import frozen, program_key
from evostrat.backends.trees import replace
from evostrat.evaluators.local import VectorizedEvaluator
from evostrat.run.block_termination import Watch, block_outcome, may_stop, summary, tolx_sigma, watch
from evostrat.run.bounds import margins_of
from evostrat.run.compiled_loop import compiled_loop_applies
from evostrat.run.chunk_host import (RUN_BEST_EVALS, RUN_INTS, DeviceRun, PackedRun, absorb_chunk, chunk_counts, chunk_length,
                                     pack, packed_run, run_rules, unpack)
from evostrat.run.chunk_inputs import with_inputs
from evostrat.run.device_termination import REASONS, Rules, check, device_constant, stagnation_holds
from evostrat.run.integers_device import chunk_setup, device_state, host_state
from evostrat.strategies.checked import checked_ask, checked_state

__all__ = ["run_compiled", "chunk_program", "stage_sizes"]

#: The stop code of the stagnation test.
STAGNATION = REASONS.index("tolstagnation")

#: Generations between two checks of the run's criteria inside a chunk (:func:`check_block`).
BLOCK = 32

#: Bytes up to which XLA's CPU runtime runs a loop body's kernels one after the other, when
#: every buffer they touch is this small (``ThunkExecutor``'s sequential threshold, not a flag);
#: past it, every kernel goes through the concurrent scheduler: ~1.5 us a generation on one
#: CPU for CMA-ES at d = 10, a third of its generation.
SEQUENTIAL_BYTES = 512


def stage_sizes(run: DeviceRun, popsize: int) -> tuple[int, int]:
    """``(stage, block)``: generations per inner loop of the chunk and per check of the criteria.

    A stage's rows (``popsize`` values and sigma a generation) fill a buffer of its own, which
    the chunk's record takes after the stage. On the CPU, when the generation's arrays are all
    small, a stage keeps that buffer within :data:`SEQUENTIAL_BYTES` (11 generations for CMA-ES at
    d = 10), so the generation loop stays sequential, and a block is a few stages (about
    :data:`BLOCK` generations); otherwise a stage is a block of :data:`BLOCK` generations.
    """
    import jax

    row = (popsize + 1) * run.best_x.dtype.itemsize  # the run's dtype, as best_f's
    stage = SEQUENTIAL_BYTES // row
    arrays = [leaf.size * leaf.dtype.itemsize for leaf in jax.tree_util.tree_leaves(run.state)]
    largest = max(arrays + [popsize * run.best_x.size * run.best_x.dtype.itemsize])
    if jax.default_backend() != "cpu" or largest > SEQUENTIAL_BYTES or stage < 4:
        return BLOCK, BLOCK
    stage = min(stage, BLOCK)
    return stage, stage * max(1, round(BLOCK / stage))


def chunk_program(strategy: Any, objective: Callable, backend: Any, rules: Rules, stop_names: tuple[str, ...],
                  batched: bool = False, population: Any = None, bounds: Any = None) -> Callable:
    """The jitted chunk: up to ``limit`` (at most :func:`chunk_length`) generations, fewer when the
    run stops. Unbatched ``(*run, limit) -> (run, record)``, the run a
    :class:`~evostrat.run.chunk_host.PackedRun` (whose ``ints`` end with the generations run and
    the non-finite values among their fitness) and ``record`` ``(length + block, popsize + 1)``: each
    generation's fitness values and sigma (the rows past the generations run are not read). Batched ``(runs, limit) -> (runs, fitness (n, length,
    popsize), sigma (n, length), generations (n,))`` over :class:`~evostrat.run.chunk_host.DeviceRun`.

    ``batched``: the chunk ``jax.vmap``-ed over a leading axis of runs (:mod:`evostrat.run.batch`);
    a run whose criterion holds leaves the loop's predicate, and ``vmap`` keeps it unchanged
    while the others go on. ``population``: a ``jax.sharding.Sharding`` of each population
    ``(popsize, dim)``, which the objective is then evaluated under (several devices).
    ``bounds``: a :class:`~evostrat.run.bounds.BoxBounds` (a :class:`~evostrat.run.fixed.FixedSpace`:
    the strategy searches the free coordinates); the objective sees the candidates mapped into the
    box (full vectors), the best so far is kept there, as the host loop's. The criteria's thresholds
    (:data:`~evostrat.run.device_termination.THRESHOLDS`) and budgets
    (:data:`~evostrat.run.device_termination.BUDGETS`) are an input of the compiled program, not
    part of its key: runs that differ only in them share the program, and the callable returned
    passes each its own."""
    import jax
    import jax.numpy as jnp

    from evostrat.backends.jax import lockstep_conds

    length = chunk_length(rules.popsize)
    box = None if bounds is None else (frozen(bounds.lower), frozen(bounds.upper), frozen(getattr(bounds, "values", 0)),
                                       getattr(bounds, "key", None), margins_of(bounds))  # integers: mask, ranges, margin
    tell = program_key(strategy.tell, "driver", id(objective))  # the objective kept alive by the program: id unused
    widest = jax.dtypes.canonicalize_dtype(np.float64)  # float32 unless jax_enable_x64: the thresholds' dtype
    settings = (tell, stop_names, length, batched, population, box, widest, rules)
    if settings in _CALLS:  # the program, its thresholds and budgets in place
        return _CALLS[settings]
    structure = rules.structure()  # the program's; its thresholds and budgets come in as an input

    def programs(rules: Rules) -> tuple[Callable, Callable]:
        """The unbatched and the batched chunk over ``rules`` (whose thresholds are traced)."""

        def advance(run: DeviceRun) -> tuple[Any, Any, Any, Any, Any]:
            """ask, evaluate, tell: ``(state, values, generation's best, best so far, its x)``."""
            shape = (rules.popsize, len(bounds.free) if hasattr(bounds, "free") else run.best_x.shape[-1])
            X, state = checked_ask(strategy, strategy.ask(run.state), shape, run.state, run.best_x.dtype)
            if population is not None:  # the population axis split across devices, the state replicated
                X = jax.lax.with_sharding_constraint(X, population)
            seen = (X if bounds is None else bounds.encode(X, state) if hasattr(bounds, "encode")  # integers
                    else bounds.transform(X))  # what the objective evaluates
            values = jnp.asarray(objective(seen), dtype=X.dtype)  # the run's dtype, as check_values gives on the host
            told = strategy.tell(state, X, -values if rules.maximize else values)
            state = checked_state(strategy, told, "tell", state)
            top, i, lo, hi = summary(values, rules.maximize)  # one reduction: argmin's best, finite range
            better = (top > run.best_f) if rules.maximize else (top < run.best_f)
            best_f, best_x = jnp.where(better, top, run.best_f), jnp.where(better, seen[i], run.best_x)
            return state, values, (top, i, lo, hi), best_f, best_x

        def generation(run: DeviceRun) -> tuple[DeviceRun, Any, Any, Any]:
            state, values, _, best_f, best_x = advance(run)
            sigma = strategy.sigma(state)
            g, evals = run.generation + 1, run.n_evals + values.shape[0]
            progress, code, due = check(rules, run.progress, values, g, evals, best_f, tolx_sigma(strategy, state, sigma))
            if stop_names:
                stops = jnp.stack([jnp.asarray(v, bool) for v in strategy.stop(state).values()])
                stop = len(REASONS) + jnp.argmax(stops).astype(code.dtype)
                code = jnp.where((code == 0) & jnp.any(stops), stop, code)
            return DeviceRun(state, best_f, best_x, progress, g, evals, code), values, sigma, due

        def stagnation(runs: DeviceRun, due: Any) -> DeviceRun:
            """The runs' stop codes with the stagnation median test of those whose test is ``due``
            (it ranks first). Only the test's answers cross the ``cond``: returning the runs from it
            copied every run's state through the branch not taken."""
            holds = jax.lax.cond(jnp.any(due), lambda: jax.vmap(lambda p, g: stagnation_holds(rules, p, g))(
                runs.progress, runs.generation), lambda: jnp.zeros(due.shape, bool))
            stagnant = due & holds & ((runs.code == 0) | (runs.code > STAGNATION))
            return replace(runs, code=jnp.where(stagnant, STAGNATION, runs.code))

        def lean(run: DeviceRun, w: Watch, counts: Any, rows: Any, stage_start: Any) -> tuple[Any, ...]:
            # a generation of the chunk without the run's criteria: they are checked for a block of
            # generations at once (check_block), after any generation where one may hold (may_stop). The
            # Watch's numbers ride in two vectors, one kernel each a generation (issue 15): its bests with the
            # best so far, may_stop's answer (0 or 1) and tolx's sigma (w.bests[2:5]), and its evaluations of
            # the run's best in the run's ints (counts, a PackedRun's: generation, evaluations, code at 0-2).
            # The generation's row in the stage is its generation less the stage's first (stage_start, the ints
            # then): no loop counter of its own
            state, values, (top, i, lo, hi), best_f, best_x = advance(replace(run, best_f=w.bests[2]))
            sigma = strategy.sigma(state)
            g, evals = counts[0] + 1, counts[1] + values.shape[0]
            code = counts[2]
            if stop_names:  # the first that holds, as a chain of selects: one kernel with the tests (no reduction)
                for n, v in reversed(list(enumerate(strategy.stop(state).values()))):
                    code = jnp.where(jnp.asarray(v, bool), jnp.asarray(len(REASONS) + n, code.dtype), code)
            w, maybe = may_stop(rules, Watch(w.bests[:2], counts[RUN_BEST_EVALS], w.bests[4]), values, top, best_f, g,
                                evals, tolx_sigma(strategy, state, sigma), bounds=(lo, hi), top_index=i)
            row = jnp.concatenate([values, jnp.reshape(sigma, (1,))]).astype(rows.dtype)  # fitness values, sigma
            rows = jax.lax.dynamic_update_slice_in_dim(rows, row[None], counts[0] - stage_start[0], axis=0)
            bests = jnp.concatenate([w.bests, best_f[None], maybe.astype(w.bests.dtype)[None], w.tolx_sigma[None]])
            counts = jnp.concatenate([jnp.stack([g, evals, code]).astype(counts.dtype), counts[3:RUN_BEST_EVALS],
                                      jnp.asarray(w.run_best_evals, counts.dtype)[None], counts[RUN_BEST_EVALS + 1:]])
            return DeviceRun(state, None, best_x, None, None, None, None), Watch(bests, None, None), counts, rows

        def chunk(run: DeviceRun, limit: Any) -> tuple[DeviceRun, Any, Any, Any]:
            # blocks of stages of up to `stage` generations; the chunk's record takes a stage's rows after
            # it, and the run's criteria are checked (check_block) after a block, which ends early after a
            # generation where one may hold: no generation runs twice. (A lax.cond after each stage
            # instead of the block loop copied the record and criteria through its other branch.) The run's
            # counters stay in its ints vector: the chunk's generations so far, a block's and a stage's are
            # its generation less the chunk's, block's or stage's first (a loop counter costs a kernel a loop)
            stage, size = stage_sizes(run, rules.popsize)
            dtype = run.progress[0].dtype
            first = run.progress[1]  # the chunk's input ints

            def ran(ints: Any) -> Any:  # the chunk's generations so far, after the run's ints `ints`
                return ints[0] - first[0]

            def end(ints: Any) -> Any:  # the end of the block that starts after `ints`, in the chunk's generations
                return jnp.minimum(limit, ran(ints) + size)

            def step(carry: Any, ints: Any) -> Any:  # a stage: up to `stage` generations (ints: the block's first)
                run, w, counts, record = carry
                new, w, last, rows = jax.lax.while_loop(
                    lambda c: ((c[2][0] - counts[0] < jnp.minimum(end(ints) - ran(counts), stage)) & (c[2][2] == 0)
                               & (c[1].bests[3] == 0)),
                    lambda c: lean(*c, counts),
                    (run, w, counts, jnp.zeros((stage, rules.popsize + 1), dtype)))
                return new, w, last, jax.lax.dynamic_update_slice_in_dim(record, rows, ran(counts), axis=0)

            def block(carry: Any) -> Any:
                # the run's counters, best and criteria's progress stay in its packed vectors (run.progress)
                # from the program's input to its output: no kernel splits them into scalars (issue 15)
                run, record, n_bad = carry
                floats, ints = run.progress
                before = progress_view(run.progress)
                w = watch(rules, before)
                w = Watch(jnp.concatenate([w.bests, floats[:1], jnp.zeros(1, w.bests.dtype), w.tolx_sigma[None]]),
                          None, None)  # lean's
                new, w, counts, record = jax.lax.while_loop(
                    lambda c: (ran(c[2]) < end(ints)) & (c[2][2] == 0) & (c[1].bests[3] == 0),
                    lambda c: step(c, ints), (replace(run, progress=None), w, ints, record))
                best_f, maybe = w.bests[2], w.bests[3] != 0
                rows = jax.lax.dynamic_slice_in_dim(record, ran(ints), size)
                # the criteria once, after the block's last generation: a generation where one may hold
                # ends the block, so none held before it
                progress, code, bad = block_outcome(rules, before, rows[:, :-1], rows[:, -1], counts[0] - ints[0], ints[0],
                                                    ints[1], best_f, counts[2], maybe, w.bests[4])
                vectors = pack(jnp, DeviceRun(None, best_f, None, progress, counts[0], counts[1], code))[2:]
                return replace(new, progress=vectors), record, n_bad + bad

            record = jnp.zeros((length + size, rules.popsize + 1), dtype)  # a block's rows never pass the end
            run, record, bad = jax.lax.while_loop(lambda c: (ran(c[0].progress[1]) < limit) & (c[0].progress[1][2] == 0),
                                                  block, (run, record, jnp.asarray(0, jnp.int32)))
            return run, record, ran(run.progress[1]), bad  # the record's rows past the generations run are never read

        def progress_view(vectors: tuple[Any, Any]) -> Any:
            # the criteria's progress as views of a PackedRun's vectors: the chunk carries them packed,
            # so that neither its start nor a block's end splits them into a kernel per field (issue 15)
            return unpack(rules, PackedRun(None, None, *vectors)).progress

        def packed(state: Any, best_x: Any, floats: Any, ints: Any, limit: Any) -> tuple[PackedRun, Any]:
            # the program's inputs and outputs as few arrays (PackedRun): each costs the call a few us
            run, record, k, bad = chunk(DeviceRun(state, None, best_x, (floats, ints), None, None, None), limit)
            floats, ints = run.progress
            done = jnp.stack([k, bad]).astype(ints.dtype)
            return PackedRun(run.state, run.best_x, floats, jnp.concatenate([ints[:RUN_INTS], done])), record

        def lockstep(runs: DeviceRun, limit: Any) -> tuple[DeviceRun, Any, Any, Any]:
            # the batched chunk: one loop over generations, every run advanced together and a run that
            # stopped kept as it was. (``vmap`` of ``chunk`` would select every carried value, the
            # fitness record included, between old and new in every generation: 1.33x evosax's vmap
            # against 1.1x; issue 19.) Rows past a run's own count are written but never read.
            def lockstep_generation(run: DeviceRun, active: Any) -> tuple[DeviceRun, Any, Any, Any]:
                with lockstep_conds("runs", active):  # the strategy's conds decided once for all runs
                    return generation(run)

            step = jax.vmap(lockstep_generation, axis_name="runs")
            keep = jax.vmap(lambda active, new, old: jax.tree_util.tree_map(
                lambda a, b: jnp.where(active, a, b), new, old))

            def body(carry: Any) -> Any:
                runs, fitness, sigmas, k, done = carry
                active = runs.code == 0
                new, values, sigma, due = step(runs, active)
                if rules.tolstagnation is not None:  # the median test of the runs whose test is due
                    new = stagnation(new, due & active)
                fitness = jax.lax.dynamic_update_slice_in_dim(fitness, values[:, None], k, axis=1)
                sigmas = jax.lax.dynamic_update_slice_in_dim(sigmas, sigma[:, None], k, axis=1)
                return keep(active, new, runs), fitness, sigmas, k + 1, done + active.astype(done.dtype)

            n, dtype = runs.code.shape[0], runs.best_f.dtype
            carry = (runs, jnp.zeros((n, length, rules.popsize), dtype), jnp.zeros((n, length), dtype),
                     jnp.asarray(0, jnp.int32), jnp.zeros((n,), jnp.int32))
            runs, fitness, sigmas, _, done = jax.lax.while_loop(
                lambda c: (c[3] < limit) & jnp.any(c[0].code == 0), body, carry)
            return runs, fitness, sigmas, done

        return packed, lockstep

    def packed_chunk(state: Any, best_x: Any, floats: Any, ints: Any, limit: Any, inputs: Any) -> Any:
        return programs(structure.with_thresholds(inputs[0], directed=True).with_budgets(inputs[1]))[0](state, best_x, floats,
                                                                                          ints, limit)

    def lockstep_chunk(runs: DeviceRun, limit: Any, inputs: Any) -> Any:  # inputs: (thresholds, budgets)
        return programs(structure.with_thresholds(inputs[0], directed=True).with_budgets(inputs[1]))[1](runs, limit)

    if len(_CALLS) >= 256:
        _CALLS.clear()
    inputs = (rules.threshold_inputs(widest), np.asarray(rules.budgets(), np.int32))  # the rules' thresholds, budgets
    key = tell + (structure, stop_names, length, batched, population, box)
    _CALLS[settings] = call = with_inputs(backend.compile(lockstep_chunk if batched else packed_chunk, key=key),
                                           inputs, batched)
    return call


#: The chunk programs with their inputs, by program key and rules (equal runs share one).
_CALLS: dict[Any, Callable] = {}


def run_compiled(driver: Any, objective: Callable, hooks: Any = None, observer: Any = None) -> bool:
    """Run ``driver`` to termination in compiled chunks; ``False`` when that does not apply.

    ``hooks`` (:class:`~evostrat.callbacks.hooks.RunHooks`) observe ``observer`` (the estimator)
    after every generation: the chunks then hold one generation each. With restarts, each run
    gets the program of its population size, and a chunk never passes the generation
    budget of all runs together (``max_generations``).
    """
    if not compiled_loop_applies(driver, objective):
        return False
    driver.fast_path = "compiled_loop"
    if hooks is not None and not hooks.observers:
        hooks = None
    try:
        if hooks is not None:
            hooks.start(observer)
        while driver.state.stop_reason is None:
            _run_chunks(driver, objective, hooks, observer)  # one run; a restart starts the next
    finally:
        if hooks is not None:
            hooks.end(observer)
    return True


def _run_chunks(driver: Any, objective: Callable, hooks: Any, observer: Any) -> None:
    """Chunks of ``driver``'s current run until it stops or a restart replaces its runner."""
    runner = driver.runner
    rules, stop_names = run_rules(driver)
    strategy, bounds = chunk_setup(driver)  # integer variables: their encoding, and the margin's state
    program = chunk_program(strategy, objective, runner.backend, rules, stop_names, bounds=bounds)
    run = device_state(driver, packed_run(driver, rules))
    length = 1 if hooks is not None else chunk_length(runner.popsize)
    budget = driver.config.max_generations if driver.restarts is not None else None  # over all runs
    limit = device_constant(length, "int32")
    while driver.state.stop_reason is None and driver.runner is runner:
        if runner.injections:  # queued by inject() (a callback's, a checkpoint's): placed by a host generation
            _host_generation(driver, objective)
            if hooks is not None:
                hooks.generation(observer)
            if driver.state.stop_reason is None and driver.runner is runner:
                run = device_state(driver, packed_run(driver, rules))
            continue
        if budget is not None and budget - driver.state.n_generations < length:
            limit = device_constant(max(1, budget - driver.state.n_generations), "int32")
        run, record = program(*run, limit)
        # np.asarray of each: jax.device_get's scope and tree map cost more than the copies
        floats, ints, record = np.asarray(run.floats), np.asarray(run.ints), np.asarray(record)
        host = unpack(rules, PackedRun(None, None, floats, ints))
        done = chunk_counts(ints)
        absorb_chunk(driver, rules, stop_names, host_state(driver, run.state, done[0]), host.progress, run.best_x,
                     host.best_f, host.code, record[:, :-1], record[:, -1], *done)
        if hooks is not None:
            hooks.generation(observer)  # callbacks (may stop), progress, checkpoint


def _host_generation(driver: Any, objective: Callable) -> None:
    """One generation of ``driver`` on the host (ask, evaluate, tell), as the host loop runs it; the
    objective takes the population (it traces to its values: :func:`compiled_loop_applies`)."""
    driver.settled = False  # as the host loop: until told, or undone
    try:
        X = driver.ask()
        driver.tell(X, VectorizedEvaluator().evaluate(objective, X, driver.runner.backend))
    except BaseException:  # as the host loop: back to the last finished generation
        driver.settled = driver.unask()
        raise
    driver.settled = True
