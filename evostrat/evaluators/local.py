"""Evaluators: how a population's values are computed from an objective.

``ES(evaluator=...)``: ``"vectorized"`` calls ``objective(X)`` once with the
population ``(popsize, dim)``; ``"serial"`` calls ``objective(x)`` per row;
``"auto"`` (default) follows one rule, so that a per-candidate function is never
called with a 2-D array unless it is marked or the call is unambiguous:

1. an objective marked with :func:`vectorized` (or carrying ``objective.vectorized =
   True/False``) is called as marked, with no probe;
2. otherwise it is first called with candidate 0 alone, shape ``(dim,)``, as a
   per-candidate objective expects. If that returns one value (one behaviour vector for
   evolvability strategies), it is per-candidate: called once per candidate from then on
   (the probe's value is candidate 0's, no call is wasted), with one
   :class:`~evostrat.errors.PerCandidateWarning` (mark the objective to silence it, or to
   get one call per generation if it also takes populations);
3. if it raises or returns several values, it refused one candidate: it is called with the
   population ``(popsize, dim)``, and a result of shape ``(popsize,)`` or ``(popsize, 1)``
   (numpy, torch, a list of one-element lists) is one value per candidate from then on;
   ``(popsize, k)`` is refused naming the shape, and an error on both calls is an
   :class:`~evostrat.errors.ObjectiveError` quoting both. When neither call's result is
   usable (a string, ``None``, several values either way), the error says what each call
   returned (:class:`~evostrat.errors.InvalidTypeError` for what is not numbers).

``"executor"`` and ``"ray"`` (:mod:`evostrat.evaluators`)
take options through ``evaluator_options``. For strategies that need behaviours
``ES.fit`` sets ``evaluator.behaviours = True`` (:mod:`evostrat.run.behaviours`).
An exception raised by the objective (``SystemExit`` too; a ``KeyboardInterrupt``
interrupts the run) is re-raised as :class:`~evostrat.errors.ObjectiveError` naming
the candidate, chained to the original. The objective gets copies (:func:`unshared`):
modifying them in place changes neither the population told nor ``x_``.

Examples
--------
>>> import numpy as np
>>> from evostrat.evaluators.local import AutoEvaluator
>>> from evostrat.backends import get_backend
>>> be = get_backend("numpy")
>>> ev = AutoEvaluator()
>>> ev.evaluate(lambda x: float(np.sum(x ** 2)), np.ones((3, 2)), be).tolist()
[2.0, 2.0, 2.0]
>>> ev.mode
'serial'
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Callable

import numpy as np

from evostrat.backends import Backend, to_host
from evostrat.errors import InvalidArgumentError, InvalidTypeError, ObjectiveError, PerCandidateWarning
from evostrat.params import Params
from evostrat.run.behaviours import population_output, split_outcome, stack_candidates

__all__ = ["Evaluator", "VectorizedEvaluator", "SerialEvaluator", "AutoEvaluator", "vectorized",
           "collect", "real_value", "unshared"]

Array = Any


def vectorized(objective: Callable) -> Callable:
    """Mark ``objective`` as taking a whole population ``(popsize, dim)``.

    Examples
    --------
    >>> from evostrat.evaluators.local import vectorized
    >>> @vectorized
    ... def f(X):
    ...     return (X ** 2).sum(axis=1)
    >>> f.vectorized
    True
    """
    objective.vectorized = True  # type: ignore[attr-defined]
    return objective


def unshared(x: Array) -> Array:
    """A copy of ``x`` (numpy, torch) for the objective to modify at will; immutable arrays as they are.

    A read-only view would cost less but turn objectives that work (``x -= 1``) into
    errors, and torch has none; rows are copied one by one (a torch row view can be
    ``resize_``-d over the next row).
    """
    if isinstance(x, np.ndarray):
        return x.copy()
    return x.clone() if hasattr(x, "copy_") else x  # torch tensors; JAX arrays cannot be modified


def real_value(value: Any, index: int) -> float:
    """What the objective returned for candidate ``index``, as a Python float.

    Accepts numbers and one-element arrays of any backend; anything else raises
    :class:`~evostrat.errors.InvalidTypeError` naming the candidate.

    Examples
    --------
    >>> import numpy as np
    >>> real_value(np.array([2.5]), 0)
    2.5
    """
    if isinstance(value, numbers.Real):
        return float(value)
    pair = ("; an objective returning (value, constraint values) needs fit(..., constraints='objective')"
            if isinstance(value, tuple) and len(value) == 2 else "")
    try:
        arr = np.asarray(to_host(value))
    except Exception as err:  # noqa: BLE001 - report any unconvertible return value
        raise InvalidTypeError(
            f"objective must return a real number for candidate {index}, got "
            f"{type(value).__name__}{pair}"
        ) from err
    if arr.size != 1 or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InvalidTypeError(
            f"objective must return a real number for candidate {index}, got "
            f"{type(value).__name__} of shape {arr.shape} and dtype {arr.dtype}{pair}"
        )
    return float(arr.reshape(()))


def collect(outputs: list, X: Array, backend: Backend, behaviours: bool = False) -> Array:
    """Per-candidate objective outputs as one array on ``X``'s backend, dtype and device.

    Real numbers give ``(n,)``; with ``behaviours``, :func:`evostrat.run.behaviours.stack_candidates`.
    """
    if behaviours:
        return stack_candidates(outputs, X, backend)
    host = np.asarray([real_value(out, i) for i, out in enumerate(outputs)], dtype=np.float64)
    return backend.asarray(host, dtype=X.dtype, device=backend.device(X))


class Evaluator(Params):
    """Base class: turn ``objective`` and a population into a vector of values.

    ``ES.fit`` passes ``evaluate(..., seed=...)`` (a :class:`~evostrat.evaluators.seeded.GaussianSeed`
    describing ``X``, or ``None``) only to evaluators with ``accepts_seed = True``, and
    ``replay=`` (a :class:`~evostrat.evaluators.replay.ReplayStep` or ``None``) only to those
    also with ``accepts_replay = True``: optional information, ``X`` itself always comes too.

    Examples
    --------
    A subclass implements ``evaluate``; ``ES(evaluator=...)`` takes an instance:

    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.evaluators.local import Evaluator
    >>> class Reversed(Evaluator):
    ...     def evaluate(self, objective, X, backend):
    ...         return backend.asarray([objective(x) for x in X[::-1]][::-1])
    >>> f = lambda x: float(x @ x)
    >>> es = ES("snes", evaluator=Reversed(), max_generations=10, random_state=0).fit(f, np.ones(3))
    >>> es.fun_ == ES("snes", evaluator="serial", max_generations=10, random_state=0).fit(f, np.ones(3)).fun_
    True
    """

    name = ""
    accepts_seed: bool = False  # see the class docstring
    accepts_replay: bool = False
    #: Accept behaviour outputs (set by ``ES.fit`` for strategies with ``needs_behaviours``).
    behaviours: bool = False

    def evaluate(self, objective: Callable, X: Array, backend: Backend) -> Array:
        """Values of shape ``(popsize,)`` on ``backend`` and ``X``'s device."""
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (worker pools); the evaluator may be used again after."""


class VectorizedEvaluator(Evaluator):
    """``objective(X)`` once per generation.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat.backends import get_backend
    >>> from evostrat.evaluators.local import VectorizedEvaluator
    >>> VectorizedEvaluator().evaluate(lambda X: (X ** 2).sum(axis=1), np.ones((3, 2)), get_backend("numpy"))
    array([2., 2., 2.])
    """

    name = "vectorized"

    def evaluate(self, objective: Callable, X: Array, backend: Backend) -> Array:
        n = X.shape[0]
        try:
            out = objective(unshared(X))
        except KeyboardInterrupt:  # the driver was interrupted: the run stops
            raise
        except BaseException as err:  # SystemExit too: never end the program quietly
            raise ObjectiveError(
                f"objective raised while evaluating the population of {n} candidates "
                f"(vectorised): {type(err).__name__}: {err}"
            ) from err
        return self.check(out, n, X, backend, self.behaviours)

    @staticmethod
    def check(out: Any, n: int, X: Array, backend: Backend, behaviours: bool = False) -> Array:
        """``objective(X)`` as ``n`` values (or behaviours) on ``X``'s backend and device."""
        if behaviours:
            return population_output(out, n, X, backend)
        try:
            values = backend.asarray(out, device=backend.device(X))
        except Exception as err:  # noqa: BLE001
            raise InvalidTypeError(
                f"a vectorised objective must return {n} real values, got "
                f"{type(out).__name__}"
            ) from err
        if tuple(values.shape) == (n, 1):  # one column: a value per candidate
            values = values[:, 0]
        if tuple(values.shape) != (n,):
            if getattr(getattr(values, "dtype", None), "kind", "f") not in "biuf":  # numpy holds str, None
                raise InvalidTypeError(f"values must be real numbers, got dtype {values.dtype}: a vectorised "
                                       f"objective must return {n} real values, got {_describe(out)}")
            raise InvalidArgumentError(
                f"a vectorised objective must return shape ({n},) (or ({n}, 1)), got shape "
                f"{tuple(values.shape)}; use evaluator='serial' for per-candidate objectives"
            )
        return values


