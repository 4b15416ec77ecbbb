"""The stateful ask/tell wrapper and plain-array state dictionaries.

:class:`AskTell` keeps a strategy's state between calls, compiles the pure methods where the
backend can (``jax.jit``), checks that ``tell`` receives the population ``ask`` returned and
values of the right shape, and applies the non-finite fitness policy.

Non-finite fitness policy (``nonfinite``):

- ``"warn"`` (default): NaN ranks worst (as ``+inf``); ``+inf``/``-inf`` rank by
  their order; a :class:`~evostrat.errors.NonFiniteFitnessWarning` names how many.
- ``"ignore"``: the same ranking without a warning.
- ``"raise"``: :class:`~evostrat.errors.InvalidArgumentError`.

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies.snes import SNES
>>> s = SNES(sigma0=0.5).initialize(np.ones(4), random_state=1)
>>> for _ in range(100):
...     X = s.ask()
...     s.tell(X, (X ** 2).sum(axis=1))
>>> float((s.mean ** 2).sum()) < 1e-3
True
>>> restored = SNES(sigma0=0.5).initialize(np.ones(4))
>>> restored.load_state_dict(s.state_dict())
>>> bool((restored.ask() == s.ask()).all())
True
"""

from __future__ import annotations

import contextlib
import math
import warnings
from functools import cached_property, partial
from typing import Any, Callable

import numpy as np

from evostrat.backends.programs import program_key
from evostrat.kernels import kernel_program, row_sigma
from evostrat.errors import InvalidArgumentError, InvalidTypeError, NonFiniteFitnessWarning, PopulationMismatchError, StateError
from evostrat.backends.points import resolve_backend, stack_rows
from evostrat.run.behaviours import check_outcome
from evostrat.run.deferred_state import DeferredStateSlot
from evostrat.run.inject import check_solutions, place_injections, repaired_population
from evostrat.run.picklable import PicklableRunner
from evostrat.run.state_arrays import state_from_numpy, state_to_numpy  # (their former home: kept importable)
from evostrat.strategies.checked import checked_ask, checked_first, checked_state
from evostrat.strategies.state_type import unchecked
from evostrat.strategies.told import unchecked_tell

__all__ = ["AskTell", "state_to_numpy", "state_from_numpy"]

NONFINITE_POLICIES = ("warn", "ignore", "raise")


