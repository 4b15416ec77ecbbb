"""Batched torch runs: many runs of one strategy advanced generation by generation together.

Used by :func:`evostrat.run.batch.fit_batch`. Runs on the torch backend with the same
strategy (class and hyper-parameters), population size, dimension, dtype, device,
``maximize`` and ``nonfinite`` form a group, advanced in lockstep until each has stopped.
Their strategy states stay stacked (:class:`~evostrat.run.batch_stack.RunStack`: tensor
leaves along a leading runs axis, the runs' host keys as one array) from the first
generation to the last; each generation is

1. **ask**: the strategy's pure ``ask`` under ``torch.func.vmap`` over the stack (or the stack
   kernel a plugin offers, :func:`~evostrat.kernels.resolve_stack_kernel`: CMA-ES's and
   sep-CMA-ES's), each run splitting and drawing from its own key (a
   :class:`~evostrat.backends.key_batch.KeyBatch`) in the order it would alone, so its
   candidates are those of the run done alone;
2. **evaluate** the populations of all the group's running runs in one call of the
   run's evaluator (``"auto"`` or ``"vectorized"``: one call of a vectorised objective
   on the concatenated populations; a per-candidate objective is called per row), the
   values checked at once when they are finite (else run by run, with each run's warning);
3. **tell** all the running runs at once (``tell`` under ``torch.func.vmap``, or the stack
   kernel's; the keys pass through unchanged), and the new states' ``sigma`` and the
   strategy's criteria;
4. **record** every run's generation at once (:class:`~evostrat.run.batch_record.BatchRecord`:
   the ``(runs, popsize)`` values on the host, numpy over the runs, the history rows kept as
   arrays until read), exactly as the driver's own code
   (:meth:`~evostrat.run.driver.Driver.record`) would: history row, best so far and the run's
   criteria. A run whose generation may stop it (a criterion of the run's or the strategy's that
   may hold) or has non-finite values is handed to its driver's ``record`` from then on, so a
   finished run drops out at the generation, and with the stop reason, it reaches alone; its
   runner reads its state out of the stack only when asked for it (and takes its own copy when
   it stops).

A step whose strategy method does not map (data-dependent control flow outside
``Backend.cond``, an op without a batching rule, a value read on the host, a key used
other than through the backend) runs run by run from then on, as alone.

Runs with restarts, bounds, integer variables, constraints, noise handling,
re-evaluations, injected candidates, behaviour strategies or a non-default evaluator
are not batched: :func:`~evostrat.run.batch.fit_batch` fits them with ``ES.fit``.

Examples
--------
>>> import torch
>>> from evostrat import ES
>>> from evostrat.run.batch import fit_batch
>>> res = fit_batch(ES("snes", max_generations=20), lambda X: (X * X).sum(1),
...                 torch.ones(4, dtype=torch.float64), seeds=3)
>>> res.fast_path, res.n_programs
('batched', 1)
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from evostrat.plugins.factories import make_evaluator
from evostrat.run.batch_record import BatchRecord
from evostrat.run.batch_stack import RunStack, StackedMethods

__all__ = ["run_batched_torch", "torch_batch_applies"]


def torch_batch_applies(driver: Any) -> bool:
    """Whether ``driver`` (an initialised :class:`~evostrat.run.driver.Driver`) can be
    advanced in a torch batch: a backend with an eager vmap (torch's ``Backend.eager_vmap``),
    one run (no restarts), no bounds, integers,
    constraints, noise handling, re-evaluations, injections or behaviours, and the
    ``"auto"`` or ``"vectorized"`` evaluator given by name without options."""
    s, r = driver.config, driver.runner
    return (r.backend.eager_vmap and driver.state.stop_reason is None and driver.state.plan is None
            and driver.restarts is None and driver.bounds is None and driver.integers is None
            and driver.constraint_fn is None and driver.structure is None and not r.injections
            and not r.strategy.needs_behaviours and int(getattr(s, "reevaluations", 1) or 1) == 1
            and not getattr(s, "noise_handling", False)
            and s.evaluator in ("auto", "vectorized") and not s.evaluator_options)


def run_batched_torch(drivers: list[Any], objective: Callable) -> int:
    """Run the drivers that :func:`torch_batch_applies` to termination in lockstep groups,
    marking them ``fast_path = "batched"``; returns the number of groups (``0``: none)."""
    groups: dict[Any, list[Any]] = {}
    for d in drivers:
        if torch_batch_applies(d):
            r = d.runner
            params = repr(sorted(r.strategy.get_params(deep=False).items()))  # one strategy's tell per group
            key = (type(r.strategy), params, r.popsize, r.dim, str(r.dtype), str(r.device), d.config.evaluator,
                   d.maximize, r.nonfinite)
            groups.setdefault(key, []).append(d)
    for members in groups.values():
        _run_group(members, objective)
    return len(groups)


def _run_group(drivers: list[Any], objective: Callable) -> None:
    """Advance ``drivers`` (one group) generation by generation until each has stopped."""
    first = drivers[0]
    runner = first.runner
    popsize, backend = runner.popsize, runner.backend
    evaluator = make_evaluator(first.config.evaluator, None)
    methods = StackedMethods(runner.strategy, backend, (popsize, runner.dim), runner.dtype)
    for d in drivers:
        d.fast_path = "batched"
    active, stack = list(drivers), RunStack([d.runner.state for d in drivers], backend)
    record = None
    try:
        while active:
            X, asked = methods.ask(stack)
            if X is None:  # the strategy's ask does not map: run by run, each from its own state
                pairs = [methods.ask_one(s) for s in stack.split()]
                X, asked = backend.xp.stack([p[0] for p in pairs]), RunStack([p[1] for p in pairs], backend)
            rows = X.reshape(-1, runner.dim)  # every run's population, run after run (a view)
            values = evaluator.evaluate(objective, rows, backend)
            checked, host = _checked(active, values, popsize)
            told = checked if not first.maximize else -checked  # a group shares maximize (its settings)
            stack, read = methods.tell(asked, X, told)
            if stack is None:  # run by run
                stack = RunStack([methods.tell_one(s, x, f) for s, x, f in zip(asked.split(), X, told)], backend)
                read = methods.read(stack)
            read = read or _read_run_by_run(runner, stack)
            record = record or BatchRecord(active, X)
            stopped = record.record(stack, X, host, *read)
            for i in stopped:  # the run's own copy of its last state: the stack goes on without it
                active[i].runner.advance(stack.run_state(i, copy=True), 0)
            if stopped:
                running = sorted(set(range(len(active))) - set(stopped))
                active, stack = [active[i] for i in running], stack.keep(running) if running else stack
                if running:
                    record.keep(running)
    finally:
        evaluator.close()


def _checked(drivers: list[Any], values: Any, popsize: int) -> tuple[Any, np.ndarray]:
    """The group's values as ``(runs, popsize)`` and on the host: checked at once when they are a
    finite tensor of the runs' dtype (what each run's check would pass as it is; a finite sum proves
    them finite, read on the host, where the record reads them), else run by run (its conversions,
    errors and warnings, as alone)."""
    runner = drivers[0].runner
    be = runner.backend
    n = len(drivers)
    if be.owns(values) and values.dtype == runner.dtype and tuple(values.shape) == (n * popsize,):
        host = be.to_numpy(values)
        if runner.nonfinite == "ignore" or math.isfinite(host.sum(dtype=np.float64)):
            return values.reshape(n, popsize), host.reshape(n, popsize)
    checked = be.xp.stack([d.runner.check_values(values[i * popsize:(i + 1) * popsize], popsize)
                           for i, d in enumerate(drivers)])
    return checked, be.to_numpy(checked)


def _read_run_by_run(runner: Any, stack: RunStack) -> tuple[list[float], list[dict[str, Any]]]:
    """Each run's sigma and strategy criteria, read from its own state (the read-outs do not map)."""
    states = stack.split()
    return [runner.sigma_of(s) for s in states], [runner.strategy.stop(s) for s in states]
