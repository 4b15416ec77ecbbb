"""The torch backend: CPU or CUDA tensors, on the device of ``x0``.

Keys are two-word ``uint64`` numpy arrays kept on the host (so deriving keys
never synchronises with the GPU); ``normal`` seeds a ``torch.Generator`` on the
target device from the key and samples there.

Examples
--------
>>> import torch                                     # doctest: +SKIP
>>> from evostrat.backends import get_backend        # doctest: +SKIP
>>> be = get_backend(torch.zeros(3))                 # doctest: +SKIP
>>> be.normal(be.key(0), (2, 3), torch.float32).shape  # doctest: +SKIP
torch.Size([2, 3])
"""

from __future__ import annotations

from typing import Any, Callable

import array_api_compat.torch as xp_torch
import numpy as np
import torch

from evostrat.backends.base import (
    Array,
    Backend,
    Key,
    row_words,
    seed_to_uint64,
    split_uint64,
)


class TorchBackend(Backend):
    """torch tensors, CPU or CUDA."""

    name = "torch"
    xp = xp_torch
    default_float = torch.float32

    def owns(self, x: Any) -> bool:
        return isinstance(x, torch.Tensor)

    def asarray(self, x: Any, dtype: Any = None, device: Any = None) -> Array:
        if isinstance(x, torch.Tensor):
            return x.to(dtype=dtype or x.dtype, device=device or x.device)
        if not isinstance(x, np.ndarray) and hasattr(x, "__array__"):
            x = np.array(x)  # e.g. a JAX array: copy, its host view is read-only
        return torch.as_tensor(x, dtype=dtype, device=device)

    def to_numpy(self, x: Array) -> np.ndarray:
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy()
        return np.asarray(x)

    def device(self, x: Array) -> Any:
        return x.device if isinstance(x, torch.Tensor) else None

    def dtype_name(self, dtype: Any) -> str:
        return str(dtype).replace("torch.", "")

    def dtype_from_name(self, name: str) -> Any:
        return getattr(torch, name)

    def key(self, seed: int | None) -> Key:
        return seed_to_uint64(seed)

    def split(self, key: Key, num: int = 2) -> tuple[Key, ...]:
        return tuple(split_uint64(key, num))

    def _generator(self, key: Key, device: Any) -> torch.Generator:
        device = torch.device(device if device is not None else "cpu")
        gen = torch.Generator(device=device)
        # torch seeds take 64 bits; fold the two words together.
        gen.manual_seed(int(key[0] ^ (key[1] >> np.uint64(1))) & 0x7FFF_FFFF_FFFF_FFFF)
        return gen

    def normal(self, key: Key, shape: tuple[int, ...], dtype: Any, device: Any = None) -> Array:
        gen = self._generator(key, device)
        return torch.randn(shape, generator=gen, dtype=dtype, device=gen.device)

    def uniform(self, key: Key, shape: tuple[int, ...], dtype: Any, device: Any = None) -> Array:
        gen = self._generator(key, device)
        return torch.rand(shape, generator=gen, dtype=dtype, device=gen.device)

    def normal_rows(self, key: Key, rows: Any, dim: int, dtype: Any, device: Any = None) -> Array:
        # One generator on the target device, re-seeded per row from (key, r).
        index = np.asarray(rows, dtype=np.int64).reshape(-1)
        device = torch.device(device if device is not None else "cpu")
        gen = torch.Generator(device=device)
        out = torch.empty((index.size, dim), dtype=dtype, device=device)
        for j, r in enumerate(index.tolist()):
            gen.manual_seed(row_words(key, r)[0] & 0x7FFF_FFFF_FFFF_FFFF)
            out[j].normal_(generator=gen)
        return out

    def key_from_numpy(self, data: np.ndarray) -> Key:
        return np.asarray(data, dtype=np.uint64).copy()

    def is_key(self, x: Any) -> bool:
        return isinstance(x, np.ndarray) and x.dtype == np.uint64 and x.shape == (2,)

    def stop_gradient(self, x: Array) -> Array:
        return x.detach()

    def compile(self, fn: Callable) -> Callable:
        return fn  # torch.compile costs seconds per shape; eager is faster for ES loops

    def eigh(self, a: Array) -> tuple[Array, Array]:
        return torch.linalg.eigh(a)
