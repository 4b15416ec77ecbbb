"""evostrat: evolution strategies on numpy, torch and JAX.

``import evostrat`` is light: it never imports torch, JAX, Ray or
scikit-learn. The estimator ``ES`` (which needs scikit-learn) is loaded on
first access.

Examples
--------
>>> import numpy as np
>>> import evostrat
>>> es = evostrat.ES("snes", sigma0=1.0, ftarget=1e-10, random_state=0)
>>> es.fit(evostrat.problems.sphere, np.full(5, 3.0)).stop_reason_
'ftarget'
"""

from __future__ import annotations

from typing import Any

from evostrat import problems
from evostrat.errors import (
    CheckpointError, EvaluationTimeoutError, EvostratError, EvostratWarning, InvalidArgumentError,
    InvalidTypeError, NonFiniteFitnessWarning, ObjectiveError, PluginError, PopulationMismatchError,
    StateError, UnknownNameError,
)
from evostrat.evaluators.local import vectorized
from evostrat.expectation import expectation
from evostrat.hookspecs import hookimpl
from evostrat.plugins import list_plugins

__version__ = "0.1.0.dev0"

__all__ = [
    "ES", "CheckpointError", "EvaluationTimeoutError", "EvostratError", "EvostratWarning",
    "InvalidArgumentError", "InvalidTypeError", "NonFiniteFitnessWarning", "ObjectiveError",
    "PluginError", "PopulationMismatchError", "StateError", "UnknownNameError", "__version__",
    "expectation", "hookimpl", "list_plugins", "problems", "vectorized",
]


def __getattr__(name: str) -> Any:
    if name == "ES":  # scikit-learn takes ~1 s to import: only when the estimator is used
        from evostrat.estimator import ES

        return ES
    raise AttributeError(f"module 'evostrat' has no attribute {name!r}")