class AskTell(PicklableRunner):
    """Stateful ask/tell around a :class:`~evostrat.strategies.base.Strategy`.

    Parameters
    ----------
    strategy : Strategy
    x0 : array, shape (dim,)
        Initial mean; its type chooses the backend unless ``backend`` is given.
    random_state : int, optional
        Seed; same seed and backend give the same trajectory bit for bit.
    backend : str
        ``"auto"`` (from ``x0``), ``"numpy"``, ``"torch"`` or ``"jax"``.
    dtype, device : optional
        Floating dtype and torch/JAX device of the state.
    nonfinite : {"warn", "ignore", "raise"}
        What to do with NaN/inf fitness (see module docstring).
    state : NamedTuple or deferred state, optional
        The initial state, already built by ``strategy`` around ``x0`` with ``random_state``:
        taken as it is, not checked; or an object with ``mean`` (the state's) and ``resolve()``
        (the state, called when first read: a batch's run, :mod:`evostrat.run.batch_init`).
    owns_strategy : bool
        Nothing else changes ``strategy``'s hyper-parameters while this runs (the driver's runs):
        on numpy its kernel's ``ask`` and ``tell`` are then called directly (:func:`~evostrat.kernels.kernel_program`).

    Attributes
    ----------
    state : NamedTuple
        The strategy's current state.
    initial_mean : array, shape (dim,)
        The mean of the initial state (``x0`` validated).
    generation : int
        Completed ``tell`` calls.
    n_evals : int
        Candidates told so far.
    pending : array or None
        The population of the last ``ask`` not yet told, or ``None``.
    best_x, best_f : array or None, float
        The best candidate told through :meth:`tell` so far and its value (``inf``
        before any); candidates of :meth:`inject` and repaired ones count as evaluated.
    """

    state = DeferredStateSlot()  # set in __init__, or a deferred state resolved when first read

    def __init__(self, strategy: Any, x0: Any, random_state: int | None = None, *, backend: Any = "auto",
                 dtype: Any = None, device: Any = None, nonfinite: str = "warn", state: Any = None,
                 owns_strategy: bool = False) -> None:
        if not callable(getattr(strategy, "initial_state", None)):  # not a Strategy (see its contract)
            raise InvalidTypeError(f"strategy must be an evostrat Strategy instance, got {type(strategy).__name__}")
        if not isinstance(nonfinite, str) or nonfinite not in NONFINITE_POLICIES:
            raise InvalidArgumentError(f"nonfinite must be one of {NONFINITE_POLICIES}, got {nonfinite!r}")
        self.strategy = strategy
        self.backend = resolve_backend(x0, backend)
        if callable(getattr(state, "resolve", None)):  # deferred: built when first read (DeferredStateSlot)
            self._deferred, x = state, state.mean
        else:
            self.state = state if state is not None else strategy.init(
                x0, None, self.backend, random_state=random_state, dtype=dtype, device=device)
            x = strategy.mean(self.state)  # x0 as validated by init
        self.initial_mean, self.device = x, self.backend.device(x)
        self.dtype, self.dim = x.dtype, int(x.shape[0])
        self.popsize = strategy.resolved_popsize(self.dim)
        self.told_shape = (self.popsize,)  # the shape of told fitness values
        self.nonfinite, self.owns_strategy = nonfinite, bool(owns_strategy)
        self.pending: Any = None  # the population of the last ask not yet told (an attribute: read each tell)
        self.generation = self.n_evals = 0
        self.best_x, self.best_f = None, math.inf
        self.injections: list[np.ndarray] = []  # queued by inject(), placed by the next ask()
        self.injected_rows: tuple[int, ...] = ()  # rows of the pending population that were injected

    # -- the compiled pure methods (compiled on first use, shared by equal strategies) -------
    @cached_property
    def _ask(self) -> Any:  # its first result checked against the contract, then the program alone
        shape = (self.popsize, self.dim)  # the state is its own: ask without the state check
        return checked_first(self.__dict__, "_ask", self._program(unchecked(self.strategy, "ask")),
                             lambda out: checked_ask(self.strategy, out, shape, self.state, self.dtype))

    @cached_property
    def _tell(self) -> Any:  # X and the values are checked by tell() here
        return checked_first(self.__dict__, "_tell", self._program(unchecked_tell(self.strategy)),
                             lambda state: checked_state(self.strategy, state, "tell", self.state))

    def _program(self, method: Any) -> Any:
        """``method`` compiled; on numpy (no compiler) for an ``owns_strategy`` runner, what it runs (its kernel's)."""
        if self.backend.host_arrays and self.owns_strategy:
            return kernel_program(self.strategy, method, self.state)
        return self.backend.compile(method, key=program_key(method, self.dim, str(self.dtype)))

    # -- read-outs ------------------------------------------------------------------
    @property
    def mean(self) -> Any:
        """Current centre of the search distribution."""
        return self.strategy.mean(self.state)

    @property
    def sigma(self) -> float:
        """Largest per-coordinate standard deviation, as a Python float."""
        return self.sigma_of(self.state)

    def sigma_of(self, state: Any) -> float:
        """:attr:`sigma` of a strategy ``state`` of this runner."""
        return strategy_sigma(self.strategy, self.backend, state)

    @cached_property
    def row_sigma(self) -> tuple[Callable[[Any], Any], Callable[[list[Any]], list[float]] | None]:
        """How a history row reads sigma: the kernel's (:func:`~evostrat.kernels.row_sigma`), else the
        strategy's own (bound to the strategy, not to this runner, which caches it: no reference cycle)."""
        return row_sigma(self.strategy.kernel(self.state),
                         self.strategy.host_sigma or partial(strategy_sigma, self.strategy, self.backend))

    # -- ask / tell -----------------------------------------------------------------
    def ask(self) -> Any:
        """Sample and return a population of shape ``(popsize, dim)`` (asking again before ``tell``
        discards the earlier population)."""
        X, self.state = self._ask(self.state)
        self.injected_rows = ()
        if self.injections:
            X = place_injections(self, X)
        self.pending = X
        return X

    def unask(self, state: Any, injections: list[np.ndarray]) -> None:
        """Forget the pending population: back to ``state`` (the next ``ask`` draws it again), ``injections`` queued again."""
        self.state, self.pending, self.injected_rows = state, None, ()
        self.injections[:] = injections

    def inject(self, solutions: Any) -> None:
        """Candidates for the next :meth:`ask` to return first (pycma's ``inject``).

        ``solutions`` is one point ``(dim,)`` or several ``(k, dim)``; those beyond a population
        wait for the following asks. They are evaluated as given; the strategy learns from them
        with their step clipped in Mahalanobis length (:mod:`evostrat.run.inject`).
        """
        self.injections.extend(check_solutions(solutions, self.dim, self.backend))

    def told_population(self, X: Any, repaired: bool = False, asked: Any = None,
                        to_strategy: Any = None) -> Any:
        """The population the strategy learns from when the user evaluated ``X``.

        Without ``repaired``, ``X`` must be the pending population (``asked``: as the
        caller handed it out); with it, rows that differ from it are repaired candidates
        (mapped by ``to_strategy`` into the strategy's space when given). Injected and
        repaired rows have their steps clipped (:func:`~evostrat.run.inject.clip_steps`).
        """
        if not repaired:
            self.check_population(X, asked)
            if not self.injected_rows:  # the usual case
                return self.pending

        if not repaired:  # X is the asked population: the pending one, its injected rows' steps clipped
            return repaired_population(self, self.pending, None, to_strategy)
        return repaired_population(self, X, asked, to_strategy)

    def check_values(self, values: Any, expected_rows: int) -> Any:
        """``values`` validated for the strategy.

        Fitness strategies: a 1-D backend array of the state's dtype. Strategies
        with ``needs_behaviours``: an :class:`~evostrat.run.behaviours.Outcome` with
        behaviours ``(expected_rows, k)`` and the fitness, if given, checked as here
        (see :mod:`evostrat.run.behaviours` for the accepted forms).
        """
        if self.strategy.needs_behaviours:
            return check_outcome(self, values, expected_rows)
        return self.check_fitness(values, expected_rows)

    def check_fitness(self, values: Any, expected_rows: int) -> Any:
        """``values`` as a 1-D backend array of the state's dtype, validated."""
        if type(values) is np.ndarray and values.dtype is self.dtype and self.backend.host_arrays:
            v = values  # what asarray returns: the usual case, checked from the shape on
        else:
            v = self._as_values(values, expected_rows)
        if v.shape != (expected_rows,):
            raise InvalidArgumentError(f"values must have shape ({expected_rows},) (one value per candidate), "
                                       f"got shape {tuple(v.shape)}")
        # a finite dot product proves a numpy vector finite (the usual case, one cheap call)
        if self.nonfinite == "ignore" or (type(v) is np.ndarray and math.isfinite(v.dot(v))):
            return v
        be = self.backend
        finite = be.xp.isfinite(v)
        if bool(be.xp.all(finite)):
            return v
        bad = int(be.to_numpy(be.xp.sum(be.xp.astype(~finite, be.xp.int32))))
        message = (f"{bad} of {expected_rows} fitness values are NaN or infinite; NaN ranks worst and +/-inf "
                   "rank by their order (nonfinite='ignore' silences this, nonfinite='raise' makes it an error)")
        if self.nonfinite == "raise":
            raise InvalidArgumentError(message)
        warnings.warn(message, NonFiniteFitnessWarning, stacklevel=3)
        return v

    def _as_values(self, values: Any, expected_rows: int) -> Any:
        """``values`` as a backend array of the state's dtype (real numbers only)."""
        be = self.backend
        if isinstance(values, (list, tuple)):  # Python floats as float64 (torch's default float32 rounds them)
            with contextlib.suppress(TypeError, ValueError, RuntimeError):
                values = host if (host := np.asarray(values)).dtype.kind in "fiub" else values
        try:
            v = be.asarray(values, device=self.device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise InvalidTypeError(f"values must be an array of {expected_rows} real numbers, got "
                                   f"{type(values).__name__}: {err}") from err
        if v.dtype != self.dtype:  # the state's dtype is a real floating one
            if not be.xp.isdtype(v.dtype, ("real floating", "integral", "bool")):
                raise InvalidTypeError(f"values must be real numbers, got dtype {v.dtype}: the objective (or "
                                       "tell's values) must give one real number per candidate")
            v = be.asarray(v, dtype=self.dtype)
        return v

    def check_population(self, X: Any, asked: Any = None) -> None:
        """Raise unless ``X`` is (or equals) the population the last ``ask`` returned,
        as ``asked`` when the caller handed it out changed (mapped into bounds)."""
        if self.pending is None:
            raise StateError("tell() called without a pending ask(); call ask() first")
        pending = self.pending if asked is None else asked
        if X is pending:
            return
        X = stack_rows(X, self.backend, self.device, self.dtype)  # a list of the rows, as pycma's ask hands them out
        shape = getattr(X, "shape", None)
        if shape is None or tuple(shape) != tuple(pending.shape):
            raise PopulationMismatchError(f"X must be the population returned by ask(), of shape "
                                          f"{tuple(pending.shape)}; got {type(X).__name__} of shape {shape}")
        try:
            same = bool(self.backend.xp.all(self.backend.asarray(X, device=self.device) == pending))
        except (TypeError, ValueError, RuntimeError):
            same = False
        if not same:
            raise PopulationMismatchError("X differs from the population returned by the last ask(); tell() must "
                                          "receive the candidates that were asked (in the same order), or be "
                                          "called with repaired=True for repaired candidates (see also inject())")

    def tell(self, X: Any, values: Any, *, repaired: bool = False) -> None:
        """Update the strategy with the fitness ``values`` (minimised) of ``X``.

        Strategies with ``needs_behaviours`` take behaviours ``(popsize, k)``
        instead, optionally with fitness (see :mod:`evostrat.run.behaviours`).
        ``repaired=True`` accepts rows of ``X`` changed since :meth:`ask` (see
        :meth:`told_population`).
        """
        told = self.told_population(X, repaired)
        values = self.check_values(values, self.popsize)
        if self.strategy.needs_behaviours and isinstance(values, tuple):
            values = values.behaviours  # an Outcome: the strategy is told the behaviours
        else:
            self._track_best(X, values)
        self.update(values, told)

    def _track_best(self, X: Any, values: Any) -> None:
        v = np.asarray(self.backend.to_numpy(values), dtype=np.float64)
        v = np.where(np.isnan(v), np.inf, v)
        i = int(np.argmin(v))
        if v[i] < self.best_f:
            self.best_f = float(v[i])
            self.best_x = self.backend.asarray(X[i], device=self.device)

    def stop(self) -> dict[str, Any]:
        """The strategy's own termination criteria that hold now, as ``{name: True}``.

        Empty while none holds, so ``while not s.stop():`` reads as pycma's loop.
        Budgets and ``ftarget`` belong to the run: see :meth:`evostrat.ES.stop`.
        """
        stops = self.strategy.stop(self.state)
        return {name: True for name, hit in stops.items() if bool(self.backend.to_numpy(hit))}

    def sample(self, state: Any) -> tuple[Any, Any]:
        """The pure (compiled) ``ask`` on ``state``: ``(X, new_state)``; this object is unchanged."""
        return self._ask(state)

    def advance(self, state: Any, generations: int) -> None:
        """Take ``state``, reached by ``generations`` generations run elsewhere (compiled chunks, a
        torch batch); a deferred one (``resolve()``: :mod:`~evostrat.run.batch_stack`) is read when needed."""
        held = self.__dict__
        held.pop("_deferred", None), held.pop("state", None)
        held["_deferred" if callable(getattr(state, "resolve", None)) else "state"] = state
        self.pending = None
        self.generation += generations
        self.n_evals += generations * self.popsize

    def update(self, values: Any, X: Any = None) -> None:
        """Tell the strategy ``values`` (validated) for the pending population (or the
        population ``X`` from :meth:`told_population`) and count it."""
        self.state = self._tell(self.state, self.pending if X is None else X, values)
        self.pending = None
        self.injected_rows = ()
        self.generation += 1
        self.n_evals += self.popsize

    # -- state dictionaries ---------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly, as plain numpy arrays and numbers.

        Returns
        -------
        dict
            ``{"strategy", "backend", "dtype", "generation", "n_evals",
            "arrays": {name: ndarray}}``; no pickled objects.
        """
        return {"strategy": self.strategy.name, "backend": self.backend.name,
                "dtype": self.backend.dtype_name(self.dtype), "dim": self.dim, "popsize": self.popsize,
                "generation": self.generation, "n_evals": self.n_evals,
                "arrays": state_to_numpy(self.state, self.backend)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the next ``ask`` matches the saved run's."""
        for field, mine in (("strategy", self.strategy.name), ("dim", self.dim), ("popsize", self.popsize)):
            if state_dict.get(field) != mine:
                raise InvalidArgumentError(f"state_dict was saved with {field}={state_dict.get(field)!r}; "
                                           f"this object has {field}={mine!r}")
        self.state = state_from_numpy(self.state, state_dict["arrays"], self.backend, self.device)
        self.generation = int(state_dict["generation"])
        self.n_evals = int(state_dict["n_evals"])
        self.pending = None

    def __repr__(self) -> str:
        return (f"AskTell({self.strategy!r}, backend={self.backend.name!r}, dim={self.dim}, "
                f"popsize={self.popsize}, generation={self.generation})")


def strategy_sigma(strategy: Any, backend: Any, state: Any) -> float:
    """``strategy.sigma(state)`` as a Python float (:meth:`AskTell.sigma_of`).

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat.backends import get_backend
    >>> from evostrat.plugins.factories import make_strategy
    >>> s = make_strategy("snes", None, sigma0=0.5)
    >>> strategy_sigma(s, get_backend(np.ones(2)), s.init(np.ones(2), random_state=0))
    0.5
    """
    value = strategy.sigma(state)
    return float(value if isinstance(value, float) else backend.to_numpy(value))
