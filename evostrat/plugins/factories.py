"""Factories of the ``ES`` estimator: a strategy and an evaluator from its parameters.

:func:`make_strategy` builds a fresh strategy from a registered name or a (copied)
instance, :func:`make_evaluator` an evaluator from a registered name and its options (or
passes an instance through); both validate their arguments and raise the errors of
:mod:`evostrat.errors`, suggesting the closest name. :func:`warn_overrides` warns when an
``ES`` parameter replaces a value the strategy was given.

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

import functools
import inspect
import warnings
from typing import Any

from evostrat.errors import InvalidArgumentError, InvalidTypeError, ParameterOverrideWarning, did_you_mean
from evostrat.evaluators.local import Evaluator
from evostrat.plugins import lookup, registry
from evostrat.run.memo import PLAIN_TYPES, Memo, plain_key
from evostrat.strategies.base import Strategy

__all__ = ["make_evaluator", "make_strategy", "warn_overrides"]


def make_strategy(strategy: Any, options: dict | None = None, **overrides: Any) -> Strategy:
    """A fresh strategy from a registry name (or an alias, see :func:`~evostrat.plugins.lookup`) or a
    (copied) instance, with ``options`` and the ``overrides`` that are not ``None`` set.

    A name with plain options and overrides (:func:`~evostrat.run.memo.plain_key`) whose strategy holds
    only plain attributes is built once per registry: later calls copy its attributes into a new
    instance of its class (~20 us a fit with cold caches, against building and setting it again)."""
    options = options or {}
    key = plain_key((strategy, *options, *options.values(), *overrides, *overrides.values()), len(options)) \
        if type(strategy) is str and type(options) is dict else None
    known = _MADE.get(key) if key is not None else None
    if known is not None and known[0] is registry("strategies"):  # the same registry (plugins not changed)
        instance = object.__new__(known[1])
        vars(instance).update(known[2])
        return instance
    instance = _build_strategy(strategy, options, overrides)
    attributes = getattr(instance, "__dict__", None)
    if key is not None and attributes is not None and PLAIN_TYPES.issuperset(map(type, attributes.values())):
        _MADE.keep(key, (registry("strategies"), type(instance), dict(attributes)))
    return instance


#: :func:`make_strategy`'s strategies by plain arguments: (registry, class, attributes).
_MADE = Memo()


def _build_strategy(strategy: Any, options: dict, overrides: dict[str, Any]) -> Strategy:
    """:func:`make_strategy`'s strategy, built and set."""
    if isinstance(strategy, str):
        instance = _hyper_parameters_only(_registered("strategies", strategy, "strategy", Strategy), strategy)()
    elif isinstance(strategy, Strategy):
        instance = type(strategy)(**strategy.get_params(deep=False))
    else:
        got = (f"the class {strategy.__name__}; pass an instance, {strategy.__name__}()"
               if isinstance(strategy, type) and issubclass(strategy, Strategy) else type(strategy).__name__)
        raise InvalidTypeError(f"strategy must be a strategy name or a Strategy instance, got {got}")
    valid = instance.get_params(deep=False)
    for key in options:
        if key.partition("__")[0] not in valid:
            raise InvalidArgumentError(f"{type(instance).__name__} has no parameter {key!r}"
                                       f"{did_you_mean(key, valid)}; valid: {sorted(valid)}")
    instance.set_params(**options)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    for key in overrides.keys() - valid.keys():  # ES(distribution=...) for a strategy without one
        raise InvalidArgumentError(f"ES({key}={overrides[key]!r}) applies to strategies with a {key!r} "
                                   f"parameter (e.g. 'nes'); {type(instance).__name__} has none")
    instance.set_params(**overrides)
    return instance


def warn_overrides(strategy: Any, options: dict | None = None, **overrides: Any) -> None:
    """Warn (:class:`~evostrat.errors.ParameterOverrideWarning`) for each override, not ``None``, of a
    value the strategy was given: in ``options`` or, for an instance, one other than its class default."""
    given = dict(options or {})
    if isinstance(strategy, Strategy):
        defaults = inspect.signature(type(strategy)).parameters
        given = {k: v for k, v in strategy.get_params(deep=False).items()
                 if k in defaults and not _same(v, defaults[k].default)} | given
    for name, value in overrides.items():
        if value is not None and name in given and not _same(given[name], value):
            warnings.warn(
                f"ES({name}={value!r}) overrides the {name}={given[name]!r} given to the strategy "
                f"{type(strategy).__name__ if isinstance(strategy, Strategy) else repr(strategy)}; the run "
                f"uses {name}={value!r}", ParameterOverrideWarning, stacklevel=4,
            )


