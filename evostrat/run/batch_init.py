"""A batch's runs initialised together: one vmapped ``initial_state`` per grid combination.

Used by :func:`evostrat.run.batch.fit_batch`. The runs of one combination differ
only in the seed, so on JAX the first is initialised as :meth:`ES.initialize
<evostrat.ES.initialize>` does (every check of the parameters, ``x0`` and the
state), and the initial states of all of them are built by one compiled
``jax.vmap`` of the strategy's ``initial_state`` over the seeds' keys: the same
states bit for bit as run by run (the key of a seed is the same, and a vmapped
random draw equals the one it maps). The stacked states go to
:func:`~evostrat.run.batch_jax.run_batched`, which advances the runs from them
without stacking their states again; each other run's driver gets its state as a
:class:`~evostrat.run.run_split.DeferredState` (:class:`~evostrat.run.asktell.AskTell`'s ``state``): its
slice of the stack, split out (all the family's at once, one compiled call) only
if read before the batch's first chunk replaces it. Anything else (numpy, torch, a
strategy whose ``initial_state`` does not trace, one run per combination) is
initialised run by run.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from evostrat.backends.points import placed_key
from evostrat.backends.programs import program_key
from evostrat.plugins.factories import warn_overrides
from evostrat.run.driver import Driver
from evostrat.run.run_split import DeferredState, RunSplit

__all__ = ["initialize_runs", "vmapped_initial_states", "eager_initial_states", "DeferredState"]


def initialize_runs(estimators: Sequence[Any], families: Sequence[Hashable], x0: Any) -> dict[Hashable, Any]:
    """Initialise every estimator around ``x0`` (its ``run_``), the runs of a family (equal
    labels: the same settings but the seed, consecutive) together where they can be.

    Returns ``{label: stacked initial states}`` for the families initialised together: each
    leaf of the family's state with a leading axis of its runs, in order."""
    members: dict[Hashable, list[Any]] = {}
    for run, label in zip(estimators, families):
        members.setdefault(label, []).append(run)
    stacked: dict[Hashable, Any] = {}
    for label, runs in members.items():
        runs[0].initialize(x0)  # all the checks, and the state of the first seed
        # a callable x0 draws each seed's own start; a warm start changes each run's state
        together = len(runs) > 1 and not callable(x0) and getattr(runs[0], "warm_start", None) is None
        runner = runs[0].run_.runner
        states = vmapped_initial_states(runner, [run.random_state for run in runs]) if together else None
        if states is not None:
            stacked[label] = states
            split = RunSplit(states, len(runs))
            initial = [DeferredState(split, index, runner.initial_mean) for index in range(1, len(runs))]
        elif together and not runner.backend.traceable:  # the others' states from the checked first one's code
            initial = eager_initial_states(runner, [run.random_state for run in runs[1:]])
        else:
            for run in runs[1:]:
                run.initialize(x0)
            continue
        for run, state in zip(runs[1:], initial):
            run.validate_params()  # as ES.initialize: the same settings but the seed
            warn_overrides(run.strategy, run.strategy_options, sigma0=run.sigma0, popsize=run.popsize,
                           distribution=run.distribution)
            run.run_ = Driver(run, x0, initial_state=state)
    return stacked


def eager_initial_states(runner: Any, seeds: Sequence[int | None]) -> list[Any]:
    """The initial states of ``runner``'s strategy around its mean for ``seeds``, as ``Strategy.init``
    builds them on a backend that does not compile (``initial_state`` with each seed's key): for the
    runs of a family after its first, whose ``init`` checked the point, the settings and the state
    (on torch a run's whole ``ES.initialize`` cost about 0.3 ms, 5 % of a 64-run batch)."""
    strategy, backend = runner.strategy, runner.backend
    x = strategy.mean(runner.state)  # x0 as validated by the first run's init
    return [strategy.initial_state(x, placed_key(backend, seed, x), backend) for seed in seeds]


def vmapped_initial_states(runner: Any, seeds: Sequence[int | None]) -> Any:
    """The initial states of ``runner``'s strategy around its mean for ``seeds``, stacked (one
    compiled ``jax.vmap`` of ``initial_state`` over the seeds' keys); ``None`` where it does not
    apply (not JAX, a strategy not keyed by its hyper-parameters, or one that does not trace)."""
    backend, strategy = runner.backend, runner.strategy
    if not backend.traceable:  # a compiling (JAX) backend; another one fails below and returns None
        return None
    import jax
    import jax.numpy as jnp

    x = strategy.mean(runner.state)  # x0 as validated by the first run's init
    name = program_key(strategy.initial_state, tuple(x.shape), backend.dtype_name(x.dtype), backend.device(x))
    if name[0] is not type(strategy):  # an unhashable hyper-parameter: not shared by equal strategies
        return None
    init = backend.compile(jax.vmap(lambda x0, key: strategy.initial_state(x0, key, backend), in_axes=(None, 0)),
                           key=("vmapped_initial_state",) + name)
    try:
        keys = jax.device_put(jnp.stack([backend.key(seed) for seed in seeds]), backend.device(x))
        return init(x, keys)
    except Exception:  # noqa: BLE001 - host-side logic in initial_state: the runs are initialised one by one
        return None
