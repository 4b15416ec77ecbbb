"""VkD-CMA's online choice of ``k`` (Akimoto and Hansen, PPSN 2016) over fixed-size buffers.

"Online model selection for restricted covariance matrix adaptation", PPSN XIV (2016): from
``k = 0``, ``k`` grows to ``min(max(ceil(sqrt(2) k), k + 1), k_max)`` once ``2 n - 1``
generations passed since ``k`` last grew, every direction is long (``1 + s_i > 30``) and the
step size and the diagonal of ``C`` have settled; once ``k (2 n - 1)`` generations passed since
``k`` last grew the short (``1 + s_i < 30``), shrinking directions are dropped. As in Akimoto's
reference code (and pycma's ``GaussVkDSampler``) only growing restarts the count, so a drop can
follow a drop, or a growth, in the next generation; after a drop ``D`` and ``p_c`` are rescaled
so that ``det C = 1`` again (the dropped factors ``1 + s_i`` had left it below). The state keeps ``V`` as a ``(k_max, n)``
buffer whose first ``k`` rows are active, so growing only raises ``k`` (the new rows are
zero) and dropping moves the kept rows to the front (in their order) and zeroes the rest. The
choice is written with ``Backend.cond`` and ``where``: no branch on traced values, so JAX
compiles it.

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies.vkd_select import grow_table, pick
>>> grow_table(6).tolist()
[1.0, 2.0, 3.0, 5.0, 6.0, 6.0, 6.0]
>>> float(pick(np, grow_table(6), np.asarray(3.0)))
5.0
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from evostrat.backends import Backend
from evostrat.backends.trees import replace

Array = Any

__all__ = ["LONG", "det_scale", "grow_table", "pick", "select_k"]

#: A direction is long when ``1 + s_i`` exceeds this (PPSN 2016).
LONG = 30.0


def grow_table(k_max: int) -> np.ndarray:
    """``min(max(ceil(sqrt(2) k), k + 1), k_max)`` for ``k = 0 .. k_max`` (host float64)."""
    return np.array([min(max(math.ceil(k * math.sqrt(2)), k + 1), k_max) for k in range(k_max + 1)], dtype=float)


def pick(xp: Any, table: Array, k: Array) -> Array:
    """``table[k]`` for a 0-d (possibly traced) whole number ``k``, exactly (a masked sum)."""
    index = xp.cumulative_sum(xp.ones_like(table)) - 1.0  # 0, 1, 2, ... on table's device
    return xp.sum(xp.where(index == k, table, 0.0))


def det_scale(xp: Any, D: Array, s: Array, n: int) -> Array:
    """``det(C)^(1 / 2n)`` of ``C = D (I + V^T diag(s) V) D`` (``V``'s rows orthonormal): ``D`` and
    ``p_c`` divided by it give ``det C = 1``, as every update and every drop of directions leaves it."""
    return xp.exp((2 * xp.sum(xp.log(D)) + xp.sum(xp.log1p(s))) / (2 * n))


def select_k(be: Backend, state: Any, active: tuple[Array, Array], rate: Array, lam: int,
             grow_to: np.ndarray) -> Any:
    """The state after the online choice of ``k``; ``active`` are the ``(V, s)`` rows to read
    (the first ``k`` on eager backends, the whole buffer where it traces), ``rate`` is
    ``c_1 + c_mu`` (the averaging rate of the log-changes; our choice)."""
    xp, dt = be.xp, state.mean.dtype
    dev = be.device(state.mean)
    n, k_max = state.mean.shape[0], state.V.shape[0]
    V, s = active
    k = state.k
    log_diag = 2 * xp.log(state.D) + xp.log1p(xp.matmul(s, V * V))
    log_s = xp.log1p(state.s)  # zero past k
    logs = xp.concat([xp.log(state.sigma)[None], log_diag, log_s])
    scale = xp.concat([xp.full(1, 0.5 * min(1.0, lam / n) / 3.0, dtype=dt, device=dev),
                       xp.zeros(n + k_max, dtype=dt, device=dev) + rate])
    change = xp.where(state.t <= 1, 0.0, (logs - state.logs) / scale)
    drift = (1 - rate) * state.drift + rate * change
    d_sigma, d_diag, d_s = drift[0], drift[1:1 + n], drift[1 + n:]
    wait = 2 * n - 1
    index = xp.arange(k_max, dtype=dt, device=dev)
    in_use = index < k
    long_dirs = 1.0 + state.s > LONG
    grow = ((state.since > wait) & (k < k_max) & xp.all(long_dirs | ~in_use) & (xp.abs(d_sigma) < 0.1)
            & xp.all(xp.abs(d_diag) < 1.0))
    drop = in_use & ~long_dirs & (d_s < 0.0)
    dropping = ~grow & (k > 0) & (state.since > k * wait) & xp.any(drop)
    out = replace(state, logs=logs, drift=drift)
    new_k = pick(xp, be.asarray(grow_to, dtype=dt, device=dev), k)

    def grown(st: Any) -> Any:
        return replace(st, k=new_k, since=0 * st.since)

    def dropped(st: Any) -> Any:
        order = xp.argsort(xp.astype(drop, xp.int32), stable=True)  # the kept first, in order
        left = k - xp.sum(xp.astype(drop, dt))
        rows = index < left
        head, tail = st.logs[: 1 + n], st.drift[: 1 + n]
        s_kept = xp.where(rows, xp.take(st.s, order), 0.0)
        scale = det_scale(xp, st.D, s_kept, n)  # det C = 1 again (the dropped 1 + s_i > 1 left it below)
        return replace(st, V=xp.where(rows[:, None], xp.take(st.V, order, axis=0), 0.0), s=s_kept, k=left,
                       D=st.D / scale, p_c=st.p_c / scale,
                       logs=xp.concat([head, xp.where(rows, xp.take(st.logs[1 + n:], order), 0.0)]),
                       drift=xp.concat([tail, xp.where(rows, xp.take(st.drift[1 + n:], order), 0.0)]))

    return be.cond(grow, grown, lambda st: be.cond(dropping, dropped, lambda x: x, st), out)
