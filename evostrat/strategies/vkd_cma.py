"""VkD-CMA: CMA-ES restricted to ``C = D (I + V V^T) D``, on every backend.

Akimoto and Hansen, "Projection-based restricted covariance matrix adaptation for high
dimension", GECCO 2016. The covariance is a diagonal ``D`` around the identity plus ``k``
orthogonal directions, ``I + V V^T = I + sum_i s_i v_i v_i^T`` (``v_i`` orthonormal,
``s_i >= 0``), so a draw costs ``O(k n)``:

    y = D (z + sum_i sqrt(s_i) z'_i v_i),   z ~ N(0, I_n), z' ~ N(0, I_k),   x = m + sigma y.

After the weighted recombination ``m <- m + sigma sum_i w_i y_i:lambda`` and the path
``p_c``, the CMA-ES target matrix, written in ``D``-normalised coordinates,
``alpha^2 (I + V V^T) + c_mu sum w_i (y_i/D)(y_i/D)^T + c_1 (p_c/D)(p_c/D)^T``, is
projected back onto the model: its ``k`` leading eigenpairs ``(l_j, e_j)`` come from the
Gram matrix of the ``n x (k + mu + 1)`` factor ``U`` (``O(n k^2 + k^3)``), the rest of
its spectrum, averaged, is ``gamma``; then ``s_j = (l_j - gamma) / (alpha^2 + gamma)``,
``v_j = U e_j / sqrt(l_j)``, and ``D`` is rescaled so that the model's diagonal matches
the target's, then normalised to ``det C = 1`` (the scale lives in ``sigma``). The
learning rates are CMA-ES's with ``n (k + 1)`` free parameters,
``c_1 = 2 / (n (k + 1) + n + 2 (k + 2) + mu_w)``, ``c_c = sqrt(c_1)``. The step size
follows the two-point adaptation (TPA, Hansen 2008): two candidates are drawn at
``+-`` the last mean shift (scaled to a typical Mahalanobis length) and
``p_s <- p_s + c_s ((rank(-) - rank(+)) / (lambda - 1) - p_s)``,
``sigma <- sigma exp(p_s / sqrt(n))``, ``c_s = 0.3``.

``k="auto"`` selects ``k`` online (Akimoto and Hansen, "Online model selection for restricted
covariance matrix adaptation", PPSN 2016): from ``k = 0``, once ``2 n - 1`` generations passed since
``k`` last grew, every direction is long (``1 + s_i > 30``) and ``sigma`` and the diagonal of ``C``
have settled (their log-changes per generation, in units of their learning rates, below 0.1 and 1),
``k`` grows to ``min(max(ceil(sqrt(2) k), k + 1), k_max)``; ``k (2 n - 1)`` generations after it last
grew the directions that are short (``1 + s_i < 30``) and shrinking are dropped (and ``det C = 1``
restored). The log-changes are averaged over generations with rate ``c_1 + c_mu``: a deliberate
difference. Akimoto's reference code (and pycma's) declares moving averages with decays
``0.5 min(1, lambda / n) / 3`` (``sigma``) and ``1 / n`` (diagonal, ``s``), but its average class
starts with a flag that is never set, so each "average" is the last generation's change alone;
evostrat smooths the (noisy) one-generation changes over the covariance's own learning time
(:mod:`evostrat.strategies.vkd_select`).

**Fixed shapes.** ``V`` is a ``(k_max, n)`` buffer and ``s`` a ``(k_max,)`` one; the state's ``k``
counts the active rows (the first ``k``), the others are zero. ``k_max`` is ``k`` for an integer
``k`` and, for ``"auto"``, ``min(n - 1, K_MAX_CAP)`` unless given. The update is one code path
on numpy, torch and JAX (``jit``-ed, no branch on traced values); eager backends (numpy, torch)
compute with the active rows only, JAX with the whole buffer (inactive rows masked), the same
numbers up to rounding.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.problems import sphere
>>> es = ES("vkd_cma", sigma0=1.0, ftarget=1e-8, max_evals=20000, random_state=0).fit(sphere, np.ones(10))
>>> es.stop_reason_
'ftarget'
"""

from __future__ import annotations

import functools
import math
from numbers import Integral
from typing import Any, NamedTuple

import numpy as np

