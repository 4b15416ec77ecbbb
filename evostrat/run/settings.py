"""The constraints the settings of a run satisfy: :class:`~evostrat.ES`'s ``parameter_constraints``.

:data:`ES_PARAMETER_CONSTRAINTS` maps each estimator parameter checked up front (by
:meth:`~evostrat.params.Params.validate_params`, when a run starts) to the constraints one of
which its value must satisfy (:mod:`evostrat.params`). The others are checked where they are
used: the strategy and ``sigma0`` by the strategy, the evaluator by its factory, ``nonfinite`` by
:mod:`evostrat.run.asktell`, ``bounds`` by :mod:`evostrat.run.bounds`, ``integer`` and
``warm_start`` in :mod:`evostrat.run`, ``dtype`` and ``random_state`` by the backend.

Examples
--------
>>> from evostrat import ES
>>> from evostrat.errors import InvalidArgumentError
>>> ES.parameter_constraints is ES_PARAMETER_CONSTRAINTS
True
>>> try:
...     ES(reevaluations=0).validate_params()
... except InvalidArgumentError as error:
...     print("reevaluations" in str(error))
True
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np

from evostrat.backends import Backend
from evostrat.params import Interval, Satisfies, StrOptions
from evostrat.run.restarts import Restarts
from evostrat.run.termination import CRITERIA_CONSTRAINTS

__all__ = ["ES_PARAMETER_CONSTRAINTS"]

BOOL: list[Any] = [bool, np.bool_]

#: Parameter name -> the constraints its value may satisfy.
ES_PARAMETER_CONSTRAINTS: dict[str, list[Any]] = {
    **CRITERIA_CONSTRAINTS, **{name: [*CRITERIA_CONSTRAINTS[name], StrOptions({"auto"})]
                               for name in ("tolfunhist", "tolstagnation", "tolflatfitness")},
    "maximize": BOOL, "compiled_loop": [StrOptions({"auto"}), *BOOL],
    "restarts": [None, str, dict, Restarts],  # make_restarts checks the names
    "backend": [str, Backend], "strategy_options": [dict, None], "distribution": [None, str, type],
    "fixed_variables": [None, dict],  # its indices and values: checked against x0 (run.fixed)
    "reevaluations": [Interval(Integral, 1, None, closed="left")],  # integer, warm_start: checked in run/
    "noise_handling": [*BOOL, dict, Satisfies(lambda v: hasattr(v, "adapt"), "an UncertaintyHandling")],
    "device": [None, str, Satisfies(lambda d: hasattr(d, "platform") or type(d).__name__ == "device",
                                    "a torch or JAX device")],
}
