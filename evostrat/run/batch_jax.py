"""The driver vectorised: a batch of JAX runs advanced together in one compiled program.

Used by :func:`evostrat.run.batch.fit_batch`. Runs whose compiled chunk programs are equal
(strategy class and hyper-parameters, population size, dimension, dtype, criteria) form a
group; a group's runs are stacked along a leading axis and advanced by the chunk of
:mod:`evostrat.run.compiled` under ``jax.vmap``. Inside it the loop's predicate is per run,
so a run that has stopped is masked (its value no longer changes) while the others go on,
and every run ends at the generation, and with the state, it reaches alone. Between chunks
each run's host record (history, counters, best so far, stop reason) is updated by the same
code as a lone compiled run's (:func:`evostrat.run.chunk_host.absorb_chunk`).

With several devices (``devices="auto"`` and ``jax.device_count() > 1``, or a
list of devices) the runs axis is sharded across them with ``jax.sharding``
(``NamedSharding`` over a one-axis ``Mesh``; each run's state lives whole on one
device, no communication inside a generation); the batch is padded with copies
of its last run to a multiple of the device count, and the copies are dropped.
With fewer runs than devices (one run with a large population), each population
``(popsize, dim)`` is split across the devices instead and the state replicated.

Examples
--------
>>> import jax.numpy as jnp                                          # doctest: +SKIP
>>> from evostrat import ES                                          # doctest: +SKIP
>>> from evostrat.run.batch import fit_batch                         # doctest: +SKIP
>>> res = fit_batch(ES("cma_es", max_generations=50),                # doctest: +SKIP
...                 lambda X: (X ** 2).sum(axis=1), jnp.ones(10), seeds=64)
>>> res.fast_path, res.n_programs                                     # doctest: +SKIP
('batched', 1)
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Callable

import numpy as np

from evostrat.backends.programs import frozen, program_key
from evostrat.errors import InvalidArgumentError
from evostrat.run.chunk_host import DeviceRun, absorb_chunk, chunk_length, device_run, run_rules
from evostrat.run.compiled import chunk_program
from evostrat.run.compiled_loop import compiled_loop_applies
from evostrat.run.run_split import DeferredState, RunSplit, split_runs

__all__ = ["run_batched", "batch_devices", "PerRunHyperParameters", "split_runs"]


def batch_devices(devices: Any) -> list[Any] | None:
    """The JAX devices to shard a batch over (``None``: the default device only).

    ``"auto"``: all devices when there are several; a list: those devices (one too: the runs
    then run on it rather than on the default device).
    """
    import jax

    if devices is None:
        return None
    if isinstance(devices, str):
        if devices != "auto":
            raise InvalidArgumentError(f"devices must be 'auto', None or a list of JAX devices, got {devices!r}")
        found = jax.devices()
        return list(found) if len(found) > 1 else None
    found = list(devices)
    if not found or not all(hasattr(d, "platform") for d in found):
        raise InvalidArgumentError(f"devices must be 'auto', None or a non-empty list of JAX devices, got {devices!r}")
    return found  # one device named: the runs go there (a mesh of one), not to the default device


def run_batched(drivers: list[Any], objective: Callable, devices: Any = "auto",
                families: Sequence[Hashable] | None = None, initial: Mapping[Hashable, Any] | None = None) -> int:
    """Run the drivers without restarts or bounds that can take the compiled loop
    (:func:`~evostrat.run.compiled_loop.compiled_loop_applies`) to termination in vectorised
    compiled chunks, marking them ``fast_path = "batched"``; returns the number of
    compiled programs (``0``: none could, nothing ran).

    ``families``: a label per driver; drivers with equal labels have the same settings
    but the seed (and the same ``x0``), so whether the compiled loop applies and their
    group (strategy, criteria, shapes) are found once per label. ``None``: every driver
    on its own. ``initial``: ``{label: the initial strategy states of that family's drivers,
    stacked in their order}`` (:func:`~evostrat.run.batch_init.initialize_runs`), which a
    group of whole new families starts from instead of stacking its runs' states."""
    labels: Sequence[Hashable] = range(len(drivers)) if families is None else families
    if len(labels) != len(drivers):
        raise InvalidArgumentError(f"families must have one label per driver ({len(drivers)}), got {len(labels)}")
    keys: dict[Hashable, Any] = {}  # label -> group key, None where the compiled loop does not apply
    groups: dict[Any, list[tuple[Any, Hashable]]] = {}
    sizes: dict[Hashable, int] = {}
    for d, label in zip(drivers, labels):
        if label not in keys:
            # runs with restarts change population between runs, and the lockstep program maps no
            # bounds: each runs alone (ES.fit, compiled)
            lone = d.restarts is not None or d.bounds is not None or not compiled_loop_applies(d, objective)
            keys[label] = None if lone else _group_key(d)
        if keys[label] is not None:
            groups.setdefault(keys[label], []).append((d, label))
        sizes[label] = sizes.get(label, 0) + 1
    if not groups:
        return 0
    groups = _shared_capacity(groups)
    mesh_devices = batch_devices(devices)
    programs = 0
    for (_, _, rules, stops), pairs in groups.items():
        members = [d for d, _ in pairs]
        names = _varying(members)
        if names and _run_group(members, objective, rules, stops, mesh_devices, names,
                                _initial_states(pairs, sizes, initial)):
            programs += 1
            continue
        split = _run_split(pairs, names, objective, rules, stops, mesh_devices) if len(names) > 1 else 0
        if split:
            programs += split
            continue
        programs += _run_exact(pairs, objective, rules, stops, mesh_devices, sizes, initial)
    return programs


