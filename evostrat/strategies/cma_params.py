"""Default parameters of CMA-ES and sep-CMA-ES and the constants derived from them.

Hansen, "The CMA Evolution Strategy: A Tutorial", arXiv 1604.00772, Table 1 (the
formulas are in :func:`cma_parameters`), with pycma's (4.x) step-size constants:
``c_sigma = min(1/2, (mu_eff + 2) / (n + mu_eff + 3))`` (the 2016 tutorial's ``n +
mu_eff + 5`` cost ~10% more evaluations on 10-D Rosenbrock) and ``d_sigma = 1 + 2 max(0,
a_n sqrt((mu_eff - 1) / (n + 1)) - 1) + c_sigma`` with ``a_n = max(1, 3 (1 - 2^(-n/9)))``
(the tutorial has ``a_n = 1``), pycma's ``c_1`` factor ``min(1, lambda / 6)`` (full model
only: with ``c_1`` unscaled, popsize 2 stalled: 5-D ellipsoid to 1e-8 in a median 37164
evaluations over 7 seeds against 5582 with it, and no run of 7 reached 1e-8 on the 10-D
ellipsoid within 160000; below popsize 6 pycma also samples mirrored, which evostrat does
not), and pycma's ``h_sigma`` test ``||p_s||^2 / (1 - (1 -
c_sigma)^(2 (g + 1))) < n (2 + 4 / (n + 1))`` (the tutorial's ``||p_s|| / sqrt(...) < (1.4 +
2 / (n + 1)) E||N(0, I)||`` is 0.45 % lower on ``||p_s||^2`` at n = 20: on BBOB f12 it
stalled ``p_c`` where pycma did not, ``benchmarks/bbob/trace_compare.py``). ``a_n`` only
matters for large populations (IPOP/BIPOP's later runs): with ``a_n = 1`` sigma shrinks too
fast there, and on BBOB's step ellipsoid (f7, 20-D, popsize 48) single runs reached the
optimum 13 times in 24 against pycma's 24; with ``a_n`` 23 times. sep-CMA-ES (Ros & Hansen,
PPSN 2008) multiplies ``c_1`` and ``c_mu`` by ``(n + 2) / 3`` and caps ``c_1 + c_mu <= 1``
(without the cap the decay factor of C turns negative for large populations). C is decomposed every
``max(1, ceil(1 / (10 n (c_1 + c_mu))))`` generations (pycma's ``lazy_update_gap``).

Examples
--------
>>> from evostrat.strategies.cma_params import cma_parameters
>>> p = cma_parameters(10, 10)
>>> p.mu, round(p.mueff, 4), round(float(p.weights[:p.mu].sum()), 12)
(5, 3.1673, 1.0)
>>> p.eigen_every
1
>>> cma_parameters(1000, 24).eigen_every
8
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from evostrat.backends.namespaces import host_cached

__all__ = ["CMAConstants", "CMAParameters", "cma_constants", "cma_parameters", "moved_mean"]


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one per settings
class CMAParameters:
    """Strategy parameters of CMA-ES for one ``(dim, popsize)`` (plain numbers, Table 1)."""

    dim: int
    popsize: int
    mu: int
    #: (popsize,) weights of the sorted candidates, best first: the first ``mu`` are positive
    #: and sum to 1, the rest the active (negative) ones (zeros when ``active=False``)
    weights: np.ndarray
    mean_weights: np.ndarray  # ``weights`` with the negative ones set to 0 (the mean update)
    mueff: float
    cs: float  # c_sigma
    damps: float  # d_sigma
    cc: float
    c1: float
    cmu: float
    chi_n: float  # E||N(0, I)||
    #: ``h_sigma = 1`` while ``||p_s||^2 / (1 - (1 - c_s)^(2 (g + 1)))`` is below this,
    #: ``n (2 + 4 / (n + 1))`` (pycma's test)
    hsig_threshold2: float
    sum_weights: float  # sum(weights): enters the decay factor of C
    eigen_gap: float  # 1 / (10 n (c1 + cmu)) generations (pycma's lazy gap)
    eigen_every: int  # max(1, ceil(eigen_gap)): generations between decompositions


class CMAConstants(NamedTuple):
    """:class:`CMAParameters` and what one backend, dtype and device derive from them."""

    p: CMAParameters
    cumulative: Any  # (2, popsize + 1) cumulative sorted mean (row 0) and cov weights from 0
    eye: Any  # identity (full model only, else None)
    c1: Any  # [c_1]
    ymax: float  # the largest |y| taken as a step of the model
    eps: float  # the dtype's epsilon
    tiny: float  # and smallest normal
    sigma_range: tuple[float, float]  # finite range sigma is clipped to


@host_cached(maxsize=256)  # read as a constant by torch.compile (see host_cached)
def cma_parameters(dim: int, popsize: int, active: bool = True, separable: bool = False,
                   mu: int | None = None) -> CMAParameters:
    """Default CMA-ES parameters (Hansen's tutorial, Table 1), computed once per arguments.

    Parameters
    ----------
    dim : int
        Search-space dimension ``n >= 1``.
    popsize : int
        ``lambda >= 2``.
    active : bool
        Use the negative weights of active CMA (Table 1); ``False`` zeroes them.
    separable : bool
        sep-CMA-ES learning rates (Ros & Hansen 2008): ``c1, cmu`` times
        ``(n + 2) / 3`` with ``c1 + cmu <= 1``.
    mu : int, optional
        The number of parents, ``1 <= mu <= popsize // 2``; ``None``: ``popsize // 2`` with
        Table 1's weights ``ln((lambda + 1) / 2) - ln i``. A number gives pycma's weights for
        its ``CMA_mu``: ``ln(mu + 1/2) - ln i`` for ranks ``i <= 2 mu``, the ``mu`` positive
        ones for the best, the ``mu`` negative (active) ones for the worst and zeros between
        (the same as the default for an even ``popsize`` and ``mu = popsize // 2``).

    Returns
    -------
    CMAParameters
    """
    n, lam = int(dim), int(popsize)
    if mu is None:
        mu = lam // 2
        prelim = math.log((lam + 1) / 2.0) - np.log(np.arange(1, lam + 1, dtype=np.float64))
        pos, neg = prelim[:mu], prelim[mu:]
    else:  # pycma's RecombinationWeights(2 mu), zeros inserted after the mu positive ones
        mu = int(mu)
        prelim = math.log(mu + 0.5) - np.log(np.arange(1, 2 * mu + 1, dtype=np.float64))
        pos, neg = prelim[:mu], np.concatenate([np.zeros(lam - 2 * mu), prelim[mu:]])
    mueff = float(pos.sum() ** 2 / (pos**2).sum())
    neg_sq = float((neg**2).sum())
    mueff_neg = float(neg.sum() ** 2 / neg_sq) if neg_sq > 0 else 0.0

    cs = min(0.5, (mueff + 2.0) / (n + mueff + 3.0))
    attenuation = max(1.0, 3.0 * (1.0 - 0.5 ** (n / 9.0)))  # pycma's damping for large mu_eff / n
    damps = 1.0 + 2.0 * max(0.0, attenuation * math.sqrt((mueff - 1.0) / (n + 1.0)) - 1.0) + cs
    cc = (4.0 + mueff / n) / (n + 4.0 + 2.0 * mueff / n)
    alpha_cov = 2.0
    c1 = alpha_cov / ((n + 1.3) ** 2 + mueff)
    if not separable:  # pycma's smaller rank-one rate for popsize < 6 (its own sep-CMA has none)
        c1 *= min(1.0, lam / 6.0)
    cmu = min(
        1.0 - c1,
        alpha_cov * (0.25 + mueff + 1.0 / mueff - 2.0) / ((n + 2.0) ** 2 + alpha_cov * mueff / 2.0),
    )
    if separable:
        factor = (n + 2.0) / 3.0
        c1 = min(1.0, c1 * factor)
        cmu = min(1.0 - c1, cmu * factor)

    weights = np.zeros(lam)
    weights[:mu] = pos / pos.sum()
    if active and neg_sq > 0 and cmu > 0:
        alpha_mu = 1.0 + c1 / cmu
        alpha_mueff = 1.0 + 2.0 * mueff_neg / (mueff + 2.0)
        alpha_posdef = (1.0 - c1 - cmu) / (n * cmu)
        scale = min(alpha_mu, alpha_mueff, alpha_posdef)
        weights[mu:] = scale * neg / abs(neg.sum())
    mean_weights = np.where(weights > 0, weights, 0.0)
    chi_n = math.sqrt(n) * (1.0 - 1.0 / (4.0 * n) + 1.0 / (21.0 * n * n))
    gap = 1.0 / (10.0 * n * (c1 + cmu + 1e-23))
    weights.flags.writeable = mean_weights.flags.writeable = False  # shared (cached)
    return CMAParameters(dim=n, popsize=lam, mu=mu, weights=weights, mean_weights=mean_weights,
                         mueff=mueff, cs=cs, damps=damps, cc=cc, c1=c1, cmu=cmu, chi_n=chi_n,
                         hsig_threshold2=n * (2.0 + 4.0 / (n + 1.0)),
                         sum_weights=float(weights.sum()), eigen_gap=gap,
                         eigen_every=max(1, int(math.ceil(gap - 1e-12))))


def cma_constants(p: CMAParameters, separable: bool, backend: Any, dtype: Any,
                  device: Any) -> CMAConstants:
    """:class:`CMAConstants` of ``p`` for arrays of ``backend``, ``dtype``, ``device``.

    Examples
    --------
    >>> from evostrat.backends import get_backend
    >>> c = cma_constants(cma_parameters(3, 6), False, get_backend("numpy"), np.float32, None)
    >>> c.cumulative.shape, c.cumulative.dtype.name, c.eye.shape
    ((2, 7), 'float32', (3, 3))
    """
    sorted_w = np.stack([p.mean_weights, p.weights])
    cumulative = np.concatenate([np.zeros((2, 1)), np.cumsum(sorted_w, axis=1)], axis=1)
    info = np.finfo(np.dtype(backend.dtype_name(dtype)))
    return CMAConstants(
        p=p,
        cumulative=backend.asarray(cumulative, dtype=dtype, device=device),
        eye=None if separable else backend.xp.eye(p.dim, dtype=dtype, device=device),
        c1=backend.asarray(np.full((1,), p.c1), dtype=dtype, device=device),
        # |y| beyond this is not a sample of the model (NaN, inf, overflow): ignored
        ymax=math.sqrt(float(info.max) / (100.0 * (p.popsize + 1) * p.dim)),
        eps=float(info.eps),
        tiny=float(info.smallest_normal),
        sigma_range=(math.sqrt(float(info.smallest_normal)), math.sqrt(float(info.max))),
    )


def moved_mean(cmean: Any, mean: Any, sigma: Any, y_w: Any) -> Any:
    """``m + c_m sigma <y>_w`` (Hansen's tutorial, eq. 9; ``cmean`` is ``c_m``, pycma's
    ``CMA_cmean``): ``m + sigma <y>_w`` as written when ``c_m`` is the number 1 (the default:
    the same operations, bit for bit, as without ``c_m``); ``cmean`` may be a traced array
    (one per run in a batched JAX program).

    >>> float(moved_mean(0.5, 1.0, 2.0, 3.0)), float(moved_mean(1, 1.0, 2.0, 3.0))
    (4.0, 7.0)
    """
    if isinstance(cmean, numbers.Real) and cmean == 1:
        return mean + sigma * y_w
    return mean + (cmean * sigma) * y_w
