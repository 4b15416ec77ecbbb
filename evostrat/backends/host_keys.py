"""Host random keys: two uint64 words per key, split and drawn from with SplitMix64.

The numpy and torch backends keep their random state on the host as such keys
(:class:`~evostrat.backends.numpy.HostKeys`); a population row ``i`` of a key is rebuildable
from ``(key, block, offset)`` (:func:`row_words`, :func:`block_rows`), which seed-compressed
evaluation and ``tell_seed`` rely on. SplitMix64: Steele, Lea and Flood, "Fast splittable
pseudorandom number generators", OOPSLA 2014.

Examples
--------
>>> from evostrat.backends.host_keys import seed_to_uint64, split_uint64
>>> key = seed_to_uint64(0)
>>> a, b = split_uint64(key)
>>> bool((a != b).any())
True
"""

from __future__ import annotations

import numpy as np

from evostrat.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["BLOCK_NUMBERS", "DRAW_CHILD", "GOLDEN_GAMMA", "MIX1", "MIX2", "SPLIT_CHILD", "block_rows",
           "generator_words", "row_words", "seed_to_uint64", "split_keys", "split_uint64", "splitmix64",
           "splitmix64_words"]


def seed_to_uint64(seed: int | None) -> np.ndarray:
    """Turn ``random_state`` (an int or ``None``) into a two-word uint64 seed.

    ``None`` draws fresh entropy from the operating system.
    """
    if seed is None:
        return np.random.SeedSequence().generate_state(2, np.uint64)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise InvalidTypeError(
            f"random_state must be an int or None, got {type(seed).__name__}: {seed!r}"
        )
    if seed < 0:
        raise InvalidArgumentError(f"random_state must be >= 0, got {seed}")
    return np.random.SeedSequence(int(seed)).generate_state(2, np.uint64)


def split_uint64(key: np.ndarray, num: int = 2) -> list[np.ndarray]:
    """Derive ``num`` independent two-word keys from a two-word uint64 key.

    Child ``i`` is ``(a, SplitMix64(k1 ^ SplitMix64(a)))`` with ``a = SplitMix64(k0 ^
    SplitMix64(i ^ T))`` (``T`` a tweak constant). SplitMix64's full avalanche keeps all
    children unrelated; about 2 us in Python, where a ``SeedSequence`` costs 15 us.
    """
    k0, k1 = int(key[0]), int(key[1])
    out = []
    for i in range(num):
        a = splitmix64(k0 ^ _child_tweak(i))
        out.append(np.array((a, splitmix64(k1 ^ splitmix64(a))), dtype=np.uint64))
    return out


def _child_tweak(i: int) -> int:
    """``SplitMix64(i ^ T)``, the word child ``i`` of a split mixes into the first key word."""
    return SPLIT_CHILD[i] if i < len(SPLIT_CHILD) else splitmix64(i ^ _SPLIT_TWEAK)


def _key_words(key: np.ndarray, tweak: int) -> tuple[int, int, int, int]:
    """Four 64-bit words mixed from a two-word uint64 key and a tweak word."""
    a = splitmix64(int(key[0]) ^ tweak)
    b = splitmix64(int(key[1]) ^ splitmix64(a))
    c = splitmix64(a ^ b)
    return a, b, c, splitmix64(c)


def generator_words(key: np.ndarray) -> tuple[int, int, int, int]:
    """The words seeding the generator ``normal``/``uniform`` draw from ``key`` (own tweak)."""
    return _key_words(key, DRAW_CHILD)


_MASK64 = (1 << 64) - 1
#: SplitMix64's increment (the golden gamma) and the two multipliers of its finaliser.
GOLDEN_GAMMA, MIX1, MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
#: Domain-separation constants (odd 64-bit words from the digits of pi).
_SPLIT_TWEAK = 0x243F6A8885A308D3
_DRAW_TWEAK = 0x13198A2E03707344


