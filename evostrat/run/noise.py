"""Noisy objectives: repeated evaluations (their median) and uncertainty handling (UH-CMA-ES).

Two options of :class:`~evostrat.ES`, used by :meth:`~evostrat.ES.fit`:

- ``reevaluations=k`` (every strategy): each candidate is evaluated ``k`` times
  and the strategy is told the median of the ``k`` values, as pycma's ``fmin``
  aggregates them (``ask_and_eval(..., aggregation=np.median)``): it shrinks
  additive noise at ``k`` times the cost and ignores rare outliers.
  ``n_evals_`` counts every call.
- ``noise_handling=True`` or a dict of :class:`UncertaintyHandling` options
  (strategies with a step size ``sigma`` in their state: the CMA family, and any
  other whose state has a ``sigma`` field): the uncertainty handling of Hansen,
  Niederberger, Guzzella and Koumoutsakos, "A Method for Handling Uncertainty in
  Evolutionary Optimization With an Application to Feedback Control of
  Combustion", IEEE TEVC 13(1), 2009, with pycma's ``NoiseHandler`` settings.
  Each generation a few candidates (``2 + popsize / 20``: the first half of them
  and the best of the rest) are evaluated again, each evaluation slightly and
  freshly perturbed by ``epsilon`` times a step of the search distribution
  (``epsilon sigma C^{1/2} z``, pycma's ``ask(1, x, epsilon)``); the rank changes this causes in the joint ranking of
  the ``2 popsize`` values, beyond what the rank distance to neighbours explains
  (the ``theta`` percentile), give a noise measure ``s`` (paper, eqs. 2-4),
  smoothed as ``s <- s + c_s (mean - s)``. While ``s > 0`` (noise dominates the
  ranking) ``sigma`` is multiplied by ``alpha_sigma = 1 + 2 / (n + 10)`` after
  the update, and, up to ``max_evaluations``, the evaluations per candidate grow
  by the factor ``alpha_evals = 1 + 2 / (n + 10)``; while ``s <= 0`` they shrink
  by ``alpha_evals^(-1/4)`` down to ``reevaluations``. The raised step size keeps
  the signal (the fitness differences sigma buys) above the noise, which is how
  UH-CMA-ES keeps improving where plain CMA-ES stalls (additive noise, strong
  multiplicative noise). On noise plain CMA-ES tolerates, with a ranking noise that
  does not shrink with ``f`` (moderate multiplicative noise: ``f (1 + 0.3 N(0, 1))``
  in 10-D), ``s`` hovers around 0, sigma is raised in about half the generations and
  the run converges more slowly than without the handler, as with pycma's
  ``NoiseHandler`` (docs/guides/noise.md, "Which noise").

A checkpoint records the aggregation; one written before it was recorded (when repeated
evaluations were averaged) resumes with the mean (:func:`aggregation`,
:mod:`evostrat.checkpoint.features`). After ``fit``, ``es.run_.noise.handler`` holds the measure ``s`` and the current
``evaluations`` per candidate.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> rng = np.random.default_rng(0)
>>> def noisy(X):  # sphere with additive noise of standard deviation 0.01
...     return (X ** 2).sum(axis=1) + 0.01 * rng.standard_normal(len(X))
>>> es = ES("cma_es", sigma0=1.0, reevaluations=4, max_generations=60, random_state=1).fit(noisy, np.ones(3))
>>> es.n_evals_ == 4 * 60 * es.strategy_.popsize
True
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from evostrat.backends.trees import field_names, replace
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.run.state import check_schema, is_real
from evostrat.run.uncertainty import AGGREGATES, MAX_EVALUATIONS, UncertaintyHandling, aggregate_values, rank_change_measure
from evostrat.run.weak import BackRef

__all__ = ["UncertaintyHandling", "NoisyEvaluator", "aggregate_values", "aggregation", "noise_evaluator",
           "rank_change_measure"]


def _handler(option: Any) -> UncertaintyHandling | None:
    if option is None or isinstance(option, (bool, np.bool_)) and not option:
        return None
    if isinstance(option, (bool, np.bool_)):  # numpy's True as well, as ES accepts
        handler = UncertaintyHandling()
    elif isinstance(option, dict):
        valid = sorted(UncertaintyHandling().get_params())
        unknown = sorted(set(option) - set(valid))
        if unknown:
            raise InvalidArgumentError(f"noise_handling has no option {unknown[0]!r}; valid: {valid}")
        handler = UncertaintyHandling(**option)
    elif isinstance(option, UncertaintyHandling):  # its options: each run measures afresh, as with True
        handler = type(option)(**option.get_params())
    else:
        raise InvalidTypeError(f"noise_handling must be a bool, a dict of options or an UncertaintyHandling, "
                               f"got {type(option).__name__}")
    handler.validate_params()
    return handler


class NoisyEvaluator:
    """An evaluator that evaluates each candidate several times and measures the noise.

    Wraps the run's evaluator (``evaluate``, ``close`` and ``behaviours`` pass
    through); made by :func:`noise_evaluator`. Seeded populations are off (the
    reevaluated and perturbed candidates are not the asked rows).
    """

    accepts_seed = False
    accepts_replay = False

    def __init__(self, inner: Any, driver: Any, reevaluations: int, handler: UncertaintyHandling | None,
                 aggregate: str | None = None) -> None:
        self.inner, self.k, self.handler = inner, reevaluations, handler
        self._driver = BackRef(driver)  # weakly: the driver holds this evaluator (run.noise)
        #: how repeated evaluations become a value: ``aggregate``, else the handler's, else the median
        self.aggregate = aggregate or (handler.aggregate if handler is not None else "median")
        if handler is not None:
            handler.evaluations = float(max(reevaluations, handler.evaluations))
        seed = getattr(driver.config, "random_state", None)
        self.rng = np.random.default_rng(None if seed is None else [int(seed), 0x401CE])
        self.pending: tuple[Any, float] | None = None
        self.columns: dict[str, Any] = {}  # the last generation's history columns (noise handling)

    @property
    def driver(self) -> Any:
        """The run (:class:`~evostrat.run.driver.Driver`) this evaluator serves."""
        return self._driver()

    @property
    def behaviours(self) -> bool:
        return getattr(self.inner, "behaviours", False)

    @behaviours.setter
    def behaviours(self, value: bool) -> None:
        if value and (self.k > 1 or self.handler is not None):
            if isinstance(self.driver.constraint_fn, str):  # the objective returns (f, g)
                raise InvalidArgumentError("reevaluations and noise_handling aggregate fitness values only and "
                                           "do not support constraints='objective'; pass the constraint "
                                           "function as constraints=g (g(x) -> (m,) values)")
            raise InvalidArgumentError("reevaluations and noise_handling need a fitness strategy; "
                                       "behaviour strategies (maxvar_es, maxent_es) are not supported")
        self.inner.behaviours = value

    def close(self) -> None:
        self.inner.close()

    def values_of(self, objective: Callable, X: Any, backend: Any, **extra: Any) -> np.ndarray:
        """One evaluation of each row of ``X``, on the host (float64)."""
        values = self.inner.evaluate(objective, X, backend, **extra)
        return np.asarray(backend.to_numpy(backend.asarray(values)), dtype=np.float64).reshape(-1)

    def aggregate_of(self, objective: Callable, X: Any, backend: Any, times: int, **extra: Any) -> np.ndarray:
        """The aggregate (:attr:`aggregate`) of ``times`` evaluations of each row of ``X``, on the host
        (float64)."""
        values = np.stack([self.values_of(objective, X, backend, **extra) for _ in range(times)])
        return aggregate_values(values, self.aggregate)

    def left(self) -> int | None:
        """Evaluations left before ``max_evals`` (``None`` without it)."""
        limit = self.driver.termination.max_evals
        return None if limit is None else limit - (self.driver.state.run_start[0] + self.driver.runner.n_evals)

    def evaluate(self, objective: Callable, X: Any, backend: Any, **extra: Any) -> Any:
        """Values of ``X`` (aggregates of repeated evaluations); counts the extra evaluations.

        ``max_evals`` holds as for a plain generation (passed by less than one population): one
        that would spend more than is left evaluates each candidate (and each reevaluated one) only
        as often as ends the budget, and reevaluates only as many candidates as fit in what is left
        (none: no measurement, sigma and the measure unchanged).
        """
        runner, left = self.driver.runner, self.left()
        times = self.k if self.handler is None else int(self.handler.evaluations)
        generator = self.rng.bit_generator.state
        k = 0 if self.handler is None else self.handler.count(runner.popsize, self.rng)
        if left is not None:
            times = max(1, min(times, -(-left // (runner.popsize + k))))
            k = min(k, max(0, (left - times * runner.popsize) // times))  # the reevaluations that fit
        measure = self.handler is not None and k > 0
        try:  # KeyboardInterrupt too: the run goes back to its last generation, its generator too
            fit = self.aggregate_of(objective, X, backend, times, **extra)
            if measure:
                told = -fit if self.driver.maximize else fit
                idx = self.handler.choose(told, k)
                again = self.reevaluate(objective, X, backend, idx, times)
        except BaseException:
            self.rng.bit_generator.state = generator
            raise
        spent = (times - 1) * fit.shape[0]
        if self.handler is not None and not measure:  # no reevaluation fits the budget: nothing measured
            self.columns = {"noise": float(self.handler.s), "evals_per_candidate": times}
        if measure:
            refit = told.copy()
            refit[idx] = -again if self.driver.maximize else again
            self.handler.update(told, refit, idx)
            self.pending = (runner, self.handler.adapt(runner.dim, self.k))
            self.columns = {"noise": float(self.handler.s), "evals_per_candidate": times}
            spent += times * idx.size
        runner.n_evals += spent
        return backend.asarray(fit, dtype=runner.dtype, device=runner.device)

    def reevaluate(self, objective: Callable, X: Any, backend: Any, idx: np.ndarray, times: int) -> np.ndarray:
        """The aggregates of ``times`` evaluations of each candidate ``idx`` of ``X``, each evaluation
        at the candidate perturbed afresh by ``epsilon`` times a step of the search distribution, as
        pycma's ``NoiseHandler.reeval`` evaluates ``ask(1, x_i, sigma_fac=epsilon)``: ``epsilon sigma
        C^{1/2} z`` for CMA-ES, the distribution's shape, not one isotropic size."""
        runner, box, epsilon = self.driver.runner, self.driver.bounds, self.handler.epsilon
        # with bounds or integers: perturb the strategy's candidates, then map them
        base = np.array(backend.to_numpy(X if box is None else runner.pending)[idx], dtype=np.float64)
        steps = epsilon * self.steps(times * idx.size).reshape(times, idx.size, -1) if epsilon else None
        values = []
        for k in range(times):
            Xk = backend.asarray(base if steps is None else base + steps[k], dtype=runner.dtype, device=runner.device)
            if box is not None:
                Xk = box.transform(Xk)  # inside the box, integral on integer coordinates, as X
            values.append(self.values_of(objective, Xk, backend))
        return aggregate_values(np.stack(values), self.aggregate)

    def steps(self, count: int) -> np.ndarray:
        """``count`` rows ``x - m``, ``x`` drawn from the strategy's current distribution (``sigma
        C^{1/2} z`` for CMA-ES), by its own ``ask`` with keys from this evaluator's generator (the
        run's draws stay untouched)."""
        runner = self.driver.runner
        backend, state = runner.backend, runner.state
        template = np.asarray(backend.key_to_numpy(state.key))
        mean = np.asarray(backend.to_numpy(runner.mean), dtype=np.float64)
        rows: list[np.ndarray] = []
        while sum(map(len, rows)) < count:
            words = self.rng.integers(0, np.iinfo(template.dtype).max, size=template.shape, dtype=template.dtype,
                                      endpoint=True)
            Y, _ = runner.sample(replace(state, key=backend.key_from_numpy(words)))
            rows.append(np.asarray(backend.to_numpy(Y), dtype=np.float64).reshape(-1, mean.shape[-1]) - mean)
        return np.concatenate(rows)[:count]

    def record(self, row: dict[str, Any]) -> None:
        """Add the generation's ``"noise"`` (the measure ``s``) and ``"evals_per_candidate"`` to ``row``."""
        row.update(self.columns)
        self.columns = {}

    # -- checkpoints --------------------------------------------------------------------------
    def state_values(self) -> dict[str, Any] | None:
        """The uncertainty handling's state between generations (``None`` without it), for a checkpoint:
        the measure ``s``, the ``evaluations`` per candidate, the generator of the reevaluations and
        the sigma factor the next ``ask`` applies."""
        if self.handler is None:
            return None
        pending = self.pending if self.pending is not None and self.pending[0] is self.driver.runner else None
        return {"s": float(self.handler.s), "evaluations": float(self.handler.evaluations), "rng": self.rng,
                "pending": None if pending is None else float(pending[1])}

    @staticmethod
    def check_state_values(values: Any) -> dict[str, Any]:
        """``values`` if they are a state :meth:`state_values` could have returned.

        Raises
        ------
        CheckpointError
            Naming the first field of the wrong type or value.
        """
        finite = lambda v: is_real(v) and -math.inf < v < math.inf  # noqa: E731
        return check_schema(values, {
            "s": (finite, "a finite number"),
            "evaluations": (lambda v: finite(v) and v >= 1, "a finite number >= 1"),
            "rng": (lambda v: isinstance(v, np.random.Generator), "a generator state"),
            "pending": (lambda v: v is None or finite(v) and v >= 1, "a finite number >= 1 or null"),
        }, "noise handling")

    def load_state_values(self, values: Any) -> None:
        """Continue with the state :meth:`state_values` returned (checked by :meth:`check_state_values`)."""
        values = self.check_state_values(values)
        self.handler.s, self.handler.evaluations = float(values["s"]), float(values["evaluations"])
        self.rng = values["rng"]
        self.pending = None if values["pending"] is None else (self.driver.runner, float(values["pending"]))

    def restart(self) -> None:
        """A restart run begins: the measure ``s`` and the evaluations per candidate start afresh, as
        pycma's ``fmin`` makes a new ``NoiseHandler`` for each restart."""
        if self.handler is not None:
            self.handler.s, self.handler.evaluations = 0.0, float(max(self.k, 1))
        self.pending = None

    def before_ask(self, runner: Any) -> None:
        """Scale the step size of ``runner`` by the factor the last measurement chose."""
        if self.pending is None:
            return
        measured, factor = self.pending
        self.pending = None
        if measured is not runner or factor == 1.0:
            return  # a restart began since: the new run starts untouched
        runner.state = replace(runner.state, sigma=runner.state.sigma * factor)


