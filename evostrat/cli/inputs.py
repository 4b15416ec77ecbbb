"""What ``evostrat run`` optimises: ``--problem`` (a benchmark or a user's function) and ``--x0``.

``--problem`` is a benchmark's name, ``module:function`` (imported with the current
folder first on the path, as ``python -m`` does: its code runs) or
``path/to/file.py:function``; the function may be dotted (``module:Class.method``).
``--resume`` imports it only when ``-p`` names it again (a checkpoint is data, not code).
``--x0`` is a number (every coordinate), a vector ``1,2,3`` or ``[1, 2, 3]``, or
``@FILE``: a ``.npy`` vector (no pickles; its header's size is checked against the file's
before the read), a ``.json`` list or text of numbers (at most :data:`MAX_X0_TEXT` bytes).

Examples
--------
>>> from evostrat.cli.inputs import load_objective, read_x0
>>> load_objective("math:hypot")(3.0, 4.0), read_x0("1, 2.5,3"), read_x0("[0, 1]"), read_x0("2")
(5.0, [1.0, 2.5, 3.0], [0.0, 1.0], 2.0)
>>> load_objective("math:pi")
Traceback (most recent call last):
...
evostrat.errors.InvalidTypeError: --problem 'math:pi': 'pi' in module 'math' is of type float, not a function
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import re
import stat
import sys
from typing import Any, Callable

from evostrat.errors import CheckpointError, InvalidArgumentError, InvalidTypeError
from evostrat.problems import FUNCTIONS
from evostrat.run.state import check_schema, is_int, is_real

__all__ = ["MAX_X0_TEXT", "check_saved_config", "is_user_problem", "load_objective", "problem_label", "read_x0", "shown",
           "run_config"]

#: Largest text ``--x0 @FILE`` read (bytes); larger start points go in a ``.npy`` file.
MAX_X0_TEXT = 64 << 20
_TOKEN = re.compile(r"[^\s,\[\]]+")


def is_user_problem(spec: str) -> bool:
    """Whether ``--problem`` names a user's function (``module:function`` or ``file.py:function``)."""
    return ":" in spec


def problem_label(spec: str) -> str:
    """A short name for folders and messages: the benchmark's or the function's."""
    return spec.rpartition(":")[2].rpartition(".")[2] or "objective" if is_user_problem(spec) else spec


def _import(where: str, spec: str) -> Any:
    if where.endswith(".py"):
        name = "evostrat_user_" + re.sub(r"\W", "_", os.path.basename(where)[:-3])
        found = importlib.util.spec_from_file_location(name, where) if os.path.isfile(where) else None
        if found is None or found.loader is None:
            raise InvalidArgumentError(f"--problem {spec!r}: no file {where!r}")
        module = sys.modules[name] = importlib.util.module_from_spec(found)  # pickled by this name
        found.loader.exec_module(module)
        return module
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as err:
        if err.name is None or not (where == err.name or where.startswith(err.name + ".")):
            raise
        raise InvalidArgumentError(f"--problem {spec!r}: no module named {err.name!r} (looked in the current "
                                   "folder and the installed packages)") from None


def load_objective(spec: str) -> Callable:
    """The callable named by ``spec``; :class:`~evostrat.errors.InvalidArgumentError` for a
    missing module, file or attribute or an import that raised, ``InvalidTypeError`` for a
    name that is not callable."""
    where, _, attribute = spec.rpartition(":")
    if not where or not attribute:
        raise InvalidArgumentError(f"--problem {spec!r}: expected module:function or path/to/file.py:function")
    try:
        obj = _import(where, spec)
    except (InvalidArgumentError, KeyboardInterrupt):
        raise
    except BaseException as err:  # the user's module raised (SystemExit too): a message, not a traceback
        message = f"--problem {spec!r}: importing {where!r} raised {type(err).__name__}: {err}"
        raise InvalidArgumentError(message) from err
    owner = f"module {where!r}"
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise InvalidArgumentError(f"--problem {spec!r}: {owner} has no attribute {part!r}")
        obj, owner = getattr(obj, part), repr(part)
    if not callable(obj):
        raise InvalidTypeError(f"--problem {spec!r}: {attribute!r} in module {where!r} is of type "
                               f"{type(obj).__name__}, not a function")
    return obj


def _load_npy(path: str) -> Any:
    """The array of the ``.npy`` file ``path``, its header's shape and dtype checked against the
    file's size before the read (a forged header declaring terabytes is a ValueError, not a
    MemoryError); pickles refused."""
    import numpy as np

    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, dtype = header(f)
        declared, size = math.prod(shape) * dtype.itemsize, os.fstat(f.fileno()).st_size
        if stat.S_ISREG(os.fstat(f.fileno()).st_mode) and declared > size - f.tell():
            raise ValueError(f"its header declares shape {tuple(shape)} of {dtype} ({declared} bytes), "
                             f"more than the file's {size} bytes")
        f.seek(0)
        return np.load(f, allow_pickle=False)


