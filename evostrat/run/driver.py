"""The run loop of the ``ES`` estimator and its per-generation bookkeeping.

:class:`RunLoopMixin` holds what happens to one run of
:class:`~evostrat.estimator.ES` between its public entry points: starting a
run (the strategy's :class:`~evostrat.run.asktell.AskTell` runner and the run's
:class:`~evostrat.run.termination.Termination`, with a restart plan when
``restarts=`` is set), logging a generation (best so far, ``history_``,
termination), the restart bookkeeping after a run ends on a local criterion
(:mod:`evostrat.run.restarts`), and the generation loop shared by
:meth:`ES.fit <evostrat.estimator.ES.fit>` and
:meth:`ES.resume <evostrat.estimator.ES.resume>`.

The mixin has no parameters of its own (``ES.get_params()`` is exactly the
``__init__`` arguments of :class:`~evostrat.estimator.ES`); it reads the
estimator's parameters and the state :meth:`ES.initialize
<evostrat.estimator.ES.initialize>` sets up.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from evostrat.run.asktell import AskTell
from evostrat.plugins.factories import make_evaluator, make_strategy
from evostrat.evaluators.replay import ReplayLog
from evostrat.run.restarts import GLOBAL_REASONS, RunPlan
from evostrat.evaluators.seeded import population_seed
from evostrat.strategies.base import _host as _host_any
from evostrat.run.termination import Termination, default_max_generations, history_criteria

if TYPE_CHECKING:
    from evostrat.estimator import ES

__all__ = ["RunLoopMixin"]


class RunLoopMixin:
    """Run start, per-generation logging, restarts and the generation loop of ``ES``."""

    def _start_run(self, plan: RunPlan | None) -> None:
        """Build the strategy, its ask/tell runner and the run's termination criteria."""
        popsize, sigma0, seed = self.popsize, self.sigma0, self.random_state
        if plan is not None:
            popsize = plan.popsize
            if plan.sigma_factor != 1.0:
                base = make_strategy(self.strategy, self.strategy_options, sigma0=self.sigma0)
                sigma0 = np.asarray(_host_any(base.sigma0, None), dtype=np.float64) * plan.sigma_factor
            if plan.run > 0 and seed is not None:
                seed = int(np.random.SeedSequence([int(seed), plan.run]).generate_state(1)[0])
        strategy = make_strategy(self.strategy, self.strategy_options, popsize=popsize, sigma0=sigma0)
        self.strategy_ = AskTell(
            strategy,
            self._x0,
            random_state=seed,
            backend=self.backend,
            dtype=self.dtype,
            device=self.device,
            nonfinite=self.nonfinite,
        )
        dim, lam = self.strategy_.dim, self.strategy_.popsize
        if self._restarts is not None and plan is None:
            plan = self._restarts.start(lam, dim)
        if plan is not None:
            max_generations = plan.max_generations  # the run's own maxiter (local)
        else:
            max_generations = self.max_generations
            if max_generations is None and self.max_evals is None:
                max_generations = default_max_generations(dim, lam)
        history = history_criteria(
            getattr(strategy, "termination_defaults", {}), dim, lam,
            tolfunhist=self.tolfunhist, tolstagnation=self.tolstagnation,
            tolflatfitness=self.tolflatfitness,
        )
        self._termination = Termination(
            max_evals=self.max_evals,
            max_generations=max_generations,
            ftarget=self.ftarget,
            tolfun=self.tolfun,
            tolx=self.tolx,
            maximize=self.maximize,
            history_length=10 + math.ceil(30 * dim / lam),
            dim=dim,
            popsize=lam,
            **history,
        )
        self._plan = plan
        self._run_start = (self.n_evals_, self.n_generations_)
        if plan is not None:
            self.restarts_.append(plan.record(self.n_evals_))

    def _record(self, X: Any, values: np.ndarray) -> None:
        runner = self.strategy_
        self._log_generation(
            values, lambda i: X[i], runner.sigma, lambda: runner.strategy.stop(runner.state)
        )

    def _log_generation(
        self,
        values: np.ndarray,
        candidate: Callable[[int], Any],
        sigma: float,
        stops: Callable[[], dict[str, Any]],
    ) -> None:
        """Best-so-far, history and termination after one generation (host side).

        ``candidate(i)`` returns row ``i`` of the population (only called for the
        generation's best) and ``stops()`` the strategy's own criteria.
        """
        runner = self.strategy_
        finite = np.where(np.isnan(values), np.inf if not self.maximize else -np.inf, values)
        i = int(np.argmax(finite) if self.maximize else np.argmin(finite))
        gen_best = float(finite[i])
        improved = gen_best > self.fun_ if self.maximize else gen_best < self.fun_
        if improved:
            self.fun_ = gen_best
            self.x_ = runner.backend.asarray(candidate(i), device=runner.device)
        evals0, generations0 = self._run_start
        self.n_evals_ = evals0 + runner.n_evals
        self.n_generations_ = generations0 + runner.generation
        ok = values[np.isfinite(values)]
        entry = {
            "generation": self.n_generations_,
            "n_evals": self.n_evals_,
            "best": self.fun_,
            "generation_best": gen_best,
            "median": float(np.median(ok)) if ok.size else math.nan,
            "sigma": sigma,
            "time": time.perf_counter() - self._t0,
        }
        if self._plan is not None:
            entry.update(run=self._plan.run, popsize=runner.popsize)
        self.history_.append(entry)
        reason = self._termination.check(
            runner.generation, self.n_evals_, self.fun_, values.tolist(), sigma
        )
        if reason is None:
            reason = next((name for name, hit in stops().items() if bool(hit)), None)
        if self._plan is not None:
            reason = self._after_run(reason, gen_best)
        self.stop_reason_ = reason

    def _after_run(self, reason: str | None, gen_best: float) -> str | None:
        """Bookkeeping of restarts; start the next run when a local criterion ended this one."""
        record = self.restarts_[-1]
        record["n_evals"] = self.strategy_.n_evals
        better = gen_best > record["best"] if self.maximize else gen_best < record["best"]
        if better or math.isnan(record["best"]):
            record["best"] = gen_best
        over_budget = self.n_generations_ >= (self.max_generations or math.inf)
        if reason is None and over_budget:
            reason = "maxiter"  # the global generation budget over all runs
        record["stop_reason"] = reason
        if reason is None or reason in GLOBAL_REASONS or over_budget:
            return reason
        plan = self._restarts.next(self._plan, self.strategy_.n_evals)
        if plan is None:
            return reason
        self._start_run(plan)
        return None

    def _run(self, objective: Callable, hooks: Any, host_free: bool = False) -> "ES":
        """The generation loop of :meth:`fit` and :meth:`resume` from the current state."""
        from evostrat.run.compiled import run_compiled

        self.fast_path_ = None
        if host_free and run_compiled(self, objective):
            if isinstance(self.x_, np.ndarray) and self._x0_type in (list, tuple):
                self.x_ = np.asarray(self.x_)
            return self
        evaluator = make_evaluator(self.evaluator, self.evaluator_options)
        evaluator.behaviours = self.strategy_.strategy.needs_behaviours  # see evostrat.run.behaviours
        # Remote evaluators may ship Gaussian populations as seeds, or replay the
        # strategy's updates on their workers from the told fitness (evostrat.evaluators.seeded).
        seeded = getattr(evaluator, "accepts_seed", False) and self._bounds is None
        replay = ReplayLog() if seeded and getattr(evaluator, "accepts_replay", False) else None
        try:
            hooks.start(self)
            while self.stop_reason_ is None:
                runner = self.strategy_
                extra = {"seed": population_seed(runner)} if seeded else {}
                if replay is not None:
                    extra["replay"] = replay.step(runner)
                X = self.ask()
                values = evaluator.evaluate(objective, X, runner.backend, **extra)
                told = self._tell(X, values)
                if replay is not None:
                    replay.told(runner, told)  # a restart inside tell starts a new run id
                hooks.generation(self)  # callbacks (may stop: "callback"), progress, checkpoint
        finally:
            evaluator.close()
            hooks.end(self)
        if isinstance(self.x_, np.ndarray) and self._x0_type in (list, tuple):
            self.x_ = np.asarray(self.x_)
        return self
