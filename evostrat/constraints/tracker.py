"""The run's side of constraint handling: one generation's ``(F, G)`` to told values.

:class:`ConstrainedRun` is what the driver (:class:`~evostrat.run.driver.Driver`)
holds when a run has constraints: it checks ``G``, asks the handler for the values
the strategy ranks, marks the feasible candidates for the best-so-far (``x_`` is the
best *feasible* candidate) and gives the history its ``"violation"`` (the smallest
``sum max(0, g)`` of the generation) and ``"feasible"`` (the feasible fraction).

Examples
--------
>>> import numpy as np
>>> run = ConstrainedRun("penalty", "snes", dim=2)
>>> told, best_of, extra = run.apply(np.array([1.0, 2.0]), [[0.5], [-1.0]], maximize=False)
>>> told.tolist(), best_of.tolist(), extra
([2.5, 2.0], [nan, 2.0], {'violation': 0.0, 'feasible': 0.5})
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evostrat.constraints.base import (
    CMA_FAMILY, HANDLERS, ConstraintHandler, check_constraints, feasible, violation,
)
from evostrat.constraints.lagrangian import AugmentedLagrangian
from evostrat.constraints.penalty import Penalty
from evostrat.errors import CheckpointError, InvalidArgumentError, InvalidTypeError, did_you_mean
from evostrat.run.state import check_schema, is_int

__all__ = ["ConstrainedRun", "make_constraint_handler", "check_fit_constraints", "restore_handler"]

_STORED = (AugmentedLagrangian, Penalty)  # the handlers a checkpoint stores
_HANDLER_SCHEMA: dict[str, tuple[Any, str]] = {"handler": (lambda v: v in HANDLERS[1:], f"one of {HANDLERS[1:]}"),
                                               "state": (lambda v: isinstance(v, dict), "a dict")}


def check_fit_constraints(constraints: Any, handler: Any, checkpoint: Any) -> None:
    """``ES.fit``'s ``constraints``/``constraint_handler``, checked before any evaluation.

    Raises
    ------
    InvalidTypeError
        ``constraints`` is neither callable nor ``"objective"``.
    InvalidArgumentError
        An unknown handler, or a checkpoint with a handler instance other than the
        built-in ones (whose state a checkpoint stores).
    """
    if not (callable(constraints) or constraints == "objective"):
        raise InvalidTypeError(f"constraints must be callable (g(x) -> (m,) values, feasible when <= 0) or "
                               f"'objective' (the objective returns (f, g)), got {constraints!r}")
    make_constraint_handler(handler, "", 1)
    if checkpoint is not None and isinstance(handler, ConstraintHandler) and type(handler) not in _STORED:
        raise InvalidArgumentError(f"checkpoint needs a constraint_handler whose state it can store: a name in "
                                   f"{HANDLERS} or an AugmentedLagrangian/Penalty, got {type(handler).__name__}")


def restore_handler(values: Any, dim: int) -> ConstraintHandler:
    """A built-in handler rebuilt from ``{"handler": name, "state": ...}`` (a checkpoint's).

    Raises
    ------
    CheckpointError
        For another name or a malformed state.
    """
    values = check_schema(values, _HANDLER_SCHEMA, "constraint handler")
    handler = make_constraint_handler(values["handler"], "", dim)
    handler.load_state_values(values["state"])
    return handler


def make_constraint_handler(spec: Any, strategy_name: str, dim: int) -> ConstraintHandler:
    """The handler ``constraint_handler=spec`` asks for.

    ``"auto"``: the augmented Lagrangian for the CMA family (``CMA_FAMILY``), the penalty
    for the other strategies; ``"augmented_lagrangian"``, ``"penalty"`` or a
    :class:`~evostrat.constraints.base.ConstraintHandler` instance (used as given;
    :class:`ConstrainedRun` resets what it learnt when a run starts).

    Raises
    ------
    InvalidArgumentError
        For another name or type, naming ``constraint_handler``.
    """
    if isinstance(spec, ConstraintHandler):
        return spec
    if not isinstance(spec, str) or spec not in HANDLERS:
        raise InvalidArgumentError(f"constraint_handler must be one of {HANDLERS} or a ConstraintHandler, "
                                   f"got {spec!r}{did_you_mean(spec, HANDLERS)}")
    if spec == "auto":
        spec = "augmented_lagrangian" if strategy_name in CMA_FAMILY else "penalty"
    return AugmentedLagrangian(dim) if spec == "augmented_lagrangian" else Penalty()


class ConstrainedRun:
    """A constraint handler with the bookkeeping of one (restarted) run.

    Parameters
    ----------
    spec : str or ConstraintHandler
        ``constraint_handler=`` (see :func:`~evostrat.constraints.base.make_constraint_handler`).
    strategy_name : str
        Chooses the ``"auto"`` handler.
    dim : int
    """

    def __init__(self, spec: Any, strategy_name: str, dim: int) -> None:
        self.handler = make_constraint_handler(spec, strategy_name, dim)
        self.auto, self.dim = isinstance(spec, str) and spec == "auto", dim
        self.handler.reset()  # an instance may have learnt in an earlier fit: each run starts afresh
        self.m: int | None = None
        self._last: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def apply(self, F: np.ndarray, G: Any, maximize: bool) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        """``(told, best_of, history columns)`` for objective values ``F`` in the user's sense.

        ``told`` is what the strategy minimises; ``best_of`` is ``F`` with NaN for the
        infeasible candidates.
        """
        F = np.asarray(F, dtype=np.float64)
        G = check_constraints(G, F.shape[0], self.m)
        self.m = G.shape[1]
        minimised = -F if maximize else F
        told = self.handler.values(minimised, G)
        ok = feasible(G)
        self._last = (minimised, G, told)
        extra = {"violation": float(violation(G).min()), "feasible": float(ok.mean())}
        return told, np.where(ok, F, np.nan), extra

    def update(self) -> None:
        """Let the handler learn from the generation :meth:`apply` saw (after the strategy's tell)."""
        if self._last is not None:
            self.handler.update(*self._last)
            self._last = None

    def reset(self) -> None:
        """A new restart run: the handler starts afresh."""
        self.handler.reset()
        self._last = None

    def state_values(self) -> dict[str, Any]:
        """``{"m", "handler"}`` between generations, for a checkpoint (see :func:`restore_handler`)."""
        return {"m": self.m, "handler": {"handler": self.handler.name, "state": self.handler.state_values()}}

    def load_state_values(self, values: Any) -> None:
        """Set what :meth:`state_values` returned, checked (a :class:`CheckpointError` names the field)."""
        values = check_schema(values, {"m": (lambda v: v is None or is_int(v) and v >= 1, "an int >= 1 or null"),
                                       "handler": (lambda v: isinstance(v, dict), "a dict")}, "constraints")
        spec = check_schema(values["handler"], _HANDLER_SCHEMA, "constraint handler")
        if self.auto and spec["handler"] != self.handler.name:  # an earlier version's "auto" (Deb's rules
            self.handler = make_constraint_handler(spec["handler"], "", self.dim)  # for LM-MA-ES, VkD-CMA)
        if spec["handler"] != self.handler.name:
            raise CheckpointError(f"checkpoint constraint handler {spec['handler']!r} is not the run's "
                                  f"{self.handler.name!r}")
        self.handler.load_state_values(spec["state"])
        self.m, self._last = values["m"], None
