"""Capture an :class:`~evostrat.ES` mid-run as plain data, and rebuild it exactly.

A checkpoint holds the estimator's plain-data parameters (any other, such as an
``Evaluator`` instance, is listed as *unsaved* and must be passed again to
:func:`restore`), the strategy state (arrays and RNG keys: the next ``ask`` is the
uninterrupted run's), the run value (:class:`~evostrat.run.state.RunState`), the
restart plan and schedule, what the termination criteria have seen, the elapsed time
and optional user metadata. Each part has a declared schema: loading checks every
field's type and sets nothing else.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.checkpoint.state import capture, restore
>>> es = ES("snes", max_generations=30, random_state=0).initialize(np.ones(3))
>>> for _ in range(5):
...     X = es.ask(); _ = es.tell(X, (X ** 2).sum(axis=1))
>>> meta, arrays = capture(es)
>>> copy = restore(meta, arrays)
>>> bool((copy.ask() == es.ask()).all()), copy.n_generations_
(True, 5)
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import numpy as np

import evostrat
from evostrat.backends import Backend, get_backend
from evostrat.backends.points import allocation_limit
from evostrat.backends.structure_args import flat_bounds, flat_integer, flat_sigma
from evostrat.backends.structure_spec import structure_from_spec, structure_spec
from evostrat.checkpoint.codec import Unencodable, decode, encode, encode_metadata
from evostrat.checkpoint.features import (capture_features, capture_injections, capture_objective,
                                         check_constraint_function, restore_features, restore_injections,
                                         restore_x0_source, saved_margins)
from evostrat.checkpoint.history import decode_history, encode_history
from evostrat.errors import CheckpointError, InvalidArgumentError, StateError
from evostrat.estimator import ES
from evostrat.plugins import registered_name
from evostrat.plugins.factories import make_strategy
from evostrat.run.asktell import AskTell
from evostrat.run.restarts import GLOBAL_REASONS, SCHEDULE_SCHEMA, RunPlan, after_run
from evostrat.run.state import RUN_SCHEMA, check_schema, is_count, is_int, is_real
from evostrat.run.result import evals_best_from_history
from evostrat.run.termination import PROGRESS_SCHEMA
from evostrat.strategies.base import Strategy
from evostrat.strategies.state_checks import check_state_arrays

__all__ = ["capture", "restore", "RUNTIME_PARAMS", "BUDGET_PARAMS", "META_SCHEMA", "STATE_SCHEMA"]

#: Parameters that only say how candidates are evaluated: ``restore`` may replace them.
RUNTIME_PARAMS = frozenset({"evaluator", "evaluator_options"})
#: The budgets: ``restore`` may change them to any value not below what the run has spent,
#: and a run that its budget stopped then continues (:func:`restore`).
BUDGET_PARAMS = frozenset({"max_evals", "max_generations"})

_DICT, _STR = (lambda v: isinstance(v, dict), "a dict"), (lambda v: isinstance(v, str), "a string")
_OPTIONAL = ("format", "version", "arrays", "sha256",  # checked on read
             "checkpoint_every", "structure", "features", "injections", "objective", "x0_callable",
             "evals_best")  # optional
#: The top-level fields of a checkpoint's metadata and their declared types (each part
#: is then checked by its own schema or by :func:`~evostrat.checkpoint.codec.decode`).
META_SCHEMA: dict[str, tuple[Any, str]] = {
    **dict.fromkeys(_OPTIONAL[:4], (lambda v: True, "")),
    "params": (lambda v: isinstance(v, dict) and all(isinstance(s, dict) for s in v.values()), "a dict of dicts"),
    **dict.fromkeys(("state", "x0_init", "run", "best_x", "termination", "history", "user"), _DICT),
    **dict.fromkeys(("evostrat_version", "created"), _STR),
    **dict.fromkeys(("plan", "schedule"), (lambda v: v is None or isinstance(v, dict), "a dict or null")),
    "x0_type": (lambda v: v in ("list", "array"), "'list' or 'array'"),
    "elapsed": (lambda v: is_real(v) and 0 <= v < math.inf, "a finite number >= 0"),
    "checkpoint_every": (lambda v: v is None or is_int(v) and v >= 1, "an int >= 1 or null"),
    "structure": (lambda v: v is None or isinstance(v, dict), "a dict or null"),  # a structured x0's layout
    "features": (lambda v: v is None or isinstance(v, dict), "a dict or null"),  # checkpoint.features
    "injections": (lambda v: v is None or isinstance(v, dict), "a dict or null"),  # queued by inject()
    "objective": (lambda v: v is None or isinstance(v, dict), "a dict or null"),  # features.capture_objective
    "x0_callable": (lambda v: v is None or v is True, "true or absent"),
    "evals_best": (lambda v: v is None or is_int(v) and v >= 0, "an int >= 0 or absent"),  # run.result  # the run's x0 was a callable (checkpoint.features)
}
#: The fields of the strategy state (:meth:`AskTell.state_dict <evostrat.run.asktell.AskTell.state_dict>`).
STATE_SCHEMA: dict[str, tuple[Any, str]] = {
    **dict.fromkeys(("strategy", "backend", "dtype"), _STR),
    **dict.fromkeys(("dim", "popsize", "generation", "n_evals"), (is_count, "an int >= 0 and < 2**63")),
    "arrays": (lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v), "a list of names"),
}


def _family_name(value: Any) -> Any:
    """A class registered as a search distribution, as its registered name (which NES and ES take too)."""
    return isinstance(value, type) and registered_name(value, "distributions", exact=True) or value


def _encode_param(name: str, value: Any, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    if name == "strategy" and isinstance(value, Strategy):
        key = registered_name(type(value), exact=True)  # the registry's key, whatever a `name` attribute says
        if key:
            params = {k: _family_name(v) for k, v in value.get_params(deep=False).items()}
            with contextlib.suppress(Unencodable):  # a callable hyper-parameter: resume(..., strategy=...)
                return {"strategy": key, "params": encode(params, arrays, "params/strategy")}
        return {"unsaved": type(value).__name__}
    value = _family_name(value) if name == "distribution" else value
    if name == "restarts" and value is not None and not isinstance(value, (str, dict)):
        value = value.get_params() if hasattr(value, "get_params") else value
    if name == "dtype" and value is not None and not isinstance(value, str):
        value = Backend.dtype_name(value)  # torch.float32 -> "float32"
    if name == "device" and value is not None and not isinstance(value, str):
        value = str(value) if type(value).__name__ == "device" else value  # torch.device
    try:
        return {"value": encode(value, arrays, f"params/{name}")}
    except Unencodable:
        return {"unsaved": type(value).__name__}


def capture(es: Any, user: dict[str, Any] | None = None,
            objective: Any = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(metadata, arrays)`` describing ``es`` now (between generations), with ``objective``'s
    ``checkpoint_state()`` where it has one.

    Raises
    ------
    StateError
        Before ``initialize``/``fit``, or between ``ask`` and ``tell``.
    CheckpointError
        When some run state cannot be stored (named in the message).
    """
    driver = vars(es).get("run_")
    if driver is None:
        raise StateError("checkpoint needs a started estimator: call initialize(x0) or fit() first")
    runner = driver.runner
    if runner.pending is not None:
        raise StateError("checkpoint between ask() and tell() would lose the pending population; tell() first")
    sd = runner.state_dict()
    arrays = {f"state/{name}": np.asarray(a) for name, a in sd["arrays"].items()}
    state = {**sd, "arrays": sorted(sd["arrays"])}
    flat = {"sigma0": flat_sigma, "bounds": flat_bounds, "integer": flat_integer}  # in x0's structure: stored flat
    params = {name: _encode_param(name, flat[name](driver.structure, value) if name in flat else value, arrays)
              for name, value in driver.config.get_params(deep=False).items()}  # the run's, not set_params' since
    run = driver.state
    box = driver.bounds.box if driver.integers is not None else driver.bounds  # not rounded by the margin
    x0_init = driver.x0 if box is None else box.transform(driver.x0)
    try:
        values = encode(run.schema_values(), arrays, "run")
        best_x = encode(run.best_x, arrays, "best_x")
        plan = encode(run.plan, arrays, "plan")
        schedule = None if driver.restarts is None else encode(driver.restarts.schedule_values(), arrays, "schedule")
        structure = None if driver.structure is None else structure_spec(driver.structure)
    except (Unencodable, InvalidArgumentError) as err:  # InvalidArgumentError: a layout that cannot be stored
        raise CheckpointError(f"cannot checkpoint the run: {err}") from err
    history = encode_history(run.history, arrays)
    meta = {
        "evostrat_version": evostrat.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "params": params,
        "state": state,
        "x0_init": encode(x0_init, arrays, "x0_init"),
        "x0_type": "list" if driver.x0_type in (list, tuple) else "array",
        "run": values,
        "best_x": best_x,
        "plan": plan,
        "termination": driver.termination.progress_values(),
        "schedule": schedule,
        "history": history if history is not None else {"rows": encode(run.history, arrays, "history")},
        "elapsed": run.elapsed(),
        "user": encode_metadata(user),
        "structure": structure,
        "features": capture_features(driver, arrays),
        "injections": capture_injections(runner, arrays),
        "objective": capture_objective(objective, arrays),
        "evals_best": run.best_evals,
        **({"x0_callable": True} if driver.x0_source is not None else {}),  # code: passed to resume again
    }
    return meta, arrays


