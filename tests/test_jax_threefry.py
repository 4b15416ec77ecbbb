"""The unrolled Threefry draws give JAX's own values, and compile without the rolled loop.

``evostrat.backends.jax_threefry`` re-derives ``jax.random.normal``/``uniform`` so that XLA
can fuse the hash on the CPU; any difference in a single bit would change every JAX run,
so each case compares the bits with JAX's own draw.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from evostrat.backends import get_backend  # noqa: E402
from evostrat.backends.jax_threefry import normal, threefry_2x32, uniform, unrolled_applies  # noqa: E402

from evostrat.backends.jax_threefry import MIN_VALUES  # noqa: E402

#: drawn by the unrolled hash (at least MIN_VALUES values), and two that JAX draws
SHAPES = [(1024,), (1025,), (7, 150), (4, 1, 300), (38, 1000), (2, 3, 4, 50), (3,), (4, 5)]


def _bits(x: object) -> np.ndarray:
    a = np.asarray(x)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


@functools.lru_cache(maxsize=None)
def _jitted(draw: Any, shape: tuple[int, ...]) -> Any:
    """``draw`` of ``shape`` compiled once for all the seeds (each compile of the hash takes seconds)."""
    return jax.jit(lambda k: draw(k, shape, "float32"))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", [0, 7, 2**31 + 5])
def test_normal_and_uniform_equal_jax_bit_for_bit(shape: tuple[int, ...], seed: int) -> None:
    key = jax.random.PRNGKey(seed)
    for ours, theirs in ((normal, jax.random.normal), (uniform, jax.random.uniform)):
        expected = _bits(theirs(key, shape))
        assert (_bits(ours(key, shape, "float32")) == expected).all()  # eager
        assert (_bits(_jitted(ours, shape)(key)) == expected).all()


def test_vmapped_keys_and_folded_keys_equal_jax() -> None:
    keys = jax.random.split(jax.random.PRNGKey(3), 6)
    ours = jax.jit(jax.vmap(lambda k: normal(k, (40, 30), "float32")))(keys)
    theirs = jax.vmap(lambda k: jax.random.normal(k, (40, 30)))(keys)
    assert (_bits(ours) == _bits(theirs)).all()
    nested = jax.jit(jax.vmap(jax.vmap(lambda k: uniform(k, (50, 30), "float32"))))(keys.reshape(2, 3, 2))
    assert (_bits(nested) == _bits(jax.vmap(jax.vmap(lambda k: jax.random.uniform(k, (50, 30))))(
        keys.reshape(2, 3, 2)))).all()
    folded = jax.random.fold_in(jax.random.PRNGKey(1), 12)
    assert (_bits(normal(folded, (50, 21), "float32")) == _bits(jax.random.normal(folded, (50, 21)))).all()


def test_small_draws_are_jaxs_unless_vmapped_together() -> None:
    """Under MIN_VALUES values the draw is JAX's loop; vmapped keys count together."""
    key = jax.random.PRNGKey(4)
    assert _unrolled_rounds(lambda k: normal(k, (10, 10), "float32"), key) < 20
    keys = jax.random.split(key, 64)
    batched = jax.vmap(lambda k: normal(k, (10, 10), "float32"))
    assert _unrolled_rounds(batched, keys) >= 20  # 6,400 values in one draw
    assert (_bits(jax.jit(batched)(keys)) == _bits(jax.vmap(lambda k: jax.random.normal(k, (10, 10)))(keys))).all()
    assert _unrolled_rounds(batched, keys[:4]) < 20  # 400


def test_the_other_branch_gives_the_same_values() -> None:
    """A key whose words xor to PARITY takes JAX's branch of the ``cond``: same values."""
    from evostrat.backends.jax_threefry import PARITY

    key = jax.numpy.asarray(np.array([5, 5 ^ int(PARITY)], np.uint32))
    for ours, theirs in ((normal, jax.random.normal), (uniform, jax.random.uniform)):
        assert (_bits(jax.jit(lambda k: ours(k, (40, 30), "float32"))(key)) == _bits(theirs(key, (40, 30)))).all()


def test_known_answer_of_threefry_2x32_20() -> None:
    """Random123's known-answer vectors for Threefry-2x32 with 20 rounds (``kat_vectors``)."""
    u32 = np.uint32
    cases = [((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
             ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
             ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0))]
    for (k1, k2), (x1, x2), expected in cases:
        out = threefry_2x32(u32(k1), u32(k2), np.array([x1], u32), np.array([x2], u32))
        assert (int(out[0][0]), int(out[1][0])) == expected


def _unrolled_rounds(fn: object, *args: object) -> int:
    """xor operations in ``fn``'s jaxpr: 20 per unrolled hash, 4 in JAX's rolled loop body."""
    return str(jax.make_jaxpr(fn)(*args)).count(" xor ")


