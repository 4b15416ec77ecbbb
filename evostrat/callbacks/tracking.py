"""Experiment tracking: TensorBoard and MLflow loggers (``pip install evostrat[tracking]``).

Both write, per logged generation, every number of the ``history_`` entry (``best``,
``generation_best``, ``median``, ``sigma``, ``n_evals``, ``time``, the behaviour or
constraint columns a run has, the ``axis_ratio`` when a
:class:`~evostrat.callbacks.DistributionRecorder` put ``axes`` there) and any ``extra``
columns, at step = generation. Non-finite values are skipped. They import their library
only when a fit starts, so ``import evostrat`` stays light.

- :class:`TensorBoardLogger` writes an event file in the ``tensorboard`` package's record
  format (no TensorFlow, no torch), flushed at each logged generation, never through a link,
  or into any ``SummaryWriter``-like object you pass (torch's
  ``torch.utils.tensorboard.SummaryWriter``, tensorboardX's: where and how those write is theirs);
- :class:`MLflowLogger` creates an MLflow run through ``MlflowClient`` (no global active
  run), logs the estimator's parameters, the metrics, and at the end the result
  (``fun``, ``n_evals``, ``n_generations``) and the stop reason as a tag. MLflow 3's file
  store (``file:///path``) needs ``MLFLOW_ALLOW_FILE_STORE=true``; ``sqlite:///mlflow.db``
  (with ``pip install mlflow``) or a server's ``http://`` URI work as they are. MLflow writes
  its store itself: evostrat does not check it for links (point it at a folder you own).

Examples
--------
>>> import os, tempfile
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.callbacks import TensorBoardLogger
>>> logdir = tempfile.mkdtemp()
>>> es = ES("snes", max_generations=5, random_state=0).fit(
...     lambda X: (X ** 2).sum(axis=1), np.ones(3), callbacks=[TensorBoardLogger(logdir)])
>>> any(name.startswith("events.out.tfevents") for name in os.listdir(logdir))
True
"""

from __future__ import annotations

import itertools
import math
import numbers
import os
import socket
import time
from typing import Any, Callable

from evostrat.callbacks.base import Callback
from evostrat.errors import InvalidArgumentError, InvalidTypeError, OutputError

__all__ = ["TensorBoardLogger", "MLflowLogger", "scalars"]

