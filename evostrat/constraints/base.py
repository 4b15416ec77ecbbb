"""Constraint values, their checks, and the handler contract.

A constrained problem is ``minimise f(x) subject to g(x) <= 0``, with ``g`` a vector
of ``m`` constraint values per candidate (a value ``<= 0`` is satisfied). A
*constraint handler* turns the objective values ``F`` (shape ``(popsize,)``, to be
minimised) and the constraint values ``G`` (shape ``(popsize, m)``) of one
generation into the values the strategy ranks, and learns between generations:

- :class:`~evostrat.constraints.lagrangian.AugmentedLagrangian` (the default of the CMA
  family: CMA-ES, sep-CMA-ES, LM-MA-ES, VkD-CMA; Atamna, Auger, Hansen 2017),
- :class:`~evostrat.constraints.penalty.Penalty` (every other strategy's default:
  Deb's feasibility rules, or a fixed quadratic penalty).

Counting: one *evaluation* is ``f`` and ``g`` at one candidate, as pycma's
``fmin_con2`` counts (its ``countevals``); the constraint function is not counted
separately.

Examples
--------
>>> import numpy as np
>>> G = check_constraints([[0.5, -1.0], [-0.1, -2.0]], 2)
>>> violation(G).tolist(), feasible(G).tolist()
([0.5, 0.0], [False, True])
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from evostrat.errors import CheckpointError, InvalidArgumentError, InvalidTypeError, ObjectiveError

__all__ = ["ConstraintHandler", "check_constraints", "evaluate_constraints", "violation", "feasible",
           "HANDLERS", "CMA_FAMILY", "check_vector", "MissingConstraintFunction"]

#: Names ``constraint_handler=`` accepts (besides an instance).
HANDLERS = ("auto", "augmented_lagrangian", "penalty")
#: Strategies whose ``"auto"`` handler is the augmented Lagrangian: CMA-ES and its variants with
#: cumulative step-size adaptation (with Deb's rules LM-MA-ES's step size runs away at an active
#: constraint in 5-D, and in 40-D it is still 8e-4 off after 60000 evaluations).
CMA_FAMILY = ("cma_es", "sep_cma_es", "lm_ma_es", "vkd_cma")


class ConstraintHandler:
    """The contract of a constraint handler (host-side numpy, float64).

    Subclasses define :meth:`values` (what the strategy is told) and may define
    :meth:`update` (learn after the generation was told) and :meth:`reset` (a new
    restart run).
    """

    name = "handler"

    def values(self, F: np.ndarray, G: np.ndarray) -> np.ndarray:
        """Values to rank (minimised), shape ``(popsize,)``, from ``F`` and ``G``."""
        raise NotImplementedError

    def update(self, F: np.ndarray, G: np.ndarray, values: np.ndarray) -> None:
        """Learn from the generation just told (``values`` as :meth:`values` returned)."""

    def reset(self) -> None:
        """Forget what was learnt (called at the start of each restart run)."""

    def state_values(self) -> dict[str, Any]:
        """What a checkpoint stores of the handler (plain data and numpy arrays); the
        built-in handlers define it, another handler cannot be checkpointed."""
        raise CheckpointError(f"a checkpoint cannot store the constraint handler {type(self).__name__} "
                              f"(only the built-in {HANDLERS[1:]} are stored)")

    def load_state_values(self, values: Any) -> None:
        """Set the state :meth:`state_values` returned (checked: a CheckpointError names a bad field)."""
        raise CheckpointError(f"a checkpoint cannot restore the constraint handler {type(self).__name__}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def check_constraints(G: Any, popsize: int, m: int | None = None, name: str = "constraints") -> np.ndarray:
    """``G`` as a float64 array of shape ``(popsize, m)``, or a clear error naming ``name``.

    A 1-D ``G`` of length ``popsize`` is one constraint per candidate. NaN counts as
    violated (``+inf``).

    Raises
    ------
    InvalidTypeError
        ``G`` holds something other than real numbers.
    InvalidArgumentError
        ``G`` has another shape, or ``m`` constraints were expected and it has more or fewer.
    """
    arr = _real_array(G, f"{name} must be real numbers, shape ({popsize}, m); got {type(G).__name__}")
    if arr.ndim == 1 and arr.shape[0] == popsize:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] != popsize or arr.shape[1] < 1:
        raise InvalidArgumentError(f"{name} must have shape ({popsize}, m): one row of m >= 1 constraint "
                                   f"values g(x) <= 0 per candidate; got shape {arr.shape}")
    if m is not None and arr.shape[1] != m:
        raise InvalidArgumentError(f"{name} must have {m} values per candidate (as in earlier generations), "
                                   f"got {arr.shape[1]}")
    return np.where(np.isnan(arr), np.inf, arr)


def evaluate_constraints(fun: Callable[[np.ndarray], Any], X: np.ndarray) -> np.ndarray:
    """The constraint values of the population ``X`` (host numpy) as ``(popsize, m)``.

    ``fun(x)`` is called for each row of ``X``; a function marked with
    :func:`~evostrat.evaluators.local.vectorized` (``fun.vectorized = True``) is called once with
    the whole population and returns ``(popsize, m)`` (or ``(popsize,)``: one constraint). Either
    gets a copy, free to modify: the candidates told to the strategy stay as they were sampled.

    Raises
    ------
    InvalidArgumentError
        When the rows do not all return the same number ``m >= 1`` of values, or a vectorised
        function returns another shape.
    ObjectiveError
        When ``fun`` raises (for example a function written for the whole population but not
        marked: it gets one candidate ``(dim,)``); the original exception is chained, ``index`` the
        candidate's row (``None`` for a vectorised call).

    Examples
    --------
    >>> from evostrat import vectorized
    >>> X = np.array([[0.5, 2.0], [-1.0, 0.0]])
    >>> evaluate_constraints(lambda x: [x[0] - 1.0, x[1] - 3.0], X).tolist()
    [[-0.5, -1.0], [-2.0, -3.0]]
    >>> evaluate_constraints(vectorized(lambda X: X[:, 0] - 1.0), X).tolist()
    [[-0.5], [-2.0]]
    """
    if getattr(fun, "vectorized", False) is True:
        out = _called(fun, X.copy(), f"constraints(X) raised on the population (shape {tuple(X.shape)}; the "
                                     "function is marked vectorized): ")
        return check_constraints(out, X.shape[0], name="constraints(X) (marked vectorized: called with the population)")
    rows = []
    for i, x in enumerate(X):
        out = _called(fun, x.copy(), f"constraints(x) raised on candidate {i} (one candidate, shape {tuple(x.shape)}): ",
                      f"; a function of the whole population (shape {tuple(X.shape)}) must be marked with "
                      "@evostrat.vectorized", index=i)
        g = np.atleast_1d(_real_array(out, f"constraints(x) must return real numbers; got {type(out).__name__} "
                                           f"for candidate {i}"))
        if g.ndim != 1 or g.size < 1 or (rows and g.size != rows[0].size):
            expected = "(m,) with m >= 1" if not rows else f"({rows[0].size},) as for the first candidate"
            raise InvalidArgumentError(f"constraints(x) must return shape {expected}; got shape {g.shape} "
                                       f"for candidate {i}")
        rows.append(g)
    return check_constraints(np.stack(rows), len(rows))


def _real_array(values: Any, refusal: str) -> np.ndarray:
    """``values`` as float64, or :class:`~evostrat.errors.InvalidTypeError` reading ``refusal``:
    ``None``, strings, mappings and complex numbers are refused (``None`` would be NaN, a
    violation, and a complex number would lose its imaginary part)."""
    try:
        arr = np.asarray(values)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"dtype {arr.dtype}")
        return arr.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise InvalidTypeError(f"{refusal}: {err}") from err


def _called(fun: Callable[[np.ndarray], Any], arg: np.ndarray, before: str, after: str = "",
            index: int | None = None) -> Any:
    """``fun(arg)``; what it raises (but an interrupt) as an :class:`~evostrat.errors.ObjectiveError`
    reading ``before``, the exception, ``after``, the original chained."""
    try:
        return fun(arg)
    except KeyboardInterrupt:  # the driver was interrupted: the run stops
        raise
    except BaseException as err:  # SystemExit too, as the objective's
        raise ObjectiveError(f"{before}{type(err).__name__}: {err}{after}", index=index) from err


def violation(G: np.ndarray) -> np.ndarray:
    """Sum of the positive parts of each row of ``G`` (0 for a feasible candidate)."""
    return np.maximum(G, 0.0).sum(axis=1)


def feasible(G: np.ndarray) -> np.ndarray:
    """``True`` for the rows of ``G`` that satisfy every constraint."""
    return np.all(G <= 0.0, axis=1)


class MissingConstraintFunction:
    """The constraint function of a run loaded from a checkpoint, until it is passed again.

    A function is code and a checkpoint never stores code: ``load_checkpoint`` (a warm start,
    an ask/tell loop) works without it, and continuing the run raises the error that asks for
    it (the driver calls :meth:`check` before evaluating).
    """

    def __call__(self, x: Any = None) -> Any:
        raise InvalidArgumentError("the checkpointed run was fitted with constraints=g, a function a checkpoint "
                                   "does not store: pass it again, ES.resume(path, objective, constraints=g)")

    check = __call__


def check_vector(value: Any, m: int | None, kind: type, what: str) -> np.ndarray | None:
    """``value`` (``None``, or a 1-D array of ``m`` float64 or bool values) copied, for a checkpoint.

    Raises
    ------
    CheckpointError
        Naming ``what`` when the value has another type, dtype or shape, or non-finite floats.
    """
    if value is None:
        return None
    dtype = np.dtype(np.float64 if kind is float else bool)
    if not isinstance(value, np.ndarray) or value.dtype != dtype or value.shape != (m,) or (
            kind is float and not np.isfinite(value).all()):
        shown = f"{value.dtype} {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
        raise CheckpointError(f"checkpoint {what} must be {'finite ' if kind is float else ''}{dtype} of shape "
                              f"({m},), got {shown}")
    return np.array(value, copy=True)
