"""Checkpoints: save a run, survive a crash, resume bit for bit.

``fit(objective, x0, checkpoint="run.ckpt", checkpoint_every=10)`` writes the run's
complete state every 10 generations (through :class:`Checkpointer`) and when it ends,
also when an exception interrupts it (the state of its last finished generation);
``ES.resume("run.ckpt", objective)`` continues it, making exactly the candidates,
values, ``history_`` (but its ``"time"``) and result of the uninterrupted run on every
backend. :func:`save_checkpoint`/:func:`load_checkpoint` do the same by hand for an
``initialize``/``ask``/``tell`` loop. The file is described in
:mod:`evostrat.checkpoint.format`, what it holds in :mod:`evostrat.checkpoint.state`.
An objective with state of its own (``checkpoint_state()``/``load_checkpoint_state(state)``,
such as :class:`~evostrat.problems.gym.GymProblem`'s observation statistics) is saved with
the run and given its state back on resume (:mod:`evostrat.checkpoint.features`).

Examples
--------
>>> import os, tempfile
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.checkpoint import checkpoint_info
>>> from evostrat.problems import rosenbrock
>>> path = os.path.join(tempfile.mkdtemp(), "run.ckpt")
>>> full = ES("cma_es", max_generations=60, random_state=1).fit(rosenbrock, np.zeros(4))
>>> def crash(es):
...     if es.n_generations_ == 25:
...         raise RuntimeError("power cut")
>>> try:
...     ES("cma_es", max_generations=60, random_state=1).fit(
...         rosenbrock, np.zeros(4), checkpoint=path, checkpoint_every=10, callbacks=[crash])
... except RuntimeError:
...     pass
>>> checkpoint_info(path)["n_generations"]                  # the interrupted run's last generation
25
>>> resumed = ES.resume(path, rosenbrock)                  # continues from generation 25
>>> resumed.n_generations_, bool((resumed.x_ == full.x_).all()), resumed.fun_ == full.fun_
(60, True, True)
"""

from __future__ import annotations

import os
from typing import Any

from evostrat.callbacks.base import Callback
from evostrat.checkpoint.codec import decode, encode_metadata
from evostrat.checkpoint.features import restore_objective
from evostrat.checkpoint.format import FORMAT, VERSION, check_writable, read_checkpoint, write_checkpoint
from evostrat.checkpoint.state import RUNTIME_PARAMS, capture, restore
from evostrat.errors import CheckpointError, InvalidArgumentError, InvalidTypeError, OutputError

__all__ = ["FORMAT", "VERSION", "Checkpointer", "save_checkpoint", "load_checkpoint",
    "read_checkpoint", "checkpoint_info", "RUNTIME_PARAMS"]


def save_checkpoint(es: Any, path: str | os.PathLike, metadata: dict[str, Any] | None = None,
                    objective: Any = None) -> None:
    """Write the state of ``es`` (between generations) to ``path``, atomically.

    Parameters
    ----------
    es : ES
        An estimator after ``initialize``/``fit`` (not between ``ask`` and ``tell``).
    path : str or os.PathLike
        The checkpoint file; its folder must exist.
    metadata : dict, optional
        Plain data (no arrays) stored alongside (``checkpoint_info(path)["user"]``).
    objective : callable, optional
        The loop's objective: its ``checkpoint_state()``, where it has one, is saved too
        (``load_checkpoint(path, objective=...)`` gives it back).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from evostrat import ES
    >>> es = ES("snes", random_state=0).initialize(np.zeros(3))
    >>> path = os.path.join(tempfile.mkdtemp(), "a.ckpt")
    >>> save_checkpoint(es, path, metadata={"note": "start"})
    >>> load_checkpoint(path).n_generations_, checkpoint_info(path)["user"]
    (0, {'note': 'start'})
    """
    meta, arrays = capture(es, user=metadata, objective=objective)
    write_checkpoint(path, meta, arrays)


def load_checkpoint(path: str | os.PathLike, objective: Any = None, **overrides: Any) -> Any:
    """The :class:`~evostrat.ES` saved in ``path``, ready to ``ask``/``tell``.

    ``objective``, when given, gets back the state the checkpoint saved of the run's
    objective (``objective.load_checkpoint_state(state)``; an ``InvalidTypeError`` when
    it has no such method). ``overrides`` may set ``evaluator``/``evaluator_options``, any parameter
    the checkpoint could not store, ``constraints=g``, the constraint function
    of a run fitted with one, and ``x0=draw``, the callable ``x0`` of a run fitted with
    one (:mod:`evostrat.checkpoint.features`). Raises
    :class:`~evostrat.errors.CheckpointError` for a missing, corrupt, tampered
    or foreign file.
    """
    meta, arrays = read_checkpoint(path)
    try:
        es = restore(meta, arrays, **overrides)
        if objective is not None:
            restore_objective(objective, meta.get("objective"), arrays)
        return es
    except CheckpointError as err:
        raise CheckpointError(f"checkpoint {os.fspath(path)!r}: {err}") from err


