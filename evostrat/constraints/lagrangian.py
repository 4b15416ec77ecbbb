"""Augmented Lagrangian constraint handling for the CMA-ES family.

Atamna, Auger, Hansen, "Augmented Lagrangian Constraint Handling for CMA-ES --
Case of a Single Linear Constraint" (PPSN 2016) and "Linearly Convergent
Evolution Strategies via Augmented Lagrangian Constraint Handling" (FOGA 2017,
Algorithm 1, Sect. 8.2), with the refinements pycma's ``AugmentedLagrangian``
(cma 4.5, its default ``algorithm=0``) and ``ConstrainedFitnessAL`` use.

For ``g(x) <= 0`` with ``m`` components the strategy ranks

    h(x) = f(x) + sum_i lam_i g~_i + mu_i g~_i^2 / 2,   g~_i = max(g_i(x), -lam_i / mu_i)

and after each generation the coefficients learn from ``(f, g)`` of the
candidate with the best ``h`` (pycma's ``which="best"``: no extra evaluation):

- **initial values** (pycma's ``set_coefficients``), per constraint once more than
  10 % of a population violate it: ``lam = iqr(F) / (n iqr(g))``,
  ``mu = 2 iqr(F) / (5 n iqr(g))`` (then ``mu <= 20 mu``, ``mu >= lam / max|g|``);
- **lam** ``<- max(0, lam + mu g / d_gamma)`` (``d_gamma = 5``) while the constraint
  is in the penalised domain (``mu g > -lam``) for some candidate;
- **mu** ``<- mu chi^(+-1/4 (1 + s))`` with ``chi = 2^(1 / (5 n))`` (Atamna 2017):
  up when ``g > 0`` or when more than 95 % of the last ``5 + n`` best candidates
  were feasible while penalised, down when fewer than 90 % were and ``g < 0``;
  ``s`` ramps the step up after ``2 + m`` changes of the same sign.

Examples
--------
>>> import numpy as np
>>> al = AugmentedLagrangian(dim=2)
>>> F, G = np.array([1.0, 2.0, 3.0, 4.0]), np.array([[1.0], [-1.0], [2.0], [-2.0]])
>>> h = al.values(F, G)          # no coefficients yet: h == F
>>> al.update(F, G, h)
>>> bool(al.lam[0] > 0 and al.mu[0] > 0), al.values(F, G).shape
(True, (4,))
"""

from __future__ import annotations

import collections
import math
import warnings
from typing import Any

import numpy as np

from evostrat.constraints.base import ConstraintHandler, check_vector
from evostrat.errors import CheckpointError
from evostrat.run.state import check_schema, is_int, is_real

__all__ = ["AugmentedLagrangian"]

_VECTORS = ("lam", "mu", "initialized", "g_prev", "same_changes", "penalised")
_STATE_SCHEMA: dict[str, tuple[Any, str]] = {
    "dim": (is_int, "an int"),
    "dgamma": (lambda v: is_real(v) and 0 < v < math.inf, "a positive finite number"),
    "n_updates": (lambda v: is_int(v) and v >= 0, "an int >= 0"),
    "g_history": (lambda v: isinstance(v, list), "a list of vectors"),
    **dict.fromkeys(_VECTORS, (lambda v: v is None or isinstance(v, np.ndarray), "an array or null")),
}