def _run_exact(pairs: list[tuple[Any, Hashable]], objective: Callable, rules: Any, stops: tuple[str, ...],
               mesh_devices: list[Any] | None, sizes: dict[Hashable, int],
               initial: Mapping[Hashable, Any] | None) -> int:
    """The runs of ``pairs`` in one program per hyper-parameter value; returns their number."""
    exact: dict[Any, list[tuple[Any, Hashable]]] = {}
    for d, label in pairs:
        exact.setdefault(program_key(d.runner.strategy.tell), []).append((d, label))
    for same in exact.values():
        _run_group([d for d, _ in same], objective, rules, stops, mesh_devices, (),
                   _initial_states(same, sizes, initial))
    return len(exact)


def _run_split(pairs: list[tuple[Any, Hashable]], names: tuple[str, ...], objective: Callable, rules: Any,
               stops: tuple[str, ...], mesh_devices: list[Any] | None) -> int:
    """Runs of ``pairs`` whose hyper-parameters ``names`` do not all trace per run: the first name
    that does (``elite_ratio`` sets CMA-ES's weights on the host, ``lr_mean`` traces) stays per run,
    one program per value of the others; returns the number of programs (0: none of them traces)."""
    for keep in names:
        others = [n for n in names if n != keep]
        parts: dict[tuple[str, ...], list[Any]] = {}
        for d, _ in pairs:
            params = d.runner.strategy.get_params(deep=False)
            parts.setdefault(tuple(repr(params[n]) for n in others), []).append(d)
        groups = list(parts.values())
        if not _run_group(groups[0], objective, rules, stops, mesh_devices, _varying(groups[0])):
            continue  # ``keep`` does not trace either (nothing ran)
        programs = 1
        for group in groups[1:]:
            if _run_group(group, objective, rules, stops, mesh_devices, _varying(group)):
                programs += 1
            else:  # pragma: no cover - the same names as the first group's, which traced
                programs += _run_exact([(d, None) for d in group], objective, rules, stops, mesh_devices, {}, None)
        return programs
    return 0


def _initial_states(pairs: list[tuple[Any, Hashable]], sizes: dict[Hashable, int],
                    initial: Mapping[Hashable, Any] | None) -> Any:
    """The stacked initial states of the drivers of ``pairs`` (driver, family label): their
    families' stacks (``initial``) joined in their order, when ``pairs`` holds whole families
    (``sizes``: each family's number of drivers), each one after the other, all of them new
    runs; else ``None`` (their states are stacked run by run)."""
    if not initial or any(d.runner.generation or d.state.n_evals for d, _ in pairs):
        return None
    import jax

    parts: dict[Hashable, Any] = {}
    for label, run in itertools.groupby(label for _, label in pairs):
        if label in parts or label not in initial or sum(1 for _ in run) != sizes[label] \
                or jax.tree_util.tree_leaves(initial[label])[0].shape[0] != sizes[label]:
            return None  # a family in pieces, without a stack, or a stack not of its runs
        parts[label] = initial[label]
    return next(iter(parts.values())) if len(parts) == 1 else _joiner()(list(parts.values()))


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _group_key(driver: Any) -> tuple[Any, ...]:
    """Runs with equal keys can share one program: the same strategy class, non-numeric
    hyper-parameters, population size, dimension, dtype, device, state shapes and criteria
    (numeric hyper-parameters may differ: they are traced per run, :class:`PerRunHyperParameters`,
    unless they change the state's shapes, as LM-MA-ES's ``memory``)."""
    import jax

    r = driver.runner
    params = r.strategy.get_params(deep=False)
    static = {k: v for k, v in params.items() if not _numeric(v) or k == "popsize"}
    try:
        static_key: Any = frozen(static)
    except TypeError:
        static_key = id(r.strategy)  # an unhashable setting: a group of its own
    rules, stops = run_rules(driver)
    shapes = tuple(np.shape(v) for v in jax.tree_util.tree_leaves(r.state))  # runs of one shape stack
    return ((type(r.strategy), static_key, r.popsize, r.dim, str(r.dtype), str(r.device), shapes),
            tuple(sorted(k for k in params if k not in static)), rules, stops)


