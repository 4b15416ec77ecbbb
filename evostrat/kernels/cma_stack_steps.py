"""The per-run steps between the torch stack kernel's products in ``tell``: torch's, and numpy's
for runs on the CPU.

Used by :mod:`evostrat.kernels.cma_torch_stack`. Between the products of a CMA-ES generation,
the generic steps (:meth:`~evostrat.strategies.cma_base.CMABase.sigma_path`, ``csa``,
``cov_path``, ``active_factors``, ``cov_decay``) are some thirty elementwise operations on
``(runs,)`` and ``(runs, dim)`` arrays: :func:`torch_steps` calls them on the runs' stacked
arrays. On the CPU, :func:`host_steps` does them with numpy on views of the
tensors (no copies) at a fraction of torch's cost per call, with the same IEEE operations in the
same order, hence the same bits: additions, products, quotients, comparisons, minimums and
maximums are exact or rounded once, as torch's are. What torch computes otherwise stays
torch's, on the tensors the torch steps would pass: ``exp`` and ``sqrt`` (torch's vectorised
ones on the CPU: not always rounded as numpy's, and their last bit may depend on the position
in the array; torch's ``sqrt`` of 19.27633101 is 1 ulp below the correctly rounded root), the
runs' ``||p_s||^2`` (``torch.linalg.vecdot``) and their ``||C^-1/2 y_i||^2`` (the backend's
``vecdot``, the lone run's batched product).

Examples
--------
>>> import numpy as np
>>> host(torch.tensor([[1.0, -2.0]], dtype=torch.float64)).tolist()
[[1.0, -2.0]]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from evostrat.strategies.cma_base import CMABase
from evostrat.strategies.cma_params import CMAConstants, moved_mean

__all__ = ["host", "host_steps", "torch_steps"]


def host(t: torch.Tensor) -> np.ndarray:
    """A numpy view of the CPU tensor ``t`` (no copy)."""
    return t.detach().numpy()


def torch_steps(c: CMAConstants, backend: Any, lr_mean: Any, state: Any, y_w: torch.Tensor, z_w: torch.Tensor,
                w_cov: torch.Tensor, Zt: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``mean, ps, sigma, hsig, pc, coef_mu, decay`` of every run from ``<y>_w``, ``C^-1/2 <y>_w``,
    the covariance weights and the whitened rows ``Zt``: the generic steps of
    :class:`~evostrat.strategies.cma_base.CMABase`, elementwise over the runs' axis."""
    mean = moved_mean(lr_mean, state.mean, state.sigma.unsqueeze(1), y_w)
    ps = CMABase.sigma_path(c, state.ps, z_w)
    # ||p_s||^2 per run (the lone run's ``ps @ ps`` has no batched twin summing in its order; it
    # reaches C only through sigma and h_sigma)
    g = (state.generation + 1).to(device=ps.device, dtype=ps.dtype)
    sigma, hsig = CMABase.csa(c, backend.xp, state.sigma, torch.linalg.vecdot(ps, ps), g)
    pc = CMABase.cov_path(c, state.pc, hsig.unsqueeze(1), y_w)
    coef_mu = c.p.cmu * CMABase.active_factors(c, backend, w_cov, Zt)
    return mean, ps, sigma, hsig, pc, coef_mu, CMABase.cov_decay(c, hsig)


def host_steps(c: CMAConstants, backend: Any, lr_mean: Any, state: Any, y_w: torch.Tensor, z_w: torch.Tensor,
               w_cov: torch.Tensor, Zt: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """:func:`torch_steps` (their operations, in their order) with numpy, all on the CPU."""
    p, n = c.p, state.mean.shape[-1]
    norm2_z = backend.vecdot(Zt, Zt)  # the lone run's product bit for bit (active_factors')
    sigma, yw = host(state.sigma), host(y_w)
    mean = moved_mean(lr_mean, host(state.mean), sigma[:, None], yw)
    ps = host(state.ps) * (1.0 - p.cs) + host(z_w) * math.sqrt(p.cs * (2.0 - p.cs) * p.mueff)
    ps_t = torch.from_numpy(ps)
    norm2_t = torch.linalg.vecdot(ps_t, ps_t)
    norm2 = host(norm2_t)
    # CMABase.csa: the exponent capped at 1, sigma clipped to its range, h_sigma's test
    rate = p.cs / p.damps
    exponent = np.minimum(host(torch.sqrt(norm2_t)) * (rate / p.chi_n) - rate, 1.0)
    lo, hi = c.sigma_range
    new_sigma = np.minimum(np.maximum(host(torch.exp(torch.from_numpy(exponent))) * sigma, lo), hi)
    g = host(state.generation).astype(sigma.dtype) + sigma.dtype.type(1)  # exact: small integers
    decayed = host(torch.exp(torch.from_numpy(g * (2.0 * math.log(1.0 - p.cs)))))
    hsig = (norm2 < (-decayed + 1.0) * p.hsig_threshold2).astype(sigma.dtype)
    pc = host(state.pc) * (1.0 - p.cc) + yw * (hsig * math.sqrt(p.cc * (2.0 - p.cc) * p.mueff))[:, None]
    # active_factors (n / norm2 as torch's Tensor.__rdiv__: the reciprocal times n) and cov_decay
    wc = host(w_cov)
    coef_mu = np.where(wc < 0, wc * ((1.0 / np.maximum(host(norm2_z), c.tiny * n)) * n), wc) * p.cmu
    decay = (1.0 - hsig) * (p.c1 * p.cc * (2.0 - p.cc)) + (1.0 - p.c1 - p.cmu * p.sum_weights)
    return tuple(map(torch.from_numpy, (mean, ps, new_sigma, hsig, pc, coef_mu, decay)))
