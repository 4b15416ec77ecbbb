"""The evostrat exception and warning hierarchy.

Every error evostrat raises on purpose derives from :class:`EvostratError` and
also from the matching built-in (``ValueError``, ``TypeError``, ...), so callers
can catch either.

Examples
--------
>>> import evostrat
>>> try:
...     evostrat.ES(strategy="no_such_strategy").fit(lambda x: 0.0, [0.0, 0.0])
... except evostrat.EvostratError as err:
...     print(type(err).__name__)
UnknownNameError
"""

from __future__ import annotations

__all__ = [
    "EvostratError",
    "EvostratWarning",
    "NonFiniteFitnessWarning",
    "InvalidArgumentError",
    "InvalidTypeError",
    "UnknownNameError",
    "PopulationMismatchError",
    "ObjectiveError",
    "PluginError",
    "StateError",
]


class EvostratError(Exception):
    """Root of every error evostrat raises on purpose."""


class InvalidArgumentError(EvostratError, ValueError):
    """An argument has the right type but a wrong value or shape."""


class InvalidTypeError(EvostratError, TypeError):
    """An argument has a type (or dtype) evostrat cannot use."""


class UnknownNameError(EvostratError, KeyError, ValueError):
    """A strategy, backend, evaluator or other registry name is not installed."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class PopulationMismatchError(EvostratError, ValueError):
    """``tell`` received a population that is not the one ``ask`` returned."""


class StateError(EvostratError, RuntimeError):
    """A method was called in the wrong order (``tell`` before ``ask``, ...)."""


class ObjectiveError(EvostratError, RuntimeError):
    """The user's objective raised; the original exception is chained as ``__cause__``."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class PluginError(EvostratError, RuntimeError):
    """A plugin failed to load, raised inside a hook, or clashes with another plugin."""


class EvostratWarning(UserWarning):
    """Root of evostrat's warnings."""


class NonFiniteFitnessWarning(EvostratWarning):
    """Some fitness values were NaN or infinite; see the ``nonfinite`` policy."""