def aggregation(driver: Any) -> str | None:
    """How ``driver``'s run aggregates the repeated evaluations of a candidate (``"median"`` or
    ``"mean"``); ``None`` for a run that evaluates each candidate once.

    The run's evaluator says it once a fit has begun; before, a checkpoint's aggregation
    (``driver.noise_aggregate``: the mean for a run checkpointed before the median was the
    default), else the ``noise_handling`` option's ``aggregate``, else the median.
    """
    if driver.noise is not None:
        return driver.noise.aggregate
    s = driver.config
    option = getattr(s, "noise_handling", False)
    handler = option not in (None, False) and not (isinstance(option, np.bool_) and not option)
    if int(getattr(s, "reevaluations", 1) or 1) == 1 and not handler:
        return None
    if driver.noise_aggregate is not None:
        return driver.noise_aggregate
    how = option.get("aggregate") if isinstance(option, dict) else getattr(option, "aggregate", None)
    return how if how in AGGREGATES else "median"


def noise_evaluator(driver: Any, evaluator: Any) -> Any:
    """``evaluator`` wrapped for the run's ``reevaluations``/``noise_handling`` (unchanged without).

    Raises
    ------
    InvalidArgumentError
        For ``noise_handling`` on a strategy whose state has no ``sigma``; for ``reevaluations``
        above ``MAX_EVALUATIONS`` or ``max_evals`` (no candidate could get them).
    """
    s = driver.config
    k = int(getattr(s, "reevaluations", 1) or 1)
    limit = driver.termination.max_evals
    if k > MAX_EVALUATIONS:
        raise InvalidArgumentError(f"reevaluations must be at most {MAX_EVALUATIONS} evaluations per candidate, "
                                   f"got {k}")
    if limit is not None and k > limit:
        raise InvalidArgumentError(f"reevaluations={k} exceeds max_evals={limit}: not one candidate could be "
                                   f"evaluated reevaluations times; lower reevaluations or raise max_evals")
    handler = _handler(getattr(s, "noise_handling", False))
    driver.noise = None
    if k == 1 and handler is None:
        return evaluator
    if handler is not None and "sigma" not in field_names(driver.runner.state):
        raise InvalidArgumentError(f"noise_handling needs a strategy with a step size sigma in its state; "
                                   f"{driver.runner.strategy.name!r} has none (reevaluations=k works for all)")
    driver.noise = NoisyEvaluator(evaluator, driver, k, handler, driver.noise_aggregate)
    saved, driver.noise_resume = driver.noise_resume, None
    if saved is not None and handler is not None:  # a resumed run continues its checkpoint's state
        driver.noise.load_state_values(saved)
    return driver.noise