def _iqr(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Interquartile range along ``axis`` of the finite entries (0 where none is finite)."""
    values = np.where(np.isfinite(values), values, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: its range is 0
        q25, q75 = np.nanpercentile(values, [25, 75], axis=axis)
    return np.nan_to_num(q75 - q25)


class AugmentedLagrangian(ConstraintHandler):
    """Adaptive augmented Lagrangian (inequality constraints, minimisation).

    Parameters
    ----------
    dim : int
        Search-space dimension ``n`` (sets the rates).
    dgamma : float
        Damping of the ``lam`` update, 5.

    Attributes
    ----------
    lam, mu : ndarray (m,) or None
        The Lagrange multipliers and penalty coefficients (``None`` before the first
        generation).
    n_updates : int
        Coefficient updates so far.

    References
    ----------
    Atamna, Auger, Hansen, "Augmented Lagrangian Constraint Handling for CMA-ES -- Case of a
    Single Linear Constraint", PPSN 2016; Atamna, Auger, Hansen, "Linearly Convergent Evolution
    Strategies via Augmented Lagrangian Constraint Handling", FOGA 2017.

    Examples
    --------
    Minimise ``|x|^2`` subject to ``x_0 >= 1``; the multiplier learns the true one, 2:

    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.constraints import AugmentedLagrangian
    >>> al = AugmentedLagrangian(dim=3)
    >>> es = ES("cma_es", sigma0=0.5, evaluator="serial", random_state=1).fit(
    ...     lambda x: float(x @ x), np.ones(3), constraints=lambda x: [1.0 - x[0]], constraint_handler=al)
    >>> round(es.fun_, 5), round(float(al.lam[0]), 3)
    (1.0, 2.0)
    """

    name = "augmented_lagrangian"

    def __init__(self, dim: int, dgamma: float = 5.0) -> None:
        self.dim = int(dim)
        self.dgamma = float(dgamma)
        self.chi = 2.0 ** (1.0 / (5.0 * self.dim))
        self.horizon = int(5 + self.dim)
        self.reset()

    def reset(self) -> None:
        self.lam: np.ndarray | None = None
        self.mu: np.ndarray | None = None
        self.initialized: np.ndarray | None = None
        self.n_updates = 0
        self.g_prev: np.ndarray | None = None
        self.same_changes: np.ndarray | None = None
        self.g_history: collections.deque = collections.deque(maxlen=self.dim + 20)
        self.penalised: np.ndarray | None = None  # (m,) some candidate in the penalised domain

    # -- h(x) -------------------------------------------------------------------------
    def penalties(self, G: np.ndarray) -> np.ndarray:
        """``lam g~ + mu g~^2 / 2`` per candidate and constraint, shape of ``G``."""
        lam, mu = self.lam, self.mu
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(mu * G < -lam, -lam / np.where(mu > 0, mu, 1.0), G)
            p = lam * g + 0.5 * mu * g * g
        # 0 * inf where lam = mu = 0: a violated g (NaN or inf) ranks last, g = -inf costs nothing
        return np.where(G == np.inf, np.inf, np.where(np.isnan(p), 0.0, p))

    def values(self, F: np.ndarray, G: np.ndarray) -> np.ndarray:
        if self.lam is None:
            return np.array(F, dtype=np.float64)
        with np.errstate(invalid="ignore"):  # mu = 0 and g = inf: not in the penalised domain
            inside = np.any(self.mu * G > -self.lam, axis=0)
        self.penalised = inside if self.penalised is None else self.penalised | inside
        return F + self.penalties(G).sum(axis=1)

    # -- learning ---------------------------------------------------------------------
    def update(self, F: np.ndarray, G: np.ndarray, values: np.ndarray) -> None:
        """Set the coefficients while some are unset, then learn from the best candidate."""
        if (self.initialized is None or not self.initialized.all()) and np.isfinite(F).all():
            self.set_coefficients(F, G)
        finite = np.where(np.isnan(values), np.inf, values)
        best = int(np.argmin(finite))
        if math.isfinite(F[best]):
            self.learn(G[best])

    def set_coefficients(self, F: np.ndarray, G: np.ndarray) -> None:
        """Initial ``lam`` and ``mu`` from the spread of ``F`` and ``G`` (pycma's ``set_coefficients``)."""
        m, n = G.shape[1], self.dim
        if self.lam is None:
            self.lam, self.mu = np.zeros(m), np.zeros(m)
            self.initialized = np.zeros(m, dtype=bool)
        sign_average = 2.0 * np.mean(G > 0, axis=0) - 1.0
        todo = (~self.initialized | (self.mu == 0)) & (sign_average > -0.8)  # > 10 % infeasible
        if not todo.any():
            return
        G = np.where(np.isinf(G), np.nan, G)  # NaN constraint values (counted as violated): left out of the spreads
        df = float(_iqr(F))
        dg, dg2 = _iqr(G), _iqr(G * G)
        mu_new = 0.4 * df / n / (dg + 1e-6 * dg2 + 1e-11 * (df + 1.0))
        lam_new = df / (n * dg + 1e-11 * (df + 1.0))
        for i in np.flatnonzero(todo):
            lam = lam_new[i]
            if sign_average[i] <= 0.2 and self.mu[i] > mu_new[i]:  # mostly feasible: mu decreases,
                lam *= mu_new[i] / self.mu[i]                            # lam with it
            self.lam[i], self.mu[i] = lam, mu_new[i]
            gmax = np.nanmax(np.abs(G[:, i])) if np.isfinite(G[:, i]).any() else 0.0
            self.mu[i] = min(20.0 * self.mu[i], max(self.mu[i], self.lam[i] / (1e-22 + gmax)))
        done = todo & ((self.n_updates > 2 + n) | (np.abs(sign_average) < 0.8))
        self.initialized |= done

    def learn(self, g: np.ndarray) -> None:
        """One update of ``lam`` and ``mu`` from the constraint values ``g`` of the best candidate."""
        self.g_history.append(np.array(g, dtype=np.float64))
        if self.lam is None:
            return
        lam, mu, m = self.lam, self.mu, g.shape[0]
        if self.same_changes is None:
            self.same_changes = np.zeros(m)
        penalised = mu * g > -lam
        if self.g_prev is not None:
            penalised |= mu * self.g_prev > -lam
        if self.penalised is not None:
            penalised |= self.penalised
        recent = np.array(list(self.g_history)[-self.horizon:])
        p_feasible = np.mean((recent < 0) + 0.5 * (recent == 0), axis=0)
        for i in range(m):
            if mu[i] == 0:
                continue
            if penalised[i]:
                lam[i] += mu[i] * g[i] / self.dgamma
            if lam[i] < 0:  # inactive constraint: lam would diverge to -inf and mu to +inf
                lam[i] = 0.0
                continue
            if g[i] * mu[i] < -lam[i]:
                continue
            if g[i] > 0 or (g[i] * mu[i] > -lam[i] and p_feasible[i] > 0.95):
                mu[i] *= self.chi ** (0.25 * (1.0 + self._ramp(i, 1)))
            elif p_feasible[i] < 0.9 and g[i] < 0:
                mu[i] *= self.chi ** (-0.25 * (1.0 - self._ramp(i, -1)))
        self.n_updates += 1
        self.g_prev = np.array(g, dtype=np.float64)
        self.penalised = np.zeros(m, dtype=bool)

    def _ramp(self, i: int, change: int) -> float:
        """Count same-sign changes of ``mu[i]``; the exponent's ramp-up (0 for the first ``2 + m``)."""
        sc = self.same_changes
        if change * sc[i] < 0:
            sc[i] = 0
        sc[i] += change
        threshold = 2 + sc.shape[0]
        factor = 4.0 / threshold
        d = sc[i]
        s = float(np.sign(d))
        d -= s * threshold
        d *= d * s > 0
        return factor * s * min(threshold, s * d)

    # -- checkpoints ------------------------------------------------------------------
    def state_values(self) -> dict[str, Any]:
        """The learnt state as plain data and numpy arrays (stored by :mod:`evostrat.checkpoint`)."""
        return {"dim": self.dim, "dgamma": self.dgamma, "lam": self.lam, "mu": self.mu,
                "initialized": self.initialized, "n_updates": self.n_updates, "g_prev": self.g_prev,
                "same_changes": self.same_changes, "g_history": list(self.g_history), "penalised": self.penalised}

    def load_state_values(self, values: Any) -> None:
        """Set what :meth:`state_values` returned, every field checked first.

        Raises
        ------
        CheckpointError
            Naming the first field of the wrong type, shape, dtype or size.
        """
        values = check_schema(values, _STATE_SCHEMA, "augmented Lagrangian")
        if values["dim"] != self.dim:
            raise CheckpointError(f"checkpoint augmented Lagrangian has dim {values['dim']}, the run {self.dim}")
        history = values["g_history"]
        if len(history) > self.dim + 20:
            raise CheckpointError(f"checkpoint augmented Lagrangian field 'g_history' holds {len(history)} "
                                  f"vectors, at most {self.dim + 20}")
        vectors = [values[k] for k in _VECTORS] + list(history)
        m = next((v.shape[0] for v in vectors if isinstance(v, np.ndarray) and v.ndim == 1), None)
        checked = {k: check_vector(values[k], m, bool if k in ("initialized", "penalised") else float,
                                   f"augmented Lagrangian field {k!r}") for k in _VECTORS}
        if (checked["lam"] is None) != (checked["mu"] is None) or (checked["lam"] is None) != (
                checked["initialized"] is None):
            raise CheckpointError("checkpoint augmented Lagrangian fields 'lam', 'mu' and 'initialized' must be "
                                  "set together")
        for k in ("lam", "mu"):  # coefficients >= 0: a negative one rewards violating its constraint
            if checked[k] is not None and not (checked[k] >= 0).all():
                raise CheckpointError(f"checkpoint augmented Lagrangian field {k!r} must be >= 0, got {checked[k]}")
        g_history = [check_vector(g, m, float, "augmented Lagrangian field 'g_history'") for g in history]
        self.dgamma = float(values["dgamma"])
        self.n_updates = int(values["n_updates"])
        for name, value in checked.items():
            setattr(self, name, value)
        self.g_history = collections.deque(g_history, maxlen=self.dim + 20)

    def __repr__(self) -> str:
        return f"AugmentedLagrangian(dim={self.dim}, lam={self.lam}, mu={self.mu})"
