"""CMA-ES and sep-CMA-ES criteria of one torch run decided on the host, on Python floats.

On torch the generic :meth:`CMABase.stop <evostrat.strategies.cma_base.CMABase.stop>` costs
about 25 eager operations and five host reads a generation, which ``ES.fit`` and an ask/tell
loop pay every generation (they read ``stop_reason``): 120 us of CMA-ES's generation at
d = 10 on a CPU. This kernel (offered by the built-in plugin for torch states; ``ask``,
``tell`` and ``sigma`` are the generic steps, :func:`host_sigma` their sigma read directly)
reads the state's vectors once as Python floats and decides each criterion from *bounds* on
the values torch computes: each criterion compares
two quantities that torch computes in a few operations of the state's dtype (unit roundoff
``u``: ``2^-53`` for float64, ``2^-24`` for float32), so where the exact values lie apart by
more than ``32 u`` relative (torch's ``sqrt`` is not always correctly rounded) the computed
ones compare the same way. Where a bound does not decide (a criterion about to hold, a state
not finite and positive, another dtype, a tensor under ``vmap`` or ``torch.compile``) the
generic operations run: the same answers in every case.

- ``tolconditioncov``: ``max D`` against ``sqrt(tolconditioncov) min D``.
- ``noeffectaxis`` and ``noeffectcoord``: ``m_j + a_j`` moves off ``m_j`` when
  ``|a_j| >= 32 u |m_j|`` (and no product underflows), and stays when
  ``|a_j| < u |m_j| / 4`` (under half the spacing of the floats around ``m_j``).
- ``tolupsigma``: ``log(sigma) - log(max D) - log_scale`` against ``log(max std0) +
  log(tolupsigma)`` in ``math.log``, apart by more than a margin (``1e-12``, float32 ``1e-5``,
  times the terms' magnitudes) that covers torch's logarithms.
- ``tolfacupx``: ``sigma sqrt(max C_jj)`` against the least ``std0_j tolfacupx``.

Examples
--------
>>> import torch
>>> from evostrat.strategies.cma_es import CMAES
>>> s = CMAES(sigma0=0.5)
>>> state = s.init(torch.ones(4, dtype=torch.float64), random_state=0)
>>> stop(kernel(s).stop.args[0], state) == {k: bool(v) for k, v in s.generic_stop(state).items()}
True
"""

from __future__ import annotations

import math
from functools import partial
from types import SimpleNamespace
from typing import Any

import torch

from evostrat.kernels import Kernel
from evostrat.kernels.cma_torch_stack import STEPS
from evostrat.strategies.cma_base import STOP_NAMES
from evostrat.strategies.cma_es import CMAES, CMAESState
from evostrat.strategies.sep_cma_es import SepCMAES, SepCMAESState

__all__ = ["applies", "kernel", "stop", "read", "host_sigma"]

#: per dtype: unit roundoff ``u``, the least magnitude an addend keeps (far above the dtype's
#: underflow) and the relative margin of ``tolupsigma``'s logarithms
_ROUNDING = {torch.float64: (2.0**-53, 2.0**-1000, 1e-12), torch.float32: (2.0**-24, 2.0**-100, 1e-5)}
#: the relative error, in units of ``u``, allowed for a few operations: torch's ``sqrt`` is not
#: always correctly rounded (float64 on the CPU: 1 ulp apart from ``math.sqrt`` at times)
_ROOM = 32.0
#: what :func:`stop` answers when no criterion holds
_NO_STOP = dict.fromkeys(STOP_NAMES, False)


