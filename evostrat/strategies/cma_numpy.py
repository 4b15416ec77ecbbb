"""The numpy fast path of :class:`~evostrat.strategies.cma_es.CMAES`.

At small dimensions a CMA-ES generation does almost no arithmetic: at d = 10
it is some eighty array operations on vectors of ten numbers, and their fixed
cost (dispatch through the Array API namespace, 0-d arrays for the scalars,
``lax.cond``-style branching written as function calls, several ``NamedTuple``
copies) is most of the time. On numpy arrays :class:`CMAES` therefore runs the
same generation through the two functions below, which

- call numpy directly (no namespace wrapper), with Python branches for the
  lazy decomposition and the repair;
- keep the scalar part (step size, ``h_sigma``, decay) on numpy scalars;
- build the new state once.

The arithmetic is the generic code's, operation for operation and in the same
order (tutorial eqs. 39-47, see :mod:`evostrat.strategies.cma_es`), so both
paths give bit-identical states; ``tests/test_cma_numpy.py`` checks that over
whole runs, lazy and every-generation, float32 and float64, with ties, NaN and
out-of-range candidates. Set ``CMAES.numpy_kernel = False`` (on the class or an
instance) to run the generic code instead.

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies.cma_es import CMAES
>>> fast, generic = CMAES(sigma0=0.5), CMAES(sigma0=0.5)
>>> generic.numpy_kernel = False
>>> a = b = fast.init(np.ones(5), random_state=0)
>>> for _ in range(20):
...     Xa, a = fast.ask(a)
...     Xb, b = generic.ask(b)
...     a = fast.tell(a, Xa, (Xa ** 2).sum(axis=1))
...     b = generic.tell(b, Xb, (Xb ** 2).sum(axis=1))
>>> bool((a.mean == b.mean).all() and (a.C == b.C).all() and a.sigma == b.sigma)
True
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from evostrat.backends import get_backend
from evostrat.strategies.cma_base import RESCALE_RANGE

if TYPE_CHECKING:  # pragma: no cover
    from evostrat.strategies.cma_es import CMAES, CMAESState

__all__ = ["ask", "tell"]

_BACKEND = None


def _numpy_backend() -> Any:
    global _BACKEND
    if _BACKEND is None:
        _BACKEND = get_backend("numpy")
    return _BACKEND


def ask(strategy: CMAES, state: CMAESState) -> tuple[np.ndarray, CMAESState]:
    """:meth:`CMAES.ask` on numpy arrays: ``x_k = m + sigma B (D * z_k)``."""
    be = _numpy_backend()
    mean = state.mean
    n = mean.shape[0]
    key, sub = be.split(state.key)
    z = be.normal(sub, (strategy.resolved_popsize(n), n), mean.dtype)
    y = (z * state.D) @ state.B.T
    return mean + state.sigma * y, state._replace(key=key)


def _weights(fitness: np.ndarray, consts: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~evostrat.strategies.cma_base.candidate_weights` in plain numpy.

    Without ties (the usual case) candidate ``k`` of rank ``r`` gets
    ``cumulative[:, r + 1] - cumulative[:, r]``, exactly what the generic
    formula gives for a tie group of one (its division by 1 is exact).
    """
    f = np.where(np.isnan(fitness), np.inf, fitness)
    values = f.tolist()
    if len(set(values)) == len(values):  # no ties (a set of <= ~100 floats beats numpy's calls)
        w = np.empty_like(consts["rank_weights"])
        w[:, np.argsort(f)] = consts["rank_weights"]
        return w[0], w[1]
    s = np.sort(f)
    cumulative = consts["cumulative"]
    lo = np.searchsorted(s, f, side="left")
    hi = np.searchsorted(s, f, side="right")
    # take (not fancy indexing, whose result is column-major): BLAS rounds a strided
    # vector differently, and the generic code's rows are contiguous
    total = np.take(cumulative, hi, axis=1) - np.take(cumulative, lo, axis=1)
    w = total / (hi - lo).astype(cumulative.dtype)
    return w[0], w[1]


def _constants(strategy: CMAES, n: int, dtype: Any) -> dict[str, Any]:
    consts = strategy.constants(_numpy_backend(), n, dtype, None)
    if "rank_weights" not in consts:
        cumulative = consts["cumulative"]
        consts["rank_weights"] = cumulative[:, 1:] - cumulative[:, :-1]
    return consts


