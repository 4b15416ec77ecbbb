"""sep-CMA-ES: CMA-ES with a diagonal covariance matrix, linear time and space.

Ros & Hansen, "A Simple Modification in CMA-ES Achieving Linear Time and Space
Complexity", PPSN X (2008): CMA-ES's update (:mod:`evostrat.strategies.cma_base`)
with C restricted to its diagonal ``c``, so ``C^{-1/2} y = y / sqrt(c)`` and no
eigendecomposition is needed; the learning rates are larger
(:mod:`evostrat.strategies.cma_params`; the cap ``c_1 + c_mu <= 1``, which cmaes
0.13.1's ``SepCMA`` misses, keeps large populations from diverging). This module
supplies only the diagonal model: sampling, whitening and the update of ``c``.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.problems import ellipsoid
>>> es = ES("sep_cma_es", sigma0=2.0, ftarget=1e-8, random_state=0).fit(ellipsoid, np.full(8, 3.0))
>>> es.stop_reason_
'ftarget'
"""

from __future__ import annotations

from typing import Any, NamedTuple

from evostrat.backends import Backend, get_backend
from evostrat.strategies.cma_base import RESCALE_RANGE, CMABase, CMAConstants
from evostrat.strategies.readout import GaussianReadout
from evostrat.strategies.state_checks import check_diagonal_state
from evostrat.backends.trees import replace

Array = Any

__all__ = ["SepCMAES", "SepCMAESState"]


class SepCMAESState(NamedTuple):
    """State of :class:`SepCMAES`; ``C`` is the diagonal of the covariance matrix."""

    mean: Array  # (n,)
    sigma: Array  # ()
    C: Array  # (n,) diagonal covariance
    ps: Array  # (n,)
    pc: Array  # (n,)
    generation: Array  # () int32
    log_scale: Array  # () log of the factor moved out of C into sigma
    std0: Array  # (n,)
    key: Array


class SepCMAES(CMABase):
    """Separable (diagonal) CMA-ES (Ros & Hansen 2008).

    Parameters
    ----------
    popsize, sigma0, active, tolconditioncov, tolupsigma, tolfacupx, noeffectaxis, noeffectcoord, lr_mean, elite_ratio
        As for :class:`~evostrat.strategies.cma_base.CMABase`.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.problems import sphere
    >>> from evostrat.strategies import SepCMAES
    >>> es = ES(SepCMAES(), ftarget=1e-10, random_state=0).fit(sphere, np.ones(10))
    >>> bool(es.fun_ < 1e-9)
    True
    """

    State = SepCMAESState
    state_type = SepCMAESState  # the states ask, tell and the read-outs take
    #: ``tell`` is array code alone: fused by ``torch.compile`` on CUDA (backends.torch_fused)
    fusable_methods = frozenset({"tell"})
    separable = True
    #: Whether numpy states run :mod:`evostrat.kernels.sep_cma_numpy` (bit-identical,
    #: faster); ``False`` (on the class or an instance) runs the generic steps.
    numpy_kernel = True
    #: Let the built-in stack kernel (:mod:`evostrat.kernels.cma_torch_stack`) run a torch
    #: batch's runs at once (``fit_batch``) instead of the generic steps under ``torch.func.vmap``.
    stack_kernel = True

    def check_state_arrays(self, arrays: dict[str, Any]) -> None:
        """Refuse a saved state whose diagonal covariance is not positive
        (:mod:`evostrat.strategies.state_checks`)."""
        check_diagonal_state(arrays)

    def initial_state(self, x0: Array, key: Any, backend: Backend) -> SepCMAESState:
        xp = backend.xp
        dtype, device = x0.dtype, backend.device(x0)
        std0 = self.initial_sigma(x0, backend)
        sigma = xp.max(std0)
        D = std0 / sigma
        return SepCMAESState(
            mean=x0, sigma=sigma, C=D * D, ps=xp.zeros_like(x0), pc=xp.zeros_like(x0),
            generation=xp.zeros((), dtype=xp.int32, device=device),
            log_scale=xp.zeros((), dtype=dtype, device=device), std0=std0, key=key,
        )

    def sample(self, state: SepCMAESState) -> tuple[Array, SepCMAESState]:
        """``x_k = m + sigma sqrt(c) z_k``."""
        be = get_backend(state.mean)
        n = state.mean.shape[0]
        key, sub = be.split(state.key)
        z = be.normal(sub, (self.resolved_popsize(n), n), state.mean.dtype, be.device(state.mean))
        # mean + sigma * (z * sqrt(C)) in z's memory (same bits; JAX's ``*=`` rebinds)
        z *= be.xp.sqrt(state.C)
        z *= state.sigma
        z += state.mean
        return z, replace(state, key=key)

    def whiten(self, state: SepCMAESState, Y: Array, w_mean: Array,
               y_w: Array) -> tuple[Array, Array]:
        """``y_k / sqrt(c)`` and ``<y>_w / sqrt(c)``."""
        D = get_backend(state.mean).xp.sqrt(state.C)
        return Y / D, y_w / D

    def update_covariance(self, c: CMAConstants, state: SepCMAESState, Y: Array,
                          coef_mu: Array, decay: Array) -> SepCMAESState:
        """The diagonal of eq. 47; tiny variances lifted, the scale moved into sigma."""
        xp = get_backend(state.mean).xp
        Y *= Y  # Y's last use: squared in place (population-sized temporaries are costly)
        C = decay * state.C + c.p.c1 * (state.pc * state.pc) + coef_mu @ Y
        top = xp.max(C)
        C = xp.maximum(C, xp.clip(top, min=0.0) * c.eps + c.tiny)
        top = xp.max(C)
        lo, hi = RESCALE_RANGE
        scale = xp.where((top > hi) | (top < lo), top, 1.0)
        return self.rescale(replace(state, C=C / scale), scale, xp)

    def gaussian_readout(self, state: Any) -> GaussianReadout | None:
        """The diagonal ``C`` under the step size ``sigma``."""
        if isinstance(state, SepCMAESState):
            return GaussianReadout(state.mean, state.sigma, diagonal=state.C, cma_clip=True)
        return None

    def _diag_cov(self, state: SepCMAESState) -> Array:
        return state.C

    def _axes(self, state: SepCMAESState) -> tuple[None, Array]:
        return None, get_backend(state.mean).xp.sqrt(state.C)