def read_x0(text: str) -> float | list[float]:
    """``--x0`` as a number (every coordinate) or a vector (inline or from ``@FILE``)."""
    import numpy as np

    source, text = text, text.strip()
    values, content = None, text
    try:
        if text.startswith("@") and text.endswith(".npy"):
            values = _load_npy(text[1:])
            values = values.ravel() if values.ndim == 2 and 1 in values.shape else values
        elif text.startswith("@"):
            with open(text[1:], encoding="utf-8") as f:
                content = f.read(MAX_X0_TEXT + 1)
            if len(content) > MAX_X0_TEXT:
                raise ValueError(f"longer than {MAX_X0_TEXT} characters; save a large start point as .npy")
    except (OSError, ValueError, MemoryError) as err:
        raise InvalidArgumentError(f"--x0 {source!r}: cannot read {text[1:]!r} ({type(err).__name__}: {err})") from None
    try:
        if values is None:  # numbers one by one: no list of strings as long as the file
            values = np.fromiter((float(m.group()) for m in _TOKEN.finditer(content)), np.float64)
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"--x0 {source!r}: expected a number, a vector such as 1,2,3 or [1, 2, 3], "
                                   "or @FILE (.npy, .json or text)") from None
    if text.startswith("[") != text.endswith("]") or array.ndim != 1 or array.size == 0 or not np.isfinite(array).all():
        raise InvalidArgumentError(f"--x0 {source!r}: expected finite numbers in a non-empty vector, got "
                                   f"shape {array.shape}")
    return array.tolist() if array.size > 1 or text.startswith(("@", "[")) or "," in text else float(array[0])


def check_saved_config(saved: dict[str, Any], path: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """The ``evostrat run`` configuration saved in the checkpoint ``path``, every field of
    ``defaults`` (the configuration's names) type-checked; a :class:`~evostrat.errors.CheckpointError`
    naming the file and the field otherwise."""
    plain = (lambda v: v is None or isinstance(v, (str, int, float)), "a number, a string or null")
    problem = (lambda v: isinstance(v, str) and (v in FUNCTIONS or is_user_problem(v)),
               "a benchmark problem's name or module:function")
    x0 = (lambda v: is_real(v) or isinstance(v, str) and v.startswith("@") or isinstance(v, list) and all(map(
        is_real, v)), "a number, a list of numbers or @FILE")
    options = (lambda v: v is None or isinstance(v, dict) and all(isinstance(k, str) for k in v), "a dict or null")
    try:
        config = check_schema(saved, {**dict.fromkeys(defaults, plain), "dim": (is_int, "an int"),
                                      "maximize": (lambda v: isinstance(v, bool), "true or false"),
                                      "problem": problem, "x0": x0, "strategy_options": options},
                              "'evostrat run' configuration")
    except CheckpointError as err:
        raise CheckpointError(f"checkpoint {path!r}: {err}") from err
    for name, (ok, expected) in _RANGES.items():  # what the command line's types check (evostrat.cli.types)
        if name in config and not ok(config[name]):
            raise CheckpointError(f"checkpoint {path!r}: 'evostrat run' configuration field {name!r} must be "
                                  f"{expected}, got {shown(config[name])}")
    return config


def shown(value: Any) -> str:
    """``repr(value)``, cut to 60 characters: a value of a file in an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _finite(v: Any) -> bool:
    return is_real(v) and math.isfinite(v)


#: The ranges of the saved configuration's fields that set no ``ES`` parameter (``ES`` checks
#: the others when the run is rebuilt), as the command line's types check the same options.
_RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "workers": (lambda v: v is None or is_int(v) and v >= 1, "null or an int >= 1 (--workers)"),
    "patience": (lambda v: v is None or is_int(v) and v >= 1, "null or an int >= 1 (--patience)"),
    "min_delta": (lambda v: _finite(v) and v >= 0, "a finite number >= 0 (--min-delta)"),
    "checkpoint_every": (lambda v: is_int(v) and v >= 1, "an int >= 1 (--checkpoint-every)"),
    "x0": (lambda v: _finite(v) or isinstance(v, str) and len(v) > 1 or isinstance(v, list) and len(v) > 0 and all(
        map(_finite, v)), "a finite number, a non-empty list of finite numbers or @FILE (--x0)"),
}



#: ``evostrat run`` configuration field -> the ``ES`` parameter it sets (``--resume`` reports the parameter's).
_PARAMS = {**{name: name for name in ("strategy", "sigma0", "popsize", "backend", "device", "dtype", "evaluator",
                                      "max_evals", "max_generations", "ftarget", "restarts", "maximize",
                                      "strategy_options")},
           "seed": "random_state"}


def run_config(config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The ``evostrat run`` configuration ``config`` saved in the checkpoint metadata ``meta`` with
    each field that sets an ``ES`` parameter replaced by that parameter as saved, and ``dim`` by
    the state's: what ``--resume`` prints, writes to ``result.json`` and saves again then
    describes the run it continues, also where an edited (or forged) configuration says otherwise."""
    params, state = meta.get("params") or {}, meta.get("state") or {}
    actual = {name: params[param]["value"] for name, param in _PARAMS.items()
              if isinstance(params.get(param), dict) and "value" in params[param]}
    actual["dim"] = state.get("dim")
    plain = (str, int, float, bool, type(None))
    options = lambda v: v is None or isinstance(v, dict) and all(isinstance(k, str) for k in v)  # noqa: E731
    return {**config, **{name: value for name, value in actual.items()
                         if name in config and (options(value) if name == "strategy_options" else
                                                isinstance(value, plain) and (name != "dim" or is_int(value)))}}