def _same(a: Any, b: Any) -> bool:
    """``a is b``, or two equal non-array values."""
    try:
        return a is b or not (hasattr(a, "shape") or hasattr(b, "shape")) and bool(a == b)
    except Exception:  # noqa: BLE001 - values that cannot be compared are different
        return False


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
        _check_evaluate(type(evaluator), f"evaluator {type(evaluator).__qualname__}")
        return evaluator
    if isinstance(evaluator, str):
        cls = _registered("evaluators", evaluator, "evaluator", Evaluator)
        _check_evaluate(cls, f"evaluator {evaluator!r} ({cls.__qualname__})")
        unknown = sorted(set(options or {}) - set(cls._param_names()))
        if unknown:
            raise InvalidArgumentError(
                f"evaluator_options for {evaluator!r} has no option {unknown[0]!r}"
                f"{did_you_mean(unknown[0], cls._param_names())}; valid: {list(cls._param_names())}"
            )
        params = inspect.signature(cls).parameters.values()
        needed = [p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                  and p.name not in (options or {})]
        if needed:
            raise InvalidArgumentError(
                f"evaluator {evaluator!r} ({cls.__qualname__}) needs evaluator_options "
                f"{', '.join(map(repr, needed))} (no default), got {sorted(options or {})}")
        return cls(**(options or {}))
    raise InvalidTypeError(
        f"evaluator must be an evaluator name or an Evaluator instance, got {type(evaluator).__name__}"
    )


def _check_evaluate(cls: type, what: str) -> None:
    """Refuse an evaluator class that does not implement ``evaluate`` (the one method of the
    ``evostrat_evaluators`` contract): a bare ``NotImplementedError`` at the first generation before."""
    if getattr(cls, "evaluate", None) is Evaluator.evaluate:
        raise InvalidTypeError(f"{what} does not implement evaluate(objective, X, backend), the method an "
                               "evaluator must override (it returns the (popsize,) values of X)")


def _hyper_parameters_only(cls: type, name: str) -> type:
    """``cls`` if its ``__init__`` takes only named hyper-parameters with defaults (the contract of
    :func:`evostrat.hookspecs.evostrat_strategies`, as scikit-learn's), else :class:`InvalidTypeError`
    naming the strategy and the argument (a bare ``TypeError`` of the call before)."""
    problem = _signature_problem(cls)
    if problem:
        raise InvalidTypeError(f"strategy {name!r} ({cls.__qualname__}): __init__ must take only named "
                               f"hyper-parameters with defaults (the evostrat_strategies contract), but {problem}")
    return cls


@functools.lru_cache(maxsize=256)
def _signature_problem(cls: type) -> str:
    """What in ``cls.__init__``'s signature breaks the contract (``""``: nothing); once per class."""
    params = inspect.signature(cls).parameters.values()
    variadic = [("*" if p.kind is p.VAR_POSITIONAL else "**") + p.name for p in params
                if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    required = [repr(p.name) for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL,
                                                                                        p.VAR_KEYWORD)]
    if variadic:
        return f"it takes {', '.join(variadic)}"
    return f"{', '.join(required)} {'has' if len(required) == 1 else 'have'} no default" if required else ""


def _registered(kind: str, name: str, what: str, base: type) -> type:
    """The class registered in ``registry(kind)`` under ``name`` (or its alias), a subclass of ``base``.

    Raises
    ------
    InvalidTypeError
        When a plugin registered something else under that name.
    """
    factory = registry(kind)[lookup(kind, name, what)]
    if not (isinstance(factory, type) and issubclass(factory, base)):
        raise InvalidTypeError(f"{what} {name!r} is registered as {factory!r}, which is not a subclass of "
                               f"{base.__module__}.{base.__qualname__} (the plugin must register one)")
    return factory
