"""Constraint handling: ``g(x) <= 0`` for every strategy.

``ES(...).fit(f, x0, constraints=g)`` (``g(x)`` returns the ``m`` constraint
values of one candidate) or, by hand, ``es.tell(X, F, constraints=G)`` with
``G`` of shape ``(popsize, m)``. The CMA family (CMA-ES, sep-CMA-ES, LM-MA-ES,
VkD-CMA) uses the augmented Lagrangian (:mod:`evostrat.constraints.lagrangian`),
the other strategies Deb's feasibility rules (:mod:`evostrat.constraints.penalty`);
``constraint_handler=`` chooses.
``x_`` and ``fun_`` are then the best *feasible* candidate and its value, and
``history_`` records each generation's smallest ``"violation"`` and its
``"feasible"`` fraction. See ``docs/guides/constraints.md``.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> es = ES("cma_es", sigma0=0.5, evaluator="serial", random_state=1).fit(
...     lambda x: float(x @ x), np.ones(3), constraints=lambda x: [1.0 - x[0]])
>>> bool(es.x_[0] >= 1.0), round(es.fun_, 5)
(True, 1.0)
"""

from evostrat.constraints.base import (
    HANDLERS, ConstraintHandler, check_constraints, evaluate_constraints, feasible, violation,
)
from evostrat.constraints.lagrangian import AugmentedLagrangian
from evostrat.constraints.penalty import Penalty
from evostrat.constraints.tracker import ConstrainedRun, make_constraint_handler

__all__ = ["AugmentedLagrangian", "ConstrainedRun", "ConstraintHandler", "HANDLERS", "Penalty", "check_constraints",
           "evaluate_constraints", "feasible", "make_constraint_handler", "violation"]
