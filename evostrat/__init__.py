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

import importlib
from typing import TYPE_CHECKING, Any

from evostrat import expectation, problems
from evostrat.errors import (
    CheckpointError, EvaluationTimeoutError, EvostratError, EvostratWarning, InvalidArgumentError,
    InvalidTypeError, NonFiniteFitnessWarning, NoSolutionWarning, ObjectiveError, ParameterOverrideWarning, PluginError,
    NotFittedError, OutputError, PopulationMismatchError, StateError, UnknownNameError,
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
    "OutputError", "ParameterOverrideWarning", "PluginError", "PopulationMismatchError", "StateError",
    "UnknownNameError", "__version__",
    "expectation", "fit_batch", "hookimpl", "list_plugins", "minimize", "problems", "vectorized",
]

#: Subpackages loaded on first attribute access (``evostrat.callbacks.history_frame(es)``,
#: ``evostrat.plotting.plot_sweep(res)`` after a plain ``import evostrat``); ``dir()`` lists them.
LAZY_SUBMODULES = ("callbacks", "checkpoint", "cli", "params_flat", "plot", "plotting", "testing")


def __getattr__(name: str) -> Any:
    """Import the subpackage ``evostrat.<name>`` of :data:`LAZY_SUBMODULES` on first access.

    Parameters
    ----------
    name : str
        The attribute asked for.

    Returns
    -------
    module
        The subpackage (the import also binds it as this package's attribute).

    Raises
    ------
    AttributeError
        For any other name.
    """
    if name in LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The package's names, the lazily loaded subpackages included."""
    return sorted(set(globals()) | set(LAZY_SUBMODULES))
