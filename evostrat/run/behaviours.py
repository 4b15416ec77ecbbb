"""Behaviour characterisations in the ask/tell contract.

Strategies that optimise *evolvability* (MaxVar and MaxEnt evolvability ES,
Gajewski, Clune, Stanley, Lehman, GECCO 2019, arXiv 1907.06077) are not told
one fitness value per candidate but a *behaviour characterisation*: a vector of
``k`` numbers describing what the candidate did (a robot's final ``(x, y)``).
Such strategies set ``needs_behaviours = True``, and ``tell(X, values)`` then
accepts:

- an array of shape ``(popsize, k)``: the behaviours, ``k >= 1``;
- an array of shape ``(popsize,)``: one behaviour dimension (``k = 1``);
- fitness and behaviours together: an :class:`Outcome` ``(fitness, behaviours)``,
  a plain ``tuple`` ``(fitness, behaviours)`` or a ``dict`` with the keys
  ``"fitness"`` and ``"behaviours"``, fitness of shape ``(popsize,)``. The
  strategy uses the behaviours only; the fitness (in the user's sense: minimised,
  or maximised with ``ES(maximize=True)``) is what :class:`~evostrat.ES` tracks
  in ``fun_``, ``x_``, ``history_`` and ``ftarget``, under the usual
  non-finite policy.

Behaviours must be finite (a NaN would poison the normalisation of the whole
population): any NaN or infinity raises :class:`~evostrat.errors.InvalidArgumentError`.
A list or array is a behaviour matrix; a *tuple* always means
``(fitness, behaviours)``.

``ES(...).fit(objective, x0)`` with such a strategy lets the objective return
any of the forms above for the whole population (vectorised), or per candidate
a number (``k = 1``), a vector ``(k,)``, or ``(fitness, behaviour_vector)`` as a
tuple, dict or :class:`Outcome`; the evaluators stack them.

What ``ES`` records for behaviour strategies is :func:`behaviour_record`'s: with
fitness, ``fun_``/``x_`` are the best fitness seen and its candidate; without,
``x_`` is the distribution's centre (the evolvable point) and ``fun_`` the
behavioural spread of the last population.

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies.evolvability import MaxVarES
>>> s = MaxVarES(popsize=6, sigma0=0.5).initialize(np.zeros(3), random_state=0)
>>> X = s.ask()
>>> s.tell(X, np.stack([X[:, 0], X[:, 1] ** 2], axis=1))        # behaviours (6, 2)
>>> X = s.ask()
>>> s.tell(X, Outcome(fitness=X.sum(axis=1), behaviours=X[:, :2]))
>>> s.tell(s.ask(), np.zeros((5, 2)))
Traceback (most recent call last):
...
evostrat.errors.InvalidArgumentError: maxvar_es needs behaviours of shape (6, k) (one row of k behaviour values per candidate) or (6,) (k = 1), optionally with fitness as (fitness, behaviours); got shape (5, 2)
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple, Sequence

import numpy as np

from evostrat.backends import Backend, to_host
from evostrat.errors import InvalidArgumentError, InvalidTypeError

Array = Any

__all__ = [
    "Outcome", "split_outcome", "check_outcome", "behaviour_spread", "population_output", "stack_candidates",
    "leading_rows", "behaviour_record",
]


class Outcome(NamedTuple):
    """Fitness and behaviours of a population (or of one candidate).

    Attributes
    ----------
    fitness : array, shape (popsize,), or number, or None
        In the user's sense; tracked by ``ES``, not used by evolvability strategies.
    behaviours : array, shape (popsize, k) or (k,)
    """

    fitness: Any
    behaviours: Any


def split_outcome(values: Any) -> tuple[Any, Any]:
    """``(fitness or None, behaviours)`` from any accepted form of ``values``."""
    if isinstance(values, dict):
        unknown = sorted(set(values) - {"fitness", "behaviours"})
        if unknown or "behaviours" not in values:
            raise InvalidArgumentError(
                "a dict of values must have the key 'behaviours' and optionally 'fitness', "
                f"got keys {sorted(values)}"
            )
        return values.get("fitness"), values["behaviours"]
    if isinstance(values, tuple):  # Outcome is a tuple too
        if len(values) != 2:
            raise InvalidArgumentError(
                "a tuple of values must be (fitness, behaviours), got a tuple of "
                f"{len(values)} items; pass behaviour matrices as arrays or lists"
            )
        return values[0], values[1]
    return None, values


def _needs(strategy_name: str, rows: int) -> str:
    return (
        f"{strategy_name} needs behaviours of shape ({rows}, k) (one row of k behaviour values "
        f"per candidate) or ({rows},) (k = 1), optionally with fitness as (fitness, behaviours)"
    )


def check_outcome(runner: Any, values: Any, rows: int) -> Outcome:
    """Validate ``values`` for a behaviour strategy; behaviours become ``(rows, k)``.

    The fitness part, when present, goes through the runner's fitness checks
    (shape ``(rows,)``, non-finite policy).
    """
    be = runner.backend
    name = runner.strategy.name or type(runner.strategy).__name__
    fitness, raw = split_outcome(values)
    try:
        b = be.asarray(raw, device=runner.device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise InvalidTypeError(
            f"{_needs(name, rows)}; got {type(raw).__name__}: {err}"
        ) from err
    if not be.xp.isdtype(b.dtype, ("real floating", "integral", "bool")):
        raise InvalidTypeError(f"behaviours must be real numbers, got dtype {b.dtype}")
    b = be.asarray(b, dtype=runner.dtype)
    if b.ndim == 1 and b.shape[0] == rows:
        b = be.xp.reshape(b, (rows, 1))
    if b.ndim != 2 or b.shape[0] != rows or b.shape[1] < 1:
        raise InvalidArgumentError(f"{_needs(name, rows)}; got shape {tuple(b.shape)}")
    if not bool(be.xp.all(be.xp.isfinite(b))):
        raise InvalidArgumentError(
            f"behaviours must be finite; {name} got NaN or infinite behaviour values"
        )
    f = None if fitness is None else runner.check_fitness(fitness, rows)
    return Outcome(fitness=f, behaviours=b)


def behaviour_spread(behaviours: Array, backend: Backend) -> float:
    """``sum_k Var_i[B_ik]``: the behavioural variance of a population, as a float."""
    host = np.asarray(backend.to_numpy(behaviours), dtype=np.float64)
    return float(np.sum(np.var(host, axis=0)))


# -- evaluator support: turn objective outputs into what tell accepts -----------------------
def _host_vector(value: Any, index: int, what: str) -> np.ndarray:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return np.asarray([float(value)])
    try:
        arr = np.asarray(to_host(value))
    except Exception as err:  # noqa: BLE001 - report any unconvertible return value
        raise InvalidTypeError(
            f"objective must return {what} for candidate {index}, got {type(value).__name__}"
        ) from err
    if arr.ndim > 1 or arr.size < 1 or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InvalidTypeError(
            f"objective must return {what} for candidate {index}, got "
            f"{type(value).__name__} of shape {arr.shape} and dtype {arr.dtype}"
        )
    return np.asarray(arr, dtype=np.float64).reshape(-1)


def stack_candidates(outputs: Sequence[Any], X: Array, backend: Backend) -> Any:
    """Stack per-candidate outputs (number, ``(k,)`` vector, or ``(fitness, vector)``).

    Returns an array ``(n, k)`` or an :class:`Outcome` of ``(n,)`` fitness and
    ``(n, k)`` behaviours on ``X``'s backend, dtype and device.
    """
    fitness: list[float] = []
    rows: list[np.ndarray] = []
    with_fitness = None
    for i, out in enumerate(outputs):
        f, b = split_outcome(out) if isinstance(out, (tuple, dict)) else (None, out)
        if with_fitness is None:
            with_fitness = f is not None
        if (f is not None) != with_fitness:
            raise InvalidArgumentError(
                f"objective returned fitness with behaviours for some candidates but not for "
                f"candidate {i}; return (fitness, behaviours) for all or none"
            )
        if f is not None:
            fitness.append(float(_host_vector(f, i, "a real fitness number")[0]))
        rows.append(_host_vector(b, i, "a behaviour vector of shape (k,)"))
    k = {r.shape[0] for r in rows}
    if len(k) > 1:
        raise InvalidArgumentError(
            f"behaviour vectors must all have the same length k, got lengths {sorted(k)}"
        )
    device = backend.device(X)
    B = backend.asarray(np.stack(rows), dtype=X.dtype, device=device)
    if not with_fitness:
        return B
    return Outcome(backend.asarray(np.asarray(fitness), dtype=X.dtype, device=device), B)


def population_output(out: Any, n: int, X: Array, backend: Backend) -> Any:
    """A vectorised objective's output (array or fitness/behaviours pair) on ``X``'s backend.

    Only the leading (population) axis is checked here; ``tell`` checks the rest.
    """
    fitness, raw = split_outcome(out)
    device = backend.device(X)
    parts = []
    for what, value in (("fitness", fitness), ("behaviours", raw)):
        if value is None:
            parts.append(None)
            continue
        try:
            arr = backend.asarray(value, device=device)
        except Exception as err:  # noqa: BLE001
            raise InvalidTypeError(
                f"a vectorised objective must return {what} as an array with {n} rows, got "
                f"{type(value).__name__}"
            ) from err
        if arr.ndim < 1 or arr.shape[0] != n:
            raise InvalidArgumentError(
                f"a vectorised objective must return {what} with {n} rows (one per candidate), "
                f"got shape {tuple(arr.shape)}; use evaluator='serial' for per-candidate objectives"
            )
        parts.append(arr)
    return parts[1] if parts[0] is None else Outcome(parts[0], parts[1])


def leading_rows(out: Any) -> int | None:
    """Rows of a (possibly paired) vectorised output, or ``None`` if it has no shape."""
    fitness, raw = split_outcome(out) if isinstance(out, (tuple, dict)) else (None, out)
    shape = getattr(raw, "shape", None)
    if shape is None:
        try:
            shape = np.shape(raw)
        except Exception:  # noqa: BLE001
            return None
    return int(shape[0]) if len(shape) in (1, 2) else None


# -- what the driver records ------------------------------------------------------------------
def behaviour_record(runner: Any, outcome: Outcome) -> dict[str, Any]:
    """The history columns of a behaviour generation, after the strategy was told it.

    ``behaviour_var`` (the population's spread ``sum_k Var_i[B_ik]``, in the behaviours'
    units; larger is more evolvable), ``behaviour_dims`` (``k``) and ``objective`` (the
    statistic whose gradient the strategy ascends,
    :meth:`~evostrat.strategies.base.Strategy.evolvability`). Without fitness only
    budgets, ``tolx`` and the strategy's own criteria can stop the run.
    """
    be = runner.backend
    return {
        "behaviour_var": behaviour_spread(outcome.behaviours, be),
        "behaviour_dims": int(outcome.behaviours.shape[1]),
        "objective": float(be.to_numpy(runner.strategy.evolvability(runner.state))),
    }
