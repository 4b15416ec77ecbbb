"""Per-generation loggers: CSV, JSON lines and a pandas DataFrame.

Each logger writes one row per generation: the entry of ``es.history_`` (``generation``,
``n_evals``, ``best``, ``generation_best``, ``median``, ``sigma``, ``time``, plus
``run``/``popsize`` with restarts and the behaviour statistics of evolvability
strategies) and any ``extra={"name": fn}`` columns, computed as ``fn(es)``. A run resumed
from a checkpoint rewrites the file from the restored ``history_`` first, so it never
holds generations the resumed run redoes (``extra`` columns of those rows are empty). When
the fit ends, the last row is written again if ``history_`` changed it since (the final record of
a :class:`~evostrat.callbacks.DistributionRecorder`, also after a callback stopped the run), so
the output's last row always equals ``history_[-1]``.
:func:`history_frame` turns ``history_`` into a DataFrame without any logger.

Examples
--------
>>> import os, tempfile
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.callbacks import CSVLogger, DataFrameLogger
>>> folder = tempfile.mkdtemp()
>>> frame = DataFrameLogger(extra={"mean0": lambda es: float(es.strategy_.mean[0])})
>>> es = ES("snes", max_generations=5, random_state=0).fit(
...     lambda X: (X ** 2).sum(axis=1), np.ones(3),
...     callbacks=[CSVLogger(os.path.join(folder, "log.csv")), frame])
>>> open(os.path.join(folder, "log.csv")).readline().strip()
'generation,n_evals,best,generation_best,median,sigma,time'
>>> frame.rows[-1]["generation"], sorted(frame.rows[-1])[:3]
(5, ['best', 'generation', 'generation_best'])
"""

from __future__ import annotations

import csv
import json
import math
import os
import stat
from typing import Any, Callable, TextIO

from evostrat.callbacks.base import Callback
from evostrat.errors import InvalidArgumentError, InvalidTypeError, OutputError

__all__ = ["CSVLogger", "JSONLinesLogger", "DataFrameLogger", "history_frame", "open_unlinked"]


def _check_extra(extra: Any) -> dict[str, Callable[[Any], Any]]:
    if extra is None:
        return {}
    if not isinstance(extra, dict) or not all(isinstance(k, str) and callable(v) for k, v in extra.items()):
        raise InvalidTypeError("extra must be a dict of column name -> callable fn(es)")
    return dict(extra)


class _RowLogger(Callback):
    """Turns generations into rows; subclasses define ``open_output`` and ``_write``."""

    def __init__(self, extra: dict[str, Callable[[Any], Any]] | None = None) -> None:
        self.extra = _check_extra(extra)
        self._seen = 0
        self._last: tuple[dict[str, Any], dict[str, Any]] | None = None  # the last entry as written, its extras

    def on_fit_start(self, es: Any) -> None:
        self.open_output()
        self._last = None
        for entry in es.history_:  # resumed runs: the restored history first
            self._write_entry(entry, {})
        self._seen = len(es.history_)

    def __call__(self, es: Any) -> None:
        new = es.history_[self._seen:]
        for i, entry in enumerate(new):
            self._write_entry(entry, {name: fn(es) for name, fn in self.extra.items()} if i == len(new) - 1 else {})
        self._seen = len(es.history_)

    def _write_entry(self, entry: dict[str, Any], extras: dict[str, Any]) -> None:
        self._mark()
        self._write({**entry, **extras})
        self._last = (dict(entry), extras)

    def sync(self, es: Any) -> None:
        """Bring the output up to ``es.history_`` at the end of a fit: the last row written again
        where the history changed it since (a :class:`~evostrat.callbacks.DistributionRecorder`
        records the fit's last generation when it ends, also after a callback stopped the run),
        and the generations no call saw."""
        history = es.history_
        if self._last is not None and len(history) == self._seen and history:
            written, extras = self._last
            entry = history[-1]
            if entry.keys() != written.keys() or any(entry[k] is not written[k] for k in entry):
                self._rewrite_last()
                self._write_entry(entry, extras)
        if len(history) > self._seen:
            self(es)

    def _mark(self) -> None:
        """Remember where the next row starts (:meth:`_rewrite_last` goes back there)."""

    def _rewrite_last(self) -> None:
        """Remove the last row written, back to the latest :meth:`_mark`."""
        raise NotImplementedError


