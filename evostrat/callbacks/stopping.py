"""Early stopping on the best value: patience and minimum improvement.

:class:`EarlyStopping` stops a run when the best value so far improved by no
more than ``min_delta`` over the last ``patience`` generations. It reads the
decision from ``es.history_`` alone and keeps no state of its own, so a run
resumed from a checkpoint stops at the same generation as an uninterrupted one.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.callbacks import EarlyStopping
>>> flat = lambda X: np.ones(len(X))                 # nothing ever improves
>>> es = ES("snes", tolfun=None, random_state=0).fit(flat, np.zeros(3), callbacks=[EarlyStopping(patience=5)])
>>> es.stop_reason_, es.n_generations_
('callback', 6)
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from evostrat.callbacks.base import Callback
from evostrat.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["EarlyStopping"]


class EarlyStopping(Callback):
    """Stop when ``monitor`` improved by at most ``min_delta`` in ``patience`` generations.

    Parameters
    ----------
    patience : int
        Generations to wait for an improvement, >= 1.
    min_delta : float
        Smallest change that counts as an improvement, >= 0 (in the objective's
        units; in the user's sense, so larger is better with ``maximize=True``).
    monitor : str
        The ``history_`` column to watch; ``"best"`` (best value so far) by default.

    Attributes
    ----------
    stopped_generation : int or None
        The generation at which it stopped the run.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.callbacks import EarlyStopping
    >>> stop = EarlyStopping(patience=20, min_delta=1e-3)
    >>> es = ES("snes", tolfun=None, random_state=0).fit(
    ...     lambda X: np.abs(X).sum(axis=1).round(3), np.ones(3), callbacks=[stop])
    >>> es.stop_reason_, stop.stopped_generation == es.n_generations_
    ('callback', True)
    """

    def __init__(self, patience: int = 10, min_delta: float = 0.0, monitor: str = "best") -> None:
        if isinstance(patience, bool) or not isinstance(patience, numbers.Integral):
            raise InvalidTypeError(f"patience must be a positive int, got {patience!r}")
        if patience < 1:
            raise InvalidArgumentError(f"patience must be a positive int, got {patience}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, numbers.Real):
            raise InvalidTypeError(f"min_delta must be a number >= 0, got {min_delta!r}")
        if not min_delta >= 0:
            raise InvalidArgumentError(f"min_delta must be a number >= 0, got {min_delta}")
        if not isinstance(monitor, str):
            raise InvalidTypeError(f"monitor must be a history_ column name, got {monitor!r}")
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.monitor = monitor
        self.stopped_generation: int | None = None

    def on_fit_start(self, es: Any) -> None:
        self.stopped_generation = None

    def __call__(self, es: Any) -> bool:
        history = es.history_
        if len(history) <= self.patience:
            return False
        if self.monitor not in history[-1]:
            raise InvalidArgumentError(
                f"EarlyStopping monitor {self.monitor!r} is not a history_ column; "
                f"columns: {sorted(history[-1])}"
            )
        old, new = history[-1 - self.patience][self.monitor], history[-1][self.monitor]
        if not (math.isfinite(old) and math.isfinite(new)):
            improved = new != old
        else:
            improved = (new - old if es.maximize else old - new) > self.min_delta
        if not improved:
            self.stopped_generation = es.n_generations_
        return not improved

    def __repr__(self) -> str:
        return f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, monitor={self.monitor!r})"
