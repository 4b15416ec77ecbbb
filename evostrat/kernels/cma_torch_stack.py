"""CMA-ES and sep-CMA-ES over a torch batch's stacked runs: ask, tell and the read-outs without ``vmap``.

A torch ``fit_batch`` (:mod:`evostrat.run.batch_torch`) keeps its runs' states stacked:
every tensor leaf of the strategy's state with a leading runs axis, the keys as one
``(runs, 2)`` array. The built-in plugin hands :class:`CMAES` and :class:`SepCMAES` this
stack kernel (``evostrat_stack_kernel`` hook), which runs the generic steps of
:mod:`evostrat.strategies.cma_base` (Hansen's tutorial, arXiv 1604.00772, eqs. 38-47) and
of the two models of C, :mod:`evostrat.strategies.cma_es` (full, eigendecomposed) and
:mod:`evostrat.strategies.sep_cma_es` (diagonal; Ros & Hansen, PPSN X, 2008), written for
that axis: each operation once for all the runs, where ``torch.func.vmap`` of the generic
steps wraps about 300 operations a generation in its batching rules (CMA-ES: 3.0 ms
against 1.5 ms for 64 runs at d = 10). The two models differ only in sampling, whitening,
the covariance update and the criteria's axes (``separable``), as the strategies do.

Run ``i`` of each result is what the generic methods give for run ``i`` alone: its
candidates from its own key (the draws of the lone run), the same operations in the same
order on operands of the same layout (the eigenvectors column-major, as ``eigh`` returns
them), and on the CPU each product summed as the lone run's single product
(:func:`~evostrat.kernels.stack_products.product`: batched where torch sums that as the single one, else padded to the
BLAS's size or run by run, which depends on the CPU), so the lone run's numbers bit for bit
but for ``||p_s||^2`` (within ``1e-12`` relative), which reaches C only through sigma and
``h_sigma``. That matters: while ``popsize < n`` C starts with a repeated eigenvalue, and a C
apart in the last bit may get another basis of its eigenspace from ``eigh``, hence other
samples (runs up to 75 % apart in ``fun_`` after 150 generations at d = 20, where an AVX-512
Xeon's batched vector products summed in another order). The lazy eigendecomposition decomposes the runs whose
counter is due; ``repair`` (eigenvalues lifted, C rescaled) is computed for every run and
selected per run, as the generic steps do on torch (on the CPU only when a run needs it).
On the CPU the kernel keeps its draws' buffer (:class:`~evostrat.kernels.stack_draws.Draws`) and
its padded products' zero buffers from generation to generation, ranks a generation without ties
with numpy, and does the steps between the products with numpy
(:mod:`evostrat.kernels.cma_stack_steps`), each with the same operations on the same operands as
the torch steps, hence the same bits (64 runs of CMA-ES at d = 10, 200 generations: the batch
380 -> 335 ms of CPU time, one core, 2026-12-07).
Set ``stack_kernel = False`` (on the class or an instance) for the generic steps under
``vmap``; a subclass that overrides one of the steps (:data:`STEPS`) gets them too.

Examples
--------
>>> import torch
>>> from evostrat.backends import get_backend
>>> from evostrat.run.batch_stack import RunStack
>>> from evostrat.strategies.cma_es import CMAES
>>> s, be = CMAES(), get_backend(torch.zeros(1))
>>> states = [s.init(torch.zeros(4, dtype=torch.float64), random_state=i) for i in range(3)]
>>> stack = RunStack(states, be)
>>> k = kernel(s, be)
>>> X, asked = k.ask(stack.as_state())
>>> bool(torch.equal(X[2], s.ask(states[2])[0])), tuple(X.shape)
(True, (3, 8, 4))
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np
import torch

from evostrat.backends.host_keys import split_keys
from evostrat.backends.key_batch import KeyBatch
from evostrat.backends.trees import merge_leaves, replace
from evostrat.kernels import StackKernel
from evostrat.kernels.cma_stack_steps import host_steps, torch_steps
from evostrat.kernels.stack_draws import Draws
from evostrat.kernels.stack_products import product
from evostrat.strategies.cma_base import RESCALE_RANGE, STOP_NAMES, CMABase, CMAConstants, finite_rows
from evostrat.strategies.cma_es import CMAES
from evostrat.strategies.sep_cma_es import SepCMAES

__all__ = ["STEPS", "applies", "kernel", "ask", "tell", "read"]


#: The methods whose steps the kernel runs: a subclass that overrides one keeps its own (under vmap).
STEPS = ("ask", "tell", "generic_tell", "sample", "whiten", "update_covariance", "decompose", "current_cov",
         "eigen", "repair", "rescale", "sigma_path", "step_size", "csa", "cov_path", "active_factors", "cov_decay",
         "sigma", "stop", "generic_sigma", "generic_stop", "_sigma_array", "_stop_arrays", "_diag_cov", "_axes",
         "parameters", "constants")

#: Whether ``tell`` does the steps between its products with numpy on the CPU
#: (:mod:`evostrat.kernels.cma_stack_steps`: the same bits as the torch steps, which run elsewhere).
HOST_STEPS = True


def applies(strategy: Any) -> bool:
    """Whether the kernel computes ``strategy``'s steps: a :class:`CMAES` or :class:`SepCMAES`
    with ``stack_kernel`` set that overrides none of :data:`STEPS`.

    >>> class Custom(CMAES):
    ...     def update_covariance(self, *args):
    ...         return super().update_covariance(*args)
    >>> applies(CMAES()), applies(SepCMAES()), applies(Custom())
    (True, True, False)
    """
    cls = type(strategy)
    base = CMAES if isinstance(strategy, CMAES) else SepCMAES if isinstance(strategy, SepCMAES) else None
    return (base is not None and bool(getattr(strategy, "stack_kernel", False))
            and all(getattr(cls, name, None) is getattr(base, name, None) for name in STEPS))


def kernel(strategy: CMAES | SepCMAES, backend: Any) -> StackKernel:
    """The stack kernel of ``strategy`` on the torch ``backend`` (its draws into one buffer of its own)."""
    return StackKernel(ask=partial(ask, strategy, backend, draws=Draws()), tell=partial(tell, strategy, backend),
                       read=partial(read, strategy))


def ask(strategy: CMAES | SepCMAES, backend: Any, state: Any, draws: Draws | None = None) -> tuple[torch.Tensor, Any]:
    """``x_k = m + sigma B D z_k`` (sep-CMA-ES: ``m + sigma sqrt(c) z_k``) for every run, ``z``
    from each run's own key: ``X`` of shape ``(runs, popsize, dim)`` and the stacked state with
    the runs' new keys. ``draws``: where ``z`` is drawn (else by ``backend.normal``)."""
    n = state.mean.shape[-1]
    key, sub = split_keys(state.key)
    shape, mean = (strategy.resolved_popsize(n), n), state.mean
    z = (draws.normal(sub, shape, mean.dtype, mean.device) if draws is not None
         else backend.normal(KeyBatch(sub, None), shape, mean.dtype, mean.device))
    if strategy.separable:  # SepCMAES.sample's operations, in its order
        X = torch.mul(z, torch.sqrt(state.C).unsqueeze(1))
        X *= state.sigma.view(-1, 1, 1)
        X += mean.unsqueeze(1)
        return X, replace(state, key=key)
    # m + sigma (B (D z)): the generic sample's operations (the sum in place on the fresh product
    # sigma y, contiguous where y, a view of a padded product, may not be)
    y = product(z.mul_(state.D.unsqueeze(1)), _column_major(state.B).mT)
    return torch.mul(y, state.sigma.view(-1, 1, 1)).add_(mean.unsqueeze(1)), replace(state, key=key)