def open_unlinked(path: str, append: bool, owner: str, newline: str | None = None) -> TextIO:
    """``path`` opened for appending or truncated for writing, never through a symbolic link:
    :class:`~evostrat.errors.InvalidArgumentError` naming ``owner`` (``O_NOFOLLOW``: also a link
    planted while a run goes on is refused, not written through). A FIFO or socket there is
    refused too, without waiting for a reader (``O_NONBLOCK`` while opening). Missing folders are
    created; one that cannot be (a file on the way) or a file that cannot be created (a read-only
    folder) is an :class:`~evostrat.errors.OutputError` naming ``owner`` and ``path``."""
    refused = f"{path!r} is a symbolic link; the {owner} never writes through links"
    if os.path.islink(path):  # also where the system has no O_NOFOLLOW
        raise InvalidArgumentError(refused)
    try:  # the missing folders; a file on the way or a read-only folder: OutputError naming the owner
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    except OSError as err:
        raise OutputError.from_os_error(f"the {owner}'s file {path!r}", err) from err
    nonblock = getattr(os, "O_NONBLOCK", 0)
    flags = (os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC) | getattr(os, "O_NOFOLLOW", 0)
             | nonblock)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as err:
        if os.path.islink(path):
            raise InvalidArgumentError(refused) from err
        if os.path.exists(path) and stat.S_ISFIFO(os.stat(path).st_mode):  # ENXIO: no reader
            raise InvalidArgumentError(f"{path!r} is a FIFO; the {owner} writes regular files") from err
        raise OutputError.from_os_error(f"the {owner}'s file {path!r}", err) from err
    mode = os.fstat(fd).st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        os.close(fd)
        raise InvalidArgumentError(f"{path!r} is a FIFO or socket; the {owner} writes regular files")
    if nonblock:
        os.set_blocking(fd, True)
    return open(fd, "a" if append else "w", newline=newline, encoding="utf-8")


class _FileLogger(_RowLogger):
    def __init__(self, path: str | os.PathLike, extra: dict[str, Callable[[Any], Any]] | None = None) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidTypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        super().__init__(extra)
        self.path = os.fspath(path)
        self._file: TextIO | None = None
        self._row_start = 0

    def _mark(self) -> None:
        if self._file is not None:
            self._file.flush()
            self._row_start = self._file.tell()

    def _rewrite_last(self) -> None:
        assert self._file is not None
        self._file.seek(self._row_start)
        self._file.truncate()
        if self._row_start == 0:
            self._header_removed()

    def _header_removed(self) -> None:
        """The file's start went with its last row (a CSV header)."""

    def open_output(self) -> None:
        """Create or truncate the file, never through a symbolic link (refused)."""
        self._file = open_unlinked(self.path, append=False, owner="logger", newline="")

    def on_fit_end(self, es: Any) -> None:
        if self._file is not None:
            try:
                self.sync(es)
            finally:
                self._file.close()
            self._file = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"


def _csv_value(value: Any) -> Any:
    """A CSV cell: floats by ``repr`` of the Python float, arrays and tensors as lists ``[a, b]``."""
    if hasattr(value, "tolist"):  # numpy, torch and JAX scalars and arrays
        value = value.tolist()
    if isinstance(value, float):
        return repr(float(value))  # float(): numpy's float64 repr is "np.float64(...)"
    if isinstance(value, list):
        return "[" + ", ".join(str(_csv_value(v)) for v in value) + "]"
    return value


