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

import math
import time
from typing import Any

import numpy as np

from evostrat.backends import Backend
from evostrat.checkpoint.codec import Unencodable, decode, encode
from evostrat.errors import CheckpointError, InvalidArgumentError, StateError

__all__ = ["capture", "restore", "RUNTIME_PARAMS"]

#: Parameters that only say how candidates are evaluated: ``restore`` may replace them.
RUNTIME_PARAMS = frozenset({"evaluator", "evaluator_options"})


def _encode_param(name: str, value: Any, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    from evostrat.strategies.base import Strategy

    if name == "strategy" and isinstance(value, Strategy):
        from evostrat.plugins import registry

        if registry("strategies").get(value.name) is type(value):
            return {"strategy": value.name, "params": encode(value.get_params(deep=False), arrays, "params/strategy")}
        return {"unsaved": type(value).__name__}
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


def capture(es: Any, user: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(metadata, arrays)`` describing ``es`` now (between generations).

    Raises
    ------
    StateError
        Before ``initialize``/``fit``, or between ``ask`` and ``tell``.
    CheckpointError
        When some run state cannot be stored (named in the message).
    """
    import evostrat

    driver = vars(es).get("run_")
    if driver is None:
        raise StateError("checkpoint needs a started estimator: call initialize(x0) or fit() first")
    runner = driver.runner
    if runner.pending is not None:
        raise StateError("checkpoint between ask() and tell() would lose the pending population; tell() first")
    sd = runner.state_dict()
    arrays = {f"state/{name}": np.asarray(a) for name, a in sd["arrays"].items()}
    state = {**sd, "arrays": sorted(sd["arrays"])}
    params = {name: _encode_param(name, value, arrays) for name, value in es.get_params(deep=False).items()}
    run = driver.state
    x0_init = driver.x0 if driver.bounds is None else driver.bounds.transform(driver.x0)
    try:
        values = encode(run.schema_values(), arrays, "run")
        best_x = encode(run.best_x, arrays, "best_x")
        plan = encode(run.plan, arrays, "plan")
        schedule = None if driver.restarts is None else encode(driver.restarts.schedule_values(), arrays, "schedule")
    except Unencodable as err:
        raise CheckpointError(f"cannot checkpoint the run: {err}") from err
    history = _encode_history(run.history, arrays)
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
        "user": encode(user or {}, {}, "user"),
    }
    return meta, arrays


def _encode_history(history: Any, arrays: dict[str, np.ndarray]) -> Any:
    """``history_`` as one array per column when every row has the same numeric keys
    (the usual case: O(n) numpy work per checkpoint), else as plain data."""
    if not isinstance(history, list) or not history or not all(isinstance(r, dict) for r in history):
        return None
    keys = list(history[0])
    columns = {}
    for key in keys:
        values = [row.get(key, None) for row in history]
        if all(type(v) is int for v in values):
            columns[key] = ("int", np.asarray(values, dtype=np.int64))
        elif all(type(v) is float for v in values):
            columns[key] = ("float", np.asarray(values, dtype=np.float64))
        else:
            return None
    if any(list(row) != keys for row in history):
        return None
    for key, (_, column) in columns.items():
        arrays[f"history/{key}"] = column
    return {"columns": [[key, kind] for key, (kind, _) in columns.items()], "length": len(history)}


def _decode_history(spec: Any, arrays: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    if isinstance(spec, dict) and set(spec) == {"rows"}:
        rows = decode(spec["rows"], arrays, lambda a, _b: np.array(a, copy=True))
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise CheckpointError("checkpoint history is malformed")
        return rows
    try:
        names = [(str(key), kind) for key, kind in spec["columns"]]
        length = int(spec["length"])
        columns = [(key, arrays[f"history/{key}"].tolist()) for key, _ in names]
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint history is malformed: {err}") from err
    if any(len(values) != length for _, values in columns) or any(
        kind not in ("int", "float") for _, kind in names
    ):
        raise CheckpointError("checkpoint history columns do not match")
    return [dict(zip((k for k, _ in columns), row)) for row in zip(*(v for _, v in columns))]


def _decode_params(meta: dict[str, Any], arrays: dict[str, np.ndarray], overrides: dict[str, Any]) -> dict[str, Any]:
    from evostrat.estimator import ES

    saved = meta.get("params")
    if not isinstance(saved, dict):
        raise CheckpointError("checkpoint has no estimator parameters")
    valid = set(ES().get_params(deep=False))
    if set(saved) != valid:
        raise CheckpointError(
            f"checkpoint was written by an ES with parameters {sorted(saved)}; this evostrat has "
            f"{sorted(valid)} (evostrat {meta.get('evostrat_version')!r} wrote it)"
        )
    unsaved = sorted(k for k, v in saved.items() if "unsaved" in v)
    allowed = RUNTIME_PARAMS | set(unsaved)
    bad = sorted(set(overrides) - allowed)
    if bad:
        raise InvalidArgumentError(
            f"resume can replace only {sorted(allowed)} (parameters that do not change the "
            f"trajectory, or that the checkpoint could not store); got {bad}"
        )
    missing = sorted(set(unsaved) - set(overrides))
    if missing:
        raise InvalidArgumentError(
            f"the checkpoint could not store the parameter(s) {missing} (types "
            f"{[saved[k]['unsaved'] for k in missing]}); pass them again, e.g. resume(..., {missing[0]}=...)"
        )
    as_numpy = lambda a, _backend: np.array(a, copy=True)  # noqa: E731 - hyper-parameters: host arrays
    params = {}
    for name, spec in saved.items():
        if name in overrides:
            params[name] = overrides[name]
        elif "strategy" in spec:
            from evostrat.estimator import make_strategy

            options = decode(spec.get("params"), arrays, as_numpy)
            params[name] = make_strategy(spec["strategy"], options)
        elif "value" in spec:
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
        New values for ``evaluator``/``evaluator_options`` and for parameters
        the checkpoint could not store.
    """
    from evostrat.backends import get_backend
    from evostrat.estimator import ES
    from evostrat.run.restarts import SCHEDULE_SCHEMA, RunPlan
    from evostrat.run.state import RUN_SCHEMA, check_schema
    from evostrat.run.termination import PROGRESS_SCHEMA

    es = ES(**_decode_params(meta, arrays, overrides))
    state = meta.get("state")
    if not isinstance(state, dict) or not isinstance(state.get("backend"), str):
        raise CheckpointError("checkpoint has no strategy state")
    backend = get_backend(state["backend"])
    device = es.device if isinstance(es.device, str) else None
    x0 = decode(meta.get("x0_init"), arrays, lambda a, _b: a)
    if not isinstance(x0, np.ndarray) or x0.ndim != 1:
        raise CheckpointError("checkpoint has no initial point")
    es.initialize(backend.asarray(np.array(x0, copy=True), device=device))
    driver = es.run_

    def to_backend(a: np.ndarray, name: str) -> Any:
        if name != backend.name:
            raise CheckpointError(f"checkpoint array on backend {name!r} in a {backend.name!r} run")
        return backend.asarray(np.array(a, copy=True), device=driver.runner.device)

    schedule = meta.get("schedule")
    if (schedule is None) != (driver.restarts is None):
        raise CheckpointError("checkpoint restart state does not match its restarts parameter")
    if schedule is not None:
        driver.restarts.load_schedule_values(check_schema(decode(schedule, arrays, to_backend), SCHEDULE_SCHEMA, "restarts"))
    plan = decode(meta.get("plan"), arrays, to_backend)
    if plan is not None and not isinstance(plan, RunPlan):
        raise CheckpointError("checkpoint restart plan is malformed")
    run = driver.state
    values = meta.get("run")
    if plan is not None and plan != run.plan:
        check_schema(values, RUN_SCHEMA, "run")
        run.n_evals, run.n_generations = values["run_start"]
        driver.start_run(plan)
    run.load_schema_values(values)
    try:
        driver.runner.load_state_dict({**state, "arrays": {n: arrays[f"state/{n}"] for n in state["arrays"]}})
    except KeyError as err:
        raise CheckpointError(f"checkpoint is missing the state array {err}") from err
    except InvalidArgumentError as err:
        raise CheckpointError(f"checkpoint strategy state does not fit its parameters: {err}") from err
    driver.termination.load_progress_values(check_schema(meta.get("termination"), PROGRESS_SCHEMA, "termination"))
    run.best_x = decode(meta.get("best_x"), arrays, to_backend)
    if not hasattr(run.best_x, "shape"):
        raise CheckpointError("checkpoint best candidate is malformed")
    run.history = _decode_history(meta.get("history"), arrays)
    driver.x0_type = list if meta.get("x0_type") == "list" else type(driver.x0)
    elapsed = meta.get("elapsed", 0.0)
    run.started = time.perf_counter() - (elapsed if isinstance(elapsed, float) and math.isfinite(elapsed) else 0.0)
    return es

