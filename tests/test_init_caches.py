"""The fixed host cost of a run (issue 15): what ``Strategy.init`` and parameter checks keep
between runs changes no answer and no error."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pytest

from evostrat import ES
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.params import Interval, check_params
from evostrat.strategies.snes import SNES


@pytest.mark.parametrize("value,real,integral", [
    (1, True, True), (1.0, True, False), (True, False, False), (np.float32(1), True, False),
    (np.int64(2), True, True), ("a", False, False), (None, False, False), (float("nan"), False, False),
    (-1, False, False), ([1], False, False), (0, False, False),
])
def test_interval_membership(value, real, integral):
    assert (value in Interval(Real, 0, None, closed="neither")) is real
    assert (value in Interval(Integral, 0, None, closed="neither")) is integral


def test_check_params_errors_are_unchanged():
    class Owner:
        lr, steps = "fast", 0

    with pytest.raises(InvalidTypeError, match="lr must be a positive number or None, got 'fast'"):
        check_params(Owner(), {"lr": [Interval(Real, 0, None, closed="neither"), None]})
    with pytest.raises(InvalidArgumentError, match="steps must be a positive int or None, got 0"):
        check_params(Owner(), {"steps": [Interval(Integral, 0, None, closed="neither"), None]})
    Owner.steps = None
    check_params(Owner(), {"steps": [Interval(Integral, 0, None, closed="neither"), None]})
    for bad, error in (("auto", InvalidTypeError), (-1e-3, InvalidArgumentError), ([1], InvalidTypeError)):
        with pytest.raises(error, match="tolfun"):
            ES(tolfun=bad).initialize(np.ones(2))


def test_a_broken_state_is_refused_at_every_init():
    class Broken(SNES):
        def mean(self, state):
            return state.mean[None]

    for _ in range(3):
        with pytest.raises(InvalidTypeError, match="mean"):
            Broken().init(np.ones(3), random_state=0)


def test_jax_keys_and_points():
    jax = pytest.importorskip("jax")
    from evostrat.backends import get_backend
    from evostrat.backends.host_keys import seed_to_uint64

    be = get_backend("jax")
    expected = (seed_to_uint64(7) & np.uint64(0xFFFF_FFFF)).astype(np.uint32)
    first = be.key(7)
    assert first.committed and np.array_equal(np.asarray(first), expected)
    assert np.array_equal(np.asarray(be.key(7)), expected)
    first.delete()
    again = be.key(7)
    assert not again.is_deleted() and np.array_equal(np.asarray(again), expected)
    assert not np.array_equal(np.asarray(be.key(8)), expected)
    with pytest.raises(InvalidArgumentError):
        be.key(-1)
    with pytest.raises(InvalidTypeError):
        be.key(True)

    x = jax.numpy.arange(3.0)
    assert not x.committed
    y = be.asarray(x)
    assert y.committed and y.dtype == x.dtype and np.array_equal(np.asarray(y), [0.0, 1.0, 2.0])
    assert be.asarray(y) is y
    assert be.float_dtype(x) == np.float32
    with pytest.raises(InvalidArgumentError, match="finite"):
        SNES().init(jax.numpy.array([1.0, float("nan")]), random_state=0)
    a = SNES().init(jax.numpy.ones(3), random_state=1)
    b = SNES().init(jax.numpy.ones(3), random_state=1)
    assert all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(a, b))


def test_jax_program_input_leaves_an_unplaced_x0_to_the_state_program(monkeypatch):
    """``Strategy.init`` with the run's own key passes an uncommitted ``x0`` to the state program
    as it is (no committing dispatch); the state still comes out committed, equal to the state of
    a committed ``x0``, and a weakly typed, wrongly typed or user-keyed ``x0`` is converted."""
    jax = pytest.importorskip("jax")
    from evostrat.backends import get_backend
    from evostrat.strategies.cma_es import CMAES

    be = get_backend("jax")
    x = jax.numpy.arange(3.0)
    assert be.program_input(x) is x and not x.committed
    weak = jax.numpy.full(3, 2.0)
    assert weak.weak_type and not be.program_input(weak).weak_type and be.program_input(weak).committed
    assert be.program_input(x, dtype=np.float16).dtype == np.float16
    assert get_backend("numpy").program_input([1, 2]).dtype == np.int64  # elsewhere: asarray
    placed = jax.device_put(jax.numpy.arange(3.0), jax.devices()[0])
    for strategy in (SNES(), CMAES()):
        lazy, eager = strategy.init(x, random_state=3), strategy.init(placed, random_state=3)
        assert all(leaf.committed for leaf in jax.tree_util.tree_leaves(lazy))
        assert all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(lazy, eager))
    import evostrat.backends.jax as jax_backend

    def no_commit(device):
        raise AssertionError("x0 was committed before the state program")

    monkeypatch.setattr(jax_backend, "_committer", no_commit)
    SNES().init(jax.numpy.arange(3.0), random_state=4)
    with pytest.raises(InvalidArgumentError, match="finite"):
        SNES().init(jax.numpy.array([1.0, float("nan")]), random_state=0)
    monkeypatch.undo()
    keyed = SNES().init(x, key=jax.numpy.zeros(2, jax.numpy.uint32))  # a user's key: x0 converted as before
    assert keyed.mean.committed
