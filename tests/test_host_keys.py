"""Host keys (numpy and torch backends): the vectorised split a torch batch uses
(:func:`evostrat.backends.host_keys.split_keys`) equals the split of each key alone."""

from __future__ import annotations

import numpy as np
import pytest

from evostrat.backends.host_keys import seed_to_uint64, split_keys, split_uint64


@pytest.mark.parametrize("num", [1, 2, 8, 9, 12])
def test_split_keys_splits_each_key_as_split_uint64(num: int) -> None:
    keys = np.stack([seed_to_uint64(s) for s in range(50)] + [np.array([0, 2**64 - 1], dtype=np.uint64)])
    children = split_keys(keys, num)  # children past the 8 precomputed tweaks included
    assert len(children) == num
    for i, key in enumerate(keys):
        for child, alone in zip(children, split_uint64(key, num)):
            assert child.dtype == np.uint64 and child.shape == keys.shape and (child[i] == alone).all()
