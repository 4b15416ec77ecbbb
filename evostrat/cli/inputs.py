"""What ``evostrat run`` optimises: ``--problem`` (a benchmark or a user's function) and ``--x0``.

``--problem`` takes a benchmark's name, ``module:function`` (imported as Python
would, with the current folder first on the path) or ``path/to/file.py:function``;
the function may be a dotted attribute (``module:Class.method``). Importing runs the
module's code, as ``python -m`` would.

``--x0`` takes a number (every coordinate, with ``--dim``), a vector ``1,2,3`` or
``[1, 2, 3]``, or ``@FILE``: a ``.npy`` array (no pickles), a ``.json`` list, or a
text file of numbers separated by commas, spaces or lines (a single row or column).

Examples
--------
>>> from evostrat.cli.inputs import load_objective, read_x0
>>> load_objective("math:hypot")(3.0, 4.0)
5.0
>>> read_x0("1, 2.5,3"), read_x0("[0, 1]"), read_x0("2")
([1.0, 2.5, 3.0], [0.0, 1.0], 2.0)
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

from evostrat.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["is_user_problem", "load_objective", "problem_label", "read_x0"]


def is_user_problem(spec: str) -> bool:
    """Whether ``--problem`` names a user's function (``module:function`` or ``file.py:function``)."""
    return ":" in spec


def problem_label(spec: str) -> str:
    """A short name for folders and messages: the benchmark's or the function's."""
    return spec.rpartition(":")[2].rpartition(".")[2] or "objective" if is_user_problem(spec) else spec


def _import(where: str, spec: str) -> Any:
    if where.endswith(".py") or os.sep in where or "/" in where:
        if not os.path.isfile(where):
            raise InvalidArgumentError(f"--problem {spec!r}: no file {where!r}")
        name = "evostrat_user_" + os.path.splitext(os.path.basename(where))[0].replace("-", "_")
        module_spec = importlib.util.spec_from_file_location(name, where)
        if module_spec is None or module_spec.loader is None:
            raise InvalidArgumentError(f"--problem {spec!r}: {where!r} is not a Python file")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module  # functions defined there pickle by this name (process evaluators)
        module_spec.loader.exec_module(module)
        return module
    if os.getcwd() not in sys.path and "" not in sys.path:  # as python -m: the current folder first
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as err:
        if err.name is not None and (where == err.name or where.startswith(err.name + ".")):
            raise InvalidArgumentError(f"--problem {spec!r}: no module named {err.name!r} (looked in the "
                                       "current folder and the installed packages)") from None
        raise


def load_objective(spec: str) -> Callable:
    """The callable named by ``spec`` (``module:function`` or ``path/file.py:function``).

    Raises
    ------
    InvalidArgumentError
        For a missing module, file or attribute, or an error raised while importing.
    InvalidTypeError
        When the name is not callable.
    """
    where, _, attribute = spec.rpartition(":")
    if not where or not attribute:
        raise InvalidArgumentError(f"--problem {spec!r}: expected module:function or path/to/file.py:function")
    try:
        obj = _import(where, spec)
    except InvalidArgumentError:
        raise
    except BaseException as err:  # the user's module raised (SystemExit included): say so, not a traceback
        if isinstance(err, KeyboardInterrupt):
            raise
        raise InvalidArgumentError(f"--problem {spec!r}: importing {where!r} raised "
                                   f"{type(err).__name__}: {err}") from err
    owner = f"module {where!r}"
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise InvalidArgumentError(f"--problem {spec!r}: {owner} has no attribute {part!r}")
        obj, owner = getattr(obj, part), repr(part)
    if not callable(obj):
        raise InvalidTypeError(f"--problem {spec!r}: {attribute!r} in {'module ' + repr(where)} is of type "
                               f"{type(obj).__name__}, not a function")
    return obj


def read_x0(text: str) -> float | list[float]:
    """``--x0`` as a number (every coordinate) or a vector (inline or from ``@FILE``)."""
    import numpy as np

    source, text = text, text.strip()
    if text.startswith("@"):
        path = text[1:]
        try:
            if path.endswith(".npy"):
                array = np.load(path, allow_pickle=False)
                values = array.ravel() if array.ndim == 2 and 1 in array.shape else array
            else:
                with open(path, encoding="utf-8") as f:
                    values = [v for v in re.split(r"[\s,\[\]]+", f.read()) if v]
        except (OSError, ValueError) as err:
            raise InvalidArgumentError(f"--x0 {source!r}: cannot read {path!r} ({type(err).__name__}: {err})") from None
    else:
        values = [v for v in re.split(r"[\s,\[\]]+", text) if v]
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"--x0 {source!r}: expected a number, a vector such as 1,2,3 or [1, 2, 3], "
                                   "or @FILE (.npy, .json or text)") from None
    if text.startswith("[") != text.endswith("]") or array.ndim != 1 or array.size == 0 or not np.isfinite(array).all():
        raise InvalidArgumentError(f"--x0 {source!r}: expected finite numbers in a non-empty vector, got "
                                   f"shape {array.shape}")
    vector = array.size > 1 or text.startswith(("@", "[")) or "," in text
    return array.tolist() if vector else float(array[0])
