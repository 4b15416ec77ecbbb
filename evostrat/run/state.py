"""The run as a value: what one optimisation has done so far, with a declared schema.

:class:`RunState` holds everything a run is besides the strategy's own state
(which lives in the stateful :class:`~evostrat.run.asktell.AskTell` runner):
the best candidate and value so far, the counters over all restarts, the
per-generation ``history``, the restart records and plan, the stop reason and
the elapsed time. The one driver (:class:`~evostrat.run.driver.Driver`) is the
only code that advances it; the estimator reads it.

Checkpoints store it through :data:`RUN_SCHEMA`: every field has a declared
type, loading checks each one and never sets an attribute that the schema
does not name.

Examples
--------
>>> import math
>>> state = RunState.empty(maximize=False)
>>> state.best_f, state.n_evals, state.stop_reason
(inf, 0, None)
>>> sorted(RUN_SCHEMA)[:3]
['best_f', 'n_evals', 'n_generations']
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from time import perf_counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Iterable

from evostrat.errors import CheckpointError, NoSolutionWarning, NotFittedError

__all__ = ["ROW_KEYS", "RunState", "RUN_SCHEMA", "SignedFirst", "SignedLater", "check_schema", "first_stop",
           "fitted_attribute", "fitted_run", "is_count", "is_int", "is_real", "is_reals", "warn_nothing_found"]


def is_int(v: Any) -> bool:
    """An int (``bool`` excluded): a schema type check."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_real(v: Any) -> bool:
    """A real number (``bool`` excluded): a schema type check."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def is_count(v: Any) -> bool:
    """An int in ``[0, 2**63)`` (a counter, stored as int64; ``bool`` excluded): a schema type check."""
    return is_int(v) and 0 <= v < 2**63


def is_reals(v: Any) -> bool:
    """A list of real numbers: a schema type check."""
    return isinstance(v, list) and all(map(is_real, v))


#: The columns of a history row of a generation told fitness, in order (more follow with
#: restarts, constraints or behaviours).
ROW_KEYS = ("generation", "n_evals", "best", "generation_best", "median", "sigma", "time")

#: Field name -> (type check, what a checkpoint must hold). The plain-data part of
#: :class:`RunState`; ``best_x``, ``history`` and the plan are stored on their own.
RUN_SCHEMA: dict[str, tuple[Any, str]] = {
    "best_f": (lambda v: is_real(v) and not math.isnan(v), "a real number (not NaN)"),
    "n_evals": (is_count, "an int >= 0 and < 2**63"),
    "n_generations": (is_count, "an int >= 0 and < 2**63"),
    "run_start": (lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(map(is_count, v)),
                  "a pair of ints >= 0"),
    "restarts": (lambda v: isinstance(v, list) and all(
        isinstance(r, dict) and all(isinstance(k, str) for k in r) for r in v), "a list of dicts"),
    "stop_reason": (lambda v: v is None or isinstance(v, str), "a string or null"),
}


def check_schema(values: Any, schema: dict[str, tuple[Any, str]], what: str) -> dict[str, Any]:
    """``values`` if it has exactly the fields of ``schema``, each of the declared type.

    Raises
    ------
    CheckpointError
        Naming the first missing, unknown or mistyped field.

    Examples
    --------
    >>> check_schema({"n_evals": 3}, {"n_evals": (is_int, "an int")}, "run")
    {'n_evals': 3}
    >>> check_schema({"n_evals": "3"}, {"n_evals": (is_int, "an int")}, "run")
    Traceback (most recent call last):
    ...
    evostrat.errors.CheckpointError: checkpoint run field 'n_evals' must be an int, got str
    """
    if not isinstance(values, dict):
        raise CheckpointError(f"checkpoint {what} state is malformed")
    if set(values) != set(schema):
        raise CheckpointError(
            f"checkpoint {what} state has fields {sorted(map(str, values))}, this evostrat's has "
            f"{sorted(schema)}: the checkpoint comes from another evostrat version"
        )
    for name, (ok, expected) in schema.items():
        if not ok(values[name]):
            raise CheckpointError(
                f"checkpoint {what} field {name!r} must be {expected}, got {type(values[name]).__name__}"
            )
    return values


def first_stop(stops: dict[str, Any]) -> str | None:
    """The first strategy criterion that holds (``stop(state)`` order), or ``None``."""
    if not any(stops.values()):  # the usual case, without a generator
        return None
    return next(name for name, hit in stops.items() if hit)


def warn_nothing_found(state: "RunState", constrained: bool) -> None:
    """Warn (:class:`~evostrat.errors.NoSolutionWarning`) that the run ``state`` ended with no
    candidate better than ``inf`` (``-inf`` maximising): ``x_`` is then the initial mean (in the box),
    never evaluated, and ``fun_`` that infinity, as pycma's ``fbest`` (its ``xbest`` is ``None``)."""
    what = "no feasible candidate (or none of a finite value)" if constrained else \
        "no candidate of a finite value (every value NaN or infinite)"
    warnings.warn(f"the run stopped ({state.stop_reason}) after {state.n_evals} evaluations with {what}: x_ "
                  f"is the initial mean, never evaluated, and fun_ is {state.best_f}", NoSolutionWarning,
                  stacklevel=4)


