"""``evostrat.minimize``: a scipy-style entry point for users arriving from ``scipy.optimize``.

``minimize(fun, x0, method="cma_es", bounds=..., constraints=..., options=...)`` runs an
:class:`~evostrat.ES` and returns a :class:`scipy.optimize.OptimizeResult` with scipy's
fields ``x``, ``fun``, ``nfev``, ``nit``, ``success``, ``status``, ``message`` (and
``maxcv``, the largest constraint violation of ``x``, when there are constraints), plus
``stop_reason`` and the fitted ``es``.

Arguments as scipy reads them:

- ``fun(x, *args) -> float`` for one candidate (``options={"evaluator": "vectorized"}``
  for a function of the whole population).
- ``bounds``: a sequence of ``(min, max)`` pairs (``None`` for no bound) or a
  :class:`scipy.optimize.Bounds`. An ``x0`` outside them is clipped into them with an
  :class:`~evostrat.errors.OptimizeWarning`, as scipy's Nelder-Mead and Powell do (``ES.fit``
  refuses it).
- ``constraints``: scipy's dicts ``{"type": "ineq", "fun": c, "args": ()}`` meaning
  ``c(x) >= 0``, :class:`~scipy.optimize.NonlinearConstraint`,
  :class:`~scipy.optimize.LinearConstraint`, a list of these, or evostrat's own callable
  ``g(x) <= 0``. Equality constraints are refused: write ``h(x) = 0`` as two
  inequalities ``|h(x)| <= eps`` (an equality's feasible set has no volume to sample).
- ``options``: any :class:`~evostrat.ES` parameter (``sigma0``, ``popsize``,
  ``max_evals``, ``ftarget``, ``restarts``...), scipy's names ``maxfev``/``maxfun``
  (``max_evals``), ``maxiter`` (``max_generations``), ``seed`` (``random_state``) and
  ``constraint_handler``; ``disp`` is accepted and ignored.
- ``callback(intermediate_result)``: called after each generation with an
  ``OptimizeResult`` holding ``x``, ``fun``, ``nfev``, ``nit`` (a callback whose
  parameter has another name gets ``xk``, the best point so far, as scipy's old
  style); raising ``StopIteration`` ends the run (scipy's convention).
- ``tol``: the ES's ``tolfun``.

``status``: 0 converged (``tolfun``, ``tolx``, ``ftarget``... ), 1 the evaluation or
generation budget ran out, 2 no feasible point was found (with ``constraints``), or no point
of a finite value (every value NaN or infinite: ``x`` is then ``x0`` and ``fun`` ``inf``, as
scipy's methods report ``success=False`` for NaN values), 3 the callback stopped it,
4 the search degenerated (``tolconditioncov``, ``noeffectaxis``...: a stall, not a
solution) or the restart budget ran out. ``success`` is ``status == 0``.

Examples
--------
>>> import numpy as np
>>> import evostrat
>>> res = evostrat.minimize(lambda x: float(np.sum((x - 1) ** 2)), np.zeros(3),
...                         constraints={"type": "ineq", "fun": lambda x: 0.5 - x[0]},
...                         options={"seed": 1, "sigma0": 0.5})
>>> res.success, round(float(res.x[0]), 4), round(res.fun, 4), res.maxcv
(True, 0.5, 0.25, 0.0)
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import numpy as np

from evostrat.errors import InvalidArgumentError, InvalidTypeError, OptimizeWarning
from evostrat.estimator import ES

__all__ = ["minimize"]

#: scipy option names -> ES parameters.
ALIASES = {"maxfev": "max_evals", "maxfun": "max_evals", "maxiter": "max_generations", "seed": "random_state"}
CONVERGED = frozenset({"ftarget", "tolfun", "tolx", "tolfunhist", "tolflatfitness"})
BUDGET = frozenset({"maxfevals", "maxiter"})
MESSAGES = {
    0: "Optimization terminated successfully ({reason}).",
    1: "Maximum number of {what} has been exceeded ({reason}).",
    2: "No feasible point was found ({reason}).",
    3: "Stopped by the callback.",
    4: "The search stopped without converging ({reason}).",
}


def minimize(fun: Callable[..., float], x0: Any, args: tuple = (), method: str = "cma_es", *, bounds: Any = None,
             constraints: Any = (), tol: float | None = None, callback: Callable[[Any], Any] | None = None,
             options: dict[str, Any] | None = None, jac: Any = None, hess: Any = None, hessp: Any = None) -> Any:
    """Minimise ``fun`` from ``x0`` with an evolution strategy; scipy's interface and result.

    Parameters
    ----------
    fun : callable
        ``fun(x, *args) -> float``.
    x0 : array-like, shape (n,)
        A number is taken as a 1-D point, as scipy takes it (``np.atleast_1d``).
    args : tuple
        Extra arguments of ``fun``.
    method : str
        A strategy name (``"cma_es"``, ``"sep_cma_es"``, ``"snes"``, ``"xnes"``...).
    bounds, constraints, callback, options
        As described in :mod:`evostrat.minimize` (keyword-only: scipy's positions after
        ``method`` are the gradient arguments ``jac``, ``hess``, ``hessp``).
    tol : float, optional
        ``tolfun`` (the ES's change-in-value tolerance), as scipy's ``tol`` sets a method's own.
    jac, hess, hessp : optional
        Accepted for calls written for scipy's gradient methods and not used, with a
        ``RuntimeWarning`` when given (as scipy's derivative-free methods do).

    Returns
    -------
    scipy.optimize.OptimizeResult

    Examples
    --------
    >>> import numpy as np
    >>> import evostrat
    >>> res = evostrat.minimize(lambda x: float(((x - 1.0) ** 2).sum()), np.zeros(3),
    ...                         bounds=[(-2, 2)] * 3, options={"seed": 0})
    >>> res.success, res.status, res.stop_reason, np.round(res.x, 4).tolist()
    (True, 0, 'tolfun', [1.0, 1.0, 1.0])
    """
    from scipy.optimize import OptimizeResult

    if not callable(fun):
        raise InvalidTypeError(f"fun must be callable, got {type(fun).__name__}")
    if not isinstance(args, tuple):
        args = (args,)
    if callback is not None and not callable(callback):
        raise InvalidTypeError(f"callback must be None or a callable, got {type(callback).__name__}")
    for name, value in (("jac", jac), ("hess", hess), ("hessp", hessp)):
        if value is not None and value is not False:
            warnings.warn(f"evostrat.minimize ({method}) does not use gradient information ({name})", RuntimeWarning,
                          stacklevel=2)
    try:
        x0 = np.atleast_1d(np.asarray(x0, dtype=np.float64))
    except (TypeError, ValueError) as err:
        hint = " (a callable x0, drawn again for each restart as in pycma, is ES(...).fit's)" if callable(x0) else ""
        raise InvalidTypeError(f"x0 must be a 1-D array of numbers, got {type(x0).__name__}{hint}") from err
    if x0.ndim != 1 or x0.size < 1:
        raise InvalidArgumentError(f"x0 must be a 1-D array of n >= 1 numbers, got shape {x0.shape}")
    params = _params(options, method)
    if tol is not None:
        params.setdefault("tolfun", tol)
    handler = params.pop("constraint_handler", "auto")
    params.setdefault("evaluator", "serial")
    if bounds is not None:
        params["bounds"] = lower, upper = _bounds(bounds, x0.size)
        if (lower > upper).any():
            raise InvalidArgumentError(f"bounds: a lower bound is above its upper bound ({lower} > {upper})")
        if ((x0 < lower) | (x0 > upper)).any():  # as scipy's Nelder-Mead and Powell: warn, and start inside
            warnings.warn(f"x0 is not within the bounds: clipped into them ({x0} to {np.clip(x0, lower, upper)})",
                          OptimizeWarning, stacklevel=2)
            x0 = np.clip(x0, lower, upper)
    g = _constraints(constraints)
    objective = (lambda x: fun(x, *args)) if args else fun
    if params["evaluator"] == "vectorized" and args:
        objective = lambda X: fun(X, *args)  # noqa: E731
    es = ES(**params)
    hooks = [] if callback is None else [_callback(callback)]
    kwargs: dict[str, Any] = {"constraints": g, "constraint_handler": handler} if g is not None else {}
    es.fit(objective, x0, callbacks=hooks, **kwargs)
    x = np.asarray(es.x_, dtype=np.float64)
    reason = es.stop_reason_
    result = OptimizeResult(x=x, fun=float(es.fun_), nfev=int(es.n_evals_), nit=int(es.n_generations_),
                            stop_reason=reason, es=es)
    if g is not None:
        result.maxcv = float(max(0.0, np.max(np.asarray(g(x), dtype=np.float64))))
    if result.fun == math.inf:  # nothing feasible, or nothing finite: x is x0, never evaluated
        status = 2
    elif reason == "callback":
        status = 3
    elif reason in CONVERGED:
        status = 0
    elif reason in BUDGET:
        status = 1
    else:
        status = 4
    what = "function evaluations" if reason == "maxfevals" else "iterations"
    message = MESSAGES[status] if g is not None or status != 2 else "No finite function value was found ({reason})."
    result.update(status=status, success=status == 0, message=message.format(reason=reason, what=what))
    return result


def _params(options: dict[str, Any] | None, method: str) -> dict[str, Any]:
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise InvalidTypeError(f"options must be a dict of ES parameters, got {type(options).__name__}")
    params: dict[str, Any] = {"strategy": method}
    for key, value in options.items():
        if key == "disp":
            continue
        name = ALIASES.get(key, key)
        if name in params and name != "strategy":
            raise InvalidArgumentError(f"options sets {name!r} twice (as {key!r} and another name)")
        params[name] = value
    return params


def _bounds(bounds: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """scipy's bounds as ``(lower, upper)`` arrays."""
    if hasattr(bounds, "lb") and hasattr(bounds, "ub"):  # scipy.optimize.Bounds
        lower = np.broadcast_to(np.asarray(bounds.lb, dtype=np.float64), (n,)).copy()
        upper = np.broadcast_to(np.asarray(bounds.ub, dtype=np.float64), (n,)).copy()
        return lower, upper
    try:
        pairs = [tuple(p) for p in bounds]
    except TypeError as err:
        raise InvalidTypeError(f"bounds must be a sequence of (min, max) pairs or scipy.optimize.Bounds, got "
                               f"{type(bounds).__name__}") from err
    if len(pairs) != n or any(len(p) != 2 for p in pairs):
        raise InvalidArgumentError(f"bounds must hold one (min, max) pair per coordinate ({n}), got {bounds!r}")
    lower = np.array([-np.inf if lo is None else lo for lo, _ in pairs], dtype=np.float64)
    upper = np.array([np.inf if hi is None else hi for _, hi in pairs], dtype=np.float64)
    return lower, upper


def _constraints(constraints: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """One ``g(x) <= 0`` from scipy's constraint forms (or ``None`` for none)."""
    if constraints is None:
        return None
    if callable(constraints) and not hasattr(constraints, "fun"):
        return constraints  # evostrat's own g(x) <= 0
    items = [constraints] if isinstance(constraints, dict) or hasattr(constraints, "lb") else list(constraints)
    if not items:
        return None
    parts = [_one_constraint(c, i) for i, c in enumerate(items)]

    def g(x: np.ndarray) -> np.ndarray:
        return np.concatenate([part(x) for part in parts])

    return g


def _one_constraint(c: Any, i: int) -> Callable[[np.ndarray], np.ndarray]:
    if isinstance(c, dict):
        kind, fn, cargs = c.get("type"), c.get("fun"), tuple(c.get("args", ()))
        if kind == "eq":
            raise InvalidArgumentError(f"constraints[{i}]: equality constraints are not supported; write h(x) = 0 "
                                       "as two inequalities {'type': 'ineq', 'fun': lambda x: eps - abs(h(x))}")
        if kind != "ineq" or not callable(fn):
            raise InvalidArgumentError(f"constraints[{i}] must be {{'type': 'ineq', 'fun': callable}} (fun(x) >= 0 "
                                       f"when feasible), got {c!r}")
        return lambda x: -np.atleast_1d(np.asarray(fn(x, *cargs), dtype=np.float64))
    if hasattr(c, "lb") and hasattr(c, "ub"):  # NonlinearConstraint or LinearConstraint
        if hasattr(c, "A"):
            A = np.atleast_2d(np.asarray(c.A.toarray() if hasattr(c.A, "toarray") else c.A, dtype=np.float64))
            fn = lambda x: A @ x  # noqa: E731
        elif callable(getattr(c, "fun", None)):
            fn = c.fun
        else:
            raise InvalidTypeError(f"constraints[{i}] has lb/ub but neither A nor fun: {type(c).__name__}")
        lb, ub = np.asarray(c.lb, dtype=np.float64), np.asarray(c.ub, dtype=np.float64)
        if np.any(np.broadcast_to(lb == ub, np.broadcast(lb, ub).shape) & np.isfinite(lb)):
            raise InvalidArgumentError(f"constraints[{i}]: lb == ub is an equality constraint, not supported; "
                                       "give lb < ub (a tolerance band)")

        def g(x: np.ndarray) -> np.ndarray:
            v = np.atleast_1d(np.asarray(fn(x), dtype=np.float64))
            lo, hi = np.broadcast_to(lb, v.shape), np.broadcast_to(ub, v.shape)
            return np.concatenate([(lo - v)[np.isfinite(lo)], (v - hi)[np.isfinite(hi)]])

        return g
    raise InvalidTypeError(f"constraints[{i}] must be a dict, NonlinearConstraint, LinearConstraint or a "
                           f"callable g(x) <= 0, got {type(c).__name__}")


def _callback(callback: Callable[[Any], Any]) -> Callable[[Any], bool]:
    """An ES callback calling scipy's: ``callback(intermediate_result)`` when its one parameter
    has that name (scipy's new style), else ``callback(xk)`` with the best point so far."""
    import inspect

    from scipy.optimize import OptimizeResult

    try:
        new_style = list(inspect.signature(callback).parameters) == ["intermediate_result"]
    except (TypeError, ValueError):
        new_style = False

    def hook(es: Any) -> bool:
        x = np.asarray(es.x_, dtype=np.float64)
        state = OptimizeResult(x=x, fun=float(es.fun_), nfev=int(es.n_evals_), nit=int(es.n_generations_))
        try:
            callback(state if new_style else x)
        except StopIteration:
            return True
        return False

    return hook
