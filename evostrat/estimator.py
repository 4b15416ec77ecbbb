"""The ``ES`` estimator: scikit-learn's contract around any strategy.

``ES(...).fit(objective, x0)`` runs a strategy until a termination criterion holds and
sets the fitted attributes ``x_``, ``fun_``, ``mean_``, ``stds_``, ``evals_best_``, ``n_evals_``,
``n_generations_``, ``history_``, ``stop_reason_``, ``strategy_`` (the run's
:class:`~evostrat.run.asktell.AskTell`) and, with ``restarts=``, ``restarts_`` (before,
they raise :class:`~evostrat.errors.NotFittedError`); ``es.initialize(x0)`` then
``X = es.ask()``, ``es.tell(X, values)`` runs it by hand (values in the user's sense).
``ES`` holds the parameters (scikit-learn's protocol, strategy hyper-parameters as ``strategy__<name>``)
and the entry points; the run is a :class:`~evostrat.run.driver.Driver` in ``run_``, which the fitted
attributes (:class:`~evostrat.run.fitted.FittedAttributes`) read. ``make_strategy``, ``make_evaluator`` (:mod:`evostrat.plugins.factories`) are re-exported.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Sequence

from evostrat.backends import get_backend
from evostrat.backends.points import as_search_point
from evostrat.backends.structure_args import flat_solutions
from evostrat.backends.structured import holds_arrays
from evostrat.constraints.tracker import check_fit_constraints
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.params import (PYCMA_NAMES, Params, known_keywords, known_method_keywords, restarts_hint,
                             unknown_parameter)
from evostrat.plugins.factories import make_evaluator, make_strategy  # noqa: F401 - re-exported
from evostrat.plugins.factories import warn_overrides
from evostrat.run.driver import Driver
from evostrat.run.fitted import FittedAttributes
from evostrat.run.settings import ES_PARAMETER_CONSTRAINTS
from evostrat.run.state import fitted_run

__all__ = ["ES", "PYCMA_ATTRIBUTES"]


#: pycma's attributes of a ``CMAEvolutionStrategy`` -> the estimator's (the AttributeError says it).
PYCMA_ATTRIBUTES = {
    "result": "x_, fun_, evals_best_, n_evals_, n_generations_, mean_ (xfavorite), stds_ and stop()",
    "sigma": "strategy_.state.sigma", "countevals": "n_evals_", "countiter": "n_generations_",
    "best": "x_ and fun_", "N": "strategy_.dim", "mean": "mean_",
    "opts": "get_params() (set_params sets the next fit or initialize)",
    "optimize": "fit(objective, x0)", "disp": "fit(progress=True) or a callback",
    "logger": "a callback: DistributionRecorder or CSVLogger", "ask_and_eval": "ask() then tell(X, values)",
}


class ES(FittedAttributes, Params):
    """Evolution strategy estimator.

    Parameters
    ----------
    strategy : str or Strategy
        A registered name (``"snes"``, ``"openai_es"``, ...; see
        ``evostrat.list_plugins()``; case, ``-`` and ``_`` are ignored when that
        leaves one name: ``"CMA-ES"``) or a strategy instance (copied at fit).
    sigma0 : float or array, optional
        Initial step size; ``None`` keeps the strategy's default. A value that
        replaces one the strategy was given (an instance's own or in
        ``strategy_options``) warns (:class:`~evostrat.errors.ParameterOverrideWarning`).
    popsize : int, optional
        ``None`` keeps the strategy's default for the dimension (overrides as ``sigma0``).
    max_evals : int, optional
        Budget of objective evaluations (over all restarts).
    max_generations : int, optional
        Budget of generations. With neither budget set, it defaults to pycma's
        ``100 + 150 (d + 3)^2 / sqrt(popsize)``.
    ftarget : float, optional
        Stop once the best value reaches it (checked once per generation).
    tolfun : float or None
        Stop when, over the last ``floor(10 + 30 d / popsize)`` generations (fewer at
        the start: as in pycma, a flat objective stops after one), the range of the
        generation-best values and that of the latest generation's values are both
        below it (pycma's ``tolfun``, :mod:`evostrat.run.termination`); ``None`` disables.
    tolx : float or None
        Stop when the largest per-coordinate standard deviation of the search
        distribution is below it; ``None`` disables.
    tolfunhist : float, None or "auto"
        Stop when the range of the generation-best values over that window is below
        it. ``"auto"`` takes the strategy's ``termination_defaults`` (the CMA-ES
        family: pycma's 1e-12; other strategies: off); ``None`` disables.
    tolstagnation : int, None or "auto"
        pycma's stagnation test: the medians of the best and median values (recorded
        every 5th generation) stopped improving and the best value is older than half
        this many generations. ``"auto"``: ``int(100 + 100 d^1.5 / popsize)`` for the
        CMA-ES family, off for the others; ``None`` or ``0`` disables (pycma: ``0``).
    tolflatfitness : int, None or "auto"
        Stop when a generation's best and 75th-percentile values are equal in more
        than this many consecutive generations. ``"auto"``: 1 for the CMA-ES family
        (pycma's), off for the others; ``None`` disables.
    maximize : bool
        Maximise the objective instead of minimising it.
    bounds : tuple (lower, upper), optional
        Box constraints, each a number, ``None``, an array of shape ``(dim,)`` (a ``None``
        entry: open on that side, as pycma's ``[[-1, None], [1, 2]]``) or, for a structured
        ``x0``, a matching structure (:mod:`evostrat.backends.structure_args`); candidates are
        mapped into the box by pycma's smooth periodic transformation (:mod:`evostrat.run.bounds`),
        so every evaluated and returned candidate, and ``x_``, lie inside. ``x0`` must lie inside.
    restarts : str, dict or Restarts, optional
        ``"ipop"``, ``"bipop"`` or e.g. ``dict(kind="bipop", max_restarts=9)``:
        restart the strategy with a larger (or, for BIPOP, alternating) population
        whenever a run stops on a local criterion (:mod:`evostrat.run.restarts`).
    backend : str
        ``"auto"`` (from the type of ``x0``), ``"numpy"``, ``"torch"``, ``"jax"``.
    device : str or device, optional
        torch/JAX device for the state: a name (``"cpu"``, ``"cuda:0"``; on JAX also ``"gpu"``)
        or the library's device object; default: ``x0``'s. numpy takes ``None`` or ``"cpu"``;
        a device the machine lacks is refused before the run starts.
    dtype : str, optional
        Floating dtype (``"float32"``, ``"float64"``); default: ``x0``'s (numpy:
        float64, torch: float32 for integer input, JAX: float32 unless x64).
    evaluator : str or Evaluator
        ``"auto"``, ``"vectorized"``, ``"serial"``, ``"executor"`` (process pool or
        any ``concurrent.futures.Executor``), ``"ray"``, or an instance (see
        :mod:`evostrat.evaluators.local` and :mod:`evostrat.evaluators`).
    evaluator_options : dict, optional
        Options of a named evaluator, e.g. ``{"max_workers": 4, "timeout": 60}``.
    nonfinite : {"warn", "ignore", "raise"}
        Policy for NaN/inf values (see :mod:`evostrat.run.asktell`).
    strategy_options : dict, optional
        Further strategy hyper-parameters (also settable as ``strategy__name``).
    distribution : str or type, optional
        The search distribution of a strategy that takes one (``"nes"``,
        ``"expectation_es"``): ``ES("nes", distribution="low_rank_normal")``; other
        strategies refuse it. Overrides (as ``sigma0``) one in ``strategy_options``.
    random_state : int, optional
        Seed; the same seed on the same backend gives the same run bit for bit.
    compiled_loop : "auto", bool
        JAX fast path (:mod:`evostrat.run.compiled`): ``"auto"`` runs chunks of generations in one
        compiled ``lax.while_loop`` when the objective is traceable and nothing needs the host inside
        a generation (no behaviours, integer or fixed variables or reevaluations; bounds map inside the
        program, restarts run each run compiled, observers between one-generation chunks); ``True``
        requires it (an error says what prevents it); ``False`` never uses it. ``fast_path_`` tells which.
    integer, reevaluations, noise_handling, warm_start
        Integer coordinates (mask or indices, or a structure of masks matching ``x0``'s;
        :mod:`evostrat.run.integers`); evaluations
        per candidate, aggregated by their median, and UH-CMA-ES uncertainty handling (``True`` or a dict) in
        :meth:`fit` (:mod:`evostrat.run.noise`); a start from a fitted ES, a checkpoint or
        evaluated solutions of a similar task (:mod:`evostrat.run.warm_start`).
    fixed_variables : dict, optional
        pycma's ``{index: value}``: coordinates kept at ``value``, not searched (:mod:`evostrat.run.fixed`).

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.problems import rosenbrock
    >>> es = ES("cma_es", sigma0=0.5, max_evals=40000, ftarget=1e-8, random_state=3).fit(rosenbrock, np.zeros(4))
    >>> es.stop_reason_, bool(es.fun_ <= 1e-8), es.x_.shape
    ('ftarget', True, (4,))
    """

    opaque_params = ("warm_start",)  # a fitted ES to start from: data, neither expanded nor cloned
    foreign_names: ClassVar[dict[str, str]] = PYCMA_NAMES  # pycma's options: the error names evostrat's way
    value_hints: ClassVar[dict[str, Callable[[Any], str]]] = {"restarts": restarts_hint}  # pycma's restarts=9
    #: Parameter name -> the constraints its value may satisfy (:mod:`evostrat.run.settings`).
    parameter_constraints: ClassVar[dict[str, list[Any]]] = ES_PARAMETER_CONSTRAINTS

    @known_keywords
    def __init__(
        self, strategy: Any = "snes", sigma0: Any = None, popsize: int | None = None,
        max_evals: int | None = None, max_generations: int | None = None, ftarget: float | None = None,
        tolfun: float | None = 1e-11, tolx: float | None = 1e-11, tolfunhist: Any = "auto",
        tolstagnation: Any = "auto", tolflatfitness: Any = "auto", maximize: bool = False,
        bounds: Any = None, restarts: Any = None, backend: str = "auto", device: Any = None,
        dtype: Any = None, evaluator: Any = "auto", evaluator_options: dict | None = None,
        nonfinite: str = "warn", strategy_options: dict | None = None, random_state: int | None = None,
        compiled_loop: Any = "auto", integer: Any = None, reevaluations: int = 1,
        noise_handling: Any = False, warm_start: Any = None, distribution: Any = None,
        fixed_variables: dict | None = None,
    ) -> None:
        self.strategy = strategy
        self.sigma0 = sigma0
        self.popsize = popsize
        self.max_evals = max_evals
        self.max_generations = max_generations
        self.ftarget = ftarget
        self.tolfun = tolfun
        self.tolx = tolx
        self.tolfunhist = tolfunhist
        self.tolstagnation = tolstagnation
        self.tolflatfitness = tolflatfitness
        self.maximize = maximize
        self.bounds = bounds
        self.restarts = restarts
        self.backend = backend
        self.device = device
        self.dtype = dtype
        self.evaluator = evaluator
        self.evaluator_options = evaluator_options
        self.nonfinite = nonfinite
        self.strategy_options = strategy_options
        self.random_state = random_state
        self.compiled_loop = compiled_loop
        self.integer = integer
        self.reevaluations = reevaluations
        self.noise_handling = noise_handling
        self.warm_start = warm_start
        self.distribution = distribution
        self.fixed_variables = fixed_variables

    # -- scikit-learn parameter protocol, extended to strategy names ----------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        params = super().get_params(deep=deep)
        if deep and isinstance(self.strategy, str):
            for key, value in (self.strategy_options or {}).items():
                params[f"strategy__{key}"] = value
        return params

    def set_params(self, **params: Any) -> "ES":
        nested = {k: params.pop(k) for k in list(params) if k.startswith("strategy__")}
        unknown = sorted(k for k in params if k.split("__", 1)[0] not in self._param_names())
        if unknown:
            raise unknown_parameter(type(self), unknown[0], InvalidArgumentError)
        super().set_params(**params)
        if nested:
            options = {k.split("__", 1)[1]: v for k, v in nested.items()}
            if isinstance(self.strategy, str):
                make_strategy(self.strategy, options)  # validates the names now
                self.strategy_options = {**(self.strategy_options or {}), **options}
            else:
                self.strategy.set_params(**options)
        return self

    def __getattr__(self, name: str) -> Any:  # only when the usual look-up failed: pycma's names get a hint
        if name in PYCMA_ATTRIBUTES:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r} "
                                 f"(pycma's es.{name} is {PYCMA_ATTRIBUTES[name]}; docs/guides/pycma.md)")
        return object.__getattribute__(self, name)  # the original error again (a NotFittedError of x_...)

    # -- stateful ask/tell ---------------------------------------------------------------
    def initialize(self, x0: Any) -> "ES":
        """Start a run around ``x0`` for manual ``ask``/``tell``; returns ``self``.

        First checks ``parameter_constraints``; the run then checks that one population
        (``popsize x dim x itemsize`` bytes) fits in memory before building its state.

        Examples
        --------
        >>> import numpy as np
        >>> from evostrat import ES
        >>> es = ES("snes", popsize=6, random_state=0).initialize(np.zeros(3))
        >>> es.n_generations_, es.strategy_.popsize, es.stop()
        (0, 6, {})
        """
        self.validate_params()
        if type(x0) in (list, tuple) and not holds_arrays(x0):  # a flat point: the run converts it to
            as_search_point(x0, get_backend("numpy"))            # float64, so check the entries first
        warn_overrides(self.strategy, self.strategy_options, sigma0=self.sigma0, popsize=self.popsize,
                       distribution=self.distribution)
        self.run_ = Driver(self, x0)  # checks each run's population against memory
        return self

    def ask(self) -> Any:
        """The next population, shape ``(popsize, dim)`` (inside ``bounds`` when given).

        Examples
        --------
        >>> import numpy as np
        >>> from evostrat import ES
        >>> es = ES("cma_es", popsize=8, bounds=(-1, 1), random_state=0).initialize(np.zeros(2))
        >>> X = es.ask()
        >>> X.shape, bool(np.all(np.abs(X) <= 1))
        ((8, 2), True)
        """
        run = self.__dict__.get("run_") or fitted_run(self, "ask()")  # no run yet: NotFittedError, a StateError
        X = run.ask()
        return X if run.structure is None else run.structure.unflatten_batch(X)  # x0's structure, batched

    def tell(self, X: Any, values: Any, constraints: Any = None, *, repaired: bool = False) -> "ES":
        """Report the values of ``X`` (in the user's sense) and update.

        Strategies with ``needs_behaviours`` (``"maxvar_es"``, ``"maxent_es"``) take
        behaviours ``(popsize, k)``, optionally with fitness; what ``fun_``, ``x_``
        and ``history_`` then hold is defined in :mod:`evostrat.run.behaviours`.
        ``constraints`` are the values ``g(x) <= 0`` of ``X``, shape ``(popsize, m)``
        (:mod:`evostrat.constraints`); ``repaired=True`` accepts rows of ``X`` changed
        since :meth:`ask` (their steps are clipped, :mod:`evostrat.run.inject`).

        Examples
        --------
        An ask/tell loop that ends as :meth:`fit` would:

        >>> import numpy as np
        >>> from evostrat import ES
        >>> from evostrat.problems import sphere
        >>> es = ES("cma_es", max_generations=20, random_state=0).initialize(np.ones(3))
        >>> while not es.stop():
        ...     X = es.ask()
        ...     es = es.tell(X, sphere(X))
        >>> es.stop(), es.n_generations_, bool(es.fun_ < sphere(np.ones(3)))
        ({'maxiter': 20}, 20, True)
        """
        run = self.__dict__.get("run_") or fitted_run(self, "tell()")  # no run yet: NotFittedError, a StateError
        if run.structure is not None and not hasattr(X, "shape"):  # ask's batched structure
            X = run.structure.flatten_batch(X, run.asked)
        run.tell(X, values, constraints, repaired)
        return self

    def inject(self, solutions: Any) -> "ES":
        """Candidates ``(dim,)`` or ``(k, dim)``, or in ``x0``'s structure (one, or leaves with a leading
        axis ``k``), for the next :meth:`ask` to return first (pycma's ``inject``; steps clipped in
        Mahalanobis length, :mod:`evostrat.run.inject`). More than a population waits for the asks
        after it; those still queued when a restart run begins are that run's first candidates."""
        run = self._fitted_run("inject()")
        run.inject(flat_solutions(run.structure, solutions))
        return self

    def stop(self) -> dict[str, Any]:
        """pycma's ``stop()``: ``{reason: setting}`` once the run stopped, else ``{}``
        (``while not es.stop():`` ends an ask/tell loop as :meth:`fit` ends)."""
        return self._fitted_run("stop()").stop()

    # -- fit ---------------------------------------------------------------------------------
    @known_method_keywords
    def fit(self, objective: Callable, x0: Any, callbacks: Sequence[Callable[["ES"], Any]] | None = None,
            *, progress: Any = False, checkpoint: Any = None, checkpoint_every: int | None = None,
            constraints: Callable | None = None, constraint_handler: Any = "auto") -> "ES":
        """Minimise (or maximise) ``objective`` from ``x0``.

        Parameters
        ----------
        objective : callable
            Vectorised ``X (popsize, dim) -> (popsize,)`` or per-candidate
            ``x (dim,) -> float``; see :mod:`evostrat.evaluators.local`. For strategies
            with ``needs_behaviours``: behaviours ``(popsize, k)`` or ``(k,)`` per
            candidate, optionally with fitness (:mod:`evostrat.run.behaviours`).
        x0 : array-like, shape (dim,), or callable
            Initial mean; a numpy array, torch tensor, JAX array or a list, or (pycma's) a callable
            ``x0()`` returning one, called again for each restart run's start (``x0(rng)``: given a
            ``numpy.random.Generator`` seeded from ``random_state`` and the run).
        callbacks : sequence of callables, optional
            Each is called as ``cb(self)`` after every generation; returning
            ``True`` stops the run with ``stop_reason_ == "callback"``. Objects
            with ``on_fit_start(es)``/``on_fit_end(es)`` methods get those calls
            too (loggers, early stopping: :mod:`evostrat.callbacks`).
        progress : bool, "always" or ProgressBar
            A live progress line (generation, evaluations, best and current
            fitness, sigma, elapsed time) on stderr; ``True`` shows it only
            when stderr is a terminal, ``"always"`` also when it is not
            (:mod:`evostrat.callbacks.progress`). Off by default.
        checkpoint : str, os.PathLike or Checkpointer, optional
            Write the run's state there every ``checkpoint_every`` generations
            (default 1) and when it ends; continue with :meth:`resume`
            (:mod:`evostrat.checkpoint`).
        checkpoint_every : int, optional
            Generations between checkpoints.
        constraints : callable or "objective", optional
            ``g(x) -> (m,)`` for one candidate (feasible: ``g(x) <= 0``; marked with
            :func:`~evostrat.evaluators.local.vectorized`, ``g(X) -> (popsize, m)`` once a
            generation, on numpy), or ``"objective"`` when the objective returns ``(f, g)``.
            ``x_``/``fun_`` are then the best feasible candidate and its value (``inf`` while
            none); see :mod:`evostrat.constraints`.
        constraint_handler : "auto", "augmented_lagrangian", "penalty" or ConstraintHandler
            ``"auto"``: the augmented Lagrangian for the CMA family (CMA-ES, sep-CMA-ES,
            LM-MA-ES, VkD-CMA), Deb's feasibility rules for the other strategies.

        Returns
        -------
        self

        Examples
        --------
        >>> import numpy as np
        >>> from evostrat import ES
        >>> from evostrat.problems import sphere
        >>> es = ES("cma_es", max_evals=2000, ftarget=1e-10, random_state=0).fit(sphere, np.ones(4))
        >>> es.stop_reason_, bool(es.fun_ <= 1e-10), es.n_evals_ <= 2000
        ('ftarget', True, True)

        """
        if not callable(objective):
            raise InvalidTypeError(f"objective must be callable, got {type(objective).__name__}")
        if constraints is not None:
            check_fit_constraints(constraints, constraint_handler, checkpoint)
        hooks = None  # nothing observes the run (a fit's defaults: neither imported nor built)
        if callbacks is not None or progress is not False or checkpoint is not None or checkpoint_every is not None:
            from evostrat.callbacks.hooks import RunHooks

            hooks = RunHooks(callbacks, progress=progress, checkpoint=checkpoint, every=checkpoint_every,
                             objective=objective)
        self.initialize(x0)
        if constraints is not None:
            self.run_.constraint_fn, self.run_.constraint_spec = constraints, constraint_handler
        self.run_.run_loop(objective, hooks, self)
        return self

    @classmethod
    def resume(cls, path: Any, objective: Callable, callbacks: Sequence[Callable[["ES"], Any]] | None = None,
               *, progress: Any = False, checkpoint: Any = True, checkpoint_every: int | None = None,
               **overrides: Any) -> "ES":
        """Continue the run saved in the checkpoint ``path`` until it stops; a new fitted ``ES``.

        With the same objective the result equals the uninterrupted run's; the parameters
        are those of :func:`evostrat.run.resume.resume_run`, which does the work.
        """
        from evostrat.run.resume import resume_run

        return resume_run(path, objective, callbacks, progress=progress, checkpoint=checkpoint,
                          checkpoint_every=checkpoint_every, **overrides)
