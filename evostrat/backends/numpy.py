"""The numpy backend: CPU, float64 by default, the one that needs no extras.

Keys are two-word ``uint64`` arrays; ``split`` mixes them with SplitMix64 and
``normal`` draws from a PCG64 whose 128-bit state and increment are set from
the key (:func:`~evostrat.backends.host_keys.generator_words`), so drawing depends
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

from evostrat.backends.base import Array, Backend, Key
from evostrat.backends.key_batch import KeyBatch
from evostrat.backends.host_keys import block_rows, generator_words, row_words, seed_to_uint64, split_uint64
from evostrat.errors import InvalidArgumentError, InvalidTypeError


class HostKeys:
    """Keys as two-word ``uint64`` numpy arrays, kept on the host (numpy and torch backends)."""

    def key(self, seed: int | None) -> Key:
        return seed_to_uint64(seed)

    def split(self, key: Key, num: int = 2) -> tuple[Key, ...]:
        if isinstance(key, KeyBatch):  # many runs' keys in a vmapped ask (evostrat.run.batch_stack)
            return key.split(num)
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
    host_arrays = True

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
        return block_normal_rows(key, rows, dim, dtype)

    def generator_normal(
        self, generator: Any, shape: tuple[int, ...], dtype: Any, device: Any = None
    ) -> Array:
        if not isinstance(generator, np.random.Generator):
            raise InvalidTypeError(
                f"generator must be a numpy.random.Generator, got {type(generator).__name__}"
            )
        return generator.standard_normal(shape, dtype=np.dtype(dtype))


def block_normal_rows(key: Key, rows: Any, dim: int, dtype: Any) -> np.ndarray:
    """Rows ``rows`` of the addressable standard normal matrix of ``key``, drawn block by block.

    Row ``r`` is row ``r % B`` of block ``r // B`` (``B = block_rows(dim)``,
    :func:`~evostrat.backends.host_keys.block_rows`), and block ``b`` is one
    ``standard_normal`` call of a PCG64 whose state and increment are mixed from
    ``(key, b)`` by SplitMix64 (:func:`~evostrat.backends.host_keys.row_words`). numpy fills
    an array from its generator in order, so the first ``k`` rows of a block are the
    same whether ``k`` or all ``B`` are drawn: a row depends on ``(key, r, dim)`` alone
    and rebuilding rows from the middle of a block draws at most one block's prefix
    more. One generator call per block instead of one per row: at d = 10 a population
    of 10**6 costs one ``standard_normal((10**6, 10))`` and 611 reseedings.

    Parameters
    ----------
    key : uint64 ndarray, shape (2,)
    rows : range or 1-D sequence of non-negative ints
    dim : int
    dtype : float32 or float64

    Returns
    -------
    ndarray, shape (len(rows), dim)

    Examples
    --------
    >>> from evostrat.backends.host_keys import seed_to_uint64
    >>> key = seed_to_uint64(0)
    >>> full = block_normal_rows(key, range(5000), 3, np.float64)
    >>> bool((block_normal_rows(key, [4000, 7], 3, np.float64) == full[[4000, 7]]).all())
    True
    """
    dtype = np.dtype(dtype)
    per = block_rows(dim)
    if isinstance(rows, range) and rows.step == 1:
        start, stop = rows.start, max(rows.start, rows.stop)
    else:
        index = np.asarray(rows, dtype=np.int64).reshape(-1)
        start = int(index[0]) if index.size else 0
        stop = start + index.size
        if index.size and (index[-1] != stop - 1 or (index.size > 1 and (np.diff(index) != 1).any())):
            return _scattered_rows(key, index, dim, dtype, per)
    if start < 0:
        raise InvalidArgumentError(f"row indices must be >= 0, got {start}")
    out = np.empty((stop - start, dim), dtype=dtype)
    pos = start
    while pos < stop:
        block, skip = divmod(pos, per)
        end = min(stop, pos - skip + per)
        gen = seeded_generator(*row_words(key, block))
        if skip:  # the block's rows before ``pos``: drawn and dropped
            gen.standard_normal((skip, dim), dtype=dtype)
        gen.standard_normal(out=out[pos - start:end - start], dtype=dtype)
        pos = end
    return out


def _scattered_rows(key: Key, index: np.ndarray, dim: int, dtype: np.dtype, per: int) -> np.ndarray:
    """:func:`block_normal_rows` for arbitrary row indices: each block once, up to its last row asked."""
    if index.min() < 0:
        raise InvalidArgumentError(f"row indices must be >= 0, got {int(index.min())}")
    out = np.empty((index.size, dim), dtype=dtype)
    order = np.argsort(index, kind="stable")
    blocks = index[order] // per
    edges = np.flatnonzero(np.diff(blocks)) + 1
    for part in np.split(order, edges):
        block = int(index[part[0]]) // per
        offsets = index[part] - block * per
        drawn = seeded_generator(*row_words(key, block)).standard_normal(
            (int(offsets.max()) + 1, dim), dtype=dtype)
        out[part] = drawn[offsets]
    return out


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
