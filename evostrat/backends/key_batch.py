"""Host keys of many runs as one key, for a strategy's ``ask`` under ``torch.func.vmap``.

A torch batch (:mod:`evostrat.run.batch_stack`) asks all its runs in one vmapped call of
the strategy's pure ``ask``. Each run must still draw from its own key, in the order it
would alone, so its candidates are those of the run done alone. Inside the vmapped call
the state's key leaf is a :class:`KeyBatch`: the runs' host keys and the vmapped run
index. The host-key backends (numpy's :class:`~evostrat.backends.numpy.HostKeys`, torch)
split a ``KeyBatch`` key by key, and the torch backend draws from it run by run (each
run's own ``torch.Generator`` call, as alone) and hands each vmapped run its own rows,
gathered by the run index. Anything else done with the key (reading its words) fails
under vmap, and the batch then asks run by run.

Examples
--------
>>> import numpy as np
>>> from evostrat.backends.host_keys import seed_to_uint64, split_uint64
>>> keys = KeyBatch(np.stack([seed_to_uint64(0), seed_to_uint64(1)]), index=None)
>>> new, sub = keys.split()
>>> bool((sub.keys[1] == split_uint64(seed_to_uint64(1))[1]).all())
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evostrat.backends.host_keys import split_keys

__all__ = ["KeyBatch"]


class KeyBatch:
    """The host keys of a batch's runs, in run order, and the vmapped index of the run.

    Parameters
    ----------
    keys : uint64 ndarray, shape (n_runs, 2)
        Each run's key (a row).
    index : 0-d integer tensor (batched under vmap) or None
        Which run a vmapped call computes (``torch.arange(n_runs)`` mapped over).
    """

    def __init__(self, keys: np.ndarray, index: Any) -> None:
        self.keys = keys
        self.index = index

    def split(self, num: int = 2) -> tuple["KeyBatch", ...]:
        """``num`` key batches: child ``j`` holds each run's ``split_uint64(key, num)[j]``
        (:func:`~evostrat.backends.host_keys.split_keys`: all runs at once)."""
        return tuple(KeyBatch(child, self.index) for child in split_keys(self.keys, num))

