"""The one run driver: ask -> evaluate -> tell -> record, for every kind of run.

:class:`Driver` is the only code that tells a strategy its values during a run
(``ES.ask``/``ES.tell``, ``ES.fit`` on the host, and the compiled JAX chunks of
:mod:`evostrat.run.compiled`, whose generations it records from one transfer per
chunk). It advances the run value (:class:`~evostrat.run.state.RunState`) and the
strategy state in its :class:`~evostrat.run.asktell.AskTell` runner; everything else
is an option or an observer (the generations on the host, with the evaluator, are
:mod:`evostrat.run.host_loop`'s): **bounds** map candidates into the box
(:mod:`evostrat.run.bounds`), **restarts** start the next run when a local criterion
ends one, as the step after ``record`` (:mod:`evostrat.run.restarts`), **behaviour
strategies** are recorded by the same ``record`` with their statistics added
(:mod:`evostrat.run.behaviours`), and **callbacks, progress and checkpoints** observe it
between generations (:class:`~evostrat.callbacks.hooks.RunHooks`) without changing it.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.problems import sphere
>>> driver = Driver(ES("snes", max_generations=5, random_state=0), np.ones(3))
>>> driver.run_loop(sphere)
>>> driver.state.n_generations, driver.state.stop_reason
(5, 'maxiter')
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable, Sequence

import numpy as np

from evostrat.backends.points import check_population_size, draw_point
from evostrat.backends.structure_args import flat_arguments, flat_sigma
from evostrat.backends.structured import as_structure
from evostrat.constraints.base import MissingConstraintFunction
from evostrat.constraints.tracker import ConstrainedRun
from evostrat.errors import InvalidArgumentError
from evostrat.plugins.factories import make_strategy
from evostrat.run.asktell import AskTell
from evostrat.run.behaviours import Outcome, behaviour_record
from evostrat.run.bounds import BoxBounds
from evostrat.run.fixed import FixedSpace, free_sigma, setup_fixed
from evostrat.run.host_loop import host_loop
from evostrat.run.inject import queue_solutions
from evostrat.run.restarts import RunPlan, after_run, make_restarts
from evostrat.run.state import RunState, first_stop, warn_nothing_found
from evostrat.run.termination import Termination, pending_reason
from evostrat.run.termination_defaults import default_max_generations, run_history_criteria
from evostrat.run.weak import WeakCall
from evostrat.strategies.base import as_search_point, host_value

__all__ = ["Driver", "first_stop", "settings_copy"]

_NDARRAY, _INF, _NEG_INF = np.ndarray, math.inf, -math.inf  # read by the usual generation's checks


def settings_copy(settings: Any) -> Any:
    """An object of ``settings``'s class holding only its parameters (``get_params(deep=False)``).

    A run reads its settings when it starts and at each restart; from this copy, so that
    ``set_params`` on the estimator between ``ask``/``tell`` calls neither changes the
    running run halfway (a restart's popsize) nor what a checkpoint of it stores.
    """
    copy, attributes = object.__new__(type(settings)), vars(settings)
    names = _PARAMETERS.get(type(settings))
    if names is None:
        names = _PARAMETERS[type(settings)] = frozenset(settings.get_params(deep=False))
    # attributes that are the parameters (an estimator not fitted yet) are its parameters' values
    vars(copy).update(attributes if attributes.keys() == names else settings.get_params(deep=False))
    return copy


#: The names of a settings class's parameters (:func:`settings_copy`).
_PARAMETERS: dict[type, frozenset[str]] = {}


class Driver:
    """One run of an estimator: its runner, termination, restarts, bounds and record.

    Parameters
    ----------
    settings : ES
        The estimator whose parameters configure the run (never written, nor kept: the
        observers get it through :meth:`run_loop`'s ``observer``). The run keeps a copy of its
        parameters, ``config`` (:func:`settings_copy`): ``set_params`` on a running estimator
        changes its next ``fit``/``initialize``, not this run's restarts nor what its checkpoints store.
    x0 : array-like, shape (dim,), or callable
        The initial point (inside ``bounds`` when given), or a function returning one,
        called for the first run and each restart (:meth:`draw_x0`), as pycma's.
    initial_state : NamedTuple or deferred state, optional
        The first run's strategy state, already built for ``x0`` and the seed (a batch's
        vmapped initialisation, :mod:`evostrat.run.batch_init`; see :class:`AskTell`'s
        ``state``); restarts build their own.
    """

    def __init__(self, settings: Any, x0: Any, initial_state: Any = None) -> None:
        self.config = settings_copy(settings)  # its parameters as the run started: what restarts and checkpoints read
        self.maximize = bool(settings.maximize)
        self.structure = as_structure(x0)  # a dict, pytree or nn.Module: searched as one flat vector
        x0, bounds, integer = flat_arguments(self.structure, x0, settings)  # bounds=, integer= in its structure too
        self.x0_source = x0 if callable(x0) else None
        x0 = self.draw_x0(0) if callable(x0) else x0
        self.x0_type = type(x0)
        x0 = np.asarray(x0, dtype=np.float64) if isinstance(x0, (list, tuple)) else x0
        self.bounds: Any = None  # a BoxBounds, or with integer=/fixed_variables a MixedSpace/FixedSpace:
        self.fixed: FixedSpace | None = None  # fixed_variables; setup_fixed sets it, bounds and integers:
        x0 = setup_fixed(self, settings, x0, bounds, integer)  # run.fixed, run.bounds, run.integers (an IntegerSpace)
        self.noise: Any = None  # reevaluations / noise_handling (run.noise), set by the host loop; a checkpoint's:
        self.noise_resume, self.noise_aggregate = None, None  # type: dict[str, Any] | None, str | None
        self.restarts = make_restarts(settings.restarts, settings.random_state)
        self.x0 = self.bounds.inverse(x0) if self.bounds is not None else x0
        self.state = RunState.empty(self.maximize)
        self.fast_path, self.asked = None, None  # type: str | None, Any
        self.before_ask: tuple[Any, Any, Sequence[Any]] | None = None  # (runner, state, queued): see unask()
        self.settled = True  # between generations (the loops keep it): what an interrupted run's last checkpoint saves
        self.constraint_fn: Callable | str | None = None  # fit(constraints=g): g(x), or "objective"
        self.constraint_spec: Any = "auto"
        self.constrained: ConstrainedRun | None = None  # made by the first tell with constraints
        self.start_run(None, initial_state)
        self.state.best_x = self.to_box(self.runner.initial_mean)
        if getattr(settings, "warm_start", None) is not None:
            from evostrat.run.warm_start import apply_warm_start

            apply_warm_start(self, settings.warm_start)

    # -- starting a (restart) run ------------------------------------------------------------
    def start_run(self, plan: RunPlan | None, initial_state: Any = None) -> None:
        """Build the strategy, its ask/tell runner (from ``initial_state`` when given) and the
        run's termination criteria."""
        s = self.config
        popsize, sigma0, seed = s.popsize, s.sigma0, s.random_state
        sigma0 = free_sigma(self.fixed, flat_sigma(self.structure, sigma0))  # per-leaf, per free coordinate
        if plan is not None:
            popsize = plan.popsize
            if plan.sigma_factor != 1.0:
                base = make_strategy(s.strategy, s.strategy_options, sigma0=sigma0, distribution=s.distribution)
                sigma0 = np.asarray(host_value(base.sigma0), dtype=np.float64) * plan.sigma_factor
            if plan.run > 0 and seed is not None:
                seed = int(np.random.SeedSequence([int(seed), plan.run]).generate_state(1)[0])
            if plan.run > 0 and self.x0_source is not None:  # pycma: a callable x0 starts each restart
                x0 = as_search_point(self.draw_x0(plan.run), self.runner.backend, self.runner.dtype,
                                     self.runner.device)
                if self.bounds is not None:
                    BoxBounds.from_spec((self.bounds.lower, self.bounds.upper), x0)  # inside the box
                self.x0 = self.bounds.inverse(x0) if self.bounds is not None else x0
        strategy = make_strategy(s.strategy, s.strategy_options, popsize=popsize, sigma0=sigma0, distribution=s.distribution)
        check_population_size(getattr(strategy, "popsize", None), self.x0, s.dtype)  # before building state
        queued = self.runner.injections if plan is not None and plan.run > 0 else []  # inject()'s, not placed yet
        self.runner = AskTell(strategy, self.x0, random_state=seed, backend=s.backend, dtype=s.dtype,
                              device=s.device, nonfinite=s.nonfinite, state=initial_state, owns_strategy=True)
        self.runner.injections = queued
        dim, lam = self.runner.dim, self.runner.popsize
        scale = strategy.unrounded_popsize(dim) if plan is None else lam  # a first run's defaults: pycma's
        if self.restarts is not None and plan is None:
            plan = self.restarts.start(scale, dim)
        max_generations = s.max_generations if plan is None else plan.max_generations  # a run's own (local)
        if max_generations is None and s.max_evals is None:
            max_generations = default_max_generations(dim, scale)
        history = run_history_criteria(strategy, dim, scale, s)  # checks the defaults
        self.termination = Termination(
            max_evals=s.max_evals, max_generations=max_generations, ftarget=s.ftarget, tolfun=s.tolfun,
            tolx=s.tolx, maximize=self.maximize, history_length=10 + 30 * dim // lam, dim=dim,
            popsize=lam, **history)
        backend = self.runner.backend  # plain: the usual generation's fast path in tell (numpy, torch)
        self.plain = self.bounds is None and not strategy.needs_behaviours and (backend.host_arrays or backend.torch_tensors)
        self.termination.before_flush = WeakCall(self.state.sign)  # add_generation()'s deferred rows, then the criteria
        self.termination.stops, self.termination.paths, self.state.criteria = strategy.stop, strategy, self.termination
        row_sigma = self.runner.row_sigma if self.plain else (self.runner.sigma_of, None)  # now, or when signed
        self.state.sigma_of, self.state.sigmas_of = row_sigma
        self.state.sign_limit = max(1, min(self.termination.defer_limit, 2**16 // ((lam + 1) * dim)))
        self.state.plan = plan
        if self.constrained is not None:
            self.constrained.reset()  # a restart run learns its own coefficients
            self.constrained_termination()
        if self.noise is not None:
            self.noise.restart()  # and measures the noise afresh
        self.state.run_start = (self.state.n_evals, self.state.n_generations)
        if plan is not None:
            self.state.restarts.append(plan.record(self.state.n_evals))

    def draw_x0(self, run: int) -> Any:
        """A start point from the callable ``x0`` for restart run ``run`` (:func:`draw_point`)."""
        dim = None if run == 0 else getattr(self.bounds, "full_dim", None) or self.runner.dim  # fixed_variables: full
        return draw_point(self.x0_source, self.config.random_state, run, dim)

    # -- ask / tell ----------------------------------------------------------------------------
    def to_box(self, X: Any) -> Any:
        """Candidates of the strategy's space mapped into ``bounds`` (unchanged without)."""
        return X if self.bounds is None else self.bounds.transform(X)

    def ask(self) -> Any:
        """The next population, inside ``bounds`` when given."""
        runner = self.runner
        queued = runner.injections[:] if runner.injections else ()  # before integers decode
        if self.integers is not None:
            self.integers.before_ask(runner)  # CMA-ES with margin: correct the last update
        if self.noise is not None:
            self.noise.before_ask(runner)  # uncertainty handling: raise sigma after the last update
        self.before_ask, X = (runner, runner.state, queued), runner.ask()  # what unask() goes back to
        self.asked = X if self.bounds is None else self.bounds.transform(X)  # to_box
        return self.asked

    def unask(self) -> bool:
        """Undo the last :meth:`ask` (its evaluation raised): ``True`` when it did, the run then its last generation's,
        checkpointable, asking the same population again (margin, noise factor kept); ``False``: none or a tell pending."""
        if self.before_ask is not None and self.before_ask[0] is self.runner and self.runner.pending is not None:
            self.runner.unask(*self.before_ask[1:])
            self.asked = self.before_ask = None
            return True
        return False

    def inject(self, solutions: Any) -> None:
        """Queue candidates (in ``bounds`` when given) for the next ``ask`` (:func:`queue_solutions`);
        those still queued when a restart run begins are the new run's first."""
        queue_solutions(self.runner, solutions, self.bounds)

    def tell(self, X: Any, values: Any, constraints: Any = None, repaired: bool = False) -> Any:
        """Check ``X`` and ``values``, tell the strategy, record the generation.

        ``constraints``: the ``(popsize, m)`` values ``g(x) <= 0`` of ``X``
        (:mod:`evostrat.constraints`); ``repaired``: rows of ``X`` may differ from the asked
        ones (:meth:`AskTell.told_population`). Returns the fitness told (``None``: behaviours).
        """
        runner = self.runner
        if (X is runner.pending and self.plain and type(values) is type(X) and constraints is None and not repaired
                and values.dtype is runner.dtype and values.shape == runner.told_shape and not runner.injected_rows
                and (type(X) is _NDARRAY or values.device == X.device)):
            host = values.tolist()  # the usual generation: one host list (one device read) to check and record
            if _NEG_INF < sum(host) < _INF:  # finite: check_values would pass values as they are
                runner.update(told := -values if self.maximize else values, X)
                state, self.before_ask = self.state, None  # told: nothing to undo (nor an old state kept)
                if state.plan is None:  # the row and the criteria deferred
                    state.add_generation(host, X, runner)
                else:
                    self.record(host, X.__getitem__, runner.sigma, runner.strategy.stop)
                return told
        population = runner.told_population(X, repaired, None if self.bounds is None else self.asked,
                                            None if self.bounds is None else self.bounds.inverse_candidates)
        checked = runner.check_values(values, runner.popsize)
        best_of = None
        if isinstance(checked, Outcome):
            if constraints is not None:
                raise InvalidArgumentError("constraints are not supported for behaviour strategies "
                                           f"({runner.strategy.name!r}); use a fitness strategy")
            runner.update(checked.behaviours, population)
            fitness, told, extra = checked.fitness, None, behaviour_record(runner, checked)
        elif constraints is not None:
            if self.constrained is None:
                self.constrained = ConstrainedRun(self.constraint_spec, runner.strategy.name, runner.dim)
                self.constrained_termination()
            told, best_of, extra = self.constrained.apply(runner.backend.to_numpy(checked), constraints,
                                                          self.maximize)
            host = -told if self.maximize else told  # the penalised values, in the user's sense
            told = runner.backend.asarray(told, dtype=runner.dtype, device=runner.device)
            runner.update(told, population)
            self.constrained.update()
        else:
            fitness, told, extra = checked, -checked if self.maximize else checked, None
            runner.update(told, population)
        self.before_ask = None
        if best_of is None:
            host = None if fitness is None else runner.backend.to_numpy(fitness)
        self.record(host, lambda i: X[i], runner.sigma, runner.strategy.stop, extra, best_of)
        return told

    def constrained_termination(self) -> None:
        """With constraints, ``tolstagnation="auto"`` is off, as pycma's ``fmin_con2`` sets it
        (the ranked values change with the coefficients, not only with the search)."""
        if isinstance(self.config.tolstagnation, str):
            self.termination.flush()  # the generations before were checked with it
            self.termination.tolstagnation = None

    def stop(self) -> dict[str, Any]:
        """``{stop_reason: its setting}`` (pycma's ``stop()``), ``{}`` while the run goes on."""
        reason, restarts = self.state.stop_reason, self.restarts
        return {} if reason is None else {reason: self.termination.setting(
            reason, self.config.max_generations, None if restarts is None else restarts.max_restarts,
            self.runner.strategy)}

    # -- record one generation -----------------------------------------------------------------
    def record(self, values: np.ndarray | list[float] | None, candidate: Callable[[int], Any], sigma: float | None,
               stops: Callable[[Any], dict[str, Any]] | dict[str, Any], extra: dict[str, Any] | None = None,
               best_of: np.ndarray | None = None) -> None:
        """Best so far, history entry and termination after one generation.

        ``values``: the generation's values in the user's sense on the host (``None`` for
        behaviour strategies told no fitness: ``best_x`` is then the mean and ``best_f`` the
        behavioural spread); ``candidate(i)``: row ``i`` (read for an improving generation's
        best); ``sigma``: the largest standard deviation (``None``: read now); ``stops(state)``: the
        strategy's criteria on this generation's state (called when ``stop_reason`` is read, at once
        with restarts), or their dict, evaluated already (all checked at once); ``extra``: more history columns;
        ``best_of`` (constraints): the values that compete for best so far, NaN if infeasible.
        """
        state, runner, maximize = self.state, self.runner, self.maximize
        now = state.plan is not None or isinstance(stops, dict)  # else the criteria wait for the reason's next read
        state.n_evals, state.n_generations = state.run_start[0] + runner.n_evals, state.run_start[1] + runner.generation
        sigma = runner.sigma if sigma is None else sigma
        if values is None:
            state.best_x = self.to_box(runner.mean)
            state.best_f, state.best_evals = extra["behaviour_var"], state.n_evals
            gen_best = math.nan
            state.history.append({"generation": state.n_generations, "n_evals": state.n_evals,
                                  "sigma": sigma, "time": state.elapsed(), **extra})
            reason = self.termination.check(runner.generation, state.n_evals, math.nan, [], sigma)
        else:
            values = values if type(values) is list else values.tolist()  # Python floats, compared as numpy does
            total = sum(values)
            if -math.inf < total < math.inf:  # all finite (the usual case)
                ranked = sorted(values)  # stable: ranked[0] is the first minimum, as argmin's
                gen_best = values[values.index(ranked[-1])] if maximize else ranked[0]
            else:  # NaN ranks worst (all NaN: the worst value); the median is over the finite ones
                finite = [v for v in values if v == v]
                gen_best = max(finite, default=-math.inf) if maximize else min(finite, default=math.inf)
                ranked = sorted(v for v in finite if -math.inf < v < math.inf)
            pick = values
            if best_of is not None:  # constraints: the best so far is the best feasible candidate
                pick = best_of.tolist()
                finite = [v for v in pick if v == v]
                gen_best = (max(finite) if maximize else min(finite)) if finite else math.nan
            best = state.best_f  # read once: the waiting rows are signed by the first read
            if gen_best > best if maximize else gen_best < best:
                best = state.best_f = gen_best
                state.best_x = runner.backend.asarray(candidate(pick.index(gen_best)), device=runner.device)
                state.best_evals = state.n_evals - len(pick) + pick.index(gen_best) + 1  # pycma's evals_best
            n = len(ranked)
            m = n // 2
            median = (ranked[m] if n % 2 else 0.5 * (ranked[m - 1] + ranked[m])) if n else math.nan
            entry = {"generation": state.n_generations, "n_evals": state.n_evals, "best": best,
                     "generation_best": gen_best, "median": median, "sigma": sigma, "time": state.elapsed()}
            if state.plan is not None:
                entry.update(run=state.plan.run, popsize=runner.popsize)
            if extra is not None:
                entry.update(extra)
            state.append(entry)
            presorted = n == len(values) and not maximize
            at = values.index(ranked[0]) if presorted and self.termination.tolstagnation else None  # best.evals
            path = runner if now else self.termination.path_of(runner.state)  # tolx: sigma p_c, read if needed
            args = (runner.generation, state.n_evals, best, ranked if presorted else values, sigma, presorted, at, path)
            reason = self.termination.check(*args) if now else self.termination.defer(*args)
        if reason is None and not now:  # the deferred criteria, then the strategy's on this generation's state
            state.stop_pending, state.reason = partial(pending_reason, self.termination, stops, runner.state), None
            return
        if reason is None:
            reason = first_stop(stops if isinstance(stops, dict) else stops(runner.state))
        state.stop_reason = reason if state.plan is None else after_run(self, reason, gen_best)  # restarts

    # -- the loop ------------------------------------------------------------------------------
    def run_loop(self, objective: Callable, hooks: Any = None, observer: Any = None) -> None:
        """Generations until a criterion holds: compiled chunks when they apply, else on the host.

        ``hooks`` is a :class:`~evostrat.callbacks.hooks.RunHooks` whose observers get ``observer``
        (the estimator) between generations (either path, the run unchanged); a list or tuple ``x0``
        ends as numpy. The run holds no reference to its estimator: a fitted estimator and its run
        are freed as soon as the last reference goes, without waiting for the cyclic garbage collector
        (device memory included).
        """
        from evostrat.run.compiled import run_compiled

        if self.structure is not None:
            objective = self.structure.objective(objective)  # candidates in x0's structure
        if isinstance(self.constraint_fn, MissingConstraintFunction) and self.state.stop_reason is None:
            self.constraint_fn.check()  # a checkpoint's run with constraints=g, resumed without g: raises
        self.fast_path = None
        if self.constraint_fn is not None or not run_compiled(self, objective, hooks, observer):
            host_loop(self, objective, hooks, observer)
        if self.x0_type in (list, tuple):  # lists run on numpy
            self.state.best_x = np.asarray(self.state.best_x)
        if self.state.best_f == (-math.inf if self.maximize else math.inf):
            warn_nothing_found(self.state, self.constraint_fn is not None)
