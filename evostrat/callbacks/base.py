"""The callback protocol of :meth:`ES.fit <evostrat.ES.fit>`.

A callback is any callable ``cb(es)``, called after every generation with the
estimator (its ``history_[-1]`` is the generation just finished); returning
``True`` stops the run cleanly with ``stop_reason_ == "callback"`` (the
generation is complete, the result and a final checkpoint are consistent).
Objects may also define ``on_fit_start(es)`` (before the first generation,
also when a run is resumed) and ``on_fit_end(es)`` (after the last, also when
the run raised): :class:`Callback` is a base class with no-op versions.

:class:`Callback` shows a stateful one.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Callback"]


class Callback:
    """Base class of stateful callbacks; every method is optional.

    A plain function ``cb(es)`` is a callback too; subclass this for one that keeps state
    or needs ``on_fit_start``/``on_fit_end``.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.callbacks import Callback
    >>> class StopAt(Callback):
    ...     def __init__(self, generations):
    ...         self.generations = generations
    ...     def __call__(self, es):
    ...         return es.n_generations_ >= self.generations  # True stops the run
    >>> es = ES("snes", random_state=0).fit(lambda X: (X ** 2).sum(axis=1), np.ones(2), callbacks=[StopAt(5)])
    >>> es.stop_reason_, es.n_generations_
    ('callback', 5)
    """

    def on_fit_start(self, es: Any) -> None:
        """Called once before the first generation (of a fit or a resume)."""

    def __call__(self, es: Any) -> bool | None:
        """Called after every generation; return ``True`` to stop the run."""
        return None

    def on_fit_end(self, es: Any) -> None:
        """Called once when the run ends, normally or by an exception."""