class SerialEvaluator(Evaluator):
    """``objective(x)`` for each row ``x`` of the population, in order.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat.backends import get_backend
    >>> from evostrat.evaluators.local import SerialEvaluator
    >>> SerialEvaluator().evaluate(lambda x: float(x @ x), np.arange(6.0).reshape(3, 2), get_backend("numpy"))
    array([ 1., 13., 41.])
    """

    name = "serial"

    def evaluate(self, objective: Callable, X: Array, backend: Backend, first: Any = None) -> Array:
        """``first``: candidate 0's output when it is already known (the probe's call)."""
        values = [] if first is None else [first]
        for i in range(len(values), X.shape[0]):
            try:
                out = objective(unshared(X[i]))
            except KeyboardInterrupt:
                raise
            except BaseException as err:
                raise ObjectiveError(
                    f"objective raised on candidate {i}: {type(err).__name__}: {err}", index=i
                ) from err
            values.append(out if self.behaviours else real_value(out, i))
        return collect(values, X, backend, self.behaviours)


class AutoEvaluator(Evaluator):
    """Vectorised when the objective handles populations, else per-candidate.

    Attributes
    ----------
    mode : {None, "vectorized", "serial"}
        The decision, made at the first call.
    """

    name = "auto"

    def __init__(self) -> None:
        self.mode: str | None = None
        self._vec = VectorizedEvaluator()
        self._serial = SerialEvaluator()

    def evaluate(self, objective: Callable, X: Array, backend: Backend) -> Array:
        if self.mode is None:
            marked = getattr(objective, "vectorized", None)
            if marked is not None:
                self.mode = "vectorized" if marked else "serial"
            else:
                return self._probe(objective, X, backend)
        chosen = self._vec if self.mode == "vectorized" else self._serial
        chosen.behaviours = self.behaviours
        return chosen.evaluate(objective, X, backend)

    def _probe(self, objective: Callable, X: Array, backend: Backend) -> Array:
        """Decide the mode from one call with candidate 0 (see the module docstring)."""
        n, dim = X.shape[0], X.shape[1]
        try:
            first, refused = objective(unshared(X[0])), None
        except KeyboardInterrupt:
            raise
        except BaseException as err:  # noqa: BLE001 - a population objective may fail on one row
            first, refused = None, err
        if refused is None and self._one_output(first):
            self.mode = "serial"
            warnings.warn(
                f"the objective took one candidate (shape ({dim},)) and returned one value, so "
                "evaluator='auto' calls it once per candidate and never with the population; if it "
                f"also takes a population ({n}, {dim}), mark it with @evostrat.vectorized (or set "
                "objective.vectorized = True) for one call per generation, or set "
                "objective.vectorized = False (or evaluator='serial') to silence this warning",
                PerCandidateWarning, stacklevel=4)
            self._serial.behaviours = self.behaviours
            value = first if self.behaviours else real_value(first, 0)
            return self._serial.evaluate(objective, X, backend, first=value)
        # it refused one candidate: a population objective, unambiguously
        try:
            out = objective(unshared(X))
        except KeyboardInterrupt:
            raise
        except BaseException as err:
            single = (f"raised {type(refused).__name__}: {refused}" if refused is not None
                      else f"returned {_describe(first)}")
            raise ObjectiveError(
                f"objective raised on candidate 0: called with one candidate (shape ({dim},)) it "
                f"{single}; called with the population (shape ({n}, {dim})) it raised "
                f"{type(err).__name__}: {err}", index=0,
            ) from (refused if refused is not None else err)
        try:
            values = VectorizedEvaluator.check(out, n, X, backend, self.behaviours)
        except (InvalidArgumentError, InvalidTypeError) as err:
            shape = _shape(out)
            if refused is None:  # neither call gave what its mode needs: say what each returned
                raise type(err)(
                    f"objective must return one real number per candidate: called with one candidate (shape "
                    f"({dim},)) it returned {_describe(first)}, not one number, and called with the population "
                    f"(shape ({n}, {dim})) {_describe(out)}, not {n} real values") from err
            if shape is not None and len(shape) > 0 and shape[0] == n:
                raise  # a population objective's wrong shape: the error names it
            raise ObjectiveError(
                f"objective raised on candidate 0: called with one candidate (shape ({dim},)) it "
                f"raised {type(refused).__name__}: {refused}; called with the population it returned "
                f"{_describe(out)}, which is not one value per candidate ({err})", index=0,
            ) from refused
        refused = None  # its traceback holds this frame, whose callers hold the run: no reference cycle
        self.mode = "vectorized"
        return values

    def _one_output(self, out: Any) -> bool:
        """Whether ``out`` is what a per-candidate objective returns for one candidate."""
        try:
            if self.behaviours:
                fitness, raw = split_outcome(out) if isinstance(out, (tuple, dict)) else (None, out)
                if fitness is not None:
                    real_value(fitness, 0)
                return np.asarray(to_host(raw)).ndim <= 1
            real_value(out, 0)
        except Exception:  # noqa: BLE001 - not one candidate's output
            return False
        return True

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {}


def _shape(out: Any) -> tuple[int, ...] | None:
    shape = getattr(out, "shape", None)
    if shape is None:
        try:
            shape = np.shape(out)
        except Exception:  # noqa: BLE001 - ragged or exotic: no shape
            return None
    return tuple(shape)


def _describe(out: Any) -> str:
    shape = _shape(out)
    return type(out).__name__ if shape is None else f"{type(out).__name__} of shape {shape}"