def tell(strategy: CMAES, state: CMAESState, X: np.ndarray, fitness: Any) -> CMAESState:
    """:meth:`CMAES.tell` on numpy arrays (same operations as the generic code)."""
    be = _numpy_backend()
    mean0 = state.mean
    dtype = mean0.dtype
    n = mean0.shape[0]
    consts = _constants(strategy, n, dtype)
    p = consts["p"]
    w_mean, w_cov = _weights(np.asarray(fitness), consts)

    sigma, B = state.sigma, state.B
    Y = (X - mean0) / sigma
    flat = Y.reshape(-1)
    if not flat @ flat <= consts["ymax"] ** 2:  # NaN, inf or some |y| > ymax: finite_rows
        Y = np.where(np.abs(Y) <= consts["ymax"], Y, 0.0)
    Zt = (Y @ B) / state.D
    y_w = w_mean @ Y
    mean = mean0 + sigma * y_w
    ps = (1.0 - p.cs) * state.ps + math.sqrt(p.cs * (2.0 - p.cs) * p.mueff) * (B @ (w_mean @ Zt))

    # step size and h_sigma (CMABase._step_size)
    norm2 = ps @ ps
    rate = p.cs / p.damps
    exponent = np.minimum(np.sqrt(norm2) * (rate / p.chi_n) - rate, 1.0)
    lo, hi = consts["sigma_range"]
    new_sigma = np.minimum(np.maximum(sigma * np.exp(exponent), lo), hi)
    g = dtype.type(int(state.generation) + 1)
    threshold2 = ((1.4 + 2.0 / (p.dim + 1.0)) * p.chi_n) ** 2
    hsig = dtype.type(bool(norm2 < threshold2 * (1.0 - np.exp(g * (2.0 * math.log(1.0 - p.cs))))))

    pc = (1.0 - p.cc) * state.pc + (hsig * math.sqrt(p.cc * (2.0 - p.cc) * p.mueff)) * y_w
    # active factors (CMABase._active_factors)
    norm2_z = np.maximum(np.vecdot(Zt, Zt, axis=-1), consts["tiny"] * n)
    coef_mu = p.cmu * np.where(w_cov < 0, w_cov * (n / norm2_z), w_cov)
    decay = (1.0 - p.c1 - p.cmu * p.sum_weights) + (p.c1 * p.cc * (2.0 - p.cc)) * (1.0 - hsig)
    generation = state.generation + 1
    k = state.queue.shape[0]
    if k == 1:
        C = decay * state.C + (Y.T * coef_mu) @ Y + p.c1 * (pc[:, None] * pc[None, :])
        return _eigen(strategy, consts, state, C, mean=mean, sigma=new_sigma, ps=ps, pc=pc,
                      generation=generation)

    diag_C = decay * state.diag_C + coef_mu @ (Y * Y) + p.c1 * (pc * pc)
    rows = np.concatenate([Y, pc[None, :]], axis=0)
    coef = np.concatenate([coef_mu, consts["c1"]], axis=0)
    slot = int(state.generation) % k
    queue = state.queue.copy()
    queue[slot] = rows
    queue_coef = state.queue_coef * decay
    queue_coef[slot] = coef
    new = state._replace(mean=mean, sigma=new_sigma, ps=ps, pc=pc, diag_C=diag_C, queue=queue,
                         queue_coef=queue_coef, decay=state.decay * decay, generation=generation)
    if int(generation) % k != 0:
        return new
    V = queue.reshape(-1, n)
    c = queue_coef.reshape(-1)
    C = new.decay * new.C + (V.T * c) @ V
    return _eigen(strategy, consts, new, C, queue_coef=np.zeros_like(queue_coef),
                  decay=np.ones_like(new.decay))


def _eigen(
    strategy: CMAES, consts: dict[str, Any], state: CMAESState, C: np.ndarray, **fields: Any
) -> CMAESState:
    """``CMAES._eigen`` in plain numpy; ``fields`` are set on the state as well."""
    C = 0.5 * (C + C.T)
    evals, B = np.linalg.eigh(C)
    top = evals[-1]
    low, high = RESCALE_RANGE
    floor = np.maximum(top, 0.0) * consts["eps"] + consts["tiny"]
    if (evals[0] < floor) | (top > high) | (top < low):
        state = state._replace(C=C, B=B, diag_C=np.diagonal(C).copy(), **fields)
        state, evals = strategy._repair(state, evals, floor)
        return state._replace(D=np.sqrt(evals))
    return state._replace(C=C, B=B, diag_C=np.diagonal(C).copy(), D=np.sqrt(evals), **fields)
