"""Figures as files: of a fitted ES (``evostrat run --plot``) or of a run folder (``evostrat plot``)."""

from __future__ import annotations

import csv
import json
import math
import os
from typing import Any

import numpy as np

from evostrat.errors import InvalidArgumentError
from evostrat.plotting.common import f64, run_title
from evostrat.plotting.convergence import plot_convergence
from evostrat.plotting.diagnostics import VECTOR_FIELDS, plot_diagnostics
from evostrat.plotting.search import plot_search_2d

__all__ = ["MAX_JSON_BYTES", "save_run_plots", "read_history_csv", "plot_run_folder", "merge_records"]

#: Largest ``config.json``/``result.json`` :func:`plot_run_folder` reads for the title (bytes).
MAX_JSON_BYTES = 1 << 20


def merge_records(history: list[dict[str, Any]], records: Any) -> list[dict[str, Any]]:
    """A copy of ``history`` with each record's fields in the row of its generation.

    ``records``: a :class:`~evostrat.callbacks.DistributionRecorder` or its ``records``.
    """
    records = getattr(records, "records", records) or []
    by_generation = {int(r["generation"]): r for r in records}
    merged = []
    for row in history:
        extra = by_generation.get(int(row.get("generation", -1)), {})
        merged.append({**row, **{k: extra[k] for k in VECTOR_FIELDS if k in extra}})
    return merged


def _savefig(fig: Any, target: str, dpi: int) -> None:
    """``fig.savefig(target)`` as PNG, written atomically: a file, link or FIFO there is replaced,
    never written through (:func:`~evostrat.checkpoint.format.atomic_file`)."""
    from evostrat.checkpoint.format import atomic_file

    with atomic_file(target, prefix=".") as file:
        fig.savefig(file, dpi=dpi, format="png")


def save_run_plots(folder: str | os.PathLike, es: Any, objective: Any = None, recorded: Any = None,
                   dpi: int = 120, problem: str | None = None, distribution: Any = None) -> list[str]:
    """Write ``convergence.png``, ``diagnostics.png`` (when the history has the distribution's
    fields, or ``distribution``, a :class:`~evostrat.callbacks.DistributionRecorder`, holds
    them) and, with 2-D snapshots, ``search.png``; returns the names.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.callbacks import DistributionRecorder, SearchRecorder
    >>> from evostrat.problems import sphere
    >>> rec = SearchRecorder()
    >>> es = ES("snes", max_generations=40, random_state=0).fit(
    ...     sphere, np.ones(2), callbacks=[DistributionRecorder(), rec])
    >>> save_run_plots(tempfile.mkdtemp(), es, sphere, rec, problem="sphere")
    ['convergence.png', 'diagnostics.png', 'search.png']
    """
    def on_host(X: np.ndarray) -> np.ndarray:  # a numpy grid through the run's backend
        be, strategy = es.strategy_.backend, es.strategy_
        return f64(be.to_numpy(objective(be.asarray(X, dtype=strategy.dtype, device=strategy.device))))

    if objective is not None and getattr(objective, "vectorized", None) is not None:
        on_host.vectorized = objective.vectorized  # type: ignore[attr-defined]
    os.makedirs(folder, exist_ok=True)
    _savefig(plot_convergence(es, problem=problem), os.path.join(folder, "convergence.png"), dpi)
    written = ["convergence.png"]
    history = merge_records(es.history_, distribution) if distribution is not None else es.history_
    if any("mean" in row for row in history):
        title = run_title(es, problem, history)
        fig = plot_diagnostics(history, problem=problem, maximize=es.maximize, title=title)
        _savefig(fig, os.path.join(folder, "diagnostics.png"), dpi)
        written.append("diagnostics.png")
    if objective is not None and recorded is not None:
        best = f64(es.strategy_.backend.to_numpy(es.x_))
        head = " on ".join(p for p in (es.strategy_.strategy.name, problem) if p)
        title = f"{head}, 2-D: search distribution, generations 0-{es.n_generations_}"
        fig = plot_search_2d(on_host, recorded, best=best, title=title)
        _savefig(fig, os.path.join(folder, "search.png"), dpi)
        written.append("search.png")
    return written


def _cell(text: str) -> Any:
    if text == "":
        return None
    if text.startswith("["):  # a list of floats, as CSVLogger writes it (nan and inf included)
        inner = text.strip("[]").strip()
        return [float(v) for v in inner.split(",")] if inner else []
    try:
        return float(text)
    except ValueError:
        return text


_SCALARS = ("generation", "n_evals", "best", "generation_best", "median", "sigma", "run")  # what the plots read