def _shared_capacity(groups: dict[Any, list[Any]]) -> dict[Any, list[Any]]:
    """``groups`` with the stagnation history's capacity of the largest among those that differ only
    in budgets and thresholds (inputs of the program): they then share one compiled chunk, as a
    ``max_generations`` grid's groups did not (one per capacity). The history's records and its
    median test are the same in a larger buffer, so each run is the one it is alone."""
    def shared(key: tuple[Any, ...]) -> tuple[Any, ...]:
        return key[:2] + (dataclasses.replace(key[2].structure(), capacity=0),) + key[3:]

    largest = {shared(key): max(k[2].capacity for k in groups if shared(k) == shared(key)) for key in groups}
    out: dict[Any, list[Any]] = {}
    for key, pairs in groups.items():
        out.setdefault(key[:2] + (dataclasses.replace(key[2], capacity=largest[shared(key)]),) + key[3:], []).extend(pairs)
    return out


def _varying(drivers: list[Any]) -> tuple[str, ...]:
    """The numeric hyper-parameters whose values differ between ``drivers``."""
    params = [d.runner.strategy.get_params(deep=False) for d in drivers]
    return tuple(sorted(k for k in params[0] if _numeric(params[0][k]) and k != "popsize"
                        and len({repr(p[k]) for p in params}) > 1))


class PerRunHyperParameters:
    """A strategy whose numeric hyper-parameters ``names`` are part of each run's state.

    The state is ``(strategy state, {name: value})``; every call builds the strategy
    (``__init__`` only stores, as scikit-learn's) with the run's values, which are
    traced arrays inside the vectorised program, so runs that differ only in those
    values share one compiled program. A strategy that needs such a value on the host
    (Python control flow, ``math`` functions) fails to trace; the runs then fall back
    to one program per value.
    """

    def __init__(self, template: Any, names: tuple[str, ...]) -> None:
        self.template, self.names = template, names

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        fixed = {k: v for k, v in self.template.get_params(deep=False).items() if k not in self.names}
        return {**fixed, "per_run": self.names, "strategy_class": type(self.template).__qualname__}

    def at(self, hyper: dict[str, Any]) -> Any:
        return type(self.template)(**{**self.template.get_params(deep=False), **hyper})

    def ask(self, state: Any) -> tuple[Any, Any]:
        X, inner = self.at(state[1]).ask(state[0])
        return X, (inner, state[1])

    def tell(self, state: Any, X: Any, fitness: Any) -> Any:
        return self.at(state[1]).tell(state[0], X, fitness), state[1]

    def sigma(self, state: Any) -> Any:
        return self.at(state[1]).sigma(state[0])

    def stop(self, state: Any) -> dict[str, Any]:
        return self.at(state[1]).stop(state[0])

    def tolx_parts(self, state: Any) -> Any:  # pycma's tolx path (CMA-ES), as a lone run's
        return self.at(state[1]).tolx_parts(state[0])

    def tolx_path(self, parts: Any) -> Any:
        return self.template.tolx_path(parts)


