"""CMA-ES with active weights and a lazy eigendecomposition.

Hansen, "The CMA Evolution Strategy: A Tutorial", arXiv 1604.00772, sec. 4 with the
defaults of Table 1; the steps shared with sep-CMA-ES are in
:mod:`evostrat.strategies.cma_base`, and this module supplies the full model
``C = B D^2 B^T``: sampling ``x_k = m + sigma B D z_k``, whitening and the update of C.

As in pycma, ``B`` and ``D`` are refreshed only every ``ceil(1 / (10 n (c_1 + c_mu)))``
generations (every generation up to n ~ 90 at the default population, every 8 at
n = 1000). The rank-one and rank-mu terms in between are queued in the state and added
to C in one matrix product before the next decomposition (the same C up to rounding);
``diag(C)`` stays current for the termination criteria. At each decomposition C is
symmetrised, eigenvalues below ``eps * max`` are lifted, and C's scale moves into sigma
when its largest eigenvalue leaves ``RESCALE_RANGE``, so states stay finite in float32
and float64. On numpy the kernel :mod:`evostrat.kernels.cma_numpy` runs the same steps.

From ``FACTOR_DIM`` dimensions on numpy (or with ``covariance="factor"``) C is never
decomposed: :mod:`evostrat.kernels.cma_factor` keeps ``C = A A^T`` and ``A^{-1}`` and
updates both in ``O(lambda n^2)`` per generation (Suttorp, Hansen and Igel 2009; Krause,
Arbones and Igel, NeurIPS 2016), the state being a :class:`CMAFactorState`.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.problems import ellipsoid
>>> es = ES("cma_es", sigma0=2.0, ftarget=1e-8, random_state=1).fit(ellipsoid, np.full(6, 3.0))
>>> es.stop_reason_, bool(es.fun_ <= 1e-8)
('ftarget', True)
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import Any, NamedTuple

from evostrat.backends import Backend, get_backend
from evostrat.backends.namespaces import cheap_cond, eigh_identity
from evostrat.backends.points import check_allocation
from evostrat.errors import InvalidArgumentError
from evostrat.params import Interval, StrOptions
from evostrat.strategies.cma_base import RESCALE_RANGE, CMABase, CMAConstants
from evostrat.strategies.readout import GaussianReadout
from evostrat.strategies.state_checks import check_eigen_state, check_factor_state
from evostrat.backends.trees import replace

Array = Any

__all__ = ["CMAES", "CMAESState", "CMAFactorState", "FACTOR_DIM"]


class CMAESState(NamedTuple):
    """State of :class:`CMAES` (all leaves are backend arrays).

    ``C`` is the covariance matrix at the last decomposition; the current one is
    ``decay * C + sum_{g,r} queue_coef[g, r] queue[g, r] queue[g, r]^T``.
    """

    mean: Array  # (n,)
    sigma: Array  # ()
    C: Array  # (n, n)
    B: Array  # (n, n) eigenvectors of C (columns)
    D: Array  # (n,) square roots of the eigenvalues
    diag_C: Array  # (n,) diagonal of the current C
    ps: Array  # (n,) conjugate evolution path
    pc: Array  # (n,) evolution path
    queue: Array  # (k, popsize + 1, n) pending rank-one vectors
    queue_coef: Array  # (k, popsize + 1) their coefficients
    decay: Array  # () factor of C since the last decomposition
    generation: Array  # () int32, completed tells; on torch on the host (Backend.counter_device)
    log_scale: Array  # () log of the factor moved out of C into sigma
    std0: Array  # (n,) initial coordinate standard deviations
    key: Array


class CMAFactorState(NamedTuple):
    """State of :class:`CMAES` with ``covariance="factor"`` (numpy arrays;
    :mod:`evostrat.kernels.cma_factor`): ``C = scale^2 A A^T``, never decomposed."""

    mean: Array  # (n,)
    sigma: Array  # ()
    A: Array  # (n, n) factor of C / scale^2
    A_inv: Array  # (n, n) its inverse
    scale: Array  # () factor of A kept apart
    diag_C: Array  # (n,) diagonal of C
    ps: Array  # (n,) conjugate evolution path (in the frame of A^-1)
    pc: Array  # (n,) evolution path
    pz: Array  # (n,) A^-1 p_c (with A = scale * state.A)
    axes: Array  # (2, n) power-iteration vectors for the largest and smallest eigenvalue of C
    D: Array  # (2,) their estimated square roots, ascending
    z: Array  # (popsize, n) the last asked population's N(0, I) draws
    asked: Array  # (popsize, n) and that population (NaN before the first ask): tell reuses z for it
    generation: Array  # () int32, completed tells
    log_scale: Array  # () log of the factor moved out of C into sigma
    std0: Array  # (n,) initial coordinate standard deviations
    key: Array


#: Smallest dimension at which ``covariance="auto"`` picks the factor model on numpy. The
#: factor model is the faster from about 50 dimensions (CPU time per generation, one thread:
#: 0.9x the decomposed model at d = 50, 0.7x at 100, 0.47x at 200, 0.37x at 1000); below 256
#: the decomposed model (bit-identical to the generic steps, and what the BBOB runs measure)
#: costs under 2 ms per generation and stays the default.
FACTOR_DIM = 256


class CMAES(CMABase):
    """Covariance matrix adaptation evolution strategy (Hansen's tutorial).

    Parameters
    ----------
    lazy_eigen : bool or int
        ``True``: decompose C every ``ceil(1 / (10 n (c1 + cmu)))`` generations
        (pycma's gap); ``False``: every generation; an int ``k >= 1``: every
        ``k`` generations. The decomposed model only.
    covariance : {"auto", "eigen", "factor"}
        The model of C. ``"eigen"``: ``C = B D^2 B^T`` decomposed (lazily); ``"factor"``:
        ``C = A A^T`` with the factor and its inverse updated in ``O(lambda n^2)`` and no
        decomposition (numpy only, :mod:`evostrat.kernels.cma_factor`); ``"auto"``: the
        factor on numpy from ``FACTOR_DIM`` dimensions, where it is the faster, else eigen.
    popsize, sigma0, active, tolconditioncov, tolupsigma, tolfacupx, noeffectaxis, noeffectcoord, lr_mean, elite_ratio
        As for :class:`~evostrat.strategies.cma_base.CMABase`.

    References
    ----------
    Hansen, Ostermeier, "Completely Derandomized Self-Adaptation in Evolution Strategies",
    Evolutionary Computation 9(2), 2001; Hansen, "The CMA Evolution Strategy: A Tutorial",
    arXiv 1604.00772 (2016); Jastrebski, Arnold, "Improving Evolution Strategies through
    Active Covariance Matrix Adaptation", CEC 2006.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.problems import rosenbrock
    >>> from evostrat.strategies import CMAES
    >>> es = ES(CMAES(), ftarget=1e-10, random_state=0).fit(rosenbrock, np.zeros(4))
    >>> bool(es.fun_ < 1e-9)
    True
    """

    State = CMAESState
    state_type = (CMAESState, CMAFactorState)  # eigen and factor models
    #: ``tell`` is array code alone: fused by ``torch.compile`` on CUDA (backends.torch_fused)
    fusable_methods = frozenset({"tell"})
    #: Let the built-in numpy kernel (:mod:`evostrat.kernels.cma_numpy`) run ask/tell
    #: on numpy states (bit-identical states, a fraction of the call overhead).
    numpy_kernel = True
    #: Let the built-in stack kernel (:mod:`evostrat.kernels.cma_torch_stack`) run a torch
    #: batch's runs at once (``fit_batch``) instead of the generic steps under ``torch.func.vmap``.
    stack_kernel = True
    parameter_constraints = {**CMABase.parameter_constraints,
                             "lazy_eigen": [bool, Interval(Integral, 1, None, closed="left")],
                             "covariance": [StrOptions({"auto", "eigen", "factor"})]}

    def __init__(self, popsize: int | None = None, sigma0: Any = 1.0, active: bool = True,
                 lazy_eigen: bool | int = True, tolconditioncov: float | None = 1e14,
                 tolupsigma: float | None = 1e20, tolfacupx: float | None = 1e3,
                 noeffectaxis: bool = True, noeffectcoord: bool = True,
                 covariance: str = "auto", lr_mean: float = 1.0, elite_ratio: float | None = None) -> None:
        super().__init__(popsize, sigma0, active, tolconditioncov, tolupsigma, tolfacupx,
                         noeffectaxis, noeffectcoord, lr_mean, elite_ratio)
        self.lazy_eigen = lazy_eigen
        self.covariance = covariance

    #: state arrays that may hold NaN (the factor model's ``asked``, before the first ask)
    nonfinite_state_fields = frozenset({"asked"})

    def check_state_arrays(self, arrays: dict[str, Any]) -> None:
        """Refuse a saved state whose covariance and cached decomposition disagree
        (:mod:`evostrat.strategies.state_checks`; an ``InvalidArgumentError`` naming the array)."""
        (check_factor_state if "A" in arrays else check_eigen_state)(arrays)

    def uses_factor(self, dim: int, backend: Backend) -> bool:
        """Whether a state of ``dim`` on ``backend`` is the factor model (``covariance``)."""
        if self.covariance == "auto":
            return backend.host_arrays and bool(self.numpy_kernel) and dim >= FACTOR_DIM
        if self.covariance == "factor" and not (backend.host_arrays and self.numpy_kernel):
            raise InvalidArgumentError(
                f"covariance='factor' runs on numpy with numpy_kernel=True, got backend "
                f"{backend.name!r} (numpy_kernel={self.numpy_kernel!r}); use 'eigen' or 'auto'")
        return self.covariance == "factor"

    def eigen_every(self, dim: int) -> int:
        """Generations between two eigendecompositions of C."""
        if self.lazy_eigen is True:
            return self.parameters(dim).eigen_every
        return 1 if self.lazy_eigen is False else int(self.lazy_eigen)

    # -- the full model of C -------------------------------------------------------------
    def initial_state(self, x0: Array, key: Any, backend: Backend) -> CMAESState:
        xp = backend.xp
        n = x0.shape[0]
        dtype, device = x0.dtype, backend.device(x0)
        std0 = self.initial_sigma(x0, backend)
        sigma = xp.max(std0)
        D = std0 / sigma
        k, lam = self.eigen_every(n), self.parameters(n).popsize
        factor = self.uses_factor(n, backend)
        values = 2 * n * n + (2 * lam * n if factor else k * (lam + 2) * n)  # C, B (A, A^-1); the queue (z, asked)
        check_allocation(f"a state of {values} values at dim {n}" + ("" if factor else (
            f" (with a queue of {k} x (popsize + 1) x dim values for the lazy update)")), values * x0.dtype.itemsize,
            f"cma_es(lazy_eigen={self.lazy_eigen!r}, covariance={self.covariance!r}, popsize={lam})")
        if factor:  # numpy arrays (evostrat.kernels.cma_factor)
            start = xp.full((2, n), 1.0 / math.sqrt(n), dtype=dtype)  # power iteration's vectors
            eye = xp.eye(n, dtype=dtype)
            return CMAFactorState(
                mean=x0, sigma=sigma, A=eye * D, A_inv=eye / D, scale=xp.ones((), dtype=dtype),
                diag_C=D * D, ps=xp.zeros_like(x0), pc=xp.zeros_like(x0), pz=xp.zeros_like(x0),
                axes=start, D=xp.stack([xp.min(D), xp.max(D)]), z=xp.zeros((lam, n), dtype=dtype),
                asked=xp.full((lam, n), math.nan, dtype=dtype),  # equal to no population
                generation=xp.zeros((), dtype=xp.int32),
                log_scale=xp.zeros((), dtype=dtype), std0=std0, key=key)
        zero = xp.zeros((), dtype=dtype, device=device)
        return CMAESState(
            mean=x0, sigma=sigma, C=xp.eye(n, dtype=dtype, device=device) * (D * D),
            B=eigh_identity(xp, n, dtype, device), D=D, diag_C=D * D,
            ps=xp.zeros_like(x0), pc=xp.zeros_like(x0),
            queue=xp.zeros((k, lam + 1, n), dtype=dtype, device=device),
            queue_coef=xp.zeros((k, lam + 1), dtype=dtype, device=device),
            decay=zero + 1.0,
            generation=xp.zeros((), dtype=xp.int32, device=backend.counter_device(device)),
            log_scale=zero, std0=std0, key=key,
        )

    def sample(self, state: CMAESState) -> tuple[Array, CMAESState]:
        """``y_k = B D z_k``, ``x_k = m + sigma y_k`` (eqs. 38-40)."""
        _decomposed(state)
        be = get_backend(state.mean)
        n = state.mean.shape[0]
        key, sub = be.split(state.key)
        z = be.normal(sub, (self.resolved_popsize(n), n), state.mean.dtype, be.device(state.mean))
        y = (z * state.D) @ state.B.T
        return state.mean + state.sigma * y, replace(state, key=key)

    def whiten(self, state: CMAESState, Y: Array, w_mean: Array,
               y_w: Array) -> tuple[Array, Array]:
        """Rows ``D^-1 B^T y_k`` and ``B D^-1 B^T <y>_w = C^{-1/2} <y>_w``."""
        _decomposed(state)
        Zt = (Y @ state.B) / state.D
        return Zt, state.B @ (w_mean @ Zt)

    def update_covariance(self, c: CMAConstants, state: CMAESState, Y: Array, coef_mu: Array,
                          decay: Array) -> CMAESState:
        """Eq. 47: directly when decomposing every generation, else queued.

        The lazy path keeps this generation's ``lambda + 1`` rank-one terms (the
        ``y_k`` and ``p_c``) and their coefficients in the state, scales the older
        ones by ``decay``, keeps ``diag(C)`` current and decomposes every ``k``
        generations (:meth:`decompose`), a decision read from ``state.generation`` alone
        (on torch a CPU tensor whatever the arrays' device: no GPU synchronisation).
        """
        be = get_backend(state.mean)
        xp, p, pc = be.xp, c.p, state.pc
        k = state.queue.shape[0]
        if k == 1:
            C = decay * state.C + (Y.T * coef_mu) @ Y + p.c1 * (pc[:, None] * pc[None, :])
            return self.eigen(state, C)
        diag_C = decay * state.diag_C + coef_mu @ (Y * Y) + p.c1 * (pc * pc)
        rows = xp.concat([Y, pc[None, :]], axis=0)
        coef = xp.concat([coef_mu, c.c1], axis=0)
        slot = xp.arange(k, device=be.device(state.mean)) == ((state.generation - 1) % k)
        state = replace(state, diag_C=diag_C, decay=state.decay * decay,
                        queue=xp.where(slot[:, None, None], rows[None, ...], state.queue),
                        queue_coef=xp.where(slot[:, None], coef[None, ...], state.queue_coef * decay))
        # the decision reads only the counter, on torch a host tensor (Backend.counter_device): bool()
        # of it does not wait for the GPU; the branches get the state without it, so under
        # torch.compile the torch.cond's operands are on one device and its predicate on the CPU
        generation = state.generation
        state = be.cond(generation % k == 0, self.decompose, lambda same: same,
                        replace(state, generation=None))
        return replace(state, generation=generation)

    def gaussian_readout(self, state: Any) -> GaussianReadout | None:
        """``C = B diag(D^2) B^T`` (the last decomposition; ``diag_C`` the current diagonal), or
        with ``covariance="factor"`` ``C = A A^T`` under the step size ``sigma * scale``."""
        if isinstance(state, CMAFactorState):
            return GaussianReadout(state.mean, state.sigma * state.scale, A=state.A, A_inv=state.A_inv, cma_clip=True)
        if isinstance(state, CMAESState):
            return GaussianReadout(state.mean, state.sigma, diagonal=state.diag_C, B=state.B, D=state.D, cma_clip=True)
        return None

    def current_cov(self, state: CMAESState) -> Array:
        """The covariance matrix C including the queued updates (for inspection)."""
        xp = get_backend(state.mean).xp
        V = xp.reshape(state.queue, (-1, state.mean.shape[0]))
        return state.decay * state.C + (V.T * xp.reshape(state.queue_coef, (-1,))) @ V

    def decompose(self, state: CMAESState) -> CMAESState:
        """Add the queued terms to C and decompose it (the lazy path)."""
        xp = get_backend(state.mean).xp
        return self.eigen(replace(state, queue_coef=xp.zeros_like(state.queue_coef),
                                         decay=xp.ones_like(state.decay)), self.current_cov(state))

    def eigen(self, state: CMAESState, C: Array) -> CMAESState:
        """Symmetrise and decompose ``C``; :meth:`repair` it when needed.

        C is finite here: every ``|y| <= ymax`` (see ``finite_rows``).
        """
        be = get_backend(state.mean)
        xp = be.xp
        c = self.constants(be, state.mean.shape[0], state.mean.dtype, be.device(state.mean))
        C = 0.5 * (C + C.T)
        evals, B = be.eigh(C)  # ascending
        top = evals[-1]
        lo, hi = RESCALE_RANGE
        floor = xp.clip(top, min=0.0) * c.eps + c.tiny
        repair = (evals[0] < floor) | (top > hi) | (top < lo)
        # evals >= floor > 0 unless repaired (the repair sets D): the clip changes nothing
        D = xp.sqrt(xp.clip(evals, min=0.0))
        state = replace(state, C=C, B=B, D=D, diag_C=xp.linalg.diagonal(C))
        # a few O(n^2) element-wise steps: on torch computed every time and selected, so the
        # predicate is never read on the host (no GPU synchronisation; see cheap_cond)
        return cheap_cond(be, repair, self.repair, lambda same, *_: same, state, evals, floor)

    def repair(self, state: CMAESState, evals: Array, floor: Array) -> CMAESState:
        """Lift eigenvalues below ``floor`` (C gets the same diagonal shift, so it
        stays positive definite) and :meth:`rescale` when the largest eigenvalue
        leaves ``RESCALE_RANGE``; ``evals`` are the eigenvalues of ``state.C``."""
        be = get_backend(state.mean)
        xp = be.xp
        eye = self.constants(be, state.mean.shape[0], state.mean.dtype, be.device(state.mean)).eye
        shift = xp.clip(floor - evals[0], min=0.0)
        evals = evals + shift
        top = evals[-1]
        lo, hi = RESCALE_RANGE
        scale = xp.where((top > hi) | (top < lo), top, 1.0)
        C = (state.C + shift * eye) / scale
        state = replace(state, C=C, D=xp.sqrt(evals / scale), diag_C=xp.linalg.diagonal(C))
        return self.rescale(state, scale, xp)

    def _diag_cov(self, state: CMAESState) -> Array:
        return state.diag_C

    def _axes(self, state: CMAESState) -> tuple[Array, Array]:
        return state.B, state.D


def _decomposed(state: Any) -> None:
    """Refuse a factor-model state in the generic steps (they need ``B`` and ``D``)."""
    if isinstance(state, CMAFactorState):
        raise InvalidArgumentError("a covariance='factor' state runs only in the numpy kernel "
                                   "(numpy_kernel=True); this strategy has no kernel for it")
