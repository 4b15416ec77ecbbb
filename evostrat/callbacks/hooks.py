"""What :meth:`ES.fit <evostrat.ES.fit>` calls around its generations.

:class:`RunHooks` bundles the user's callbacks with the progress bar and the checkpointer
that ``fit(progress=..., checkpoint=...)`` ask for, validates them before the run starts
and calls them in a fixed order after every generation: user callbacks (any returning
``True``, or a true boolean scalar of numpy, torch or JAX, sets ``stop_reason_ =
"callback"``), the progress bar, then the checkpointer, which so records the generation
with its final stop reason.

Examples
--------
>>> from evostrat.callbacks.hooks import RunHooks
>>> RunHooks([print], progress=False)
RunHooks(callbacks=1, progress=None, checkpoint=None)
>>> RunHooks("not callables")
Traceback (most recent call last):
...
evostrat.errors.InvalidTypeError: callbacks must be a sequence of callables cb(es), got str
"""

from __future__ import annotations

import os
import sys
from typing import Any, Sequence

from evostrat.callbacks.progress import make_progress
from evostrat.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["RunHooks", "resume_hooks"]


def _check_callbacks(callbacks: Any) -> list[Any]:
    if callbacks is None:
        return []
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Sequence):
        single = "a single callable; wrap it in a list: callbacks=[cb]"
        got = single if callable(callbacks) else type(callbacks).__name__
        raise InvalidTypeError(f"callbacks must be a sequence of callables cb(es), got {got}")
    for i, cb in enumerate(callbacks):
        if not callable(cb):
            raise InvalidTypeError(f"callbacks[{i}] must be callable as cb(es), got {type(cb).__name__}")
    return list(callbacks)


def _is_true(value: Any) -> bool:
    """Whether a callback's return value is ``True``: Python's, or a boolean scalar of numpy,
    torch or JAX (``es.fun_ < target`` on arrays); anything else (``None``, numbers) is not."""
    if value is True or value is None or value is False:
        return value is True
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    return shape is not None and tuple(shape) == () and str(dtype) in ("bool", "torch.bool") and bool(value)


def _checkpointer_class() -> type | None:
    """:class:`~evostrat.checkpoint.Checkpointer`, or ``None`` while :mod:`evostrat.checkpoint` is not
    imported: then no hook is one, and a fit without checkpoints never loads it (nor the zip, JSON and
    hashing modules of its file format)."""
    module = sys.modules.get("evostrat.checkpoint")
    return getattr(module, "Checkpointer", None)


def _make_checkpointer(checkpoint: Any, every: int | None, metadata: dict[str, Any] | None) -> Any:
    """The checkpointer ``fit(checkpoint=..., checkpoint_every=...)`` asks for, or ``None``;
    :mod:`evostrat.checkpoint` is imported only when there is one."""
    if checkpoint is None or checkpoint is False:
        if every is not None:
            raise InvalidArgumentError(
                "checkpoint_every needs checkpoint=<path>; got checkpoint_every without a checkpoint"
            )
        return None
    from evostrat.checkpoint import Checkpointer

    if isinstance(checkpoint, Checkpointer):
        if every is not None:
            raise InvalidArgumentError(
                "checkpoint_every applies to checkpoint=<path>; set every= on the Checkpointer instead"
            )
        return checkpoint
    if isinstance(checkpoint, (str, os.PathLike)):
        return Checkpointer(checkpoint, every=1 if every is None else every, metadata=metadata)
    raise InvalidTypeError(
        "checkpoint must be a path (str or os.PathLike), a Checkpointer or None, got "
        f"{type(checkpoint).__name__}"
    )


class RunHooks:
    """Callbacks, progress bar and checkpointer of one run.

    Parameters
    ----------
    callbacks : sequence of callables, optional
    progress : bool, "always", "auto" or ProgressBar
        See :func:`evostrat.callbacks.progress.make_progress`.
    checkpoint : str, os.PathLike or Checkpointer, optional
    every : int, optional
        Generations between checkpoints (only with ``checkpoint``; default 1).
    metadata : dict, optional
        User metadata stored in the checkpoints.
    objective : callable, optional
        The run's objective: every :class:`~evostrat.checkpoint.Checkpointer` of the run
        (``checkpoint=`` or among the callbacks) saves its ``checkpoint_state()``.
    """

    def __init__(
        self,
        callbacks: Any = None,
        *,
        progress: Any = False,
        checkpoint: Any = None,
        every: int | None = None,
        metadata: dict[str, Any] | None = None,
        objective: Any = None,
    ) -> None:
        self.callbacks = _check_callbacks(callbacks)
        self.progress = make_progress(progress)
        self.checkpointer = _make_checkpointer(checkpoint, every, metadata)
        self._started: list[Any] = []
        self.objective = objective

    @property
    def observers(self) -> bool:
        """Whether anything observes the run (callbacks, a progress bar or a checkpointer)."""
        return bool(self.callbacks) or self.progress is not None or self.checkpointer is not None

    def _internal(self) -> list[Any]:
        return [h for h in (self.progress, self.checkpointer) if h is not None]

    def start(self, es: Any) -> None:
        """``on_fit_start`` of every hook that has one."""
        checkpointer = _checkpointer_class()
        for hook in self.callbacks + self._internal():
            if checkpointer is not None and isinstance(hook, checkpointer):
                hook.objective = self.objective
            start = getattr(hook, "on_fit_start", None)
            if start is not None:
                start(es)
            self._started.append(hook)

    def generation(self, es: Any) -> None:
        """After a generation: callbacks (stopping), progress, checkpoint."""
        stops = [_is_true(cb(es)) for cb in self.callbacks]  # every callback runs, even after a stop
        if any(stops) and es.stop_reason_ is None:
            es.stop_reason_ = "callback"
            runs = es.restarts_  # with restarts, the current run's record says why it ended too
            if runs and runs[-1]["stop_reason"] is None:
                runs[-1]["stop_reason"] = "callback"
        for hook in self._internal():
            hook(es)

    def end(self, es: Any) -> None:
        """``on_fit_end`` of every started hook (progress first); re-raises the first error."""
        error: BaseException | None = None
        started = [h for h in self._internal() + self.callbacks if h in self._started]  # progress first
        for end in filter(None, (getattr(hook, "on_fit_end", None) for hook in started)):
            try:
                end(es)
            except BaseException as err:  # noqa: BLE001 - every hook gets its end call
                error = error or err
        self._started = []
        if error is not None:
            raise error

    def __repr__(self) -> str:
        return (
            f"RunHooks(callbacks={len(self.callbacks)}, progress={self.progress!r}, "
            f"checkpoint={self.checkpointer!r})"
        )


def resume_hooks(path: Any, callbacks: Any, progress: Any, checkpoint: Any, every: int | None,
                 objective: Any = None) -> RunHooks:
    """The hooks of :meth:`ES.resume <evostrat.ES.resume>`: by default keep checkpointing to ``path``
    at the saved interval with the saved user metadata (and ``objective``'s state)."""
    if checkpoint is True:
        from evostrat.checkpoint import checkpoint_info

        info = checkpoint_info(path)
        saved = info.get("checkpoint_every")
        every = every if every is not None else (saved if isinstance(saved, int) and saved >= 1 else 1)
        return RunHooks(callbacks, progress=progress, checkpoint=path, every=every, metadata=info["user"] or None,
                        objective=objective)
    return RunHooks(callbacks, progress=progress, checkpoint=checkpoint, every=every, objective=objective)