def checkpoint_info(path: str | os.PathLike) -> dict[str, Any]:
    """The verified metadata of a checkpoint: version, strategy, backend, dimension, counters, ``user``
    data (as saved)."""
    meta, _ = read_checkpoint(path)
    run, state, user = (meta.get(key) if isinstance(meta.get(key), dict) else {} for key in ("run", "state", "user"))
    try:  # tuples, non-string keys: as given (resume saves them again)
        decoded = decode(user, {})
    except CheckpointError:  # an array's tag, of an evostrat that did not refuse arrays there
        decoded = user
    user = decoded if isinstance(decoded, dict) else user
    return {
        "format": meta["format"], "version": meta["version"],
        "evostrat_version": meta.get("evostrat_version"), "created": meta.get("created"),
        "strategy": state.get("strategy"), "backend": state.get("backend"), "dim": state.get("dim"),
        **{key: run.get(key) for key in ("n_generations", "n_evals", "stop_reason")},
        "checkpoint_every": meta.get("checkpoint_every"), "user": user,
    }


class Checkpointer(Callback):
    """Callback that checkpoints a run every ``every`` generations and when it ends.

    Parameters
    ----------
    path : str or os.PathLike
        Checkpoint file (its folder is created if missing); a relative path is taken from the
        working directory when the ``Checkpointer`` is made, wherever the run later changes it.
    every : int
        Generations between checkpoints (counted over all restarts), >= 1.
    metadata : dict, optional
        Plain JSON data stored in every checkpoint.

    Notes
    -----
    Checkpoints are written between generations only. The final one lets
    :meth:`ES.resume` return the finished result; a run interrupted by an exception
    (Ctrl-C, an error of the objective or of a callback, a dead worker) goes back to its
    last finished generation and writes that, so nothing evaluated and told is lost and
    :meth:`ES.resume` continues it bit for bit. A checkpoint that cannot be written (its folder
    read-only or a file) is refused when the fit starts, before the first evaluation; a write that
    fails later (a full disk) raises :class:`~evostrat.errors.OutputError` naming the file and leaves
    the previous checkpoint whole (each write is atomic): resume from it.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.checkpoint import Checkpointer, checkpoint_info
    >>> path = os.path.join(tempfile.mkdtemp(), "run.ckpt")
    >>> es = ES("snes", max_generations=12, random_state=0)
    >>> _ = es.fit(lambda X: (X ** 2).sum(axis=1), np.ones(3), callbacks=[Checkpointer(path, every=5)])
    >>> checkpoint_info(path)["n_generations"], checkpoint_info(path)["stop_reason"]
    (12, 'maxiter')
    """

    def __init__(self, path: str | os.PathLike, every: int = 1, metadata: dict[str, Any] | None = None) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidTypeError(f"checkpoint must be a path (str or os.PathLike), got {type(path).__name__}")
        if isinstance(every, bool) or not isinstance(every, int):
            raise InvalidTypeError(f"checkpoint_every must be a positive int, got {every!r}")
        if every < 1:
            raise InvalidArgumentError(f"checkpoint_every must be a positive int, got {every}")
        encode_metadata(metadata)  # a dict of plain data, refused now rather than at the first checkpoint
        self.path = os.path.abspath(os.fspath(path))  # where it was meant: an objective may change directory
        self.every = every
        self.metadata = metadata
        self.n_written = 0
        self.objective: Any = None  # the run's objective (set by fit/resume): its checkpoint_state() is saved

    def on_fit_start(self, es: Any) -> None:
        """Refuse a checkpoint that could not be written (a read-only folder, a file where a folder
        should be) before the run starts: :class:`~evostrat.errors.OutputError` naming it."""
        check_writable(self.path, f"checkpoint {self.path!r}")

    def save(self, es: Any) -> None:
        """Write a checkpoint of ``es`` now; a failed write (a full disk) is an
        :class:`~evostrat.errors.OutputError` naming the file, and leaves the previous checkpoint as it was."""
        meta, arrays = capture(es, user=self.metadata, objective=self.objective)
        meta["checkpoint_every"] = self.every
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        except OSError as err:
            raise OutputError.from_os_error(f"checkpoint {self.path!r}", err) from err
        write_checkpoint(self.path, meta, arrays)
        self.n_written += 1

    def __call__(self, es: Any) -> None:
        if es.stop_reason_ is None and es.n_generations_ % self.every == 0:
            self.save(es)

    def on_fit_end(self, es: Any) -> None:
        """The final checkpoint: of the finished run, or of an interrupted run's last finished generation
        (not written when the interrupt left a generation half-recorded)."""
        driver = vars(es).get("run_")
        if es.stop_reason_ is not None or (driver is not None and driver.settled and driver.runner.pending is None):
            self.save(es)

    def __repr__(self) -> str:
        return f"Checkpointer({self.path!r}, every={self.every})"
