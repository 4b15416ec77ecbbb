"""Callbacks for :meth:`ES.fit <evostrat.ES.fit>`: loggers, early stopping, recorders.

:class:`Callback` is the protocol (``cb(es)`` after each generation; ``True`` stops the
run), implemented by :class:`CSVLogger`, :class:`JSONLinesLogger`, :class:`DataFrameLogger`
(:mod:`evostrat.callbacks.loggers`), :class:`TensorBoardLogger` and :class:`MLflowLogger`
(:mod:`evostrat.callbacks.tracking`), :class:`EarlyStopping`, :class:`DistributionRecorder`,
:class:`SearchRecorder`, :class:`CentreRank` (:mod:`evostrat.callbacks.centre_rank`), the
progress bar :class:`ProgressBar` (:mod:`evostrat.callbacks.progress`) and checkpoints (:mod:`evostrat.checkpoint`),
the last two switched on by ``fit(progress=..., checkpoint=...)``.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.callbacks import EarlyStopping
>>> es = ES("snes", random_state=0, tolfun=None).fit(lambda X: np.abs(X).sum(axis=1).round(3),
...     np.ones(3), callbacks=[EarlyStopping(patience=20, min_delta=1e-3)])
>>> es.stop_reason_, es.fun_ < 0.01
('callback', True)
"""

from __future__ import annotations

from evostrat.callbacks.base import Callback
from evostrat.callbacks.centre_rank import CentreRank
from evostrat.callbacks.loggers import CSVLogger, DataFrameLogger, JSONLinesLogger, history_frame
from evostrat.callbacks.progress import ProgressBar
from evostrat.callbacks.recorder import DistributionRecorder, SearchRecorder, distribution_summary, snapshot
from evostrat.callbacks.stopping import EarlyStopping
from evostrat.callbacks.tracking import MLflowLogger, TensorBoardLogger

__all__ = ["Callback", "CentreRank", "ProgressBar", "CSVLogger", "JSONLinesLogger", "DataFrameLogger", "EarlyStopping",
    "DistributionRecorder", "SearchRecorder", "TensorBoardLogger", "MLflowLogger", "distribution_summary",
    "history_frame", "snapshot"]