def splitmix64(x: int) -> int:
    """One step of SplitMix64 (Steele, Lea, Flood 2014): a strong 64-bit mixer."""
    x = (x + GOLDEN_GAMMA) & _MASK64
    x = ((x ^ (x >> 30)) * MIX1) & _MASK64
    x = ((x ^ (x >> 27)) * MIX2) & _MASK64
    return x ^ (x >> 31)


def splitmix64_words(x: np.ndarray) -> np.ndarray:
    """:func:`splitmix64` of each word of a ``uint64`` array (numpy's uint64 arithmetic wraps),
    in place on one new array (a torch batch splits its runs' keys every generation)."""
    x = x + _GAMMA_WORD
    x ^= x >> _SHIFTS[0]
    x *= _MIX_WORDS[0]
    x ^= x >> _SHIFTS[1]
    x *= _MIX_WORDS[1]
    x ^= x >> _SHIFTS[2]
    return x


def split_keys(keys: np.ndarray, num: int = 2) -> list[np.ndarray]:
    """:func:`split_uint64` of many keys at once: ``keys`` of shape ``(n, 2)``; child ``j`` of
    every key, shape ``(n, 2)``, for ``j < num``.

    >>> keys = np.stack([seed_to_uint64(0), seed_to_uint64(1)])
    >>> bool((split_keys(keys)[1][1] == split_uint64(keys[1])[1]).all())
    True
    """
    tweaks = _CHILD_TWEAKS[:num] if num <= len(SPLIT_CHILD) else \
        np.array([_child_tweak(i) for i in range(num)], dtype=np.uint64)
    a = splitmix64_words(keys[:, 0] ^ tweaks[:, None])  # (num, n): every child's first words at once
    out = np.empty((num,) + keys.shape, dtype=np.uint64)
    out[:, :, 0] = a
    out[:, :, 1] = splitmix64_words(keys[:, 1] ^ splitmix64_words(a))
    return list(out)


#: :func:`splitmix64_words`' constants as uint64 scalars (made once).
_GAMMA_WORD, _MIX_WORDS, _SHIFTS = np.uint64(GOLDEN_GAMMA), (np.uint64(MIX1), np.uint64(MIX2)), \
    (np.uint64(30), np.uint64(27), np.uint64(31))
#: ``SplitMix64(i ^ T)`` for the first children ``i`` of :func:`split_uint64` (precomputed).
SPLIT_CHILD = [splitmix64(i ^ _SPLIT_TWEAK) for i in range(8)]
#: :data:`SPLIT_CHILD` as a ``uint64`` array (:func:`split_keys`' children at once).
_CHILD_TWEAKS = np.array(SPLIT_CHILD, dtype=np.uint64)
#: The tweak :func:`generator_words` mixes into the first key word.
DRAW_CHILD = splitmix64(_DRAW_TWEAK)


def row_words(key: np.ndarray, row: int) -> tuple[int, int, int, int]:
    """Four 64-bit words derived from a two-word uint64 key and a row index.

    Used by :meth:`Backend.normal_rows` of the numpy and torch backends: row
    ``r`` of an addressable noise matrix is drawn from a generator seeded by
    ``row_words(key, r)`` alone, so any subset of rows can be rebuilt anywhere.
    """
    if row < 0:
        raise InvalidArgumentError(f"row indices must be >= 0, got {row}")
    return _key_words(key, splitmix64(int(row)))


#: Numbers per noise block of :meth:`Backend.normal_rows` (2**14: 128 KiB in float64).
BLOCK_NUMBERS = 1 << 14


def block_rows(dim: int) -> int:
    """Rows per noise block at ``dim`` columns: ``BLOCK_NUMBERS // dim``, at least 1.

    Row ``r`` of an addressable noise matrix is row ``r % block_rows(dim)`` of block
    ``r // block_rows(dim)``, which one generator call seeded by
    ``row_words(key, block)`` draws; from ``dim = BLOCK_NUMBERS`` on a block is one row.

    >>> block_rows(10), block_rows(1_000_000)
    (1638, 1)
    """
    return max(1, BLOCK_NUMBERS // max(int(dim), 1))
