"""The ``ES`` estimator: scikit-learn's contract around any strategy.

``ES(...).fit(objective, x0)`` runs a strategy until a termination criterion
holds and returns ``self`` with the fitted attributes ``x_``, ``fun_``,
``n_evals_``, ``n_generations_``, ``history_``, ``stop_reason_`` and
``strategy_`` (the :class:`~evostrat.asktell.AskTell` object of the run).
``get_params``/``set_params``/``sklearn.base.clone`` work; strategy
hyper-parameters are reached as ``strategy__<name>``.

The same object offers stateful ask/tell: ``es.initialize(x0)``, then
``X = es.ask()`` and ``es.tell(X, values)`` with values in the user's sense
(maximised when ``maximize=True``).

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.problems import rosenbrock
>>> es = ES(strategy="snes", sigma0=0.5, max_evals=40000, ftarget=1e-8,
...         random_state=3).fit(rosenbrock, np.zeros(4))
>>> es.stop_reason_, bool(es.fun_ <= 1e-8)
('ftarget', True)
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

import numpy as np
from sklearn.base import BaseEstimator

from evostrat.asktell import AskTell
from evostrat.errors import InvalidTypeError, StateError, UnknownNameError
from evostrat.evaluation import Evaluator
from evostrat.plugins import registry
from evostrat.strategy import Strategy
from evostrat.termination import Termination, default_max_generations

__all__ = ["ES"]


def make_strategy(strategy: Any, options: dict | None = None, **overrides: Any) -> Strategy:
    """A fresh strategy from a registry name or a (copied) instance."""
    if isinstance(strategy, str):
        strategies = registry("strategies")
        if strategy not in strategies:
            raise UnknownNameError(
                f"strategy must be one of {sorted(strategies)}, got {strategy!r}"
            )
        instance = strategies[strategy]()
    elif isinstance(strategy, Strategy):
        instance = type(strategy)(**strategy.get_params(deep=False))
    else:
        raise InvalidTypeError(
            f"strategy must be a strategy name or a Strategy instance, got {type(strategy).__name__}"
        )
    instance.set_params(**(options or {}))
    instance.set_params(**{k: v for k, v in overrides.items() if v is not None})
    return instance


def make_evaluator(evaluator: Any) -> Evaluator:
    """A fresh evaluator from a registry name, or the given instance."""
    if isinstance(evaluator, Evaluator):
        return evaluator
    if isinstance(evaluator, str):
        evaluators = registry("evaluators")
        if evaluator not in evaluators:
            raise UnknownNameError(
                f"evaluator must be one of {sorted(evaluators)}, got {evaluator!r}"
            )
        return evaluators[evaluator]()
    raise InvalidTypeError(
        f"evaluator must be an evaluator name or an Evaluator instance, got {type(evaluator).__name__}"
    )


class ES(BaseEstimator):
    """Evolution strategy estimator.

    Parameters
    ----------
    strategy : str or Strategy
        A registered name (``"snes"``, ``"openai_es"``, ...; see
        ``evostrat.list_plugins()``) or a strategy instance (copied at fit).
    sigma0 : float or array, optional
        Initial step size; ``None`` keeps the strategy's default.
    popsize : int, optional
        ``None`` keeps the strategy's default for the dimension.
    max_evals, max_generations : int, optional
        Budgets. With neither set, ``max_generations`` defaults to pycma's
        ``100 + 150 (d + 3)^2 / sqrt(popsize)``.
    ftarget : float, optional
        Stop once the best value reaches it (checked once per generation).
    tolfun, tolx : float or None
        pycma-style criteria (see :mod:`evostrat.termination`); ``None`` disables.
    maximize : bool
        Maximise the objective instead of minimising it.
    backend : str
        ``"auto"`` (from the type of ``x0``), ``"numpy"``, ``"torch"``, ``"jax"``.
    device : str, optional
        torch/JAX device for the state (``"cuda"``...); default: ``x0``'s.
    dtype : str, optional
        Floating dtype (``"float32"``, ``"float64"``); default: ``x0``'s (numpy:
        float64, torch: float32 for integer input, JAX: float32 unless x64).
    evaluator : str or Evaluator
        ``"auto"``, ``"vectorized"``, ``"serial"`` (see :mod:`evostrat.evaluation`).
    nonfinite : {"warn", "ignore", "raise"}
        Policy for NaN/inf values (see :mod:`evostrat.asktell`).
    strategy_options : dict, optional
        Further strategy hyper-parameters (also settable as ``strategy__name``).
    random_state : int, optional
        Seed; the same seed on the same backend gives the same run bit for bit.
    """

    def __init__(
        self,
        strategy: Any = "snes",
        sigma0: Any = None,
        popsize: int | None = None,
        max_evals: int | None = None,
        max_generations: int | None = None,
        ftarget: float | None = None,
        tolfun: float | None = 1e-11,
        tolx: float | None = 1e-11,
        maximize: bool = False,
        backend: str = "auto",
        device: Any = None,
        dtype: Any = None,
        evaluator: Any = "auto",
        nonfinite: str = "warn",
        strategy_options: dict | None = None,
        random_state: int | None = None,
    ) -> None:
        self.strategy = strategy
        self.sigma0 = sigma0
        self.popsize = popsize
        self.max_evals = max_evals
        self.max_generations = max_generations
        self.ftarget = ftarget
        self.tolfun = tolfun
        self.tolx = tolx
        self.maximize = maximize
        self.backend = backend
        self.device = device
        self.dtype = dtype
        self.evaluator = evaluator
        self.nonfinite = nonfinite
        self.strategy_options = strategy_options
        self.random_state = random_state

    # -- scikit-learn parameter protocol, extended to strategy names ----------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        params = super().get_params(deep=deep)
        if deep and isinstance(self.strategy, str):
            for key, value in (self.strategy_options or {}).items():
                params[f"strategy__{key}"] = value
        return params

    def set_params(self, **params: Any) -> "ES":
        nested = {k: params.pop(k) for k in list(params) if k.startswith("strategy__")}
        super().set_params(**params)
        if nested:
            options = {k.split("__", 1)[1]: v for k, v in nested.items()}
            if isinstance(self.strategy, str):
                make_strategy(self.strategy, options)  # validates the names now
                self.strategy_options = {**(self.strategy_options or {}), **options}
            else:
                self.strategy.set_params(**options)
        return self

    # -- stateful ask/tell ---------------------------------------------------------------
    def initialize(self, x0: Any) -> "ES":
        """Start a run around ``x0`` for manual ``ask``/``tell``; returns ``self``."""
        strategy = make_strategy(
            self.strategy, self.strategy_options, popsize=self.popsize, sigma0=self.sigma0
        )
        self.strategy_ = AskTell(
            strategy,
            x0,
            random_state=self.random_state,
            backend=self.backend,
            dtype=self.dtype,
            device=self.device,
            nonfinite=self.nonfinite,
        )
        self._x0_type = type(x0)
        max_generations = self.max_generations
        if max_generations is None and self.max_evals is None:
            max_generations = default_max_generations(self.strategy_.dim, self.strategy_.popsize)
        window = 10 + math.ceil(30 * self.strategy_.dim / self.strategy_.popsize)
        self._termination = Termination(
            max_evals=self.max_evals,
            max_generations=max_generations,
            ftarget=self.ftarget,
            tolfun=self.tolfun,
            tolx=self.tolx,
            maximize=self.maximize,
            history_length=window,
        )
        self.x_ = self.strategy_.mean
        self.fun_ = math.inf if not self.maximize else -math.inf
        self.n_evals_ = 0
        self.n_generations_ = 0
        self.history_: list[dict[str, float]] = []
        self.stop_reason_: str | None = None
        self._t0 = time.perf_counter()
        return self

    def _check_started(self) -> AskTell:
        if not hasattr(self, "strategy_"):
            raise StateError("call initialize(x0) or fit(objective, x0) before ask()/tell()")
        return self.strategy_

    def ask(self) -> Any:
        """The next population, shape ``(popsize, dim)``."""
        return self._check_started().ask()

    def tell(self, X: Any, values: Any) -> "ES":
        """Report the values of ``X`` (in the user's sense) and update."""
        runner = self._check_started()
        runner.check_population(X)
        v = runner.check_values(values, runner.popsize)
        runner._update(-v if self.maximize else v)
        self._record(X, runner.backend.to_numpy(v))
        return self

    def _record(self, X: Any, values: np.ndarray) -> None:
        runner = self.strategy_
        finite = np.where(np.isnan(values), np.inf if not self.maximize else -np.inf, values)
        i = int(np.argmax(finite) if self.maximize else np.argmin(finite))
        gen_best = float(finite[i])
        improved = gen_best > self.fun_ if self.maximize else gen_best < self.fun_
        if improved:
            self.fun_ = gen_best
            self.x_ = runner.backend.asarray(X[i], device=runner.device)
        self.n_evals_ = runner.n_evals
        self.n_generations_ = runner.generation
        ok = values[np.isfinite(values)]
        self.history_.append(
            {
                "generation": runner.generation,
                "n_evals": runner.n_evals,
                "best": self.fun_,
                "generation_best": gen_best,
                "median": float(np.median(ok)) if ok.size else math.nan,
                "sigma": runner.sigma,
                "time": time.perf_counter() - self._t0,
            }
        )
        reason = self._termination.check(
            runner.generation, runner.n_evals, self.fun_, values.tolist(), runner.sigma
        )
        if reason is None:
            stops = runner.strategy.stop(runner.state)
            reason = next((name for name, hit in stops.items() if bool(hit)), None)
        self.stop_reason_ = reason

    # -- fit ---------------------------------------------------------------------------------
    def fit(
        self,
        objective: Callable,
        x0: Any,
        callbacks: Sequence[Callable[["ES"], Any]] | None = None,
    ) -> "ES":
        """Minimise (or maximise) ``objective`` from ``x0``.

        Parameters
        ----------
        objective : callable
            Vectorised ``X (popsize, dim) -> (popsize,)`` or per-candidate
            ``x (dim,) -> float``; see :mod:`evostrat.evaluation`.
        x0 : array-like, shape (dim,)
            Initial mean; a numpy array, torch tensor, JAX array or a list.
        callbacks : sequence of callables, optional
            Each is called as ``cb(self)`` after every generation; returning
            ``True`` stops the run with ``stop_reason_ == "callback"``.

        Returns
        -------
        self
        """
        if not callable(objective):
            raise InvalidTypeError(f"objective must be callable, got {type(objective).__name__}")
        self.initialize(x0)
        evaluator = make_evaluator(self.evaluator)
        runner = self.strategy_
        try:
            while self.stop_reason_ is None:
                X = runner.ask()
                values = evaluator.evaluate(objective, X, runner.backend)
                self.tell(X, values)
                for callback in callbacks or ():
                    if callback(self) is True and self.stop_reason_ is None:
                        self.stop_reason_ = "callback"
        finally:
            evaluator.close()
        if isinstance(self.x_, np.ndarray) and self._x0_type in (list, tuple):
            self.x_ = np.asarray(self.x_)
        return self
