"""Restart strategies: IPOP and BIPOP, around any strategy.

``ES(strategy=..., restarts=...)`` runs the strategy from ``x0``; whenever the
run stops on one of its *local* criteria (``tolfun``, ``tolx``, ``tolfunhist``,
``tolstagnation``, ``tolflatfitness``, the strategy's own ``stop(state)``
criteria such as ``tolconditioncov``, or the run's own ``maxiter``), a new run
starts from ``x0`` (a callable ``x0``: from a new ``x0()``, as pycma's) with a new
population size and a fresh random stream. The
*global* criteria end everything: ``ftarget``, ``max_evals`` (``"maxfevals"``),
``max_generations`` (``"maxiter"``, counted over all runs) and callbacks: the
first run that reaches ``ftarget`` is the last. When the restart budget is spent
the whole run's reason is ``"maxrestarts"`` (each run's own reason stays in
``restarts_``). Each run's
``maxiter`` is pycma's ``100 + 150 (d + 3)^2 / sqrt(popsize)`` and its default ``tolstagnation``
``100 + 100 d^1.5 / popsize``, both for the run's own population (pycma's ``fmin2`` keeps
the first run's values for every restart; matching that gained no BBOB hits, BENCHMARKS.md).

- **IPOP** (Auger & Hansen, "A Restart CMA Evolution Strategy With Increasing
  Population Size", CEC 2005): run ``r`` has population ``popsize0 * incpopsize^r``
  (``incpopsize = 2``).
- **BIPOP** (Hansen, "Benchmarking a BI-Population CMA-ES on the BBOB-2009
  Function Testbed", GECCO 2009): two interleaved regimes. *Large* runs double
  the population as IPOP does (``popsize0 * 2^k`` for the k-th large run) and
  start with ``sigma0``. *Small* runs use
  ``floor(popsize0 * (popsize_large / popsize0)^(U^2))`` candidates (with
  ``popsize_large`` the last large population) and ``sigma0 * 10^(-2 U)``,
  ``U ~ U(0, 1)``, and at most ``ceil(0.5 * large_evals / popsize)`` generations
  (half of the evaluations spent by large runs, divided by their population: pycma's
  ``maxiter``, reached when ``countiter >= maxiter``). After the first run, a small
  run comes next whenever small runs (the first run counts as small) have used
  fewer evaluations than large runs, as in pycma. ``max_restarts`` counts
  large restarts only, and, as in pycma's ``fmin2``, the schedule ends as soon as
  the last large run has ended (no small runs after it).

Populations are rounded down, as pycma's ``int(popsize0 * incpopsize^k)``, from the
unrounded default population of the CMA family (``4 + 3 ln d``: 10.9 at d = 10, so 21,
43, 87 as in pycma, not 20, 40, 80) or the ``popsize`` given.

Ways to ask for them::

    ES("cma_es", restarts="ipop")
    ES("cma_es", restarts="bipop")
    ES("cma_es", restarts=dict(kind="bipop", max_restarts=9, incpopsize=2))
    ES("cma_es", restarts=Restarts("ipop", max_restarts=5))

On JAX with a traceable objective, each run of the schedule runs on the compiled driver
(:mod:`evostrat.run.compiled`), a program per population size; the runs are those of the
host loop. After ``fit``, ``es.restarts_`` lists the runs (population, sigma factor,
regime, evaluations, stop reason, best value) and every ``es.history_`` entry
carries the index of its ``"run"`` and its ``"popsize"``.

Examples
--------
>>> from evostrat.run.restarts import Restarts
>>> r = Restarts("ipop", max_restarts=3)
>>> plan = r.start(popsize0=10, dim=5)
>>> plans = [plan]
>>> while (plan := r.next(plan, n_evals=1000)) is not None:
...     plans.append(plan)
>>> [p.popsize for p in plans]
[10, 20, 40, 80]
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from evostrat.errors import InvalidArgumentError, InvalidTypeError, did_you_mean
from evostrat.params import Interval, Params, StrOptions
from evostrat.run.state import is_count, is_int, is_real
from evostrat.run.termination_defaults import default_max_generations

__all__ = ["Restarts", "RunPlan", "make_restarts", "after_run", "GLOBAL_REASONS", "SCHEDULE_SCHEMA"]


#: The fields of :meth:`Restarts.schedule_values` and their declared types.
SCHEDULE_SCHEMA: dict[str, tuple[Any, str]] = {  # a NaN, infinite or negative popsize0 or count loaded, then
    # the next restart raised ValueError/OverflowError (int(nan * 2)) or made a population of 1
    "popsize0": (lambda v: is_real(v) and 1 <= v < math.inf, "a finite number >= 1"),
    "dim": (lambda v: is_int(v) and v >= 1, "an int >= 1"),
    "large_runs": (is_count, "an int >= 0 and < 2**63"),
    "evals": (lambda v: isinstance(v, dict) and set(v) == {"small", "large"} and all(map(is_count, v.values())),
              "a dict of 'small' and 'large' ints >= 0"),
    "rng": (lambda v: isinstance(v, dict) and v.get("bit_generator") == "PCG64", "a PCG64 state dict"),
}

KINDS = ("ipop", "bipop")
#: Stop reasons that end the whole optimisation, never a single run only.
GLOBAL_REASONS = frozenset({"ftarget", "maxfevals", "callback"})


@dataclass(frozen=True)
class RunPlan:
    """One run of a restart schedule.

    Attributes
    ----------
    run : int
        0 for the first run.
    regime : {"initial", "large", "small"}
    popsize : int
    sigma_factor : float
        Multiplies ``sigma0``.
    max_generations : int
        The run's own ``maxiter`` (a local criterion).
    """

    run: int
    regime: str
    popsize: int
    sigma_factor: float
    max_generations: int

    def record(self, start_evals: int) -> dict[str, Any]:
        """The entry of ``ES.restarts_`` for this run (updated while it runs)."""
        return {
            "run": self.run, "regime": self.regime, "popsize": self.popsize,
            "sigma_factor": self.sigma_factor, "max_generations": self.max_generations,
            "start_evals": start_evals, "n_evals": 0, "stop_reason": None, "best": math.nan,
        }


class Restarts(Params):
    """IPOP or BIPOP restart schedule.

    Parameters
    ----------
    kind : {"ipop", "bipop"}
    max_restarts : int
        Restarts after the first run (BIPOP: large restarts only); pycma's 9.
    incpopsize : float
        Population factor between consecutive (large) runs, 2.
    random_state : int, optional
        Seed of BIPOP's random choices (the estimator passes its own).
    """

    parameter_constraints = {
        "kind": [StrOptions(KINDS)],
        "max_restarts": [Interval(numbers.Integral, 0, None)],
        "incpopsize": [Interval(numbers.Real, 1, None, closed="neither")],
        "random_state": [Interval(numbers.Integral, 0, None), None],
    }

    def __init__(self, kind: str = "ipop", max_restarts: int = 9, incpopsize: float = 2.0,
                 random_state: int | None = None) -> None:
        self.kind = kind
        self.max_restarts = max_restarts
        self.incpopsize = incpopsize
        self.random_state = random_state

    def schedule_values(self) -> dict[str, Any]:
        """Where the schedule stands, as plain data (:data:`SCHEDULE_SCHEMA`)."""
        return {
            "popsize0": self._popsize0, "dim": self._dim, "large_runs": self._large_runs,
            "evals": dict(self._evals), "rng": self._rng.bit_generator.state,
        }

    def load_schedule_values(self, values: dict[str, Any]) -> None:
        """Restore :meth:`schedule_values` (checked against :data:`SCHEDULE_SCHEMA` by the caller)."""
        self._popsize0, self._dim = float(values["popsize0"]), int(values["dim"])
        self._large_runs = int(values["large_runs"])
        self._evals = {"small": int(values["evals"]["small"]), "large": int(values["evals"]["large"])}
        try:
            self._rng = np.random.default_rng()
            self._rng.bit_generator.state = values["rng"]
        except (TypeError, ValueError, KeyError) as err:
            raise InvalidArgumentError(f"restart schedule random state is malformed: {err}") from err

    # -- the schedule -------------------------------------------------------------------
    def start(self, popsize0: float, dim: int) -> RunPlan:
        """The first run; resets the schedule. ``popsize0`` may be unrounded (the strategy's
        :meth:`~evostrat.strategies.base.Strategy.unrounded_popsize`): the first run has
        ``int(popsize0)`` candidates and later ones grow from ``popsize0``, as pycma's ``fmin2``."""
        self.validate_params()
        self._popsize0, self._dim = float(popsize0), int(dim)
        self._rng = np.random.default_rng(self.random_state)
        self._large_runs = 0
        self._evals = {"small": 0, "large": 0}
        return RunPlan(0, "initial", int(self._popsize0), 1.0, self._maxiter(self._popsize0))

    def next(self, finished: RunPlan, n_evals: int) -> RunPlan | None:
        """The run after ``finished`` (which used ``n_evals`` evaluations), or ``None``."""
        regime = "small" if finished.regime in ("initial", "small") else "large"
        self._evals[regime] += int(n_evals)
        run = finished.run + 1
        if self._large_runs >= self.max_restarts:  # pycma ends after the last large run, small runs too
            return None
        if self.kind == "ipop" or self._evals["small"] >= self._evals["large"]:
            self._large_runs += 1
            popsize = int(self._popsize0 * self.incpopsize**self._large_runs)  # pycma's int(): rounds down
            return RunPlan(run, "large", popsize, 1.0, self._maxiter(popsize))
        u_pop, u_sigma = self._rng.uniform(size=2)
        ratio = self.incpopsize**self._large_runs
        popsize = max(2, int(math.floor(self._popsize0 * ratio ** (u_pop**2))))
        # pycma stops once countiter >= 0.5 * large evaluations / popsize: the generations are its ceiling
        budget = math.ceil(0.5 * self._evals["large"] / popsize)
        maxiter = max(1, min(self._maxiter(popsize), budget))
        return RunPlan(run, "small", popsize, float(10.0 ** (-2.0 * u_sigma)), maxiter)

    def _maxiter(self, popsize: float) -> int:
        return default_max_generations(self._dim, popsize)


