"""The unrolled Threefry draws give JAX's own values, and compile without the rolled loop.

``evostrat.backends.jax_threefry`` re-derives ``jax.random.normal``/``uniform`` so that XLA
can fuse the hash on the CPU; any difference in a single bit would change every JAX run,
so each case compares the bits with JAX's own draw.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from evostrat.backends import get_backend  # noqa: E402
from evostrat.backends.jax_threefry import normal, threefry_2x32, uniform, unrolled_applies  # noqa: E402

SHAPES = [(1,), (2,), (7,), (3, 5), (4, 1, 3), (38, 1000), (2, 3, 4, 5)]


def _bits(x: object) -> np.ndarray:
    a = np.asarray(x)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", [0, 7, 2**31 + 5])
def test_normal_and_uniform_equal_jax_bit_for_bit(shape: tuple[int, ...], seed: int) -> None:
    key = jax.random.PRNGKey(seed)
    for ours, theirs in ((normal, jax.random.normal), (uniform, jax.random.uniform)):
        expected = _bits(theirs(key, shape))
        assert (_bits(ours(key, shape, "float32")) == expected).all()  # eager
        assert (_bits(jax.jit(lambda k: ours(k, shape, "float32"))(key)) == expected).all()


def test_vmapped_keys_and_folded_keys_equal_jax() -> None:
    keys = jax.random.split(jax.random.PRNGKey(3), 6)
    ours = jax.jit(jax.vmap(lambda k: normal(k, (4, 3), "float32")))(keys)
    theirs = jax.vmap(lambda k: jax.random.normal(k, (4, 3)))(keys)
    assert (_bits(ours) == _bits(theirs)).all()
    folded = jax.random.fold_in(jax.random.PRNGKey(1), 12)
    assert (_bits(normal(folded, (5, 2), "float32")) == _bits(jax.random.normal(folded, (5, 2)))).all()


def test_known_answer_of_threefry_2x32_20() -> None:
    """Random123's known-answer vectors for Threefry-2x32 with 20 rounds (``kat_vectors``)."""
    u32 = np.uint32
    cases = [((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
             ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
             ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0))]
    for (k1, k2), (x1, x2), expected in cases:
        out = threefry_2x32(u32(k1), u32(k2), np.array([x1], u32), np.array([x2], u32))
        assert (int(out[0][0]), int(out[1][0])) == expected


def test_the_cpu_program_has_no_rolled_loop() -> None:
    """The point of the module: JAX's CPU lowering of its hash is a ``while`` loop, ours is not."""
    key = jax.random.PRNGKey(0)
    ours = jax.jit(lambda k: normal(k, (38, 1000), "float32")).lower(key).compile().as_text()
    theirs = jax.jit(lambda k: jax.random.normal(k, (38, 1000))).lower(key).compile().as_text()
    if jax.default_backend() == "cpu":
        assert " while(" in theirs  # if JAX unrolls it itself one day, this module can go
        assert " while(" not in ours


def test_backend_draws_are_jaxs() -> None:
    be = get_backend("jax")
    key = be.key(11)
    assert (_bits(be.normal(key, (6, 4), np.float32)) == _bits(jax.random.normal(key, (6, 4)))).all()
    assert (_bits(be.uniform(key, (6, 4), np.float32)) == _bits(jax.random.uniform(key, (6, 4)))).all()


def test_falls_back_to_jax_where_it_does_not_apply() -> None:
    key = jax.random.PRNGKey(0)
    assert not unrolled_applies(key, (), np.float32)
    assert not unrolled_applies(key, (3,), np.float16)
    assert not unrolled_applies(jax.random.key(0), (3,), np.float32)  # a typed key
    assert unrolled_applies(key, (3,), np.float32)
    for k, shape, dtype in ((key, (), "float32"), (key, (3,), "float16"), (jax.random.key(2), (2, 3), "float32")):
        assert (np.asarray(normal(k, shape, dtype)) == np.asarray(jax.random.normal(k, shape, dtype))).all()
        assert (np.asarray(uniform(k, shape, dtype)) == np.asarray(jax.random.uniform(k, shape, dtype))).all()


def test_float64_equals_jax_bit_for_bit() -> None:
    """float64 needs ``jax_enable_x64``, a process-wide switch: checked in a fresh interpreter."""
    code = """
import jax, numpy as np
jax.config.update("jax_enable_x64", True)
from evostrat.backends.jax_threefry import normal, uniform
key = jax.random.PRNGKey(5)
for shape in [(1,), (7,), (3, 5), (38, 1000)]:
    for ours, theirs in ((normal, jax.random.normal), (uniform, jax.random.uniform)):
        a = np.asarray(jax.jit(lambda k: ours(k, shape, "float64"))(key))
        b = np.asarray(theirs(key, shape, dtype="float64"))
        assert a.dtype == np.float64 and (a.view(np.uint64) == b.view(np.uint64)).all(), (shape, ours)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