def _run_group(drivers: list[Any], objective: Callable, rules: Any, stops: tuple[str, ...],
               mesh_devices: list[Any] | None, names: tuple[str, ...], initial: Any = None) -> bool:
    """Run ``drivers`` in one vectorised program; ``False`` (nothing run) when their
    hyper-parameters ``names`` do not trace per run. ``initial``: their strategy states,
    stacked (new runs only; the sharded batches stack their runs' own)."""
    import jax

    runner = drivers[0].runner
    strategy = runner.strategy if not names else PerRunHyperParameters(runner.strategy, names)
    if mesh_devices is not None:
        initial = None  # a sharded batch stacks its runs' own states
    runs = [device_run(d, rules) for d in drivers] if initial is None else _new_runs(drivers, rules)
    if names:
        runs = [type(run)((run.state, _hyper(d, names)), *run[1:]) for run, d in zip(runs, drivers)]
    n = len(runs)
    population = None
    if mesh_devices is not None and n < len(mesh_devices):  # few runs: split each population instead
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        mesh = Mesh(np.asarray(mesh_devices), ("population",))
        population = NamedSharding(mesh, PartitionSpec("population"))
        batch = jax.device_put(_stack(runs), NamedSharding(mesh, PartitionSpec()))  # state replicated
    elif mesh_devices is not None:
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        runs += [runs[-1]] * (-n % len(mesh_devices))
        mesh = Mesh(np.asarray(mesh_devices), ("runs",))
        batch = jax.device_put(_stack(runs), NamedSharding(mesh, PartitionSpec("runs")))
    elif initial is not None:
        batch = _stack(runs, (initial, _stacked_hyper(runs)) if names else initial)
    else:
        batch = _stack(runs)
    program = chunk_program(strategy, objective, runner.backend, rules, stops, batched=True, population=population)
    limit = np.int32(chunk_length(rules.popsize))
    if names:
        try:
            jax.eval_shape(program, batch, limit)
        except Exception:  # noqa: BLE001 - a hyper-parameter the strategy needs on the host
            return False
    for d in drivers:
        d.fast_path = "batched"
    while any(d.state.stop_reason is None for d in drivers):
        batch, fitness, sigmas, done = program(batch, limit)
        best_f, code, fitness, sigmas, done = (np.asarray(v) for v in (batch.best_f, batch.code, fitness, sigmas,
                                                                         done))
        # each run's state is split out of the stack only when read (evostrat.run.run_split): ~800 arrays. A
        # run that stops while others go on takes its own now, so that no finished run keeps a whole stack
        split, best_x = RunSplit(batch.state, n, first_part=bool(names)), split_runs(batch.best_x, n)
        going = [d.state.stop_reason is None and code[i] == 0 for i, d in enumerate(drivers)]
        last = not any(going)  # the batch's last chunk: its runs share this stack until one is read
        # the criteria cross to the host stacked, once: each run's are views (read when the host needs them)
        stacked = type(batch.progress)(*(np.asarray(v) for v in batch.progress))
        progress = [type(stacked)(*(v[i] for v in stacked)) for i in range(n)]
        # each run's non-finite values among the generations it ran, counted for all runs at once
        ran = np.arange(fitness.shape[1]) < done[:, None]
        bad = np.count_nonzero(~np.isfinite(fitness) & ran[:, :, None], axis=(1, 2))
        for i, d in enumerate(drivers):
            if d.state.stop_reason is not None:
                continue
            if int(done[i]) == 0:  # cannot happen: a running run advances at least one generation
                raise RuntimeError("a batched run did not advance")
            state = DeferredState(split, i) if going[i] or last else split.run(i)
            absorb_chunk(d, rules, stops, state, progress[i], best_x[i], best_f[i],
                         code[i], fitness[i], sigmas[i], int(done[i]), int(bad[i]))
    return True


def _hyper(driver: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The run's values of ``names`` as arrays (floats in the run's dtype)."""
    params = driver.runner.strategy.get_params(deep=False)
    dtype = driver.runner.dtype
    return {k: np.asarray(params[k], dtype=str(dtype) if isinstance(params[k], (float, np.floating)) else np.int32)
            for k in names}


@functools.cache
def _stacker(shared: tuple[bool, ...]) -> Callable:
    """The compiled stacking of runs' fields: a field ``shared`` by all runs (one value) is
    broadcast along the runs axis, the others (one value per run) are stacked."""
    import jax
    import jax.numpy as jnp

    def stack(fields: list[Any], n: int) -> list[Any]:
        return [jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (n, *jnp.shape(x))), f) if one else
                jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *f) for one, f in zip(shared, fields)]

    return jax.jit(stack, static_argnums=1)


def _new_runs(drivers: list[Any], rules: Any) -> list[Any]:
    """New runs (``DeviceRun``) without their strategy states (``None``: stacked already, not
    read): the first run's best value, criteria and counters (device constants made once per
    rules and dtype, the same for every new run of the group) and each run's best point."""
    first = device_run(drivers[0], rules)
    return [DeviceRun(state=None, best_f=first.best_f, best_x=d.state.best_x, progress=first.progress,
                      generation=first.generation, n_evals=first.n_evals, code=first.code) for d in drivers]


def _stacked_hyper(runs: list[Any]) -> dict[str, np.ndarray]:
    """The runs' per-run hyper-parameters (the second part of their states) stacked."""
    return {k: np.stack([run.state[1][k] for run in runs]) for k in runs[0].state[1]}


@functools.cache
def _joiner() -> Callable:
    """The compiled concatenation of stacked states along the runs axis."""
    import jax
    import jax.numpy as jnp

    return jax.jit(lambda parts: jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *parts))


def _stack(runs: list[Any], states: Any = None) -> Any:
    """The runs (``DeviceRun``) stacked along a new leading axis, in one compiled call;
    ``states``: their strategy states already stacked (the runs' own are not read).

    A field that is the same object in every run (a new run's criteria, best value and
    counters: device constants made once) crosses once and is broadcast; the others
    (strategy states, best points) cross once per run."""
    first, skip = runs[0], int(states is not None)
    shared = tuple(all(run[f] is first[f] for run in runs) for f in range(skip, len(first)))
    fields = [first[f] if one else [run[f] for run in runs] for f, one in enumerate(shared, skip)]
    stacked = _stacker(shared)(fields, len(runs))
    return type(first)(*([states] if skip else []), *stacked)
