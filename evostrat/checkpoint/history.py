"""A run's ``history_`` in a checkpoint: one array per column in the usual case.

The usual history (every row the same keys, each column all ints or all floats) is stored as
one int64 or float64 array per column, O(n) numpy work per checkpoint; any other as plain
data through :func:`~evostrat.checkpoint.codec.encode`.

Examples
--------
>>> arrays = {}
>>> spec = encode_history([{"generation": 1, "best": 0.5}, {"generation": 2, "best": 0.25}], arrays)
>>> spec["columns"], sorted(arrays)
([['generation', 'int'], ['best', 'float']], ['history/best', 'history/generation'])
>>> decode_history(spec, arrays)[1]
{'generation': 2, 'best': 0.25}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evostrat.checkpoint.codec import decode
from evostrat.errors import CheckpointError
from evostrat.run.state import is_int

__all__ = ["decode_history", "encode_history"]


def encode_history(history: Any, arrays: dict[str, np.ndarray]) -> Any:
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


def decode_history(spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The rows :func:`encode_history` described; a malformed description is a
    :class:`~evostrat.errors.CheckpointError`."""
    if set(spec) == {"rows"}:
        rows = decode(spec["rows"], arrays, lambda a, _b: np.array(a, copy=True))
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise CheckpointError("checkpoint history is malformed")
        return rows
    kinds, columns, length = {"int": "i", "float": "f"}, spec.get("columns"), spec.get("length")
    if set(spec) != {"columns", "length"} or not is_int(length) or not isinstance(columns, list) or not all(
        isinstance(c, list) and len(c) == 2 and isinstance(c[0], str) and c[1] in kinds
        and getattr(arrays.get(f"history/{c[0]}"), "dtype", np.dtype("O")).kind == kinds[c[1]]
        and arrays[f"history/{c[0]}"].shape == (length,) for c in columns
    ):
        raise CheckpointError("checkpoint history is malformed (columns, kinds or lengths)")
    names = [key for key, _ in columns]
    return [dict(zip(names, row)) for row in zip(*(arrays[f"history/{key}"].tolist() for key in names))]
