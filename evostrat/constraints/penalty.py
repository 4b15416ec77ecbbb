"""Penalties for strategies outside the CMA family.

Two rules, chosen by ``weight``:

- ``weight=None`` (default): **Deb's feasibility rules** (Deb, "An efficient
  constraint handling method for genetic algorithms", CMAME 2000, eq. 2) as values: a
  feasible candidate keeps ``f``; an infeasible one gets ``f_worst + v``, with
  ``f_worst`` the largest finite ``f`` of the population's feasible candidates (0
  when none is) and ``v`` its violation ``sum_i max(0, g_i)``. So every feasible candidate ranks before every infeasible
  one, feasible ones by ``f`` and infeasible ones by violation: the order the rules
  define, with no scale to tune (what rank-based strategies use). An infeasible value is at
  least the float after ``f_worst``, so a violation below the spacing of floats there (``v``
  of 1e-8 at ``f_worst`` of 1e9) still ranks after every feasible candidate; violations that
  differ by less than that spacing tie.
- ``weight=w``: the **static quadratic penalty** ``f + w sum_i max(0, g_i)^2``
  (for strategies that use the values themselves, when a good ``w`` is known).

Examples
--------
>>> import numpy as np
>>> F = np.array([3.0, 1.0, 0.5])
>>> G = np.array([[-1.0], [2.0], [0.5]])
>>> Penalty().values(F, G).tolist()
[3.0, 5.0, 3.5]
>>> Penalty(weight=10.0).values(F, G).tolist()
[3.0, 41.0, 3.0]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from evostrat.constraints.base import ConstraintHandler, violation
from evostrat.errors import InvalidArgumentError
from evostrat.run.state import check_schema, is_real

__all__ = ["Penalty"]


class Penalty(ConstraintHandler):
    """Deb's feasibility rules (``weight=None``) or a quadratic penalty of weight ``weight``.

    Parameters
    ----------
    weight : float, optional
        Positive weight of ``sum max(0, g)^2``; ``None`` for Deb's rules.

    References
    ----------
    Deb, "An efficient constraint handling method for genetic algorithms", Computer Methods
    in Applied Mechanics and Engineering 186, 2000.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.constraints import Penalty
    >>> es = ES("snes", evaluator="serial", random_state=0).fit(
    ...     lambda x: float(x @ x), np.ones(3), constraints=lambda x: [1.0 - x[0]], constraint_handler=Penalty())
    >>> round(es.fun_, 6), bool(es.x_[0] >= 1.0)
    (1.0, True)
    """

    name = "penalty"

    def __init__(self, weight: float | None = None) -> None:
        if weight is not None and not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight > 0):
            raise InvalidArgumentError(f"Penalty: weight must be None or a positive finite number, got {weight!r}")
        self.weight = weight

    def values(self, F: np.ndarray, G: np.ndarray) -> np.ndarray:
        F = np.asarray(F, dtype=np.float64)
        if self.weight is not None:
            return F + self.weight * (np.maximum(G, 0.0) ** 2).sum(axis=1)
        v = violation(G)
        finite = F[(v == 0) & np.isfinite(F)]  # Deb's f_max: the worst feasible value, not the worst of all
        worst = float(finite.max()) if finite.size else 0.0
        # at least the float after f_worst: worst + v rounds to worst when v is below its spacing
        # (f ~ 1e9, v ~ 1e-8), and the infeasible candidate would tie with the worst feasible one
        return np.where(v > 0, np.maximum(worst + v, math.nextafter(worst, math.inf)), F)

    def state_values(self) -> dict[str, Any]:
        """``{"weight": weight}``: all a checkpoint needs (the penalty learns nothing)."""
        return {"weight": self.weight}

    def load_state_values(self, values: Any) -> None:
        """Set the weight :meth:`state_values` returned (checked)."""
        weight = check_schema(values, {"weight": (lambda v: v is None or is_real(v) and 0 < v < math.inf,
                                                  "a positive finite number or null")}, "penalty")["weight"]
        self.weight = None if weight is None else float(weight)

    def __repr__(self) -> str:
        return f"Penalty(weight={self.weight!r})"