def tell(strategy: CMAES | SepCMAES, backend: Any, state: Any, X: torch.Tensor, fitness: torch.Tensor) -> Any:
    """One generation of every run (:meth:`CMABase.generic_tell`'s steps): ``X`` of shape
    ``(runs, popsize, dim)``, ``fitness`` ``(runs, popsize)`` to minimise."""
    n = state.mean.shape[-1]
    c = strategy.constants(backend, n, state.mean.dtype, state.mean.device)
    w_mean, w_cov = _weights(fitness, c.cumulative)
    Y = torch.sub(X, state.mean.unsqueeze(1)).div_(state.sigma.view(-1, 1, 1))
    if not Y.is_cpu or not float(Y.abs().amax()) <= c.ymax:  # (on the CPU: where all are, finite_rows is Y)
        Y = finite_rows(Y, c.ymax, torch)
    y_w = product(w_mean, Y)
    if strategy.separable:  # SepCMAES.whiten: y_k / sqrt(c), <y>_w / sqrt(c)
        D = torch.sqrt(state.C)
        Zt, z_w = Y / D.unsqueeze(1), y_w / D
    else:  # CMAES.whiten
        B = _column_major(state.B)
        Zt = torch.div(product(Y, B), state.D.unsqueeze(1))  # whitened rows D^-1 B^T y_k
        z_w = product(B, product(w_mean, Zt))  # C^-1/2 <y>_w
    # the steps between the products (numpy on the CPU: the same bits); ||C^-1/2 y_i||^2 by the backend's
    # vecdot, the lone run's product bit for bit: C must be the lone run's to the last bit, or eigh may
    # pick another basis of a repeated eigenvalue (popsize < n)
    steps = host_steps if X.is_cpu and HOST_STEPS else torch_steps
    mean, ps, sigma, hsig, pc, coef_mu, decay = steps(c, backend, strategy.lr_mean, state, y_w, z_w, w_cov, Zt)
    new = replace(state, mean=mean, sigma=sigma, ps=ps, pc=pc, generation=state.generation + 1)
    if strategy.separable:
        return _update_diagonal(c, new, Y, coef_mu, decay)
    return _update_covariance(strategy, backend, c, new, Y, coef_mu, decay)


