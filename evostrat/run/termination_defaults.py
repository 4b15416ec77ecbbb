"""The criteria a run takes from its strategy, and pycma's default budgets.

A strategy's ``termination_defaults`` turns on the history criteria it needs
(:data:`HISTORY_CRITERIA`: CMA-ES pycma's ``tolfunhist``, ``tolstagnation`` and
``tolflatfitness``), and ``ES``'s ``"auto"`` takes them (:func:`history_criteria`,
checked by :func:`strategy_history_criteria`; :func:`run_history_criteria` once per plain
settings). pycma's default ``maxiter`` and ``tolstagnation`` follow the dimension and the
population (:func:`default_max_generations`, :func:`default_tolstagnation`). The criteria
themselves are :class:`~evostrat.run.termination.Termination`'s.

Examples
--------
>>> default_max_generations(10, 10), default_tolstagnation(10, 10)
(8116, 416)
>>> history_criteria({"tolstagnation": "auto"}, 10, 10, tolstagnation="auto", tolfunhist=1e-12)
{'tolstagnation': 416, 'tolfunhist': 1e-12}
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, Mapping

from evostrat.errors import EvostratError, InvalidArgumentError, InvalidTypeError
from evostrat.params import check_params
from evostrat.run.memo import Memo, plain_key
from evostrat.run.termination import CRITERIA_CONSTRAINTS

__all__ = ["HISTORY_CRITERIA", "default_max_generations", "default_tolstagnation", "history_criteria",
           "run_history_criteria", "strategy_history_criteria"]

#: The criteria a strategy's ``termination_defaults`` may turn on.
HISTORY_CRITERIA = ("tolfunhist", "tolstagnation", "tolflatfitness")


def default_max_generations(dim: int, popsize: int) -> int:
    """pycma's default ``maxiter``: ``100 + 150 (d + 3)^2 / sqrt(popsize)``."""
    return int(100 + 150 * (dim + 3) ** 2 // math.sqrt(popsize))


def history_criteria(defaults: dict[str, Any], dim: int, popsize: int, **values: Any) -> dict[str, Any]:
    """Resolve ``tolfunhist``/``tolstagnation``/``tolflatfitness`` given as ``"auto"``.

    ``"auto"`` takes the strategy's ``termination_defaults`` (missing: off), whose
    ``tolstagnation`` may itself be ``"auto"`` for pycma's
    ``int(100 + 100 d^1.5 / popsize)``.
    """
    out = {}
    for name, value in values.items():
        if isinstance(value, str) and value == "auto":
            value = defaults.get(name)
        if name == "tolstagnation" and isinstance(value, str) and value == "auto":
            value = default_tolstagnation(dim, popsize)
        out[name] = value
    return out


#: A strategy's resolved ``termination_defaults`` as attributes, for :func:`check_params` (made once: ~10 us).
TerminationDefaults = type("termination_defaults", (SimpleNamespace,), {})


def strategy_history_criteria(strategy: Any, dim: int, popsize: float, **values: Any) -> dict[str, Any]:
    """:func:`history_criteria` of ``strategy``'s ``termination_defaults``, after checking them.

    Parameters
    ----------
    strategy : Strategy
        Its ``termination_defaults`` must map names of :data:`HISTORY_CRITERIA` to values the
        criteria accept (``tolstagnation`` also ``"auto"``).
    dim, popsize : int, float
        The run's dimension and population size (unrounded: ``Strategy.unrounded_popsize``).
    **values
        The run's ``tolfunhist``, ``tolstagnation`` and ``tolflatfitness`` (``"auto"``: the default).

    Raises
    ------
    InvalidArgumentError, InvalidTypeError
        Naming the strategy and the criterion, when the defaults name an unknown criterion
        (with the known ones) or hold a value the criterion refuses.

    Examples
    --------
    >>> from evostrat.strategies.cma_es import CMAES
    >>> strategy_history_criteria(CMAES(), 10, 10, tolstagnation="auto", tolflatfitness=None)
    {'tolstagnation': 416, 'tolflatfitness': None}
    """
    label = f"strategy {strategy.name or type(strategy).__name__!r}"
    defaults = strategy.termination_defaults
    if not isinstance(defaults, Mapping):
        raise InvalidTypeError(f"termination_defaults of {label} must be a mapping of criteria to values, "
                               f"got {type(defaults).__name__}")
    unknown = sorted((k for k in defaults if k not in HISTORY_CRITERIA), key=repr)
    if unknown:
        raise InvalidArgumentError(f"termination_defaults of {label} names unknown criteria "
                                   f"{', '.join(map(repr, unknown))}; known: {', '.join(HISTORY_CRITERIA)}")
    resolved = history_criteria(defaults := dict(defaults), dim, popsize, **dict.fromkeys(defaults, "auto"))
    try:
        check_params(TerminationDefaults(**resolved), {k: CRITERIA_CONSTRAINTS[k] for k in resolved})
    except EvostratError as err:
        raise type(err)(f"{label}: {err}") from None
    return history_criteria(defaults, dim, popsize, **values)


def default_tolstagnation(dim: int, popsize: int) -> int:
    """pycma's default ``tolstagnation``: ``int(100 + 100 d^1.5 / popsize)``."""
    return int(100 + 100 * dim**1.5 / popsize)


#: :func:`run_history_criteria`'s answers by their plain arguments.
_HISTORY = Memo()


def run_history_criteria(strategy: Any, dim: int, popsize: float, settings: Any) -> dict[str, Any]:
    """:func:`strategy_history_criteria` of a run of ``settings`` (an ``ES``
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
