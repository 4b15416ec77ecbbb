"""evostrat: evolution strategies on numpy, torch and JAX.

``import evostrat`` is light (numpy, pluggy and array-api-compat): it never imports
torch, JAX, Ray, scikit-learn, SciPy, pandas or matplotlib; the backends and plugins
that need them load them on first use.

Examples
--------
>>> import numpy as np
>>> import evostrat
>>> es = evostrat.ES("snes", sigma0=1.0, ftarget=1e-10, random_state=0)
>>> es.fit(evostrat.problems.sphere, np.full(5, 3.0)).stop_reason_
'ftarget'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evostrat import expectation, problems
from evostrat.errors import (
    CheckpointError, EvaluationTimeoutError, EvostratError, EvostratWarning, InvalidArgumentError,
    InvalidTypeError, NonFiniteFitnessWarning, NoSolutionWarning, ObjectiveError, ParameterOverrideWarning, PluginError,
    NotFittedError, PopulationMismatchError, StateError, UnknownNameError,
)
from evostrat.estimator import ES
from evostrat.evaluators.local import vectorized
from evostrat.hookspecs import hookimpl
from evostrat.minimize import minimize
from evostrat.plugins import list_plugins
from evostrat.run.batch import fit_batch

if TYPE_CHECKING:  # at run time the module itself, callable as its function (evostrat.expectation.CallableModule)
    from evostrat.expectation import expectation

__version__ = "0.1.0.dev0"

__all__ = [
    "ES", "CheckpointError", "EvaluationTimeoutError", "EvostratError", "EvostratWarning",
    "InvalidArgumentError", "InvalidTypeError", "NonFiniteFitnessWarning", "NoSolutionWarning", "NotFittedError", "ObjectiveError",
    "ParameterOverrideWarning", "PluginError", "PopulationMismatchError", "StateError", "UnknownNameError", "__version__",
    "expectation", "fit_batch", "hookimpl", "list_plugins", "minimize", "problems", "vectorized",
]