def read(strategy: CMAES | SepCMAES, state: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Every run's ``sigma`` (:meth:`CMABase.sigma`) and pycma's criteria (:meth:`CMABase.stop`),
    each of shape ``(runs,)``."""
    mean, sigma = state.mean, state.sigma
    runs, n = mean.shape
    diag = state.C if strategy.separable else state.diag_C
    D = torch.sqrt(diag) if strategy.separable else state.D
    std = sigma.unsqueeze(1) * torch.sqrt(diag) if strategy.noeffectcoord or strategy.tolfacupx is not None else None
    false = torch.zeros(runs, dtype=torch.bool, device=mean.device)
    cond = strategy.tolconditioncov
    conditioncov = D.amax(-1) > math.sqrt(cond) * D.amin(-1) if cond is not None else false
    noeffectaxis = false
    if strategy.noeffectaxis:
        i = (state.generation % n).to(device=mean.device, dtype=torch.int64)[:, None]
        if strategy.separable:  # the coordinate axis i, scaled
            axis = torch.where(torch.arange(n, device=mean.device) == i, D, 0.0)
        else:
            column = torch.gather(state.B, 2, i[:, :, None].expand(runs, n, 1))[:, :, 0]
            axis = column * torch.gather(D, 1, i)  # column i of B D, run by run
        noeffectaxis = torch.all(mean == mean + 0.1 * sigma[:, None] * axis, dim=-1)
    noeffectcoord = torch.any(mean == mean + 0.2 * std, dim=-1) if strategy.noeffectcoord else false
    upsigma = false
    if strategy.tolupsigma is not None:
        lhs = torch.log(sigma) - torch.log(D.amax(-1)) - state.log_scale
        upsigma = lhs > torch.log(state.std0.amax(-1)) + math.log(strategy.tolupsigma)
    facupx = false
    if strategy.tolfacupx is not None:
        facupx = torch.any(std > state.std0 * strategy.tolfacupx, dim=-1)
    flags = (conditioncov, noeffectaxis, noeffectcoord, upsigma, facupx)
    return sigma * torch.sqrt(diag.amax(-1)), dict(zip(STOP_NAMES, flags))


def _column_major(B: torch.Tensor) -> torch.Tensor:
    """``B`` with each matrix column-major, as ``eigh`` returns eigenvectors and a lone run keeps
    them: a product's summation order follows its operands' layout, and stacking the runs'
    states (or dropping stopped runs) makes the stack row-major."""
    return B if B.stride()[-2:] == (1, B.shape[-1]) else B.mT.contiguous().mT


def _weights(fitness: torch.Tensor, cumulative: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each run's :func:`~evostrat.strategies.cma_base.candidate_weights`: NaN ranks worst,
    tied values share the mean weight of the ranks they occupy.

    On the CPU, where no run has ties, the candidate ranked ``j`` gets ``cumulative[:, j + 1] -
    cumulative[:, j]``: the tie span's sum over a span of one (its division by 1 exact), found by
    numpy on views of the tensors (its rank by two argsorts) instead of two searches."""
    if fitness.is_cpu:
        values = fitness.detach().numpy()
        f = np.where(np.isnan(values), np.inf, values)
        order = np.argsort(f, axis=-1)
        ordered = np.take_along_axis(f, order, -1)
        if not (ordered[:, 1:] == ordered[:, :-1]).any():
            w = torch.from_numpy(np.take(np.diff(cumulative.numpy(), axis=1), np.argsort(order, axis=-1), axis=1))
            return w[0], w[1]
    f = torch.where(torch.isnan(fitness), torch.inf, fitness)
    ordered = torch.sort(f, dim=-1).values
    lo = torch.searchsorted(ordered, f, side="left")
    hi = torch.searchsorted(ordered, f, side="right")
    total = cumulative[:, hi] - cumulative[:, lo]  # (2, runs, popsize)
    w = total / (hi - lo).to(cumulative.dtype)
    return w[0], w[1]


def _update_covariance(strategy: CMAES, backend: Any, c: CMAConstants, state: Any, Y: torch.Tensor,
                       coef_mu: torch.Tensor, decay: torch.Tensor) -> Any:
    """:meth:`CMAES.update_covariance` of every run: directly when decomposing every
    generation, else queued, and decomposed in the runs whose counter is due."""
    p, pc = c.p, state.pc
    k = state.queue.shape[1]
    if k == 1:  # decay C + sum_i coef_i y_i y_i^T + c_1 p_c p_c^T, summed in that order
        C = torch.mul(state.C, decay.view(-1, 1, 1))
        C += product(Y.mT * coef_mu.unsqueeze(1), Y)
        C += torch.mul(pc.unsqueeze(2), pc.unsqueeze(1)).mul_(p.c1)
        return _eigen(backend, c, state, C)
    diag_C = decay[:, None] * state.diag_C + product(coef_mu, Y * Y) + p.c1 * (pc * pc)
    rows = torch.cat([Y, pc[:, None, :]], dim=1)
    coef = torch.cat([coef_mu, c.c1.expand(coef_mu.shape[0], 1)], dim=1)
    slot = (torch.arange(k) == ((state.generation - 1) % k)[:, None]).to(Y.device)  # (runs, k)
    state = replace(state, diag_C=diag_C, decay=state.decay * decay,
                    queue=torch.where(slot[:, :, None, None], rows[:, None], state.queue),
                    queue_coef=torch.where(slot[:, :, None], coef[:, None], state.queue_coef * decay[:, None, None]))
    due = state.generation % k == 0  # on the host: no GPU synchronisation
    if not bool(due.any()):
        return state
    decomposed = _decompose(backend, c, state)
    return decomposed if bool(due.all()) else _select(due.to(Y.device), decomposed, state)


def _decompose(backend: Any, c: CMAConstants, state: Any) -> Any:
    """:meth:`CMAES.decompose`: the queued terms added to C, then :func:`_eigen`."""
    runs, n = state.mean.shape
    V = torch.reshape(state.queue, (runs, -1, n))
    C = state.decay[:, None, None] * state.C + product(V.mT * torch.reshape(state.queue_coef, (runs, 1, -1)), V)
    return _eigen(backend, c, replace(state, queue_coef=torch.zeros_like(state.queue_coef),
                                      decay=torch.ones_like(state.decay)), C)


def _eigen(backend: Any, c: CMAConstants, state: Any, C: torch.Tensor) -> Any:
    """:meth:`CMAES.eigen` of every run: symmetrise, decompose, repair the runs that need it."""
    C = torch.add(C, C.mT).mul_(0.5)
    evals, B = backend.eigh(C)  # ascending
    state = replace(state, C=C, B=B, D=torch.clamp(evals, min=0.0).sqrt_(), diag_C=torch.diagonal(C, dim1=-2, dim2=-1))
    lo, hi = RESCALE_RANGE
    if evals.is_cpu:  # whether a run needs repair, read on the host (numpy: the same comparisons)
        values = evals.detach().numpy()
        bottom, top = values[:, 0], values[:, -1]
        if not ((bottom < np.maximum(top, 0.0) * c.eps + c.tiny) | (top > hi) | (top < lo)).any():
            return state
    top = evals[:, -1]
    floor = torch.clamp(top, min=0.0) * c.eps + c.tiny
    repair = (evals[:, 0] < floor) | (top > hi) | (top < lo)  # on a GPU: not read (no synchronisation)
    return _select(repair, _repair(c, state, evals, floor), state)


def _repair(c: CMAConstants, state: Any, evals: torch.Tensor, floor: torch.Tensor) -> Any:
    """:meth:`CMAES.repair` and :meth:`CMABase.rescale` of every run (selected where needed)."""
    shift = torch.clamp(floor - evals[:, 0], min=0.0)
    evals = evals + shift[:, None]
    scale = _scale(evals[:, -1])
    C = (state.C + shift[:, None, None] * c.eye) / scale[:, None, None]
    return CMABase.rescale(replace(state, C=C, D=torch.sqrt(evals / scale[:, None]),
                                   diag_C=torch.diagonal(C, dim1=-2, dim2=-1)), scale, torch)


def _update_diagonal(c: CMAConstants, state: Any, Y: torch.Tensor, coef_mu: torch.Tensor,
                     decay: torch.Tensor) -> Any:
    """:meth:`SepCMAES.update_covariance` of every run: the diagonal of eq. 47, tiny variances
    lifted, the scale moved into sigma (:meth:`CMABase.rescale`)."""
    C = decay[:, None] * state.C + c.p.c1 * (state.pc * state.pc) + product(coef_mu, Y * Y)
    C = torch.maximum(C, torch.clamp(C.amax(-1, keepdim=True), min=0.0) * c.eps + c.tiny)
    scale = _scale(C.amax(-1))
    return CMABase.rescale(replace(state, C=C / scale[:, None]), scale, torch)


def _scale(top: torch.Tensor) -> torch.Tensor:
    """Each run's factor moved out of C: its largest eigenvalue (variance) ``top`` where that left
    :data:`RESCALE_RANGE`, else 1."""
    lo, hi = RESCALE_RANGE
    return torch.where((top > hi) | (top < lo), top, 1.0)


def _select(pred: torch.Tensor, a: Any, b: Any) -> Any:
    """Run ``r`` of ``a`` where ``pred[r]``, else of ``b``, leaf by leaf (a leaf both share is kept)."""
    return merge_leaves(lambda x, y: torch.where(torch.reshape(pred, (-1,) + (1,) * (x.ndim - 1)), x, y), a, b)
