"""Compiled generation loops: many ask/evaluate/tell steps in one XLA program.

On JAX, when the objective is traceable (pure ``jax.numpy``), a chunk of
generations runs inside one ``jax.lax.scan`` compiled once: no host round trip
per generation. The chunk length is fixed (one compilation), and a traced
``n_active`` lets the same program run fewer generations (the remaining
iterations leave the state untouched), which the estimator uses to stop exactly
at the generation a termination criterion fires.

Each generation reports its fitness vector, the best candidate and the
strategy's sigma, so the host can rebuild the per-generation history.

Examples
--------
>>> import jax.numpy as jnp                                      # doctest: +SKIP
>>> from evostrat.strategies.snes import SNES                    # doctest: +SKIP
>>> from evostrat.run.compiled_loop import CompiledLoop                        # doctest: +SKIP
>>> s = SNES(sigma0=1.0)                                          # doctest: +SKIP
>>> state = s.init(jnp.ones(5), random_state=0)                   # doctest: +SKIP
>>> loop = CompiledLoop(s, lambda X: (X ** 2).sum(axis=1), chunk=20)  # doctest: +SKIP
>>> state, out = loop.run(state, 20)                              # doctest: +SKIP
>>> out.fitness.shape                                             # doctest: +SKIP
(20, 8)
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, NamedTuple

from evostrat.backends import Backend, get_backend
from evostrat.backends.programs import program_key
from evostrat.errors import InvalidArgumentError
from evostrat.strategies.base import Strategy
from evostrat.strategies.checked import checked_ask, checked_state

__all__ = ["CompiledLoop", "ChunkOutput", "compiled_loop_applies", "compiled_loop_blocker", "is_traceable",
           "trace_failure"]


class ChunkOutput(NamedTuple):
    """Per-generation outputs of a chunk, stacked along the first axis."""

    fitness: Any  # (chunk, popsize)
    best_x: Any  # (chunk, dim): the generation's best candidate
    sigma: Any  # (chunk,)
    stops: Any  # name -> (chunk,) booleans: the strategy's own criteria (with_stops)


#: Answers of :func:`is_traceable` per objective (dropped with the objective).
_TRACEABLE: "weakref.WeakKeyDictionary[Callable, dict[tuple, str | None]]" = weakref.WeakKeyDictionary()


def is_traceable(objective: Callable, popsize: int, dim: int, dtype: Any) -> bool:
    """Whether ``objective`` traces under JAX to ``popsize`` values for a population.

    The check is abstract (``jax.eval_shape``): the objective is not evaluated.
    The answer is kept per objective and signature, so refits do not trace again.
    """
    return trace_failure(objective, popsize, dim, dtype) is None


def trace_failure(objective: Callable, popsize: int, dim: int, dtype: Any) -> str | None:
    """Why ``objective`` does not trace to ``popsize`` values (``None`` when it does).

    Parameters
    ----------
    objective : callable
        The population objective, ``(popsize, dim) -> (popsize,)``.
    popsize, dim : int
        The population's shape.
    dtype : dtype
        The candidates' dtype.

    Returns
    -------
    str or None
        What went wrong: the shape it traced to or the tracing error.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> trace_failure(lambda X: (X ** 2).sum(axis=1), 4, 2, jnp.float32) is None
    True
    >>> trace_failure(lambda X: X, 4, 2, jnp.float32)
    'it traced to shape (4, 2), not (4,)'
    """
    import jax

    signature = (popsize, dim, dtype)  # the dtype itself: its str() takes microseconds
    try:
        hash(signature)
    except TypeError:
        signature = (popsize, dim, str(dtype))
    try:
        known = _TRACEABLE.setdefault(objective, {})
    except TypeError:  # an object that takes no weak reference: ask every time
        known = {}
    if signature not in known:
        try:
            out = jax.eval_shape(objective, jax.ShapeDtypeStruct((popsize, dim), dtype))
            shape = tuple(getattr(out, "shape", ()))
            known[signature] = None if shape == (popsize,) else f"it traced to shape {shape}, not ({popsize},)"
        except Exception as err:  # noqa: BLE001 - anything that does not trace is not traceable
            first = (str(err).strip().splitlines() or [""])[0].rstrip(".")
            known[signature] = f"tracing it raised {type(err).__name__}: {first[:300]}"
    return known[signature]


def compiled_loop_applies(driver: Any, objective: Callable) -> bool:
    """Whether ``driver``'s run can run ``objective`` on the compiled loop; with
    ``compiled_loop=True`` an :class:`~evostrat.errors.InvalidArgumentError` says why not."""
    setting = driver.config.compiled_loop
    if setting not in ("auto", True, False):
        raise InvalidArgumentError(f"compiled_loop must be 'auto', True or False, got {setting!r}")
    if setting is False:
        return False
    reason = compiled_loop_blocker(driver, objective)
    if reason is not None and setting is True:
        raise InvalidArgumentError(f"compiled_loop=True, but the compiled loop cannot run: {reason}; "
                                   "compiled_loop='auto' falls back to the host loop")
    return reason is None


def compiled_loop_blocker(driver: Any, objective: Callable) -> str | None:
    """What keeps ``driver``'s run of ``objective`` off the compiled loop (``None``: nothing).

    Parameters
    ----------
    driver : Driver
        The run's driver (its settings, runner, integer and fixed variables).
    objective : callable
        The run's objective.

    Returns
    -------
    str or None
        The reason, phrased to follow "the compiled loop cannot run: ".
    """
    es, runner = driver.config, driver.runner
    if not runner.backend.traceable:
        return f"the {runner.backend.name} backend does not compile (pass a JAX x0 or backend='jax')"
    if es.evaluator not in ("auto", "vectorized") or es.evaluator_options:
        return (f"evaluator={es.evaluator!r}" + (" with evaluator_options" if es.evaluator_options else "")
                + " evaluates on the host (use 'auto' or 'vectorized' without options)")
    if es.nonfinite == "raise":
        return "nonfinite='raise' checks the values on the host"
    if getattr(es, "reevaluations", 1) != 1 or getattr(es, "noise_handling", False) not in (False, None):
        return "reevaluations and noise_handling evaluate on the host (evostrat.run.noise)"
    if runner.strategy.needs_behaviours:
        return f"the strategy {type(runner.strategy).__name__} needs behaviours, computed on the host"
    if getattr(objective, "vectorized", True) is False:
        return "the objective is marked vectorized = False"
    dim = getattr(driver.fixed, "full_dim", runner.dim)  # fixed_variables: the objective sees full vectors
    failure = trace_failure(objective, runner.popsize, dim, runner.dtype)
    if failure is not None:
        return (f"the objective does not trace under JAX to one value per candidate of a population of shape "
                f"({runner.popsize}, {dim}): {failure}. Write it with jax.numpy on the whole population "
                "(no float(), .item(), numpy or Python branches on values)")
    return None


class CompiledLoop:
    """Run ``n`` generations of a strategy on a traceable objective in compiled chunks.

    Parameters
    ----------
    strategy : Strategy
    objective : callable
        Vectorised and traceable: ``X (popsize, dim) -> (popsize,)`` values to minimise.
    chunk : int
        Generations per compiled program.
    backend : Backend, optional
        Defaults to JAX; the loop needs a backend whose ``traceable`` is true.
    sign : float
        ``-1`` to maximise: the strategy is told ``-objective(X)``.
    with_stops : bool
        Also report the strategy's ``stop(state)`` criteria per generation.
    """

    def __init__(
        self,
        strategy: Strategy,
        objective: Callable,
        chunk: int = 50,
        backend: Backend | None = None,
        sign: float = 1.0,
        with_stops: bool = False,
    ) -> None:
        import jax

        self.with_stops = with_stops
        self.strategy = strategy
        self.objective = objective
        self.chunk = int(chunk)
        self.backend = backend or get_backend("jax")
        self.sign = float(sign)
        self._run = self._program(jax)

    def _program(self, jax: Any) -> Callable:
        """The jitted chunk, shared with earlier loops of equal settings through the
        backend's one compile cache: a new ``ES.fit`` on the same objective and
        hyper-parameters compiles nothing (2-5 s on CPU)."""
        # the strategy's class and hyper-parameters (through its tell) and the objective
        key = program_key(self.strategy.tell, "chunk", id(self.objective), self.chunk, self.sign,
                          self.with_stops)
        return self.backend.compile(self._scan, key=key)

    def _step(self, state: Any) -> tuple[Any, ChunkOutput]:
        xp = self.backend.xp
        dim = self.strategy.mean(state).shape[0]
        shape = (self.strategy.resolved_popsize(dim), dim)
        dtype = self.strategy.mean(state).dtype
        X, state = checked_ask(self.strategy, self.strategy.ask(state), shape, state, dtype)
        values = self.objective(X)
        minimised = values if self.sign == 1.0 else -values
        state = checked_state(self.strategy, self.strategy.tell(state, X, minimised), "tell", state)
        best = xp.argmin(xp.where(xp.isnan(minimised), xp.inf, minimised))
        stops = {}
        if self.with_stops:
            stops = {k: xp.asarray(v) for k, v in self.strategy.stop(state).items()}
        out = ChunkOutput(values, X[best], self.strategy.sigma(state), stops)
        return state, out

    def _scan(self, state: Any, n_active: Any) -> tuple[Any, ChunkOutput]:
        import jax

        def body(carry: Any, i: Any) -> tuple[Any, ChunkOutput]:
            new_state, out = self._step(carry)
            keep = i < n_active
            carry = jax.tree_util.tree_map(
                lambda new, old: jax.numpy.where(keep, new, old), new_state, carry
            )
            return carry, out

        return jax.lax.scan(body, state, jax.numpy.arange(self.chunk))

    def run(self, state: Any, n_active: int) -> tuple[Any, ChunkOutput]:
        """Advance ``state`` by ``n_active <= chunk`` generations.

        Returns the new state and the outputs of all ``chunk`` iterations; only
        the first ``n_active`` rows are meaningful.
        """
        if not 0 <= n_active <= self.chunk:
            raise ValueError(f"n_active must be in [0, {self.chunk}], got {n_active}")
        return self._run(state, n_active)