from evostrat.backends import Backend, get_backend
from evostrat.backends.trees import replace
from evostrat.errors import InvalidArgumentError
from evostrat.params import Interval, StrOptions
from evostrat.strategies.base import Strategy, clamp_sigma
from evostrat.strategies.readout import GaussianReadout
from evostrat.strategies.vkd_select import det_scale, grow_table, pick, select_k

Array = Any

__all__ = ["K_MAX_CAP", "VkDCMA", "VkDCMAState", "vkd_constants", "vkd_rate_table"]

#: Default largest ``k`` of ``k="auto"``: ``V`` holds ``min(n - 1, K_MAX_CAP)`` rows (80 MB at
#: d = 100,000 in float64; the online selection reached k = 73 at d = 1000 in 3.3M evaluations).
K_MAX_CAP = 100


@functools.lru_cache(maxsize=256)
def vkd_constants(lam: int, dim: int, k: int) -> dict[str, Any]:
    """VkD-CMA's constants for population ``lam``, dimension ``dim`` and ``k`` directions (cached;
    the weights array is read-only): CMA-ES's learning rates with ``dim (k + 1)`` free parameters and
    CMA-ES's weights ``ln((lam + 1) / 2) - ln i`` for the best ``mu = lam // 2`` (Akimoto's reference
    code; ``ln(mu + 1/2)`` in their place differs for an odd ``lam``, the default's at n = 3, 7, 100)."""
    mu = lam // 2
    w = math.log((lam + 1) / 2.0) - np.log(np.arange(1, mu + 1))
    w /= w.sum()
    w.setflags(write=False)
    mu_w = 1.0 / float(np.sum(w * w))
    c_1 = 2.0 / (dim * (k + 1) + dim + 2.0 * (k + 2) + mu_w)
    c_mu = min(1.0 - c_1, 2.0 * (mu_w - 2.0 + 1.0 / mu_w) / (dim * (k + 1) + 4.0 * (k + 2) + mu_w))
    return {"weights": w, "mu_w": mu_w, "k": k, "c_1": c_1, "c_mu": c_mu, "c_c": math.sqrt(c_1),
            "c_s": 0.3, "d_s": math.sqrt(dim)}


@functools.lru_cache(maxsize=64)
def vkd_rate_table(lam: int, dim: int, k_max: int) -> dict[str, np.ndarray]:
    """:func:`vkd_constants`' ``c_1``, ``c_mu``, ``c_c`` and ``sqrt(c_c (2 - c_c) mu_w)`` for
    ``k = 0 .. k_max`` (cached, read-only)."""
    rows = [vkd_constants(lam, dim, j) for j in range(k_max + 1)]
    table = {name: np.array([r[name] for r in rows]) for name in ("c_1", "c_mu", "c_c")}
    table["path"] = np.array([math.sqrt(r["c_c"] * (2 - r["c_c"]) * r["mu_w"]) for r in rows])
    for values in table.values():
        values.setflags(write=False)
    return table


class VkDCMAState(NamedTuple):
    mean: Array  # (n,)
    sigma: Array  # 0-d
    D: Array  # (n,) the diagonal factor
    V: Array  # (k_max, n) orthonormal directions in the first k rows, zeros below
    s: Array  # (k_max,) their excess variances, >= 0 (zeros below k)
    k: Array  # 0-d number of active directions (a whole number in the float dtype)
    p_c: Array  # (n,) evolution path of the covariance
    p_s: Array  # 0-d TPA's smoothed rank difference
    shift: Array  # (n,) the last mean shift over sigma (TPA's direction)
    t: Array  # 0-d generation count
    since: Array  # 0-d generations since k last changed (k="auto")
    logs: Array  # (1 + n + k_max,) log sigma, log diag C, log(1 + s) of the last generation (k="auto")
    drift: Array  # (1 + n + k_max,) moving averages of their changes per generation, in learning rates
    key: Array


