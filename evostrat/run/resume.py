"""Resume a checkpointed run: the run value read back, then the same driver loop.

:func:`resume_run` is what ``ES.resume(path, objective)`` does: it builds the run's hooks
(callbacks, progress, continued checkpointing) like ``fit``, restores the estimator with
:func:`evostrat.checkpoint.load_checkpoint` and runs the driver until it stops.
"""

from __future__ import annotations

from typing import Any

from evostrat.callbacks.hooks import resume_hooks
from evostrat.checkpoint import load_checkpoint
from evostrat.checkpoint.features import MissingStartPoint
from evostrat.errors import InvalidTypeError

__all__ = ["resume_run"]


def resume_run(path: Any, objective: Any, callbacks: Any = None, *, progress: Any = False,
               checkpoint: Any = True, checkpoint_every: int | None = None, **overrides: Any) -> Any:
    """Continue the run saved in the checkpoint ``path`` until it stops.

    With the same objective the result, ``history_`` (but its ``"time"``)
    and every evaluated candidate equal those of the uninterrupted run. A
    checkpoint of a finished run returns its result without evaluating.

    Parameters
    ----------
    path : str or os.PathLike
        A checkpoint written by ``fit(checkpoint=...)`` or
        :func:`evostrat.checkpoint.save_checkpoint`.
    objective : callable
        The objective of the saved run (it is not stored; its ``checkpoint_state()`` is, and
        is given back with its ``load_checkpoint_state(state)``).
    callbacks, progress
        As for :meth:`evostrat.ES.fit`.
    checkpoint : True, False, str or Checkpointer
        ``True`` (default): keep checkpointing to ``path`` at the saved
        interval; ``False``/``None``: no more checkpoints; a path or
        :class:`~evostrat.checkpoint.Checkpointer`: checkpoint there.
    checkpoint_every : int, optional
        New interval (default: the saved one).
    **overrides
        ``evaluator``/``evaluator_options``, parameters the checkpoint could
        not store (an ``Evaluator``, a run's ``constraints=g``, a callable ``x0``
        that starts its restart runs), and a new budget
        ``max_evals``/``max_generations``: not below what was spent; a run its
        budget stopped continues as if that budget had been set from the start.

    Returns
    -------
    ES
        A new fitted estimator.

    Raises
    ------
    CheckpointError
        For a missing, corrupt, tampered or foreign checkpoint.

    Examples
    --------
    See :mod:`evostrat.checkpoint`'s example: ``ES.resume(path, objective)`` calls this function.
    """
    if not callable(objective):
        raise InvalidTypeError(f"objective must be callable, got {type(objective).__name__}")
    hooks = resume_hooks(path, callbacks, progress, checkpoint, checkpoint_every, objective)
    es = load_checkpoint(path, objective=objective, **overrides)
    driver = es.run_
    if isinstance(driver.x0_source, MissingStartPoint) and driver.restarts is not None and \
            driver.state.stop_reason is None:
        driver.x0_source.check()  # restarts would call the run's callable x0: asked for before evaluating
    driver.run_loop(objective, hooks, es)
    return es