def applies(strategy: Any) -> bool:
    """Whether these read-outs compute ``strategy``'s: a :class:`CMAES` or :class:`SepCMAES` with
    ``torch_kernel`` set that overrides none of :data:`~evostrat.kernels.cma_torch_stack.STEPS`
    (the criteria's among them).

    >>> class Custom(CMAES):
    ...     def generic_stop(self, state):
    ...         return super().generic_stop(state)
    >>> applies(CMAES()), applies(SepCMAES()), applies(Custom())
    (True, True, False)
    """
    cls = type(strategy)
    base = CMAES if isinstance(strategy, CMAES) else SepCMAES if isinstance(strategy, SepCMAES) else None
    return (base is not None and bool(getattr(strategy, "torch_kernel", False))
            and all(getattr(cls, name, None) is getattr(base, name, None) for name in STEPS))


def kernel(strategy: CMAES | SepCMAES) -> Kernel:
    """The kernel bound to ``strategy``: the generic ``ask`` and ``tell``, these read-outs."""
    ctx = SimpleNamespace(strategy=strategy, std0=(None, math.nan, math.nan))
    return Kernel(ask=strategy.sample, tell=strategy.generic_tell, stop=partial(stop, ctx),
                  host_sigma=partial(host_sigma, strategy))


def _generic(strategy: Any, state: Any) -> dict[str, bool]:
    return {name: bool(hit) for name, hit in strategy.generic_stop(state).items()}


def stop(ctx: SimpleNamespace, state: Any) -> dict[str, Any]:
    """:meth:`CMABase.stop <evostrat.strategies.cma_base.CMABase.stop>`, as ``{name: bool}`` where
    bounds decide it (module docstring), else the generic operations' 0-d tensors or their bools."""
    strategy, mean = ctx.strategy, state.mean
    rounding = _ROUNDING.get(mean.dtype)
    separable = type(state) is SepCMAESState
    if (rounding is None or not (separable or type(state) is CMAESState) or mean.requires_grad
            or torch.compiler.is_compiling()):
        return strategy.generic_stop(state)
    u, tiny, margin = rounding
    try:  # the vectors read once (a tensor under vmap refuses: the generic operations then)
        m, diag, D, column, s, log_scale, i = read(state, strategy.noeffectaxis, not mean.is_cpu)
    except RuntimeError:
        return strategy.generic_stop(state)
    low, high = min(diag), max(diag)
    total = sum(m) + sum(diag) + (0.0 if D is None else sum(D))  # NaN or inf if some entry is
    if not (-math.inf < total < math.inf and low > 0.0 and 0.0 < s < math.inf and -math.inf < log_scale < math.inf):
        return _generic(strategy, state)  # NaN, inf, zero or negative: the element-wise operations decide
    d_min, d_max = (math.sqrt(low), math.sqrt(high)) if D is None else (min(D), max(D))
    if not d_min > 0.0:
        return _generic(strategy, state)
    k = _ROOM * u  # the relative error of a few operations, with room
    out = _NO_STOP
    if strategy.tolconditioncov is not None:
        rhs = math.sqrt(strategy.tolconditioncov) * d_min
        if d_max > rhs * (1.0 + k):
            out = dict(out, tolconditioncov=True)
        elif not d_max < rhs * (1.0 - k):
            return _generic(strategy, state)
    if strategy.noeffectaxis:
        step = 0.1 * s
        if D is None:  # the axis is the coordinate i: the other coordinates add exact zeros
            moved = _moves(m[i], step, math.sqrt(diag[i]), u, tiny)
        else:  # column i of B times D_i: some coordinate moves (usually the first one read)
            moved, d_i = False, D[i]
            for m_j, b in zip(m, column):
                hit = _moves(m_j, step, b * d_i, u, tiny)
                if hit:
                    moved = True
                    break
                if hit is None:
                    moved = None
        if moved is None:
            return _generic(strategy, state)
        if not moved:
            out = dict(out, noeffectaxis=True)
    if strategy.noeffectcoord and _moves(max(map(abs, m)), 0.2, s * math.sqrt(low), u, tiny) is not True:
        return _generic(strategy, state)  # some coordinate may stay: element by element
    if strategy.tolupsigma is not None or strategy.tolfacupx is not None:
        std0_max, fac_min = _std0(ctx, state)
        if strategy.tolupsigma is not None:
            up = math.log(std0_max) + math.log(strategy.tolupsigma)
            log_s, log_d = math.log(s), math.log(d_max)
            lhs = log_s - log_d - log_scale
            width = margin * (1.0 + abs(log_s) + abs(log_d) + abs(log_scale) + abs(up))
            if lhs > up + width:
                out = dict(out, tolupsigma=True)
            elif not lhs < up - width:
                return _generic(strategy, state)
        if strategy.tolfacupx is not None and not s * math.sqrt(high) * (1.0 + k) < fac_min * (1.0 - k):
            return _generic(strategy, state)  # a diverging run: element by element
    return out if out is not _NO_STOP else dict(_NO_STOP)