class VkDCMA(Strategy):
    """VkD-CMA with ``k`` directions: ``C = D (I + V V^T) D``, ``O(k n)`` per candidate.

    Parameters
    ----------
    popsize : int, optional
        Default ``4 + floor(3 ln n)`` (at least 4: TPA takes two candidates).
    sigma0 : float or array of shape (dim,)
        Initial step size; an array gives per-coordinate standard deviations: ``sigma`` their
        geometric mean and ``D = sigma0 / sigma``.
    k : int or "auto", default "auto"
        Number of directions ``V`` (0: a diagonal model; capped at ``n - 1``); ``"auto"``: selected
        online from 0 (PPSN 2016), the paper's recommendation when the problem's structure is
        unknown.
    k_max : int, optional
        With ``k="auto"``: the most directions (the rows of the ``V`` buffer); default
        ``min(n - 1, K_MAX_CAP)`` (100). With an integer ``k`` it is ``k`` (leave it ``None``).

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.problems import rosenbrock
    >>> from evostrat.strategies import VkDCMA
    >>> es = ES(VkDCMA(), ftarget=1e-10, random_state=0).fit(rosenbrock, np.zeros(4))
    >>> bool(es.fun_ < 1e-9)
    True
    """

    initial_only_params = frozenset({"sigma0"})  # read by initial_state alone

    State = VkDCMAState
    state_type = VkDCMAState  # the states ask, tell and the read-outs take
    min_popsize = 4
    parameter_constraints = {"k": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
                             "k_max": [Interval(Integral, 0, None, closed="left"), None]}

    def __init__(self, popsize: int | None = None, sigma0: Any = 1.0, k: int | str = "auto",
                 k_max: int | None = None) -> None:
        super().__init__(popsize=popsize, sigma0=sigma0)
        self.k, self.k_max = k, k_max

    def resolved_k_max(self, dim: int) -> int:
        """Rows of ``V``: ``min(k, n - 1)`` for an integer ``k``, ``min(k_max, n - 1)`` for ``"auto"``."""
        if self.k != "auto":
            if self.k_max is not None and self.k_max != self.k:
                raise InvalidArgumentError(
                    f"k_max applies to k='auto'; with k={self.k} leave it None, got {self.k_max}")
            return max(min(int(self.k), dim - 1), 0)
        return max(min(K_MAX_CAP if self.k_max is None else int(self.k_max), dim - 1), 0)

    def constants(self, dim: int, k: int | None = None) -> dict[str, Any]:
        """Weights (best first, ``mu = lambda // 2``), ``mu_w``, ``k``, ``c_1``, ``c_mu``, ``c_c``
        (for ``k`` directions; default: the initial ``k``, 0 for ``"auto"``)."""
        k = min(int(0 if self.k == "auto" else self.k) if k is None else k, dim - 1)
        c = vkd_constants(self.resolved_popsize(dim), dim, k)
        return {**c, "weights": c["weights"].copy()}  # writable (torch refuses read-only arrays)

    def rate_table(self, dim: int) -> dict[str, np.ndarray]:
        """``c_1``, ``c_mu``, ``c_c`` and the path's ``sqrt(c_c (2 - c_c) mu_w)`` for ``k = 0 .. k_max``
        (host float64; a traced ``k`` picks its entry exactly, :func:`~evostrat.strategies.vkd_select.pick`)."""
        return {name: v.copy() for name, v in vkd_rate_table(self.resolved_popsize(dim), dim,
                                                             self.resolved_k_max(dim)).items()}

    def initial_state(self, x0: Array, key: Any, backend: Backend) -> VkDCMAState:
        self.validate_params()
        xp, dt, dev = backend.xp, x0.dtype, backend.device(x0)
        n = x0.shape[0]
        k_max = self.resolved_k_max(n)
        k0 = 0 if self.k == "auto" else k_max
        std0 = self.initial_sigma(x0, backend)
        top = xp.max(std0)
        # per-coordinate sigma0: C = diag(D^2) with det C = 1 as tell keeps it, sigma their geometric
        # mean (Akimoto's reference code); a number: sigma0 and D = 1 exactly
        sigma = xp.where(xp.min(std0) == top, top, xp.exp(xp.mean(xp.log(std0))))
        zero = xp.zeros((), dtype=dt, device=dev)
        return VkDCMAState(mean=x0, sigma=sigma, D=std0 / sigma,
                           V=xp.zeros((k_max, n), dtype=dt, device=dev), s=xp.zeros(k_max, dtype=dt, device=dev),
                           k=zero + k0, p_c=xp.zeros_like(x0), p_s=zero, shift=xp.zeros_like(x0), t=zero,
                           since=zero, logs=xp.zeros(1 + n + k_max, dtype=dt, device=dev),
                           drift=xp.zeros(1 + n + k_max, dtype=dt, device=dev), key=key)

    @staticmethod
    def active(be: Backend, state: VkDCMAState, drawn: bool = False) -> tuple[Array, Array]:
        """``(V, s)`` to compute with: the first ``k`` rows on eager backends (``k`` is a host
        number there), the whole buffer where the backend traces (inactive rows are zero).

        ``drawn``: rows ``ask`` draws normal numbers for. ``k`` columns of draws are other numbers
        than the first ``k`` of ``k_max`` columns, so batched (under ``torch.func.vmap``, where
        ``k`` is not a host number) this raises instead of returning the buffer: a torch batch
        then asks run by run, drawing the candidates of the run alone."""
        if be.traceable or state.V.shape[0] == 0:
            return state.V, state.s
        try:
            k = int(state.k)
        except (RuntimeError, TypeError, ValueError):  # batched (torch.func.vmap): the buffer
            if drawn:
                raise
            return state.V, state.s
        return state.V[:k], state.s[:k]

    def covariance(self, state: VkDCMAState) -> Array:
        """The dense ``D (I + V^T diag(s) V) D`` (``O(n^2)``: for tests and small ``n``)."""
        be = get_backend(state.mean)
        xp = be.xp
        n = state.D.shape[0]
        inner = xp.eye(n, dtype=state.D.dtype, device=be.device(state.D)) + xp.matmul(state.V.T * state.s, state.V)
        return state.D[:, None] * inner * state.D[None, :]

    def gaussian_readout(self, state: VkDCMAState) -> GaussianReadout:
        """``C = diag(D^2) + U diag(s) U^T`` with ``U = D V^T`` (``(n, k)``, the active directions;
        the whole buffer where the backend traces, its inactive ``s`` zero), under the step size
        ``sigma``: ``O(n k)``, never the dense :meth:`covariance`."""
        V, s = self.active(get_backend(state.mean), state)
        return GaussianReadout(state.mean, state.sigma, diagonal=state.D * state.D, U=state.D[:, None] * V.T, s=s)

    @staticmethod
    def _mahalanobis2(xp: Any, state: VkDCMAState, V: Array, s: Array, y: Array) -> Array:
        """``y^T C^-1 y`` for the unscaled model (Woodbury over the orthonormal ``V``)."""
        u = y / state.D
        proj = xp.matmul(V, u)
        return xp.sum(u * u) - xp.sum(proj * proj * s / (1.0 + s))

    def ask(self, state: VkDCMAState) -> tuple[Array, VkDCMAState]:
        be = get_backend(state.mean)
        xp, dt, dev = be.xp, state.mean.dtype, be.device(state.mean)
        n = state.mean.shape[0]
        lam = self.resolved_popsize(n)
        V, s = self.active(be, state, drawn=True)
        key, sub, sub_k = be.split(state.key, 3)
        Z = be.normal_rows(sub, range(lam), n, dt, dev)
        if V.shape[0]:
            Z = Z + xp.matmul(be.normal_rows(sub_k, range(lam), V.shape[0], dt, dev) * xp.sqrt(s), V)
        Y = Z * state.D
        # TPA: the two mirrored candidates along the last mean shift, from the second generation
        m2 = self._mahalanobis2(xp, state, V, s, state.shift)
        extra = be.normal_rows(sub, [lam], n, dt, dev)[0]
        y = state.shift * (xp.sqrt(xp.sum(extra * extra)) / xp.sqrt(xp.where(m2 > 0, m2, 1.0)))
        Y = be.cond((state.t > 0) & (m2 > 0), lambda: xp.concat([y[None], -y[None], Y[2:]], axis=0), lambda: Y)
        return state.mean + state.sigma * Y, replace(state, key=key)

    def tell(self, state: VkDCMAState, X: Array, fitness: Array) -> VkDCMAState:
        be = get_backend(state.mean)
        xp, dt, dev = be.xp, state.mean.dtype, be.device(state.mean)
        n, k_max = state.mean.shape[0], state.V.shape[0]
        lam = X.shape[0]
        c = self.constants(n)
        table = {name: be.asarray(v, dtype=dt, device=dev) for name, v in self.rate_table(n).items()}
        c_1, c_mu, c_c, c_path = (pick(xp, table[name], state.k) for name in ("c_1", "c_mu", "c_c", "path"))
        w = be.asarray(c["weights"], dtype=dt, device=dev)
        Y = (X - state.mean) / state.sigma
        order = xp.argsort(fitness, stable=True)
        Ysel = xp.take(Y, order[: w.shape[0]], axis=0)
        shift = xp.matmul(w, Ysel)
        mean = state.mean + state.sigma * shift
        # TPA (from the second generation): the ranks of the two mirrored candidates
        rank = xp.astype(xp.argsort(order, stable=True), dt)
        started = state.t > 0
        p_s = xp.where(started, state.p_s + c["c_s"] * ((rank[1] - rank[0]) / (lam - 1.0) - state.p_s), state.p_s)
        sigma = xp.where(started, clamp_sigma(state.sigma * xp.exp(p_s / c["d_s"])), state.sigma)
        h_s = xp.astype(~started | (p_s < 0.5), dt)
        p_c = (1 - c_c) * state.p_c + h_s * c_path * shift
        alpha2 = xp.abs(1 - c_1 - c_mu + c_1 * (1 - h_s) * c_c * (2 - c_c))
        V, s = self.active(be, state)
        kk = V.shape[0]
        U = xp.concat([V.T * xp.sqrt(s * alpha2), (Ysel / state.D).T * xp.sqrt(c_mu * w),
                       (xp.sqrt(c_1) * p_c / state.D)[:, None]], axis=1)
        if kk:
            V, s = self._project(be, U, state.k, alpha2, kk)
            D = state.D * xp.sqrt((alpha2 + xp.sum(U * U, axis=1)) / (1.0 + xp.matmul(s, V * V)))
        else:
            D = state.D * xp.sqrt(alpha2 + xp.sum(U * U, axis=1))
        # the diagonal's condition stays <= 1e14 (pycma's tolconditioncov): once sigma sits at its floor,
        # float rounding of X - mean feeds the update noise that would otherwise drive D apart
        D = xp.maximum(D, xp.max(D) * 1e-7)
        scale = det_scale(xp, D, s, n)
        D, p_c = D / scale, p_c / scale
        ok = (xp.isfinite(xp.sum(mean)) & xp.isfinite(sigma) & xp.isfinite(xp.sum(D)) & xp.isfinite(xp.sum(V))
              & xp.isfinite(xp.sum(p_c)))  # p_c too: at sigma's floor in float32 it can overflow alone
        if kk == 0:  # no active row: the (zero) buffers stay as they are
            V, s = state.V, state.s
        elif kk < k_max:  # eager backends computed the active rows only: back into the buffer
            V = xp.concat([V, xp.zeros((k_max - kk, n), dtype=dt, device=dev)], axis=0)
            s = xp.concat([s, xp.zeros(k_max - kk, dtype=dt, device=dev)])
        new = replace(state, mean=mean, sigma=sigma, D=D, V=V, s=s, p_c=p_c, p_s=p_s, shift=shift,
                      t=state.t + 1, since=state.since + 1)
        if self.k == "auto":
            new = select_k(be, new, self.active(be, new), c_1 + c_mu, lam, grow_table(k_max))
        return be.cond(ok, lambda: new, lambda: replace(state, t=state.t + 1))

    @staticmethod
    def _project(be: Backend, U: Array, k: Array, alpha2: Array, kk: int) -> tuple[Array, Array]:
        """The ``k`` leading eigenpairs of ``U U^T`` (through the Gram matrix ``U^T U``) as the
        new ``(V, s)``, ``kk`` rows (those at or past ``k``, and those below the tail's mean
        ``gamma``, zero)."""
        xp = be.xp
        n, cols = U.shape
        dt = U.dtype
        ev, E = be.eigh(xp.matmul(U.T, U))  # the nonzero spectrum of U U^T, ascending
        ev, E = xp.flip(ev), xp.flip(E, axis=1)
        index = xp.arange(cols, dtype=dt, device=be.device(U))
        positive = xp.maximum(ev, 0.0)
        top = positive[:kk]
        gamma = xp.sum(xp.where(index >= k, positive, 0.0)) / (n - k)
        keep = (index[:kk] < k) & (top > gamma)
        s = xp.where(keep, (top - gamma) / (alpha2 + gamma), 0.0)
        V = (xp.matmul(U, E[:, :kk]) / xp.sqrt(xp.where(keep, top, 1.0))).T
        return xp.where(keep[:, None], V, 0.0), s

    def sigma(self, state: VkDCMAState) -> Array:
        """The largest per-coordinate standard deviation, ``sigma max sqrt(diag C)`` (0-d)."""
        be = get_backend(state.mean)
        V, s = self.active(be, state)
        return be.xp.max(state.sigma * state.D * be.xp.sqrt(1.0 + be.xp.matmul(s, V * V)))
