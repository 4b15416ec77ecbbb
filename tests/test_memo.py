"""``evostrat.run.memo``: keys of plain settings (issue 15's per-settings answers)."""

from __future__ import annotations

import numpy as np

from evostrat.run.memo import Memo, plain_key


def test_plain_keys_tell_types_and_signed_zeros_apart() -> None:
    assert plain_key((1, "a", None, 2.5)) == plain_key((1, "a", None, 2.5))
    assert len({plain_key((1,)), plain_key((1.0,)), plain_key((True,))}) == 3  # equal values, three keys
    assert plain_key((1,), "owner") != plain_key((1,), "other")
    assert plain_key((-0.0,)) is None and plain_key((0.0,)) is not None  # -0.0 == 0.0, another setting
    assert plain_key((-0.0,), zeros=False) == plain_key((0.0,), zeros=False)  # where the sign cannot matter
    for unplain in ([1], (1,), {"a": 1}, np.float64(1.0), np.ones(2), object()):
        assert plain_key((1, unplain)) is None


def test_a_memo_keeps_at_most_its_size_and_no_none_key() -> None:
    memo = Memo(size=2)
    assert memo.keep(None, "x") == "x" and not memo and not memo.holds(None, "x")
    answer = object()
    memo.keep(1, answer)
    assert memo.holds(1, answer) and not memo.holds(1, object())
    memo.keep(2, "b"), memo.keep(3, "c")  # full at the third: emptied first
    assert list(memo) == [3]
