"""The run features a checkpoint stores besides the strategy: constraints, integer margins, noise.

A run with ``constraints`` (:mod:`evostrat.constraints`), ``integer`` coordinates
(:mod:`evostrat.run.integers`) or ``noise_handling`` (:mod:`evostrat.run.noise`) learns
state outside the strategy: the augmented Lagrangian's coefficients and its window of
constraint values, the CMA-ES-with-margin scaling ``A``, the uncertainty handling's
measure, evaluations per candidate, generator and pending sigma factor. The metadata's
``"features"`` field holds it (``null`` for a run with none, or for checkpoints written
before these were stored), each part under :data:`FEATURES_SCHEMA` and then checked field
by field by the object that owns it, so a resumed run is bit-identical to the
uninterrupted one. A constraint *function* is code and is never stored: a run fitted with
``constraints=g`` is resumed with ``ES.resume(path, objective, constraints=g)``. The
candidates queued by ``inject`` for the next ``ask`` (a callback may inject at a checkpointed
generation) are the metadata's ``"injections"`` (:func:`capture_injections`). An objective that
learns as the run goes (the running observation statistics of
:class:`~evostrat.problems.gym.GymProblem`) keeps its state in the metadata's ``"objective"``
when it has ``checkpoint_state()`` and ``load_checkpoint_state(state)``
(:func:`capture_objective`, :func:`restore_objective`). A callable ``x0``, which starts each
restart run, is code too: the metadata's ``"x0_callable"`` says the run had one, and
``ES.resume(path, objective, x0=draw)`` passes it again (:func:`restore_x0_source`).

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.checkpoint.state import capture, restore
>>> es = ES("cma_es", integer=[0], max_generations=5, random_state=0).fit(
...     lambda X: (X ** 2).sum(axis=1), np.full(2, 3.0))
>>> meta, arrays = capture(es)
>>> sorted(k for k, v in meta["features"].items() if v is not None)
['integers']
>>> bool((restore(meta, arrays).run_.integers.A == es.run_.integers.A).all())
True
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from evostrat.checkpoint.codec import Unencodable, decode, encode
from evostrat.constraints.base import HANDLERS, MissingConstraintFunction
from evostrat.constraints.tracker import ConstrainedRun, restore_handler
from evostrat.errors import CheckpointError, InvalidArgumentError, InvalidTypeError
from evostrat.run.bounds import MARGIN_RULES, MARGINS, margins_of
from evostrat.run.noise import NoisyEvaluator, aggregation
from evostrat.run.state import check_schema

__all__ = ["FEATURES_SCHEMA", "CONSTRAINTS_SCHEMA", "capture_features", "check_constraint_function",
           "restore_features", "capture_injections", "restore_injections", "capture_objective", "restore_objective",
           "MissingStartPoint", "restore_x0_source", "saved_margins"]

_DICT_OR_NULL = (lambda v: v is None or isinstance(v, dict), "a dict or null")
#: The parts of the metadata's ``"features"``; ``"aggregate"``: how the run aggregates repeated
#: evaluations (``null``: it evaluates each candidate once). A file without it was written when
#: they were averaged: its run resumes with the mean (:func:`restore_features`). ``"bounds_margins"``:
#: the rule of the box's margins (:func:`evostrat.run.bounds.margin_width`; ``null``: no box); a file
#: without it was written with pycma 3's (:func:`saved_margins`).
FEATURES_SCHEMA: dict[str, tuple[Any, str]] = {
    **dict.fromkeys(("constraints", "integers", "noise"), _DICT_OR_NULL),
    "aggregate": (lambda v: v is None or v in ("median", "mean"), "'median', 'mean' or null"),
    "bounds_margins": (lambda v: v is None or v in MARGIN_RULES, f"one of {MARGIN_RULES} or null"),
}
#: The constraints part: how the run gets ``g`` (``"callable"``: passed to ``resume`` again),
#: the ``constraint_handler`` (a name, or a built-in handler's state) and the run's handler state.
CONSTRAINTS_SCHEMA: dict[str, tuple[Any, str]] = {
    "function": (lambda v: v in (None, "objective", "callable"), "null, 'objective' or 'callable'"),
    "spec": (lambda v: v in HANDLERS or isinstance(v, dict), f"one of {HANDLERS} or a handler state"),
    "run": _DICT_OR_NULL,
}


def _constraints(driver: Any) -> dict[str, Any] | None:
    fn, spec, run = driver.constraint_fn, driver.constraint_spec, driver.constrained
    if fn is None and run is None:
        return None
    if not isinstance(spec, str):  # a handler instance: the run's handler when it has started
        spec = {"handler": spec.name, "state": spec.state_values()}
    return {"function": None if fn is None else fn if isinstance(fn, str) else "callable", "spec": spec,
            "run": None if run is None else run.state_values()}


def capture_features(driver: Any, arrays: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """The ``"features"`` metadata of ``driver`` (arrays added to ``arrays``); ``None`` without any.

    Raises
    ------
    CheckpointError
        For a state a checkpoint cannot store (a custom constraint handler).
    """

    noise = driver.noise.state_values() if driver.noise is not None else driver.noise_resume
    values = {
        "constraints": _constraints(driver),
        "integers": None if driver.integers is None else driver.integers.state_values(driver.runner),
        "noise": noise,
        "aggregate": aggregation(driver),
        "bounds_margins": margins_of(driver.bounds),
    }
    if all(v is None for v in values.values()):
        return None
    try:
        return {name: encode(value, arrays, f"features/{name}") for name, value in values.items()}
    except Unencodable as err:
        raise CheckpointError(f"cannot checkpoint the run: {err}") from err


def capture_objective(objective: Any, arrays: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """The metadata's ``"objective"``: ``objective.checkpoint_state()`` (plain data and arrays)
    encoded, for an objective that has the method; ``None`` for any other (or a ``None`` state).

    Raises
    ------
    CheckpointError
        For a state the checkpoint format does not store (named with its path).
    """
    method = getattr(objective, "checkpoint_state", None)
    state = method() if callable(method) else None
    if state is None:
        return None
    try:
        return {"state": encode(state, arrays, "objective")}
    except Unencodable as err:
        raise CheckpointError(f"cannot checkpoint the objective's state: {err}") from err


def restore_objective(objective: Any, saved: Any, arrays: dict[str, np.ndarray]) -> None:
    """Give ``objective`` back the state :func:`capture_objective` saved (arrays as numpy arrays),
    through its ``load_checkpoint_state(state)``; nothing when none was saved.

    Raises
    ------
    InvalidTypeError
        When a state was saved and ``objective`` cannot take it back.
    CheckpointError
        For a malformed ``saved``.
    """
    if saved is None:
        return
    if not isinstance(saved, dict) or set(saved) != {"state"}:
        raise CheckpointError("checkpoint objective state is malformed")
    load = getattr(objective, "load_checkpoint_state", None)
    if not callable(load):
        raise InvalidTypeError(f"the checkpoint holds its objective's state (from checkpoint_state()); the "
                               f"objective must take it back with load_checkpoint_state(state), got "
                               f"{type(objective).__name__} without one")
    load(decode(saved["state"], arrays, lambda a, _backend: np.array(a, copy=True)))


def check_constraint_function(features: Any, function: Any) -> None:
    """Check ``resume(constraints=function)`` against what the checkpoint's run used.

    A run fitted with ``constraints=g`` loads without ``g`` (a warm start, an ask/tell
    loop); continuing it with ``fit``'s loop asks for it
    (:class:`~evostrat.constraints.base.MissingConstraintFunction`).

    Raises
    ------
    InvalidArgumentError
        When ``function`` is not callable, or is given for a run without a constraint function.
    """
    saved = features.get("constraints") if isinstance(features, dict) else None
    kind = saved.get("function") if isinstance(saved, dict) else None
    if kind == "callable" and function is not None and not callable(function):
        raise InvalidArgumentError(f"resume(constraints=...) must be the run's constraint function g(x), got "
                                   f"{type(function).__name__}")
    if kind != "callable" and function is not None and function != kind:
        raise InvalidArgumentError(f"resume(constraints=...) was given, but the checkpointed run's constraints "
                                   f"were {kind!r} (None: not from fit(constraints=...))")


def restore_features(driver: Any, features: Any, arrays: dict[str, np.ndarray], function: Any) -> None:
    """Set the checkpoint's ``"features"`` on the freshly rebuilt ``driver`` (strategy state loaded).

    Raises
    ------
    CheckpointError
        For a malformed part, or a part the run's parameters do not have.
    """
    if features is None or "aggregate" not in features:  # written before the aggregation was recorded
        option = driver.config.noise_handling  # the option existed then only as the mean: named, it is new
        named = isinstance(option, dict) and "aggregate" in option
        driver.noise_aggregate = "mean" if aggregation(driver) is not None and not named else None
        if features is None:  # a run without these features, or a checkpoint from before they were stored
            return
        features = {**features, "aggregate": driver.noise_aggregate}
    if "bounds_margins" not in features:  # written before the rule was stored: the run was rebuilt with pycma 3's
        features = {**features, "bounds_margins": margins_of(driver.bounds)}
    parts = check_schema(features, FEATURES_SCHEMA, "features")
    values = {name: decode(part, arrays) for name, part in parts.items()}
    runner = driver.runner
    if (values["aggregate"] is None) != (aggregation(driver) is None):
        raise CheckpointError(f"checkpoint aggregate {values['aggregate']!r} does not match its run's "
                              f"reevaluations and noise_handling (an aggregation only for repeated evaluations)")
    driver.noise_aggregate = values["aggregate"]
    if values["bounds_margins"] != margins_of(driver.bounds):  # restore rebuilt the box with saved_margins()
        raise CheckpointError(f"checkpoint bounds_margins {values['bounds_margins']!r} does not match its run's "
                              f"bounds ({'a box' if driver.bounds is not None else 'none'})")
    if values["integers"] is not None:
        if driver.integers is None:
            raise CheckpointError("checkpoint holds an integer margin state, but its run has no integer coordinates")
        driver.integers.load_state_values(values["integers"], runner)
    if values["noise"] is not None:
        if driver.config.noise_handling is None or driver.config.noise_handling is False:
            raise CheckpointError("checkpoint holds a noise handling state, but its run has no noise_handling")
        driver.noise_resume = NoisyEvaluator.check_state_values(values["noise"])
    if values["constraints"] is not None:
        saved = check_schema(values["constraints"], CONSTRAINTS_SCHEMA, "constraints")
        spec = saved["spec"] if isinstance(saved["spec"], str) else restore_handler(saved["spec"], runner.dim)
        driver.constraint_spec = spec
        driver.constraint_fn = saved["function"]
        if saved["function"] == "callable":
            driver.constraint_fn = function if function is not None else MissingConstraintFunction()
        if saved["run"] is not None:
            driver.constrained = ConstrainedRun(spec, runner.strategy.name, runner.dim)
            driver.constrained.load_state_values(saved["run"])
            driver.constrained_termination()


@contextlib.contextmanager
def saved_margins(features: Any) -> Iterator[None]:
    """While a checkpoint's run is rebuilt, boxes are made with the margin rule the file was written
    with (:data:`evostrat.run.bounds.MARGINS`): its ``"features"``' ``"bounds_margins"``, pycma 3's
    for a file written before the rule was stored (before 2026-12-07), so that its run resumes exactly.

    Raises
    ------
    CheckpointError
        For a value that is not a rule (:func:`restore_features` names the field's type too).
    """
    value = features.get("bounds_margins", "pycma3") if isinstance(features, dict) else "pycma3"
    valid, expected = FEATURES_SCHEMA["bounds_margins"]
    if not valid(value):
        raise CheckpointError(f"checkpoint features field 'bounds_margins' must be {expected}, got {value!r}")
    token = MARGINS.set(value or "pycma4")
    try:
        yield
    finally:
        MARGINS.reset(token)


def capture_injections(runner: Any, arrays: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """The metadata of the candidates ``runner`` queued for its next ``ask`` (``None``: none)."""
    return encode(np.stack(runner.injections), arrays, "injections") if runner.injections else None


def restore_injections(runner: Any, data: Any, arrays: dict[str, np.ndarray]) -> None:
    """Queue the saved injected candidates on the rebuilt ``runner``.

    Raises
    ------
    CheckpointError
        When they are not finite float64 rows of the run's dimension.
    """
    rows = decode(data, arrays)
    if rows is None:  # none queued, or a checkpoint from before they were stored
        return
    if not (isinstance(rows, np.ndarray) and rows.dtype == np.float64 and rows.ndim == 2
            and rows.shape[1] == runner.dim and np.isfinite(rows).all()):
        raise CheckpointError(f"checkpoint injected candidates are not finite float64 rows of the saved "
                              f"dim {runner.dim}")
    runner.injections = list(np.array(rows, copy=True))


class MissingStartPoint:
    """The callable ``x0`` of a run loaded from a checkpoint, until it is passed again.

    A restart run calls it for its start point (:meth:`~evostrat.run.driver.Driver.draw_x0`);
    without the function that call raises, naming ``x0`` (``ES.resume`` checks before the
    first evaluation).
    """

    def __call__(self) -> Any:
        raise InvalidArgumentError("the checkpointed run was fitted with a callable x0, which starts each restart "
                                   "run and which a checkpoint does not store: pass it again, "
                                   "ES.resume(path, objective, x0=draw)")

    check = __call__


def restore_x0_source(driver: Any, saved: Any, source: Any) -> None:
    """Give ``driver`` the run's callable ``x0`` (``resume(x0=source)``), or a
    :class:`MissingStartPoint` when the checkpoint's run had one (``saved``) and none is given.

    Raises
    ------
    InvalidArgumentError
        When ``source`` is not callable, or is given for a run whose ``x0`` was a point.
    """
    if source is not None and (not saved or not callable(source)):
        what = "a callable" if saved else "only for a run fitted with a callable x0 (this run's x0 was a point)"
        raise InvalidArgumentError(f"resume(x0=...) must be {what}, got {type(source).__name__}")
    if saved:
        driver.x0_source = source if source is not None else MissingStartPoint()
