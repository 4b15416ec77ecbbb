"""The estimator's JAX fast path: whole chunks of generations in one XLA program.

``ES.fit`` takes this path automatically (``compiled_loop="auto"``) when

- the backend compiles (JAX) and the objective traces to ``popsize`` values
  for a population (:func:`evostrat.run.compiled_loop.is_traceable`; an objective marked
  ``vectorized = False`` never does);
- the evaluator is ``"auto"`` or ``"vectorized"`` without options;
- nothing needs the host between generations: no callbacks, progress bar,
  checkpoints, bounds, restarts or behaviour strategies, and the non-finite
  policy is not ``"raise"``.

Each chunk runs :class:`evostrat.run.compiled_loop.CompiledLoop` (ask, objective, tell and
the strategy's own stop criteria, ``chunk`` generations per call) and the host
then replays the chunk's per-generation outputs through the same bookkeeping as
the step-by-step loop (best so far, ``history_``, termination). When a
criterion fires inside a chunk, the chunk is run again from its first state for
exactly the generations that count, so the run stops at the same generation and
the same state as the step-by-step loop would. Results agree with that loop to
float rounding (XLA fuses the whole step, which may round differently).

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

import warnings
from typing import Any, Callable

import numpy as np

from evostrat.errors import InvalidArgumentError, NonFiniteFitnessWarning

__all__ = ["run_compiled", "compiled_loop_applies", "CHUNK"]

#: Generations per compiled chunk.
CHUNK = 32


def compiled_loop_applies(es: Any, objective: Callable) -> bool:
    """Whether ``es`` (initialised) can run ``objective`` on the compiled loop."""
    setting = es.compiled_loop
    if setting not in ("auto", True, False):
        raise InvalidArgumentError(f"compiled_loop must be 'auto', True or False, got {setting!r}")
    if setting is False:
        return False
    runner = es.strategy_
    if not runner.backend.traceable:
        return False
    if es.evaluator not in ("auto", "vectorized") or es.evaluator_options:
        return False
    if es._bounds is not None or es._restarts is not None or es.nonfinite == "raise":
        return False
    if runner.strategy.needs_behaviours or getattr(objective, "vectorized", True) is False:
        return False
    from evostrat.run.compiled_loop import is_traceable

    return is_traceable(objective, runner.popsize, runner.dim, runner.dtype)


def run_compiled(es: Any, objective: Callable) -> bool:
    """Run ``es`` to termination on the compiled loop; ``False`` when it does not apply."""
    if not compiled_loop_applies(es, objective):
        return False
    from evostrat.run.compiled_loop import CompiledLoop

    runner = es.strategy_
    strategy = runner.strategy
    loop = CompiledLoop(strategy, objective, chunk=CHUNK, backend=runner.backend,
                        sign=-1.0 if es.maximize else 1.0, with_stops=True)
    es.fast_path_ = "compiled_loop"
    while es.stop_reason_ is None:
        start = runner.state
        state, out = loop.run(start, CHUNK)
        fitness = runner.backend.to_numpy(out.fitness).astype(np.float64)
        sigmas = runner.backend.to_numpy(out.sigma).astype(np.float64)
        stops = {k: runner.backend.to_numpy(v) for k, v in out.stops.items()}
        _warn_nonfinite(es, fitness)
        used = CHUNK
        for g in range(CHUNK):
            runner.generation += 1
            runner.n_evals += runner.popsize
            es._log_generation(
                fitness[g],
                lambda i, g=g: out.best_x[g],
                float(sigmas[g]),
                lambda g=g: {k: bool(v[g]) for k, v in stops.items()},
            )
            if es.stop_reason_ is not None:
                used = g + 1
                break
        if used < CHUNK:  # stop exactly where the step-by-step loop would
            state, _ = loop.run(start, used)
        runner.state = state
        runner._pending = None
    return True


def _warn_nonfinite(es: Any, fitness: np.ndarray) -> None:
    if es.nonfinite == "ignore":
        return
    bad = int(np.sum(~np.isfinite(fitness)))
    if bad:
        warnings.warn(
            f"{bad} fitness values in the last {fitness.shape[0]} generations are NaN or "
            "infinite; NaN ranks worst and +/-inf rank by their order (nonfinite='ignore' "
            "silences this)",
            NonFiniteFitnessWarning,
            stacklevel=4,
        )
