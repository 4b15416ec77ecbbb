"""Factories of the ``ES`` estimator: a strategy and an evaluator from its parameters.

:func:`make_strategy` builds a fresh strategy from a registered name or a (copied)
instance, :func:`make_evaluator` an evaluator from a registered name and its options (or
passes an instance through); both validate their arguments and raise the errors of
:mod:`evostrat.errors`.

Examples
--------
>>> from evostrat.plugins.factories import make_evaluator, make_strategy
>>> strategy = make_strategy("snes", popsize=8, sigma0=None)
>>> type(strategy).__name__, strategy.popsize
('SNES', 8)
>>> type(make_evaluator("serial")).__name__
'SerialEvaluator'
"""

from __future__ import annotations

from typing import Any

from evostrat.errors import InvalidArgumentError, InvalidTypeError, UnknownNameError
from evostrat.evaluators.local import Evaluator
from evostrat.plugins import registry
from evostrat.strategies.base import Strategy

__all__ = ["make_evaluator", "make_strategy"]


def _registered(kind: str, what: str, name: str) -> Any:
    """The factory registered as ``name`` in the registry ``kind``; ``what`` names it in the error."""
    factories = registry(kind)
    if name not in factories:
        raise UnknownNameError(f"{what} must be one of {sorted(factories)}, got {name!r}")
    return factories[name]


def make_strategy(strategy: Any, options: dict | None = None, **overrides: Any) -> Strategy:
    """A fresh strategy from a registry name or a (copied) instance."""
    if isinstance(strategy, str):
        instance = _registered("strategies", "strategy", strategy)()
    elif isinstance(strategy, Strategy):
        instance = type(strategy)(**strategy.get_params(deep=False))
    else:
        raise InvalidTypeError(
            f"strategy must be a strategy name or a Strategy instance, got {type(strategy).__name__}"
        )
    instance.set_params(**(options or {}))
    instance.set_params(**{k: v for k, v in overrides.items() if v is not None})
    return instance


def make_evaluator(evaluator: Any, options: dict | None = None) -> Evaluator:
    """A fresh evaluator from a registry name and ``options``, or the given instance."""
    if options is not None and not isinstance(options, dict):
        raise InvalidTypeError(f"evaluator_options must be a dict or None, got {type(options).__name__}")
    if isinstance(evaluator, Evaluator):
        if options:
            raise InvalidArgumentError(
                "evaluator_options apply to an evaluator given by name; pass the options to "
                f"the {type(evaluator).__name__} instance instead, got {sorted(options)}"
            )
        return evaluator
    if isinstance(evaluator, str):
        cls = _registered("evaluators", "evaluator", evaluator)
        unknown = sorted(set(options or {}) - set(cls._param_names()))
        if unknown:
            raise InvalidArgumentError(
                f"evaluator_options for {evaluator!r} has no option {unknown[0]!r}; valid: "
                f"{list(cls._param_names())}"
            )
        return cls(**(options or {}))
    raise InvalidTypeError(
        f"evaluator must be an evaluator name or an Evaluator instance, got {type(evaluator).__name__}"
    )
