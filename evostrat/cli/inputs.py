"""What ``evostrat run`` optimises: ``--problem`` (a benchmark or a user's function) and ``--x0``.

``--problem`` is a benchmark's name, ``module:function`` (imported with the current
folder first on the path, as ``python -m`` does: its code runs) or
``path/to/file.py:function``; the function may be dotted (``module:Class.method``).
``--resume`` imports it only when ``-p`` names it again (a checkpoint is data, not code).
``--x0`` is a number (every coordinate), a vector ``1,2,3`` or ``[1, 2, 3]``, or
``@FILE``: a ``.npy`` vector (no pickles), a ``.json`` list or text of numbers.

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
import os
import re
import sys
from typing import Any, Callable

from evostrat.errors import CheckpointError, InvalidArgumentError, InvalidTypeError
from evostrat.problems import FUNCTIONS
from evostrat.run.state import check_schema, is_int, is_real

__all__ = ["check_saved_config", "is_user_problem", "load_objective", "problem_label", "read_x0"]


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


def read_x0(text: str) -> float | list[float]:
    """``--x0`` as a number (every coordinate) or a vector (inline or from ``@FILE``)."""
    import numpy as np

    source, text = text, text.strip()
    try:
        if text.startswith("@") and text.endswith(".npy"):
            values = np.load(text[1:], allow_pickle=False)
            values = values.ravel() if values.ndim == 2 and 1 in values.shape else values
        else:
            if text.startswith("@"):
                with open(text[1:], encoding="utf-8") as f:
                    content = f.read()
            values = [v for v in re.split(r"[\s,\[\]]+", content if text.startswith("@") else text) if v]
    except (OSError, ValueError) as err:
        raise InvalidArgumentError(f"--x0 {source!r}: cannot read {text[1:]!r} ({type(err).__name__}: {err})") from None
    try:
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
        return check_schema(saved, {**dict.fromkeys(defaults, plain), "dim": (is_int, "an int"),
                                    "maximize": (lambda v: isinstance(v, bool), "true or false"),
                                    "problem": problem, "x0": x0, "strategy_options": options},
                            "'evostrat run' configuration")
    except CheckpointError as err:
        raise CheckpointError(f"checkpoint {path!r}: {err}") from err