def read_history_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """``history.csv`` as written by :class:`~evostrat.callbacks.CSVLogger` (floats and lists
    of floats; empty cells dropped), ready for :func:`plot_diagnostics`.

    Raises
    ------
    InvalidArgumentError
        Naming the file, line and column: a row without ``generation`` or ``n_evals``, a
        column the plots read that is not a number, a vector column without lists.
    """
    where = os.fspath(path)
    try:
        with open(where, newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            rows, ragged = [], []
            for row in reader:
                if None in row or None in row.values():  # more or fewer cells than the header names
                    ragged.append((reader.line_num, len(rows)))
                rows.append({k: v for k, v in ((k, _cell(v)) for k, v in row.items()
                                               if isinstance(k, str) and isinstance(v, str)) if v is not None})
    except (csv.Error, UnicodeDecodeError, ValueError) as err:  # a cell past csv's field limit, binary bytes
        raise InvalidArgumentError(f"{where}: not the history.csv of 'evostrat run' ({type(err).__name__}: "
                                   f"{err})") from None
    if ragged and ragged[-1][1] == len(rows) - 1:  # the last row, cut by a kill or still being written
        rows.pop()
        ragged.pop()
    if ragged:
        raise InvalidArgumentError(f"{where}: line {ragged[0][0]} has another number of cells than the header")
    lengths: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        for key in VECTOR_FIELDS:
            if key in row and not isinstance(row[key], list):
                raise InvalidArgumentError(f"{os.fspath(path)}: column {key!r} must hold lists of numbers")
            if key in row and lengths.setdefault(key, len(row[key])) != len(row[key]):
                raise InvalidArgumentError(f"{os.fspath(path)}: line {line}, column {key!r} holds {len(row[key])} "
                                           f"numbers, an earlier line {lengths[key]}")
        for key in ("generation", "n_evals"):
            if key not in row:
                raise InvalidArgumentError(f"{os.fspath(path)}: line {line} has no {key!r}; not the history.csv "
                                           "of 'evostrat run'")
            if isinstance(row[key], float) and not (math.isfinite(row[key]) and 0 <= row[key] < 2**63):
                raise InvalidArgumentError(f"{os.fspath(path)}: line {line}, column {key!r} is not a count: "
                                           f"{row[key]!r}")
        wrong = next((key for key in _SCALARS if key in row and not isinstance(row[key], float)), None)
        if wrong is not None:
            raise InvalidArgumentError(f"{os.fspath(path)}: line {line}, column {wrong!r} is not a number: "
                                       f"{row[wrong]!r}")
    return rows


def _json_object(path: str) -> dict[str, Any]:
    """The JSON object in ``path``; empty for a missing file or one that is not a JSON object of at
    most :data:`MAX_JSON_BYTES` (malformed, nested past Python's recursion limit, a list, ...)."""
    try:
        with open(path, "rb") as file:
            text = file.read(MAX_JSON_BYTES + 1)
        data = json.loads(text) if len(text) <= MAX_JSON_BYTES else None
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _numbers(value: Any) -> list[float] | None:
    """``value`` as a list of floats (``null`` as NaN: a gap), or ``None`` if it is no list of numbers."""
    if not isinstance(value, list) or not all(v is None or isinstance(v, (int, float)) and not isinstance(v, bool)
                                              for v in value):
        return None
    try:
        return [math.nan if v is None else float(v) for v in value]
    except OverflowError:  # an int past the largest float
        return None


def _read_records(path: str) -> list[dict[str, Any]]:
    """The records of ``distribution.jsonl`` with an int ``generation``; lines that are no record (cut by a
    kill, foreign) are skipped, and so is each field that is no list of numbers or holds another number of
    them than its first record (a side file: damage costs its panels, never the figure)."""
    records, lengths = [], {}
    with open(path, encoding="utf-8", errors="replace") as file:
        for line in file:
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if not isinstance(record, dict) or not isinstance(record.get("generation"), int):
                continue
            fields = {key: _numbers(record[key]) for key in VECTOR_FIELDS if key in record}
            fields = {key: v for key, v in fields.items() if v and lengths.setdefault(key, len(v)) == len(v)}
            records.append({"generation": record["generation"], **fields})
    return records


def plot_run_folder(folder: str | os.PathLike, dpi: int = 120) -> list[str]:
    """Draw ``diagnostics.png`` and ``convergence.png`` of an ``evostrat run`` output folder
    from its ``history.csv`` and ``distribution.jsonl`` (titles from ``config.json``);
    returns the names written."""
    folder = os.fspath(folder)
    path = os.path.join(folder, "history.csv")
    if not os.path.isfile(path):
        raise InvalidArgumentError(f"{folder!r} has no history.csv: give the output folder of 'evostrat run'")
    history = read_history_csv(path)
    if not history:
        raise InvalidArgumentError(f"{path} has no generations")
    records_path = os.path.join(folder, "distribution.jsonl")
    if os.path.isfile(records_path):
        history = merge_records(history, _read_records(records_path))
    config = _json_object(os.path.join(folder, "config.json"))
    dim = len(history[-1]["mean"]) if "mean" in history[-1] else config.get("dim")
    head = " on ".join(str(p)[:80] for p in (config.get("strategy"), config.get("problem")) if p) or "run"
    dim = dim if isinstance(dim, int) else None
    best = history[-1].get("best", math.nan)
    title = f"{head}{f', {dim}-D' if dim else ''}: best {best:.4g} after {int(history[-1]['n_evals'])} evaluations"
    stop = _json_object(os.path.join(folder, "result.json")).get("stop_reason")  # a finished run: why it stopped
    title += f" ({str(stop)[:80]})" if stop else ""
    written = []
    for name, draw in (("diagnostics.png", plot_diagnostics), ("convergence.png", plot_convergence)):
        _savefig(draw(history, title=title), os.path.join(folder, name), dpi)
        written.append(name)
    return written
