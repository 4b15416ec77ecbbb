"""Standard normal draws of a torch batch's runs, each from its own key, into a buffer kept from
generation to generation.

Used by the stack kernel of CMA-ES and sep-CMA-ES (:mod:`evostrat.kernels.cma_torch_stack`). Each
run's numbers are the lone run's: its row is filled by one ``torch.Generator`` seeded with
:func:`~evostrat.backends.torch.generator_seed` of its key, as the torch backend's ``normal``
draws a :class:`~evostrat.backends.key_batch.KeyBatch` and a lone run's ``randn``. Kept from
call to call, the buffer, its rows' views and the generator are not made again every generation
(64 runs of CMA-ES at d = 10, 200 generations: the batch's kernel loop 308 -> 294 ms with the
keys split directly, one CPU).

Examples
--------
>>> import numpy as np, torch
>>> from evostrat.backends import get_backend
>>> from evostrat.backends.host_keys import seed_to_uint64
>>> keys = np.stack([seed_to_uint64(0), seed_to_uint64(1)])
>>> z = Draws().normal(keys, (3, 2), torch.float64, torch.device("cpu"))
>>> bool(torch.equal(z[1], get_backend(torch.zeros(1)).normal(keys[1], (3, 2), torch.float64)))
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from evostrat.backends.torch import generator_seed

__all__ = ["Draws"]


class Draws:
    """Standard normal draws of many runs, each from its own host key as the torch backend's
    ``normal`` draws a :class:`~evostrat.backends.key_batch.KeyBatch`'s (each run's row filled by
    one generator seeded with :func:`~evostrat.backends.torch.generator_seed` of its key: the lone
    run's ``randn``), into one buffer kept from call to call with its rows' views: a kernel's
    scratch space, overwritten by the next call."""

    def __init__(self) -> None:
        self.rows: tuple[torch.Tensor, ...] = ()
        self.buffer: torch.Tensor | None = None
        self.generator: torch.Generator | None = None

    def normal(self, keys: np.ndarray, shape: tuple[int, ...], dtype: torch.dtype, device: Any) -> torch.Tensor:
        """The draws of ``keys`` (``(runs, 2)``), shape ``(runs,) + shape``, in the buffer."""
        buffer = self.buffer
        if buffer is None or buffer.shape != (len(keys),) + shape or buffer.dtype != dtype or buffer.device != device:
            self.buffer = buffer = torch.empty((len(keys),) + shape, dtype=dtype, device=device)
            self.rows, self.generator = buffer.unbind(0), torch.Generator(device=device)
        gen = self.generator
        for row, seed in zip(self.rows, generator_seed(keys[:, 0], keys[:, 1]).tolist()):
            row.normal_(generator=gen.manual_seed(seed))
        return buffer