def make_restarts(spec: Any, random_state: int | None = None) -> Restarts | None:
    """A validated :class:`Restarts` from ``ES(restarts=...)``.

    ``None`` (no restarts), ``"ipop"``, ``"bipop"``, a dict of :class:`Restarts`
    parameters (``kind`` required) or a :class:`Restarts` instance (copied).
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        out = Restarts(kind=spec)
    elif isinstance(spec, dict):
        unknown = sorted(set(spec) - {"kind", "max_restarts", "incpopsize", "random_state"})
        if unknown or "kind" not in spec:
            raise InvalidArgumentError(
                "restarts must be None, 'ipop', 'bipop', a dict with 'kind' and optionally "
                f"'max_restarts', 'incpopsize', or a Restarts instance; got {spec!r}"
            )
        out = Restarts(**spec)
    elif isinstance(spec, Restarts):
        out = Restarts(**spec.get_params())
    else:
        raise InvalidTypeError(
            "restarts must be None, 'ipop', 'bipop', a dict or a Restarts instance, got "
            f"{type(spec).__name__}"
        )
    if isinstance(out.kind, str) and out.kind not in KINDS:
        raise InvalidArgumentError(f"Restarts: kind must be one of {tuple(sorted(KINDS))}, got "
                                   f"{out.kind!r}{did_you_mean(out.kind, KINDS)}")
    if out.random_state is None:
        out.random_state = random_state
    out.validate_params()
    return out


def after_run(driver: Any, reason: str | None, gen_best: float) -> str | None:
    """The restart bookkeeping of ``driver`` (a :class:`~evostrat.run.driver.Driver` with restarts)
    after a generation whose best value was ``gen_best`` and whose criteria gave ``reason``.

    Updates the current run's entry of ``restarts_``; when a local criterion ended the run and
    the schedule has another, starts it (``driver.start_run``) and returns ``None``; else returns
    the whole run's reason (``"maxrestarts"`` once the schedule is spent).
    """
    state = driver.state
    record = state.restarts[-1]
    record["n_evals"] = driver.runner.n_evals
    better = gen_best > record["best"] if driver.maximize else gen_best < record["best"]
    if better or math.isnan(record["best"]):
        record["best"] = gen_best
    over_budget = state.n_generations >= (driver.config.max_generations or math.inf)
    if reason is None and over_budget:
        reason = "maxiter"  # the global generation budget over all runs
    record["stop_reason"] = reason
    if reason is None or reason in GLOBAL_REASONS or over_budget:
        return reason
    plan = driver.restarts.next(state.plan, driver.runner.n_evals)
    if plan is None:
        return "maxrestarts"  # the whole run's reason; the last run's stays in its record
    driver.start_run(plan)
    return None
