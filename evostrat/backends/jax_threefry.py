"""JAX's normal and uniform draws, bit for bit, with the Threefry hash unrolled on the CPU.

``jax.random.normal(key, shape)`` hashes one counter per value with Threefry-2x32
(Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011:
20 rounds of add, rotate and xor, with a key injection after every 4). On the CPU, JAX
lowers the hash as a rolled loop of 5 iterations (to keep compile times short), so XLA
writes and reads both counter arrays in every iteration: a population of 38 x 100,000
float32 values takes about 50 ms, nearly all of it memory traffic. Written out, the 20
rounds and the conversion to floats are one pass: about 15 ms for the same values. The
draw fills its own buffer (:func:`_on_cpu`), so that no consumer computes the hash again.

:func:`normal` and :func:`uniform` give exactly the values of ``jax.random.normal`` and
``jax.random.uniform`` (same key, shape and dtype; ``tests/test_jax_threefry.py`` compares
the bits). They use the unrolled hash where JAX would use its rolled CPU loop, chosen per
platform when the program is lowered (``jax.lax.platform_dependent``), and call JAX itself
otherwise: on GPUs and TPUs, for keys that are not raw Threefry keys, without
``jax_threefry_partitionable`` (JAX's default since 0.5), for draws of fewer than
:data:`MIN_VALUES` values (all keys of a ``vmap`` together) or more than ``2**32``, and
for dtypes other than float32 and float64.

Examples
--------
>>> import jax, numpy as np
>>> from evostrat.backends.jax_threefry import normal
>>> key = jax.random.PRNGKey(0)
>>> bool((np.asarray(normal(key, (40, 30), "float32")) == np.asarray(jax.random.normal(key, (40, 30)))).all())
True
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import custom_batching, lax

__all__ = ["normal", "uniform", "threefry_2x32", "unrolled_applies"]

#: Rotation distances of Threefry-2x32's rounds (Salmon et al. 2011, table 4), four per group.
ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
#: Draws of fewer values (all keys of a ``vmap`` together) stay JAX's: there the ``lax.cond``
#: around the unrolled draw (:func:`_on_cpu`) costs about what the loop does (40 x 10 values:
#: 15 us a SNES generation against 12 us with JAX's loop; 100 values: within 10 % either way).
MIN_VALUES = 1024
#: The key schedule's parity constant (Skein's ``C240`` for 32-bit words).
PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(v: Any, r: int) -> Any:
    return lax.shift_left(v, np.uint32(r)) | lax.shift_right_logical(v, np.uint32(32 - r))


def threefry_2x32(k1: Any, k2: Any, x1: Any, x2: Any) -> tuple[Any, Any]:
    """Threefry-2x32 with 20 rounds of the counter words ``(x1, x2)`` under the key ``(k1, k2)``.

    The same function as JAX's ``threefry2x32`` primitive, written as straight-line
    ``uint32`` arithmetic (no loop), so that XLA compiles the 20 rounds as one pass over the
    counters (JAX's CPU lowering loops over groups of 4 rounds, a pass each).

    >>> import numpy as np
    >>> a, b = threefry_2x32(np.uint32(0), np.uint32(0), np.zeros(1, np.uint32), np.zeros(1, np.uint32))
    >>> hex(int(a[0])), hex(int(b[0]))   # Random123's known-answer test for 2x32-20, zero key and counter
    ('0x6b200159', '0x99ba4efe')
    """
    keys = (k1, k2, k1 ^ k2 ^ PARITY)
    x1, x2 = x1 + keys[0], x2 + keys[1]
    for group in range(5):
        for r in ROTATIONS[group % 2]:
            x1 = x1 + x2
            x2 = _rotate_left(x2, r) ^ x1
        x1 = x1 + keys[(group + 1) % 3]
        x2 = x2 + keys[(group + 2) % 3] + np.uint32(group + 1)
    return x1, x2


def unrolled_applies(key: Any, shape: tuple[int, ...], dtype: Any) -> bool:
    """Whether :func:`normal` and :func:`uniform` may compute JAX's draw themselves."""
    size = math.prod(shape)
    return (len(shape) > 0 and 0 < size < 2**32 and np.dtype(dtype) in (np.float32, np.float64)
            and getattr(key, "dtype", None) == np.uint32 and tuple(getattr(key, "shape", ())) == (2,)
            and bool(jax.config.jax_threefry_partitionable))


def _unit_floats(key: Any, shape: tuple[int, ...], dtype: np.dtype) -> Any:
    """Values in ``[0, 1)`` from the random mantissa bits of JAX's partitionable draw."""
    # the counter of element i is the 64-bit i (JAX's iota_2x32_shape): high word 0 below 2**32
    low = lax.iota(np.uint32, math.prod(shape)).reshape(shape)
    b1, b2 = threefry_2x32(key[0], key[1], jnp.zeros(shape, np.uint32), low)
    if dtype == np.float64:
        bits = lax.shift_left(b1.astype(np.uint64), np.uint64(32)) | b2.astype(np.uint64)
        width, mantissa, utype = 64, 52, np.uint64
    else:
        bits, width, mantissa, utype = b1 ^ b2, 32, 23, np.uint32
    one = np.array(1.0, dtype).view(utype)
    floats = lax.bitcast_convert_type(lax.shift_right_logical(bits, utype(width - mantissa)) | one, dtype)
    return floats - dtype.type(1.0)


def _scaled(floats: Any, lo: np.generic, hi: np.generic) -> Any:
    return lax.max(lo, floats * (hi - lo) + lo)


def _taken(keys: Any) -> Any:
    """The predicate of the ``lax.cond`` around the unrolled draw: true unless a key's words
    xor to :data:`PARITY` (one key in 2**32; the other branch then gives the same values)."""
    return jnp.all((keys[..., 0] ^ keys[..., 1]) != PARITY)


def _on_cpu(key: Any, size: int, unrolled: Callable[[Any], Any], jaxs: Callable[[Any], Any]) -> Any:
    """``unrolled(key)`` on the CPU, ``jaxs(key)`` elsewhere (the same values).

    On the CPU the unrolled draw runs as one branch of a ``lax.cond`` whose predicate XLA
    cannot fold (either branch gives the same values): the draw then fills its own buffer
    once. Fused into its consumers instead, XLA would compute the hash again in each consumer
    (``erf_inv`` uses its argument twice; an antithetic ``[z, -z]`` reads ``z`` twice): up to
    3 times in a sep-CMA-ES generation, which then ran slower than with JAX's loop.

    Under ``jax.vmap`` (nested or not) the keys are drawn together, with one predicate for
    all of them (``custom_vmap``): a batched predicate would turn the ``cond`` into a
    ``select`` of both branches. Fewer than :data:`MIN_VALUES` values in all are JAX's draw.
    """
    @custom_batching.custom_vmap
    def many(keys: Any) -> Any:  # keys (m, 2): the m draws, stacked
        if keys.shape[0] * size < MIN_VALUES:
            return jax.vmap(jaxs)(keys)
        return lax.cond(_taken(keys), jax.vmap(unrolled), jax.vmap(jaxs), keys)

    @many.def_vmap
    def _many_batched(axis_size: int, in_batched: list[bool], keys: Any) -> tuple[Any, bool]:
        if not in_batched[0]:
            return many(keys), False
        out = many(keys.reshape(-1, 2))  # (axis_size, m, 2): one stack of axis_size * m keys
        return out.reshape(axis_size, keys.shape[1], *out.shape[1:]), True

    @custom_batching.custom_vmap
    def cpu(k: Any) -> Any:
        return jaxs(k) if size < MIN_VALUES else many(k[None])[0]

    @cpu.def_vmap
    def _cpu_batched(axis_size: int, in_batched: list[bool], k: Any) -> tuple[Any, bool]:
        return (many(k), True) if in_batched[0] else (cpu(k), False)

    return lax.platform_dependent(key, cpu=cpu, default=jaxs)


def _draw(key: Any, shape: tuple[int, ...], dtype: Any, jax_draw: Callable[..., Any],
          finish: Callable[[Any, np.dtype], Any]) -> Any:
    """``jax_draw(key, shape, dtype=dtype)``'s values: ``finish(unit floats, dtype)`` of the
    unrolled hash on the CPU where it applies (:func:`unrolled_applies`), else JAX's draw."""
    dtype, shape = np.dtype(dtype), tuple(int(s) for s in shape)
    if not unrolled_applies(key, shape, dtype):
        return jax_draw(key, shape, dtype=dtype)
    return _unrolled_draw(key, shape, dtype, jax_draw, finish)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _unrolled_draw(key: Any, shape: tuple[int, ...], dtype: np.dtype, jax_draw: Callable[..., Any],
                   finish: Callable[[Any, np.dtype], Any]) -> Any:
    """:func:`_draw`'s unrolled case, compiled once per shape and dtype. Called eagerly (the
    functional ``ask`` outside ``jax.jit``), the ``cond`` of :func:`_on_cpu` with its new
    branch closures was traced and compiled again at every call: 0.3-0.6 s a generation for
    SNES and CMA-ES at d = 100. Inside a traced program the call is inlined."""

    def jaxs(k: Any) -> Any:
        return jax_draw(k, shape, dtype=dtype)

    return _on_cpu(key, math.prod(shape), lambda k: finish(_unit_floats(k, shape, dtype), dtype), jaxs)


def _uniform_values(floats: Any, dtype: np.dtype) -> Any:
    return _scaled(floats, dtype.type(0.0), dtype.type(1.0))


def _normal_values(floats: Any, dtype: np.dtype) -> Any:
    """``sqrt(2) erfinv(u)``, ``u`` uniform in ``(-1, 1)`` (``jax.random.normal``'s transform)."""
    u = _scaled(floats, np.nextafter(dtype.type(-1.0), dtype.type(0.0)), dtype.type(1.0))
    return dtype.type(math.sqrt(2)) * lax.erf_inv(u)


def uniform(key: Any, shape: tuple[int, ...], dtype: Any = np.float32) -> Any:
    """``jax.random.uniform(key, shape, dtype)``: the same values, in ``[0, 1)``."""
    return _draw(key, shape, dtype, jax.random.uniform, _uniform_values)


def normal(key: Any, shape: tuple[int, ...], dtype: Any = np.float32) -> Any:
    """``jax.random.normal(key, shape, dtype)``: the same values (``sqrt(2) erfinv(u)``)."""
    return _draw(key, shape, dtype, jax.random.normal, _normal_values)