def test_the_draw_is_the_unrolled_hash_in_its_own_buffer() -> None:
    """The point of the module: 20 straight rounds (JAX's CPU lowering loops over 4), taken
    through a ``cond`` (so XLA materialises the draw once), also under ``vmap``."""
    key = jax.random.PRNGKey(0)
    assert _unrolled_rounds(lambda k: jax.random.normal(k, (38, 1000)), key) < 20
    assert _unrolled_rounds(lambda k: normal(k, (38, 1000), "float32"), key) >= 20
    keys = jax.random.split(key, 6)
    for fn, args in ((jax.vmap(lambda k: normal(k, (38, 1000), "float32")), keys),
                     (jax.vmap(jax.vmap(lambda k: normal(k, (38, 1000), "float32"))), keys.reshape(2, 3, 2))):
        assert "select_n" not in str(jax.make_jaxpr(fn)(args))  # a cond, not both branches selected
        if jax.default_backend() == "cpu":
            assert " conditional(" in jax.jit(fn).lower(args).compile().as_text()


def test_backend_draws_are_jaxs() -> None:
    be = get_backend("jax")
    key = be.key(11)
    assert (_bits(be.normal(key, (60, 40), np.float32)) == _bits(jax.random.normal(key, (60, 40)))).all()
    assert (_bits(be.uniform(key, (60, 40), np.float32)) == _bits(jax.random.uniform(key, (60, 40)))).all()


def test_falls_back_to_jax_where_it_does_not_apply() -> None:
    key = jax.random.PRNGKey(0)
    assert not unrolled_applies(key, (), np.float32)
    assert not unrolled_applies(key, (MIN_VALUES,), np.float16)
    assert not unrolled_applies(jax.random.key(0), (MIN_VALUES,), np.float32)  # a typed key
    assert unrolled_applies(key, (MIN_VALUES,), np.float32)
    for k, shape, dtype in ((key, (), "float32"), (key, (2000,), "float16"), (jax.random.key(2), (40, 30), "float32")):
        assert (np.asarray(normal(k, shape, dtype)) == np.asarray(jax.random.normal(k, shape, dtype))).all()
        assert (np.asarray(uniform(k, shape, dtype)) == np.asarray(jax.random.uniform(k, shape, dtype))).all()


def test_float64_equals_jax_bit_for_bit() -> None:
    """float64 needs ``jax_enable_x64``, a process-wide switch: checked in a fresh interpreter."""
    code = """
import jax, numpy as np
jax.config.update("jax_enable_x64", True)
from evostrat.backends.jax_threefry import normal, uniform
key = jax.random.PRNGKey(5)
for shape in [(1024,), (7, 300), (38, 1000), (3, 5)]:
    for ours, theirs in ((normal, jax.random.normal), (uniform, jax.random.uniform)):
        a = np.asarray(jax.jit(lambda k: ours(k, shape, "float64"))(key))
        b = np.asarray(theirs(key, shape, dtype="float64"))
        assert a.dtype == np.float64 and (a.view(np.uint64) == b.view(np.uint64)).all(), (shape, ours)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_gradients_through_a_draw_equal_jaxs() -> None:
    """Differentiable expectations take ``jax.grad`` of statistics of a draw (ExpectationES):
    the draw carries no tangent, and vmapped keys under ``grad`` still draw JAX's values (the
    two programs may fuse ``tanh`` and the sum differently: equal to float32 rounding)."""
    key = jax.random.PRNGKey(0)
    p = jax.numpy.linspace(0.5, 1.5, 32)

    def loss(draw: object) -> object:
        return lambda q, k: jax.numpy.sum(jax.numpy.tanh(draw(k, (64, 32)) * q))

    ours = loss(lambda k, s: normal(k, s, "float32"))
    theirs = loss(lambda k, s: jax.random.normal(k, s))
    z = np.asarray(jax.random.normal(key, (64, 32)), np.float64)
    analytic = np.sum(z * (1.0 - np.tanh(z * np.asarray(p, np.float64)) ** 2), axis=0)
    np.testing.assert_allclose(np.asarray(jax.jit(jax.grad(ours))(p, key)), analytic, rtol=1e-5, atol=1e-5)
    keys = jax.random.split(key, 3)
    batched = jax.jit(jax.vmap(jax.grad(ours), in_axes=(None, 0)))(p, keys)
    np.testing.assert_allclose(np.asarray(batched), np.asarray(jax.jit(jax.vmap(jax.grad(theirs), in_axes=(None, 0)))(
        p, keys)), rtol=1e-5, atol=1e-5)
