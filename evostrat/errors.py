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

from typing import Any, Iterable

__all__ = [
    "EvostratError", "EvostratWarning", "NonFiniteFitnessWarning", "NoSolutionWarning", "ParameterOverrideWarning",
    "PerCandidateWarning", "OptimizeWarning",
    "InvalidArgumentError", "InvalidTypeError", "UnknownNameError", "PopulationMismatchError",
    "ObjectiveError", "EvaluationTimeoutError", "PluginError", "StateError", "NotFittedError",
    "CheckpointError", "OutputError", "ConformanceError", "did_you_mean",
]


#: Other libraries' names of evostrat's parameters (lower case): ``name -> (whose, evostrat's names)``;
#: :func:`did_you_mean` suggests the first of those names that the choices hold.
SYNONYMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "center_learning_rate": ("EvoTorch's", ("lr_mean", "lr")),
    "stdev_learning_rate": ("EvoTorch's", ("lr_sigma",)),
    "stdev_init": ("EvoTorch's", ("sigma0",)),
    "std_init": ("evosax's", ("sigma0",)),
    "sigma_init": ("evosax's", ("sigma0",)),
    "population_size": ("evosax's", ("popsize",)),
    "c_m": ("evosax's", ("lr_mean",)),
    "lrate_mean": ("evosax's", ("lr_mean",)),
    "lrate_sigma": ("evosax's", ("lr_sigma",)),
    "learning_rate": ("optax's", ("lr", "lr_mean")),
    "std_decay": ("evosax's", ("sigma_decay",)),
    "use_antithetic_sampling": ("evosax's", ("mirrored",)),
    "cma_cmean": ("pycma's", ("lr_mean",)),
    "lr_mean": ("other strategies'", ("center_learning_rate",)),
    "lr_sigma": ("other strategies'", ("stdev_learning_rate",)),
}


def did_you_mean(name: Any, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the choice closest to ``name`` (:mod:`difflib`), or ``""``;
    another library's name of a choice (:data:`SYNONYMS`) suggests that choice.

    Examples
    --------
    >>> did_you_mean("sigma", ["popsize", "sigma0"]), did_you_mean("zzz", ["snes"])
    (" (did you mean 'sigma0'?)", '')
    >>> did_you_mean("stdev_init", ["popsize", "sigma0"])
    " (did you mean 'sigma0'? 'stdev_init' is EvoTorch's name for it)"
    """
    import difflib  # here: only an error message needs it

    choices = sorted(choices)
    whose, names = SYNONYMS.get(str(name).lower(), ("", ()))
    known = next((n for n in names if n in choices), None)
    if known is not None:
        return f" (did you mean {known!r}? {str(name)!r} is {whose} name for it)"
    close = difflib.get_close_matches(str(name).lower(), choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


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


class NotFittedError(StateError, AttributeError):
    """A fitted attribute (``x_``, ``fun_``, ...) or ``ask``/``tell`` of an ``ES`` read before
    ``fit`` or ``initialize``; an ``AttributeError`` too, so ``hasattr(es, "x_")`` is ``False``
    (as scikit-learn's ``NotFittedError``)."""


class CheckpointError(EvostratError, ValueError):
    """A checkpoint file is missing, corrupt, tampered with, foreign, or from another version."""


class OutputError(EvostratError, OSError):
    """A file a run writes (a checkpoint, ``evostrat run``'s folder) cannot be written: its folder is
    read-only or not a folder, the disk is full. The message names the argument and the path; ``errno``
    is the system's code and the system's error is chained as ``__cause__``."""

    @classmethod
    def from_os_error(cls, what: str, err: OSError, more: str = "") -> "OutputError":
        """``"<what> cannot be written (<err's reason>)<more>"`` with ``err``'s ``errno`` (raise it
        ``from err``).

        Examples
        --------
        >>> import errno, os
        >>> error = OutputError.from_os_error("checkpoint 'a.ckpt'", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        >>> str(error), error.errno == errno.ENOSPC
        ("checkpoint 'a.ckpt' cannot be written (No space left on device)", True)
        """
        error = cls(f"{what} cannot be written ({err.strerror or err}){more}")
        error.errno = err.errno
        return error


class ObjectiveError(EvostratError, RuntimeError):
    """The user's objective raised; the original exception is chained as ``__cause__``.

    Attributes
    ----------
    index : int or None
        The failing candidate's row in the population (``None`` when a whole
        chunk failed, e.g. its worker died).
    indices : tuple of int
        Every candidate concerned (``(index,)`` for one candidate).
    traceback : str or None
        The original traceback text, also from worker processes.
    """

    def __init__(
        self,
        message: str,
        index: int | None = None,
        *,
        indices: tuple[int, ...] | None = None,
        traceback: str | None = None,
    ) -> None:
        super().__init__(message)
        self.index = index
        self.indices = tuple(indices) if indices is not None else (
            (index,) if index is not None else ()
        )
        self.traceback = traceback


class EvaluationTimeoutError(ObjectiveError, TimeoutError):
    """An evaluation exceeded the evaluator's ``timeout``; names the candidate(s)."""


class PluginError(EvostratError, RuntimeError):
    """A plugin failed to load, raised inside a hook, or clashes with another plugin."""


class ConformanceError(AssertionError):
    """A plugin's strategy or distribution breaks its contract (``evostrat.testing``): the message
    names the check and what it requires. An ``AssertionError``, so pytest reports a failed test."""


class EvostratWarning(UserWarning):
    """Root of evostrat's warnings."""


class ParameterOverrideWarning(EvostratWarning):
    """An ``ES`` parameter (``sigma0``, ``popsize``) overrides the value a strategy instance was given."""


class NonFiniteFitnessWarning(EvostratWarning):
    """Some fitness values were NaN or infinite; see the ``nonfinite`` policy."""


class NoSolutionWarning(EvostratWarning):
    """A run ended without a candidate of a value better than ``inf`` (every value NaN or ``inf``, or,
    with constraints, no feasible candidate): ``x_`` is the initial mean, never evaluated."""


class PerCandidateWarning(EvostratWarning):
    """``evaluator="auto"`` calls an unmarked objective once per candidate (it did not take a population)."""


class OptimizeWarning(EvostratWarning):
    """:func:`evostrat.minimize` changed what it was given as scipy's methods do (an ``x0`` outside the
    bounds, clipped into them)."""
