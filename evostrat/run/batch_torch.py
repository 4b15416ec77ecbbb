"""Batched torch runs: many runs of one strategy advanced generation by generation together.

Used by :func:`evostrat.run.batch.fit_batch`. Runs on the torch backend with the same
strategy (class and hyper-parameters), population size, dimension, dtype and device form a group, advanced in
lockstep until each has stopped:

1. **ask**, run by run: each run draws its population from its own random stream, in
   the order it would alone, so its candidates are those of the run done alone;
2. **evaluate** the populations of all the group's running runs in one call of the
   run's evaluator (``"auto"`` or ``"vectorized"``: one call of a vectorised objective
   on the concatenated populations; a per-candidate objective is called per row);
3. **tell** all the running runs at once: the strategy's pure ``tell`` under
   ``torch.func.vmap`` over the runs' stacked states (tensor leaves stacked along a
   leading axis; non-tensor leaves, such as host keys, stay per run and must pass
   through ``tell`` unchanged). A strategy whose ``tell`` does not vmap (data-dependent
   control flow outside ``Backend.cond``, an op without a batching rule, a value read on
   the host) is told run by run, as alone;
4. **record** each run's generation with the driver's own code
   (:meth:`~evostrat.run.driver.RunDriver.record`): history row, best so far and the
   run's and the strategy's stop criteria, so a finished run drops out at the
   generation, and with the stop reason, it reaches alone.

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

from typing import Any, Callable

from evostrat.backends.trees import tree_leaves, tree_with_leaves
from evostrat.plugins.factories import make_evaluator

__all__ = ["run_batched_torch", "torch_batch_applies"]


def torch_batch_applies(driver: Any) -> bool:
    """Whether ``driver`` (an initialised :class:`~evostrat.run.driver.RunDriver`) can be
    advanced in a torch batch: a backend with an eager vmap (torch's ``Backend.eager_vmap``),
    one run (no restarts), no bounds, integers,
    constraints, noise handling, re-evaluations, injections or behaviours, and the
    ``"auto"`` or ``"vectorized"`` evaluator given by name without options."""
    s, r = driver.settings, driver.runner
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
            key = (type(r.strategy), params, r.popsize, r.dim, str(r.dtype), str(r.device), d.settings.evaluator)
            groups.setdefault(key, []).append(d)
    for members in groups.values():
        _run_group(members, objective)
    return len(groups)


class _VmappedTell:
    """``strategy.tell`` under ``torch.func.vmap`` over a list of states (``None`` results
    when it cannot: the caller then tells run by run)."""

    def __init__(self, strategy: Any, backend: Any) -> None:
        self.strategy = strategy
        self.backend = backend
        self.works = True

    def __call__(self, states: list[Any], X: Any, values: Any) -> list[Any] | None:
        if not self.works:
            return None
        be = self.backend
        leaves = [tree_leaves(s) for s in states]
        template = leaves[0]
        batched = [be.owns(v) for v in template]
        stacked = tuple(be.xp.stack([run[i] for run in leaves]) for i, b in enumerate(batched) if b)

        def tell(tensors: tuple[Any, ...], x: Any, f: Any) -> tuple[Any, ...]:
            it = iter(tensors)
            state = tree_with_leaves(states[0], [next(it) if b else v for b, v in zip(batched, template)])
            out = tree_leaves(self.strategy.tell(state, x, f))
            if len(out) != len(template) or any(o is not v for o, v, b in zip(out, template, batched) if not b):
                raise TypeError("tell changed a non-tensor leaf")  # e.g. a host key: not batched
            return tuple(o for o, b in zip(out, batched) if b)

        try:
            told = be.vmap(tell)(stacked, X, values)
        except Exception:  # noqa: BLE001 - control flow on values, no batching rule, ...: run by run
            self.works = False
            return None
        per_leaf = told
        result = []
        for i, run in enumerate(leaves):
            it = iter(per_leaf)
            result.append(tree_with_leaves(states[i], [next(it)[i] if b else v for b, v in zip(batched, run)]))
        return result


def _run_group(drivers: list[Any], objective: Callable) -> None:
    """Advance ``drivers`` (one group) generation by generation until each has stopped."""
    first = drivers[0]
    runner = first.runner
    popsize, backend = runner.popsize, runner.backend
    evaluator = make_evaluator(first.settings.evaluator, None)
    teller = _VmappedTell(runner.strategy, backend)
    xp = backend.xp
    for d in drivers:
        d.fast_path = "batched"
    active = list(drivers)
    try:
        while active:
            Xs = [d.ask() for d in active]
            values = evaluator.evaluate(objective, xp.concat(Xs), backend)
            checked = [d.runner.check_values(values[i * popsize:(i + 1) * popsize], popsize)
                       for i, d in enumerate(active)]
            told = [-v if d.maximize else v for d, v in zip(active, checked)]
            states = teller([d.runner.state for d in active], xp.stack(Xs), xp.stack(told))
            for i, (d, X) in enumerate(zip(active, Xs)):
                r = d.runner
                if states is None:
                    r.update(told[i], X)  # the lone run's tell
                else:
                    r.advance(states[i], 1)  # the vmapped tell's state, counted as one generation
                d.record(backend.to_numpy(checked[i]), X.__getitem__, r.sigma, r.strategy.stop)
            active = [d for d in active if d.state.stop_reason is None]
    finally:
        evaluator.close()