_FILES = itertools.count()  # the event files of this process (one per fit), as in their names


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a ``history_`` entry, plus ``axis_ratio`` when it has ``axes``.

    Examples
    --------
    >>> scalars({"generation": 3, "best": 1.5, "median": float("nan"), "run": 0, "axes": [0.5, 2.0]})
    {'best': 1.5, 'run': 0.0, 'axis_ratio': 4.0}
    """
    out: dict[str, float] = {}
    for key, value in row.items():
        if key == "generation" or isinstance(value, bool) or not isinstance(value, numbers.Real):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    axes = row.get("axes")
    if isinstance(axes, (list, tuple)) and axes and min(axes) > 0:
        out["axis_ratio"] = float(max(axes) / min(axes))
    return out


def _check(extra: Any, every: Any) -> tuple[dict[str, Callable[[Any], Any]], int]:
    if extra is not None and (not isinstance(extra, dict)
                              or not all(isinstance(k, str) and callable(v) for k, v in extra.items())):
        raise InvalidTypeError("extra must be a dict of metric name -> callable fn(es)")
    if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
        raise InvalidArgumentError(f"every must be a positive int, got {every!r}")
    return dict(extra or {}), int(every)


class _Tracker(Callback):
    """New ``history_`` rows -> :meth:`write` (every ``every`` generations and the last)."""

    def __init__(self, extra: dict[str, Callable[[Any], Any]] | None, every: int) -> None:
        self.extra, self.every = _check(extra, every)
        self._seen = 0
        self._logged: int | None = None  # the generation written last
        self._written: set[str] = set()  # its names written

    def open(self, es: Any) -> None:
        raise NotImplementedError

    def write(self, step: int, values: dict[str, float]) -> None:
        raise NotImplementedError

    def on_fit_start(self, es: Any) -> None:
        self.open(es)
        self._seen = len(es.history_)  # a resumed run: its history was logged by the first fit
        self._logged = int(es.history_[-1].get("generation", 0)) if es.history_ else None

    def _log_new(self, es: Any, force: bool) -> None:
        new = es.history_[self._seen:]
        self._seen = len(es.history_)
        for i, entry in enumerate(new):
            generation = int(entry.get("generation", 0))
            last = i == len(new) - 1
            if generation % self.every and not (force and last):
                continue
            self._write_entry(es, entry, extra=last)

    def _write_entry(self, es: Any, entry: dict[str, Any], extra: bool) -> None:
        values = scalars(entry)
        if extra:
            values.update(scalars({name: fn(es) for name, fn in self.extra.items()}))
        self._logged, self._written = int(entry.get("generation", 0)), set(values)
        self.write(self._logged, values)

    def _log_last(self, es: Any) -> None:
        """At the end of a fit: the new rows and the last generation, also when ``every`` skipped it
        because the run had not stopped yet (a later callback stopped it, or the objective raised)."""
        self._log_new(es, force=True)
        if es.history_ and int(es.history_[-1].get("generation", 0)) != self._logged:
            self._write_entry(es, es.history_[-1], extra=True)
        elif es.history_:  # written: the numbers added since (a DistributionRecorder's final axis_ratio)
            added = {k: v for k, v in scalars(es.history_[-1]).items() if k not in self._written}
            if added:
                self._written |= set(added)
                self.write(self._logged, added)

    def __call__(self, es: Any) -> None:
        self._log_new(es, force=es.stop_reason_ is not None)


class TensorBoardLogger(_Tracker):
    """Log each generation's numbers as TensorBoard scalars (``tensorboard --logdir DIR``).

    Parameters
    ----------
    log_dir : str or os.PathLike, optional
        Folder of the event file (created); required unless ``writer`` is given. A symbolic
        link there is refused (:class:`~evostrat.errors.InvalidArgumentError`), and the event file,
        new at each fit, is created with ``O_EXCL | O_NOFOLLOW``: nothing is written through a link.
    writer : object, optional
        Any object with ``add_scalar(tag, value, step)`` (and ``flush()``), such as
        ``torch.utils.tensorboard.SummaryWriter``; used as it is and never closed.
    prefix : str
        Tag prefix, default ``"evostrat/"`` (tags such as ``evostrat/best``).
    extra : dict of str to callable, optional
        More scalars, ``fn(es)`` after each logged generation.
    every : int
        Log every that many generations (the last one always).
    """

    def __init__(self, log_dir: str | os.PathLike | None = None, writer: Any = None, prefix: str = "evostrat/",
                 extra: dict[str, Callable[[Any], Any]] | None = None, every: int = 1) -> None:
        if writer is None and not isinstance(log_dir, (str, os.PathLike)):
            raise InvalidTypeError(f"log_dir must be a str or os.PathLike (or pass writer=), got {log_dir!r}")
        if writer is not None and not callable(getattr(writer, "add_scalar", None)):
            raise InvalidTypeError(f"writer must have add_scalar(tag, value, step), got {type(writer).__name__}")
        if not isinstance(prefix, str):
            raise InvalidTypeError(f"prefix must be a str, got {type(prefix).__name__}")
        super().__init__(extra, every)
        self.log_dir = os.fspath(log_dir) if log_dir is not None else None
        self.writer, self.prefix = writer, prefix
        self._events: Any = None

    def open(self, es: Any) -> None:
        if self.writer is not None:
            return
        try:
            from tensorboard.compat.proto.event_pb2 import Event
            from tensorboard.summary.writer.record_writer import RecordWriter
        except ImportError as err:
            raise ImportError("TensorBoardLogger needs tensorboard: pip install evostrat[tracking]") from err
        folder = str(self.log_dir)  # a str without writer= (__init__)
        if os.path.islink(folder):
            raise InvalidArgumentError(f"log_dir {folder!r} is a symbolic link; TensorBoardLogger never writes "
                                       "through links: name the folder itself")
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_FILES)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        try:  # a fresh file: a file or link planted under the name is refused, never opened
            os.makedirs(folder, exist_ok=True)
            fd = os.open(os.path.join(folder, name), flags, 0o666)
        except FileExistsError as err:
            if os.path.isdir(folder):
                raise InvalidArgumentError(f"log_dir {folder!r} already holds {name!r} (a planted file or link); "
                                           "TensorBoardLogger writes a new event file only") from err
            raise OutputError.from_os_error(f"log_dir {folder!r}", err) from err
        except OSError as err:  # a file on the way, a read-only folder, a full disk
            raise OutputError.from_os_error(f"log_dir {folder!r}", err) from err
        self._events = RecordWriter(os.fdopen(fd, "wb"))
        self._add(Event(wall_time=time.time(), file_version="brain.Event:2"))

    def _add(self, event: Any) -> None:
        """Append ``event`` to the event file and flush it (TensorBoard shows it at once)."""
        self._events.write(event.SerializeToString())
        self._events.flush()

    def write(self, step: int, values: dict[str, float]) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(self.prefix + key, value, step)
            return
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        summary = Summary(value=[Summary.Value(tag=self.prefix + k, simple_value=v) for k, v in values.items()])
        self._add(Event(summary=summary, step=step, wall_time=time.time()))

    def on_fit_end(self, es: Any) -> None:
        try:
            self._log_last(es)
        finally:
            if self.writer is not None:
                getattr(self.writer, "flush", lambda: None)()
            elif self._events is not None:
                self._events.close()
                self._events = None

    def __repr__(self) -> str:
        return f"TensorBoardLogger({self.log_dir!r})"


class MLflowLogger(_Tracker):
    """Log a fit as an MLflow run: parameters, per-generation metrics, result and stop reason.

    Parameters
    ----------
    tracking_uri : str, optional
        Where runs go (``file:///abs/path``, ``sqlite:///mlflow.db``, ``http://host:5000``);
        default: MLflow's (``MLFLOW_TRACKING_URI``).
    experiment : str
        Experiment name, created when missing (default ``"evostrat"``).
    run_name : str, optional
    extra : dict of str to callable, optional
        More metrics, ``fn(es)`` after each logged generation.
    every : int
        Log every that many generations (the last one always).

    Attributes
    ----------
    run_id : str or None
        The MLflow run of the last fit.
    """

    def __init__(self, tracking_uri: str | None = None, experiment: str = "evostrat", run_name: str | None = None,
                 extra: dict[str, Callable[[Any], Any]] | None = None, every: int = 1) -> None:
        for name, value in (("tracking_uri", tracking_uri), ("run_name", run_name)):
            if value is not None and not isinstance(value, str):
                raise InvalidTypeError(f"{name} must be a str, got {type(value).__name__}")
        if not isinstance(experiment, str) or not experiment:
            raise InvalidArgumentError(f"experiment must be a non-empty str, got {experiment!r}")
        super().__init__(extra, every)
        self.tracking_uri, self.experiment, self.run_name = tracking_uri, experiment, run_name
        self.run_id: str | None = None
        self._client: Any = None

    def open(self, es: Any) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as err:
            raise ImportError("MLflowLogger needs mlflow: pip install evostrat[tracking]") from err
        client = MlflowClient(tracking_uri=self.tracking_uri)
        found = client.get_experiment_by_name(self.experiment)
        experiment_id = found.experiment_id if found is not None else client.create_experiment(self.experiment)
        run = client.create_run(experiment_id, run_name=self.run_name)
        self._client, self.run_id = client, run.info.run_id
        params = {k: v for k, v in es.get_params(deep=False).items() if not callable(v)}
        client.log_batch(self.run_id, params=[_param(k, v) for k, v in sorted(params.items())])

    def write(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def on_fit_end(self, es: Any) -> None:
        if self._client is None:
            return
        self._log_last(es)
        result = {"fun": float(es.fun_), "n_evals": float(es.n_evals_), "n_generations": float(es.n_generations_)}
        self.write(int(es.n_generations_), {k: v for k, v in result.items() if math.isfinite(v)})
        self._client.set_tag(self.run_id, "stop_reason", str(es.stop_reason_))
        self._client.set_terminated(self.run_id)
        self._client = None

    def __repr__(self) -> str:
        return f"MLflowLogger({self.tracking_uri!r}, experiment={self.experiment!r})"


def _param(key: str, value: Any) -> Any:
    from mlflow.entities import Param

    text = value if isinstance(value, str) else repr(value)
    return Param(key, text[:6000])  # MLflow's limit on a parameter's value