#: ES parameters added after checkpoints were first written (issue 20): a file without them
#: loads with their defaults, the behaviour of the evostrat that wrote it; any other missing
#: or unknown parameter is refused.
ADDED_PARAMETERS = frozenset({"integer", "noise_handling", "reevaluations", "warm_start"})


def _check_params(meta: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The saved parameter specs, once ``overrides`` are known to replace only what they may."""
    check_schema({**dict.fromkeys(_OPTIONAL), **meta}, META_SCHEMA, "metadata")
    saved, valid = meta["params"], set(ES().get_params(deep=False))
    # a file from before ADDED_PARAMETERS existed lacks them: they take their defaults (its behaviour)
    if not valid - ADDED_PARAMETERS <= set(saved) <= valid:
        raise CheckpointError(
            f"checkpoint was written by an ES with parameters {sorted(saved)}; this evostrat has "
            f"{sorted(valid)} (evostrat {meta.get('evostrat_version')!r} wrote it)"
        )
    unsaved = sorted(k for k, v in saved.items() if "unsaved" in v)
    bad = sorted(set(overrides) - RUNTIME_PARAMS - BUDGET_PARAMS - set(unsaved))
    if bad:
        raise InvalidArgumentError(
            f"resume can replace only {sorted(RUNTIME_PARAMS | BUDGET_PARAMS | set(unsaved))} (parameters "
            f"that do not change the trajectory, the budgets, or what the checkpoint could not store); got {bad}"
        )
    for name in BUDGET_PARAMS & set(overrides):
        value = overrides[name]
        if value is not None and not (is_int(value) and value >= 1):
            raise InvalidArgumentError(f"resume({name}=...) must be a positive int or None, got {value!r}")
    missing = sorted(set(unsaved) - set(overrides) - {"warm_start"})  # a resume never warm-starts again
    if missing:
        raise InvalidArgumentError(
            f"the checkpoint could not store the parameter(s) {missing} (types "
            f"{[saved[k]['unsaved'] for k in missing]}); pass them again, e.g. resume(..., {missing[0]}=...)"
        )
    return saved


def _decode_params(saved: dict[str, Any], arrays: dict[str, np.ndarray], overrides: dict[str, Any]) -> dict[str, Any]:
    as_numpy = lambda a, _backend: np.array(a, copy=True)  # noqa: E731 - hyper-parameters: host arrays
    params = {}
    for name, spec in saved.items():
        if name in overrides:
            params[name] = overrides[name]
        elif name == "warm_start" and set(spec) == {"unsaved"}:  # an ES: the saved state replaces what it set
            params[name] = None
        elif set(spec) == {"strategy", "params"} and isinstance(spec["strategy"], str):
            params[name] = make_strategy(spec["strategy"], decode(spec["params"], arrays, as_numpy))
        elif set(spec) == {"value"}:
            params[name] = decode(spec["value"], arrays, as_numpy)
        else:
            raise CheckpointError(f"checkpoint parameter {name!r} is malformed")
    return params


def restore(meta: dict[str, Any], arrays: dict[str, np.ndarray], **overrides: Any) -> Any:
    """An :class:`~evostrat.ES` in exactly the captured state, ready to ``ask`` or resume.

    Parameters
    ----------
    meta, arrays
        What :func:`capture` returned (or :func:`~evostrat.checkpoint.format.read_checkpoint` read).
    **overrides
        New values for ``evaluator``/``evaluator_options``, parameters the checkpoint
        could not store, ``constraints=g`` for a run fitted with a constraint function
        (:mod:`evostrat.checkpoint.features`), and the budgets ``max_evals``/``max_generations`` (not below
        what was spent: the run goes on as if that budget had been set from the start;
        see the checkpoints guide for a finished run's last generation).

    Raises
    ------
    InvalidArgumentError
        For ``overrides`` that the checkpoint does not allow.
    CheckpointError
        For anything wrong in ``meta`` or ``arrays``: a field missing, unknown or of
        the wrong type, shape or dtype, or values the run refuses.
    """
    function, source = overrides.pop("constraints", None), overrides.pop("x0", None)  # code: never stored
    saved = _check_params(meta, overrides)
    check_constraint_function(meta.get("features"), function)
    old = _decode_params(saved, arrays, {k: v for k, v in overrides.items() if k not in BUDGET_PARAMS})
    try:
        with saved_margins(meta.get("features")):  # its box made with the rule the file was written with
            es = _rebuild(meta, arrays, {**old, **overrides}, function)
    except CheckpointError:
        raise
    except Exception as err:  # a value of the declared type that the estimator refuses
        raise CheckpointError(f"checkpoint does not describe a valid run ({type(err).__name__}: {err})") from err
    restore_x0_source(es.run_, meta.get("x0_callable", False), source)
    if BUDGET_PARAMS & set(overrides):
        _extend_budget(es, old["max_generations"])
    return es


def _extend_budget(es: Any, old_max_generations: int | None) -> None:
    """Check a new budget against what the run spent, and continue a run it had stopped."""
    driver = es.run_
    run, termination, generation = driver.state, driver.termination, driver.runner.generation
    for name, spent, what in (("max_evals", run.n_evals, "evaluations"), ("max_generations", run.n_generations,
                                                                          "generations")):
        if getattr(es, name) is not None and getattr(es, name) < spent:
            raise InvalidArgumentError(f"resume({name}={getattr(es, name)}) is below the {spent} {what} "
                                       "the run has already made")
    reason = run.stop_reason
    local = ("maxfevals" if termination.max_evals is not None and run.n_evals >= termination.max_evals else
             "maxiter" if termination.max_generations is not None and generation >= termination.max_generations
             else None)  # the budget criteria of the new termination, as check() orders them
    if run.plan is None:
        if reason in (None, "maxfevals", "maxiter"):
            run.stop_reason = local
    elif reason in (None, "maxfevals") or (  # restarts: stopped only because the old generation budget was spent
            reason not in GLOBAL_REASONS and run.n_generations >= (old_max_generations or np.inf)):
        run.stop_reason = after_run(driver, local or (None if reason in (None, "maxfevals", "maxiter") else reason),
                                    math.nan)


def _check_state_size(es: Any, state: dict[str, Any], saved: int, backend: Backend) -> None:
    """Refuse a declared ``dim`` whose state would not hold the saved values, before building it.

    A fresh state of CMA-ES holds ``O(dim^2)`` values, so a forged ``dim`` could allocate far
    more than the (uncompressed, size-checked) file holds. A state's size is a polynomial of
    degree <= 2 in ``dim`` at a fixed popsize: three tiny states fit it exactly. ``saved``: the
    values of the saved state; a popsize over ``max(4 saved, 2**20)`` is refused first (weights and
    populations hold ``O(popsize)`` values whatever the state holds).
    """
    bound = max(4 * saved, 2**20)
    for popsize in (state["popsize"], es.popsize):  # O(popsize) weights and populations come before any state
        if is_int(popsize) and popsize > bound:
            raise CheckpointError(f"checkpoint popsize {popsize} exceeds both 2**20 and 4x its saved strategy "
                                  f"state ({saved} values): refused before building it")
    try:
        strategy = make_strategy(es.strategy, es.strategy_options, popsize=state["popsize"], sigma0=1.0,
                                 distribution=es.distribution)
        e2, e3, e4 = (sum(a.size for a in AskTell(strategy, backend.asarray(np.zeros(d)), backend=backend)
                          .state_dict()["arrays"].values()) for d in (2, 3, 4))
    except Exception:  # noqa: BLE001 - a strategy that cannot build these small states: not bounded here
        return
    d = state["dim"]
    expected = e2 + (d - 2) * (e3 - e2) + (d - 2) * (d - 3) // 2 * (e4 - 2 * e3 + e2)
    if expected > bound:  # smaller mismatches are named field by field after the build
        raise CheckpointError(f"checkpoint strategy state holds {saved} values, a state of the saved dim {d} "
                              f"holds {expected}: refused before building it")


def _check_state_values(strategy: Any, arrays: dict[str, Any]) -> None:
    """Refuse NaN/inf and inconsistent values in the saved strategy state, naming the array."""
    try:
        check_state_arrays(strategy, arrays)  # after load_state_dict: every array is there, of its shape
    except InvalidArgumentError as err:
        raise CheckpointError(f"checkpoint strategy state is not a valid {strategy.name} state: {err}") from err


def _rebuild(meta: dict[str, Any], arrays: dict[str, np.ndarray], params: dict[str, Any], function: Any) -> Any:
    es = ES(**{**params, "warm_start": None})  # the saved state replaces a warm start: its source is not read
    state = check_schema(meta["state"], STATE_SCHEMA, "strategy state")
    backend = get_backend(state["backend"])
    device = es.device if isinstance(es.device, str) else None
    x0 = decode(meta["x0_init"], arrays, lambda a, _b: a)
    plan = decode(meta["plan"], arrays)
    full = state["dim"] + (len(es.fixed_variables) if isinstance(es.fixed_variables, dict) else 0)  # and the fixed
    if not isinstance(x0, np.ndarray) or x0.dtype.kind != "f" or x0.shape != (full,):
        raise CheckpointError(f"checkpoint initial point is not a float vector of the saved dim {full}")
    if plan is not None and (not isinstance(plan, RunPlan) or plan.popsize != state["popsize"]):
        raise CheckpointError("checkpoint restart plan is malformed or does not match the strategy state")
    saved = sum(arrays[f"state/{n}"].size for n in state["arrays"] if f"state/{n}" in arrays)
    # a fresh state (a probe's, the run's) larger than the saved one is refused before it is allocated:
    # a forged hyper-parameter (lazy_eigen, memory) would otherwise allocate far more than the file holds
    with allocation_limit(8 * max(4 * saved, 2**20), "the checkpoint's saved strategy state allows"):
        _check_state_size(es, state, saved, backend)
        start = backend.asarray(np.array(x0, copy=True), device=device)
        if meta.get("structure") is not None:  # x0 was a dict or pytree (an nn.Module comes back as a dict)
            try:
                start = structure_from_spec(meta["structure"], start)
            except InvalidArgumentError as err:
                raise CheckpointError(f"checkpoint {err}") from err
        es.initialize(start)
    es.warm_start, driver = params.get("warm_start"), es.run_
    driver.config.warm_start = es.warm_start  # applied already: the run's settings keep it for its checkpoints

    def to_backend(a: np.ndarray, name: str) -> Any:
        if name != backend.name:
            raise CheckpointError(f"checkpoint array on backend {name!r} in a {backend.name!r} run")
        return backend.asarray(np.array(a, copy=True), device=driver.runner.device)

    schedule = meta["schedule"]
    if (schedule is None) != (driver.restarts is None):
        raise CheckpointError("checkpoint restart state does not match its restarts parameter")
    if schedule is not None:
        driver.restarts.load_schedule_values(check_schema(decode(schedule, arrays, to_backend), SCHEDULE_SCHEMA, "restarts"))
    run, values = driver.state, check_schema(meta["run"], RUN_SCHEMA, "run")
    if plan is not None and plan != run.plan:
        run.n_evals, run.n_generations = values["run_start"]
        driver.start_run(plan)
    run.load_schema_values(values)
    try:
        driver.runner.load_state_dict({**state, "arrays": {n: arrays[f"state/{n}"] for n in state["arrays"]}})
    except KeyError as err:
        raise CheckpointError(f"checkpoint is missing the state array {err}") from err
    except InvalidArgumentError as err:
        raise CheckpointError(f"checkpoint strategy state does not fit its parameters: {err}") from err
    mean, sigma = driver.runner.backend.to_numpy(driver.runner.mean), driver.runner.sigma
    if not (np.isfinite(mean).all() and 0.0 <= sigma < math.inf):  # NaN/inf in mean, sigma or C: no model
        raise CheckpointError(f"checkpoint strategy state is not a search distribution: mean finite "
                              f"{bool(np.isfinite(mean).all())}, largest standard deviation {sigma}")
    _check_state_values(driver.runner.strategy, {n: arrays[f"state/{n}"] for n in state["arrays"]})
    driver.termination.load_progress_values(check_schema(meta["termination"], PROGRESS_SCHEMA, "termination"))
    run.best_x = decode(meta["best_x"], arrays, to_backend)
    if tuple(getattr(run.best_x, "shape", ())) != x0.shape:
        raise CheckpointError(f"checkpoint best candidate is not a vector of the saved dim {full}")
    if not np.isfinite(backend.to_numpy(run.best_x)).all():  # a candidate, or the initial mean: finite
        raise CheckpointError("checkpoint field 'best_x' (the best candidate) holds NaN or infinite values")
    run.history = decode_history(meta["history"], arrays)
    driver.x0_type = list if meta["x0_type"] == "list" else type(driver.x0)
    run.started = time.perf_counter() - meta["elapsed"]
    restore_features(driver, meta.get("features"), arrays, function)
    evals = meta.get("evals_best")  # absent from older checkpoints: the end of the best's generation
    run.best_evals = evals_best_from_history(run.history, run.best_f) if evals is None else evals
    restore_injections(driver.runner, meta.get("injections"), arrays)
    return es
