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
from evostrat.run.memo import Memo, plain_key
from evostrat.run.restarts import Restarts
from evostrat.run.termination import CRITERIA_CONSTRAINTS, HISTORY_CRITERIA, strategy_history_criteria

__all__ = ["ES_PARAMETER_CONSTRAINTS", "run_history_criteria"]

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


#: :func:`run_history_criteria`'s answers by their plain arguments.
_HISTORY = Memo()


def run_history_criteria(strategy: Any, dim: int, popsize: float, settings: Any) -> dict[str, Any]:
    """:func:`~evostrat.run.termination.strategy_history_criteria` of a run of ``settings`` (an ``ES``
    or its parameters' copy): ``strategy``'s ``termination_defaults`` checked and resolved with the
    run's ``tolfunhist``, ``tolstagnation`` and ``tolflatfitness``, once per plain defaults, values,
    ``dim`` and ``popsize`` (~30 us a fit with cold caches). A fresh dict each call."""
    values = {name: getattr(settings, name) for name in HISTORY_CRITERIA}
    defaults = strategy.termination_defaults
    key = plain_key((dim, popsize, *values.values(), *defaults, *defaults.values())) if type(defaults) is dict else None
    known = _HISTORY.get(key) if key is not None else None
    if known is None:
        known = _HISTORY.keep(key, strategy_history_criteria(strategy, dim, popsize, **values))
    return dict(known)