def read(state: Any, axis: bool, joined: bool) -> tuple[list[float], list[float], list[float] | None,
                                                     list[float] | None, float, float, int]:
    """``(mean, diag C, D, column i of B, sigma, log_scale, i)`` of a CMA-ES (sep-CMA-ES:
    ``D`` and the column ``None``) torch ``state`` as Python floats, ``i`` the generation modulo
    the dimension (``axis``: the column is needed). ``joined``: the tensors in one read (one
    synchronisation with a GPU), else each on its own (on the CPU, without the concatenation)."""
    separable = type(state) is SepCMAESState
    mean, diag = state.mean, state.C if separable else state.diag_C
    n = mean.shape[0]
    i = int(state.generation) % n  # CMA-ES: a host counter (Backend.counter_device)
    column = None if separable or not axis else state.B.select(1, i)
    if not joined:
        return (mean.tolist(), diag.tolist(), None if separable else state.D.tolist(),
                None if column is None else column.tolist(), state.sigma.item(), state.log_scale.item(), i)
    parts = [mean, diag, state.sigma[None], state.log_scale[None]] + ([] if separable else [state.D])
    flat = torch.cat(parts + ([] if column is None else [column])).tolist()
    D = None if separable else flat[2 * n + 2:3 * n + 2]
    return flat[:n], flat[n:2 * n], D, None if column is None else flat[3 * n + 2:], flat[2 * n], flat[2 * n + 1], i


def _moves(m: float, step: float, factor: float, u: float, tiny: float) -> bool | None:
    """Whether ``m + step * factor``, each a few roundings off, differs from ``m``: ``True``,
    ``False``, or ``None`` where the bounds do not tell. It moves when the addend is at least
    ``32 u |m|`` (and no product underflows); it stays below a quarter of ``u |m|``, under half the
    spacing of the floats around ``m``."""
    size, scale = abs(step * factor), abs(m)
    if size * (1.0 - _ROOM * u) >= max(_ROOM * u * scale, tiny) and abs(step) >= tiny and abs(factor) >= tiny:
        return True
    if size * (1.0 + _ROOM * u) < 0.25 * u * scale:
        return False
    return None


def _std0(ctx: SimpleNamespace, state: Any) -> tuple[float, float]:
    """``(max std0, min std0_j * tolfacupx)`` of ``state``'s ``std0``, kept while it is the same tensor."""
    if ctx.std0[0] is not state.std0:
        values, t = state.std0.tolist(), ctx.strategy.tolfacupx
        ctx.std0 = (state.std0, max(values), math.inf if t is None else min(v * t for v in values))
    return ctx.std0[1], ctx.std0[2]


def host_sigma(strategy: CMAES | SepCMAES, state: Any) -> float:
    """``float(strategy.sigma(state))`` (a history row's sigma): the generic operations,
    ``sigma * sqrt(max C_jj)``, without their dispatch (torch's ``sqrt`` is not ``math.sqrt``)."""
    if type(state) is CMAESState:
        return (state.sigma * torch.sqrt(torch.amax(state.diag_C))).item()
    if type(state) is SepCMAESState:
        return (state.sigma * torch.sqrt(torch.amax(state.C))).item()
    return float(strategy.generic_sigma(state))