class SignedFirst:
    """A :class:`RunState` attribute read and set after its waiting rows are signed (they came
    first); the value lives in ``signed_<name>``."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.field = f"signed_{name}"

    def __get__(self, state: Any, owner: type | None = None) -> Any:
        if state is None:
            return self
        if state.unsigned:
            state.sign()
        return getattr(state, self.field)

    def __set__(self, state: Any, value: Any) -> None:
        if state.unsigned:
            state.sign()
        setattr(state, self.field, value)


class SignedLater(SignedFirst):
    """A :class:`SignedFirst` attribute whose value may be set as a function of no arguments, called
    (once) when the attribute is first read: a compiled chunk's search for when its best was found."""

    def __get__(self, state: Any, owner: type | None = None) -> Any:
        value = SignedFirst.__get__(self, state, owner)
        if state is not None and callable(value):
            value = value()
            setattr(state, self.field, value)
        return value


@dataclass
class RunState:
    """Best so far, counters, history, restart records and stop reason of one run.

    Attributes
    ----------
    best_x, best_f, best_evals
        The best candidate so far, its value and when it was evaluated (properties: :meth:`sign` first).
    n_evals, n_generations : int
        Over all restarts.
    run_start : (int, int)
        ``(n_evals, n_generations)`` when the current restart run started.
    history : list of dict
        One entry per generation (see :meth:`evostrat.ES.fit`); the usual numpy generation
        waits in :attr:`unsigned` until :meth:`sign` makes its row a tuple (:attr:`raw`),
        compiled chunks add theirs as ``history_blocks`` (functions that build the rows),
        all made dicts when it is read.
    restarts : list of dict
        One record per restart run (:mod:`evostrat.run.restarts`).
    plan : RunPlan or None
        The current restart run's plan.
    stop_reason : str or None
    started : float
        ``time.perf_counter()`` at the start, shifted back by the time a resumed
        run had already spent.
    """

    #: :attr:`best_x` and :attr:`best_f` as of the last :meth:`sign`
    signed_best_x: Any
    signed_best_f: float
    signed_best_evals: int = 0
    n_evals: int = 0
    n_generations: int = 0
    run_start: tuple[int, int] = (0, 0)
    history_rows: list[dict[str, Any]] = field(default_factory=list)
    history_blocks: list[Callable[[], Iterable[dict[str, Any]]]] = field(default_factory=list, repr=False)
    restarts: list[dict[str, Any]] = field(default_factory=list)
    plan: Any = None
    started: float = field(default_factory=time.perf_counter)
    #: ``() -> reason`` of the latest generation (its criteria, deferred by the driver),
    #: called when :attr:`stop_reason` is next read
    stop_pending: Callable[[], str | None] | None = field(default=None, repr=False)
    reason: str | None = field(default=None, repr=False)
    #: rows of the usual generation kept as tuples in :data:`ROW_KEYS` order (of numbers only, so
    #: the garbage collector stops tracking them), made dicts when :attr:`history` is read
    raw: list[tuple[Any, ...]] = field(default_factory=list, repr=False)
    #: generations recorded by :meth:`add_generation` and not yet made rows (:meth:`sign`): each
    #: holds its population, values and sigma or sigma's parts (no strategy state); at most
    #: :attr:`sign_limit` wait (the driver: about 2**16 numbers kept)
    unsigned: list[tuple[Any, ...]] = field(default_factory=list, repr=False)
    #: ``state -> sigma`` as a Python float (the runner's ``row_sigma``), or, with
    #: :attr:`sigmas_of`, ``state ->`` what that needs to read it when the row is signed
    sigma_of: Callable[[Any], Any] | None = field(default=None, repr=False)
    #: the sigmas of many :attr:`sigma_of` answers at once (a kernel's ``host_sigmas``), or ``None``
    sigmas_of: Callable[[list[Any]], list[float]] | None = field(default=None, repr=False)
    sign_limit: int = field(default=1, repr=False)
    #: the run's criteria (a :class:`~evostrat.run.termination.Termination`), told the signed
    #: generations, and whether the run maximises
    criteria: Any = field(default=None, repr=False)
    maximize: bool = field(default=False, repr=False)

    #: the best candidate so far (in the box when the run has bounds) and its value in the user's
    #: sense (``-inf`` before any when maximising), read and set after the waiting rows are signed
    best_x = SignedFirst()
    best_f = SignedFirst()
    #: the evaluation count when the best so far was evaluated (pycma's ``evals_best``): the
    #: evaluations before its generation plus its position in the population, from 1 (a compiled
    #: chunk sets the search for it, made when read)
    best_evals = SignedLater()

    def add_generation(self, values: list[float], X: Any, runner: Any) -> None:
        """Record a numpy generation told the finite ``values`` (in the user's sense) of ``X``,
        without restarts, extra columns or constraints (the driver's usual case), as
        :meth:`Driver.record <evostrat.run.driver.Driver.record>` would: the counters and sigma
        (:attr:`sigma_of` the generation's state, which is not kept) now; the best so far, its
        row, median and the deferred criteria's entry when :meth:`sign` next runs (at most
        :attr:`sign_limit` generations later, or when the best so far, the history or the
        criteria are read)."""
        start_evals, start_generations = self.run_start
        generation, state, criteria = runner.generation, runner.state, self.criteria
        n_evals = self.n_evals = start_evals + runner.n_evals
        n_generations = self.n_generations = start_generations + generation
        if self.history_blocks:  # compiled chunks' rows come first
            self.flush_rows()
        unsigned = self.unsigned
        unsigned.append((generation, n_generations, n_evals, X, values, self.sigma_of(state),
                         perf_counter() - self.started, criteria.path_of(state)))  # path: tolx's sigma p_c
        if len(unsigned) >= self.sign_limit:
            self.sign()
        criteria.told_state, self.stop_pending = state, criteria.latest_reason  # reason: set when stop_pending is read

    def append(self, entry: dict[str, Any]) -> None:
        """Append a history row given as a dict, after the rows before it (after blocks waiting to be
        built as a block of its own: they are built when the history is read)."""
        if self.history_blocks and not (self.raw or self.unsigned):
            self.history_blocks.append(partial(list, (entry,)))
        else:
            (self.history if self.raw or self.unsigned else self.history_rows).append(entry)

    def sign(self) -> None:
        """Make the :attr:`unsigned` generations rows (the best so far updated, their sigmas read,
        :attr:`sigmas_of`) and entries of the criteria's deferred generations, in order."""
        pending, self.unsigned = self.unsigned, []
        if not pending:
            return
        criteria, maximize = self.criteria, self.maximize
        deferred, presorted, best, found = criteria.deferred, not maximize, self.signed_best_f, None
        stagnation = presorted and bool(criteria.tolstagnation)  # dates the best by its position (pycma's best.evals)
        kept = [entry[5] for entry in pending]  # sigmas, or what sigmas_of reads them from
        sigmas = kept if self.sigmas_of is None else self.sigmas_of(kept)
        add_row, add_entry = self.raw.append, deferred.append
        for (generation, n_generations, n_evals, X, values, _, elapsed, path), sigma in zip(pending, sigmas):
            ranked = sorted(values)  # stable: ranked[0] is the first minimum, as argmin's
            gen_best = max(values) if maximize else ranked[0]  # max: the first one, as argmax's
            if gen_best > best if maximize else gen_best < best:
                best, found = gen_best, (X, values, n_evals)  # the latest improvement becomes best_x below
            n = len(ranked)
            m = n >> 1
            add_row((n_generations, n_evals, best, gen_best, ranked[m] if n & 1 else 0.5 * (ranked[m - 1] + ranked[m]),
                     sigma, elapsed))
            add_entry((generation, n_evals, best, ranked if presorted else values, sigma, presorted,
                       values.index(gen_best) if stagnation else None, path))  # the best's position
        if found is not None:
            X, values, n_evals = found
            at = values.index(best)
            self.signed_best_f, self.signed_best_x = best, X[at]  # numpy's asarray of a row is the row
            self.signed_best_evals = n_evals - len(values) + at + 1
        if len(deferred) >= criteria.defer_limit:
            criteria.flush()

    @property
    def stop_reason(self) -> str | None:
        """Why the run stopped, or ``None`` while it goes on."""
        if self.stop_pending is not None:
            pending, self.stop_pending = self.stop_pending, None
            self.reason = pending()
        return self.reason

    @stop_reason.setter
    def stop_reason(self, reason: str | None) -> None:
        self.stop_pending, self.reason = None, reason

    @classmethod
    def empty(cls, maximize: bool) -> "RunState":
        """A run that has evaluated nothing yet."""
        return cls(signed_best_x=None, signed_best_f=-math.inf if maximize else math.inf, maximize=maximize)

    @property
    def history(self) -> list[dict[str, Any]]:
        """The rows, the pending ones made dicts first (:meth:`flush_rows`)."""
        return self.flush_rows()

    @history.setter
    def history(self, rows: list[dict[str, Any]]) -> None:
        self.history_rows, self.history_blocks, self.raw, self.unsigned = rows, [], [], []

    def flush_rows(self) -> list[dict[str, Any]]:
        """:attr:`history_rows` with the :attr:`raw` rows (signed) and then the pending blocks
        appended as dicts."""
        if self.unsigned:
            self.sign()
        if self.raw:
            rows, self.raw = self.raw, []
            self.history_rows.extend([  # ROW_KEYS, as a literal (2.5x dict(zip(ROW_KEYS, row)))
                {"generation": g, "n_evals": e, "best": b, "generation_best": gb, "median": md, "sigma": s, "time": t}
                for g, e, b, gb, md, s, t in rows])
        if self.history_blocks:
            blocks, self.history_blocks = self.history_blocks, []
            for block in blocks:
                self.history_rows.extend(block())
        return self.history_rows

    def elapsed(self) -> float:
        """Seconds since the run started (including a resumed run's earlier time)."""
        return time.perf_counter() - self.started

    def schema_values(self) -> dict[str, Any]:
        """The :data:`RUN_SCHEMA` fields as plain data."""
        values = {name: getattr(self, name) for name in RUN_SCHEMA}
        values["run_start"] = list(self.run_start)
        values["best_f"] = float(self.best_f)
        return values

    def load_schema_values(self, values: Any) -> None:
        """Set the :data:`RUN_SCHEMA` fields from checked plain data."""
        values = check_schema(values, RUN_SCHEMA, "run")
        self.best_f = float(values["best_f"])
        self.n_evals = int(values["n_evals"])
        self.n_generations = int(values["n_generations"])
        self.run_start = (int(values["run_start"][0]), int(values["run_start"][1]))
        self.restarts = [dict(r) for r in values["restarts"]]
        self.stop_reason = values["stop_reason"]


def fitted_attribute(name: str, doc: str, settable: bool = False, attribute: str | None = None) -> property:
    """A fitted attribute of :class:`~evostrat.ES` (``attribute``, default ``name_``) that reads (and,
    when ``settable``, writes) the :class:`RunState` value ``name`` of its run."""
    attribute = attribute or f"{name}_"

    def get(es: Any) -> Any:
        return getattr(fitted_run(es, attribute).state, name)

    def put(es: Any, value: Any) -> None:
        setattr(fitted_run(es, attribute).state, name, value)

    return property(get, put if settable else None, doc=doc)


def fitted_run(es: Any, what: str) -> Any:
    """The run (:class:`~evostrat.run.driver.Driver`) of the estimator ``es``, for reading ``what``.

    Raises
    ------
    NotFittedError
        When ``es`` has no run yet (an ``AttributeError`` too: scikit-learn's ``hasattr``).
    """
    run = es.__dict__.get("run_")
    if run is None:
        raise NotFittedError(f"{what} is not available: this ES has no run; call fit(objective, x0) "
                             "or initialize(x0) first")
    return run