class CSVLogger(_FileLogger):
    """Write each generation as a CSV row (header from the first row).

    Parameters
    ----------
    path : str or os.PathLike
        Output file, overwritten at the start of the run (folders are created; a
        symbolic link there is refused, never written through).
    extra : dict of str to callable, optional
        Additional columns, ``fn(es)`` after each generation.
    columns : sequence of str, optional
        The columns, in order; default: the keys of the first row. Keys a
        later row lacks are left empty; keys not in ``columns`` are dropped.

    Notes
    -----
    Floats (numpy, torch and JAX scalars included) are written with ``repr``,
    so reading them back gives the same numbers bit for bit; arrays and tensors
    as lists ``[a, b, ...]``. Each row is flushed, so the file is usable while the
    run goes on.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> import os, tempfile
    >>> from evostrat.callbacks import CSVLogger
    >>> path = os.path.join(tempfile.mkdtemp(), "run.csv")
    >>> es = ES("snes", max_generations=3, random_state=0).fit(
    ...     lambda X: (X ** 2).sum(axis=1), np.ones(2), callbacks=[CSVLogger(path)])
    >>> with open(path) as f:
    ...     lines = f.read().splitlines()
    >>> len(lines), lines[0]
    (4, 'generation,n_evals,best,generation_best,median,sigma,time')
    """

    def __init__(self, path: str | os.PathLike, extra: dict[str, Callable[[Any], Any]] | None = None,
                 columns: list[str] | None = None) -> None:
        super().__init__(path, extra)
        self.columns = list(columns) if columns is not None else None
        self._writer: csv.DictWriter | None = None

    def open_output(self) -> None:
        super().open_output()
        self._writer = None

    def _header_removed(self) -> None:
        self._writer = None  # written again with the row

    def _write(self, row: dict[str, Any]) -> None:
        assert self._file is not None
        if self._writer is None:
            fields = self.columns or list(row) + [k for k in self.extra if k not in row]
            self._writer = csv.DictWriter(self._file, fieldnames=fields, extrasaction="ignore", restval="")
            self._writer.writeheader()
        self._writer.writerow({k: _csv_value(v) for k, v in row.items()})
        self._file.flush()


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "tolist"):
        return _json_value(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


class JSONLinesLogger(_FileLogger):
    """Write each generation as one JSON object per line (NaN and infinities as ``null``).

    Parameters
    ----------
    path : str or os.PathLike
        Output file, overwritten at the start of the run (folders are created; a
        symbolic link there is refused, never written through).
    extra : dict of str to callable, optional
        Additional fields, ``fn(es)`` after each generation (arrays become lists).

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> import json, os, tempfile
    >>> from evostrat.callbacks import JSONLinesLogger
    >>> path = os.path.join(tempfile.mkdtemp(), "run.jsonl")
    >>> es = ES("snes", max_generations=3, random_state=0).fit(
    ...     lambda X: (X ** 2).sum(axis=1), np.ones(2), callbacks=[JSONLinesLogger(path)])
    >>> with open(path) as f:
    ...     rows = [json.loads(line) for line in f]
    >>> len(rows), rows[-1]["generation"], rows[-1]["n_evals"]
    (3, 3, 18)
    """

    def _write(self, row: dict[str, Any]) -> None:
        assert self._file is not None
        self._file.write(json.dumps({k: _json_value(v) for k, v in row.items()}, allow_nan=False) + "\n")
        self._file.flush()


class DataFrameLogger(_RowLogger):
    """Collect the generations in memory; :attr:`frame` is a pandas DataFrame.

    pandas is imported only by :attr:`frame` (``pip install pandas``).

    Parameters
    ----------
    extra : dict of str to callable, optional
        Additional columns, ``fn(es)`` after each generation.

    Attributes
    ----------
    rows : list of dict
        One dict per generation.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.callbacks import DataFrameLogger
    >>> log = DataFrameLogger(extra={"mean0": lambda es: float(es.mean_[0])})
    >>> es = ES("snes", max_generations=3, random_state=0).fit(
    ...     lambda X: (X ** 2).sum(axis=1), np.ones(2), callbacks=[log])
    >>> len(log.rows), "mean0" in log.rows[0]
    (3, True)
    """

    def __init__(self, extra: dict[str, Callable[[Any], Any]] | None = None) -> None:
        super().__init__(extra)
        self.rows: list[dict[str, Any]] = []

    def open_output(self) -> None:
        self.rows = []

    def _write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def _rewrite_last(self) -> None:
        self.rows.pop()

    def on_fit_end(self, es: Any) -> None:
        self.sync(es)

    @property
    def frame(self) -> Any:
        """The rows as a ``pandas.DataFrame`` (one row per generation)."""
        return _frame(self.rows)

    def __repr__(self) -> str:
        return f"DataFrameLogger(rows={len(self.rows)})"


def _frame(rows: list[dict[str, Any]]) -> Any:
    try:
        import pandas as pd
    except ImportError as err:
        raise ImportError("a DataFrame needs pandas: pip install pandas (history_ is a plain list of dicts "
                          "and needs nothing)") from err
    return pd.DataFrame.from_records(rows)


def history_frame(es_or_history: Any) -> Any:
    """``es.history_`` (or any list of dicts) as a ``pandas.DataFrame``.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> es = ES("snes", max_generations=4, random_state=0).fit(lambda X: (X ** 2).sum(axis=1), np.ones(2))
    >>> history_frame(es)["generation"].tolist()
    [1, 2, 3, 4]
    """
    rows = getattr(es_or_history, "history_", es_or_history)
    if not isinstance(rows, list):
        raise InvalidTypeError(f"expected a fitted ES or a list of dicts, got {type(es_or_history).__name__}")
    return _frame([dict(r) for r in rows])
