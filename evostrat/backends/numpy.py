"""The numpy backend: CPU, float64 by default, the one that needs no extras.

Keys are two-word ``uint64`` arrays; ``split`` mixes them with SplitMix64 and
``normal`` draws from a PCG64 whose 128-bit state and increment are set from
the key (:func:`~evostrat.backends.base.generator_words`), so drawing depends
on the key alone. The PCG64 object is reused per thread (setting its state costs
about 2 us; building a seeded ``Generator`` about 20 us).

Examples
--------
>>> from evostrat.backends.numpy import NumpyBackend
>>> be = NumpyBackend()
>>> k1, k2 = be.split(be.key(1))
>>> bool((be.normal(k1, (3,), be.default_float) == be.normal(k1, (3,), be.default_float)).all())
True
"""

from __future__ import annotations

import threading
from typing import Any

import array_api_compat.numpy as xp_numpy
import numpy as np

from evostrat.backends.base import (
    Array,
    Backend,
    Key,
    generator_words,
    row_words,
    seed_to_uint64,
    split_uint64,
)
from evostrat.errors import InvalidTypeError


class HostKeys:
    """Keys as two-word ``uint64`` numpy arrays, kept on the host (numpy and torch backends)."""

    def key(self, seed: int | None) -> Key:
        return seed_to_uint64(seed)

    def split(self, key: Key, num: int = 2) -> tuple[Key, ...]:
        return tuple(split_uint64(key, num))

    def key_from_numpy(self, data: np.ndarray) -> Key:
        return np.asarray(data, dtype=np.uint64).copy()

    def is_key(self, x: Any) -> bool:
        return isinstance(x, np.ndarray) and x.dtype == np.uint64 and x.shape == (2,)


class NumpyBackend(HostKeys, Backend):
    """numpy arrays on the CPU."""

    name = "numpy"
    xp = xp_numpy
    default_float = np.float64

    def owns(self, x: Any) -> bool:
        return isinstance(x, (np.ndarray, np.generic))

    def asarray(self, x: Any, dtype: Any = None, device: Any = None) -> Array:
        if hasattr(x, "__dlpack__") and not isinstance(x, np.ndarray):
            x = _foreign_to_numpy(x)
        return np.asarray(x, dtype=dtype)

    def float_dtype(self, x: Array) -> Any:
        return super().float_dtype(np.asarray(x))

    def _generator(self, key: Key) -> np.random.Generator:
        return seeded_generator(*generator_words(key))

    def normal(self, key: Key, shape: tuple[int, ...], dtype: Any, device: Any = None) -> Array:
        return self._generator(key).standard_normal(shape, dtype=np.dtype(dtype))

    def uniform(self, key: Key, shape: tuple[int, ...], dtype: Any, device: Any = None) -> Array:
        return self._generator(key).random(shape, dtype=np.dtype(dtype))

    def normal_rows(self, key: Key, rows: Any, dim: int, dtype: Any, device: Any = None) -> Array:
        # Row r: a PCG64 whose 128-bit state and increment are mixed from (key, r) by
        # SplitMix64 (no SeedSequence: ~3 us per row instead of ~20).
        dtype = np.dtype(dtype)
        index = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((index.size, dim), dtype=dtype)
        for j, r in enumerate(index.tolist()):
            seeded_generator(*row_words(key, r)).standard_normal(out=out[j], dtype=dtype)
        return out

    def generator_normal(
        self, generator: Any, shape: tuple[int, ...], dtype: Any, device: Any = None
    ) -> Array:
        if not isinstance(generator, np.random.Generator):
            raise InvalidTypeError(
                f"generator must be a numpy.random.Generator, got {type(generator).__name__}"
            )
        return generator.standard_normal(shape, dtype=np.dtype(dtype))


_local = threading.local()


def seeded_generator(a: int, b: int, c: int, d: int) -> np.random.Generator:
    """This thread's PCG64 generator with state ``a:b`` and increment ``c:d | 1``."""
    gen = getattr(_local, "generator", None)
    if gen is None:
        gen = _local.generator = np.random.Generator(np.random.PCG64(0))
    gen.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (a << 64) | b, "inc": ((c << 64) | d) | 1},
        "has_uint32": 0,
        "uinteger": 0,
    }
    return gen


def _foreign_to_numpy(x: Any) -> np.ndarray:
    """Host copy of a torch/JAX array without importing either library."""
    if hasattr(x, "detach"):  # torch tensors may require grad
        x = x.detach().cpu()
    return np.asarray(x)
