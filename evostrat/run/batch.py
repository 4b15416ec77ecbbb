"""Batched fits: many independent runs of one estimator over seeds and a hyper-parameter grid.

:func:`fit_batch` runs ``ES.fit`` once for every combination of a parameter
grid (scikit-learn's ``ParameterGrid`` vocabulary: ``{"popsize": [8, 16],
"strategy__lr_sigma": [0.1, 0.2]}``, or a list of such dicts) and every seed,
and returns a :class:`BatchResult`: one fitted :class:`~evostrat.ES` per run,
their ``x_``, ``fun_``, ``n_evals_``, ``n_generations_`` and ``stop_reason_``
as arrays, their histories, and a pandas DataFrame (:meth:`BatchResult.to_frame`).

How the runs are executed depends on the backend:

- **JAX** (when every run takes the compiled loop, :mod:`evostrat.run.compiled`):
  the runs with the same strategy class, population size, dimension and
  criteria advance together in one ``jax.vmap``-ed chunk program
  (:mod:`evostrat.run.batch_jax`): a finished run is masked and keeps its state,
  so every run stops at the generation, and with the state, it reaches alone (to
  float rounding: the batched program may round differently). Seeds, ``x0`` and
  numeric hyper-parameters (``sigma0``, learning rates) are per-run values in
  that program; a hyper-parameter that changes shapes (``popsize``) or that the
  strategy reads on the host (through ``float()``) makes one program per value.
  With several JAX devices the runs are sharded across them (``devices=``).
- **torch** (:mod:`evostrat.run.batch_torch`): runs of one strategy, population size
  and dimension advance in lockstep with their states stacked: the strategy's ``ask``
  (each run drawing from its own random stream), ``tell`` and read-outs run under
  ``torch.func.vmap`` where they map (else run by run), one evaluator call takes all
  their populations; each run's generation is recorded and checked by its own driver,
  so it stops at the generation, with the reason, it reaches alone. Restarts, bounds, integers,
  noise handling, structured ``x0`` or another evaluator: ``ES.fit``.
- **numpy**: a plain loop of ``ES.fit`` calls, bit for bit the runs done one by one.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.problems import sphere
>>> from evostrat.run.batch import fit_batch
>>> res = fit_batch(ES("snes", max_generations=30), sphere, np.ones(4),
...                 seeds=3, grid={"strategy__lr_sigma": [0.1, 0.3]})
>>> res.fun.shape, res.params[1]
((6,), {'strategy__lr_sigma': 0.1, 'random_state': 1})
>>> alone = ES("snes", max_generations=30, strategy_options={"lr_sigma": 0.3}, random_state=1)
>>> bool(res.fun[4] == alone.fit(sphere, np.ones(4)).fun_)
True
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

from evostrat.backends.points import resolve_backend
from evostrat.errors import InvalidArgumentError, InvalidTypeError, ParameterOverrideWarning
from evostrat.run.batch_grid import check_batch_runs, expand_grid, seed_list
from evostrat.run.state import warn_nothing_found

__all__ = ["fit_batch", "BatchResult", "expand_grid", "seed_list", "keeps_state"]


class BatchResult:
    """The runs of :func:`fit_batch`, in grid order, the seeds varying fastest.

    Attributes
    ----------
    params : list of dict
        Each run's grid values and ``random_state``.
    estimators : list of ES
        The fitted estimators (``history_``, ``strategy_``, checkpoints work as after ``fit``).
    x : array, shape (n_runs, dim)
        Each run's ``x_`` (numpy; flat, also for structured ``x0``).
    fun, n_evals, n_generations : array, shape (n_runs,)
    stop_reason : array of str, shape (n_runs,)
    objectives : list
        Each run's objective: its own copy for an objective with state (see
        :func:`fit_batch`; ``objectives[i](x[i])`` evaluates run ``i``'s result with its
        observation statistics), else the objective passed, once per run.
    fast_path : str or None
        ``"batched"`` when runs advanced together in compiled programs (``n_programs``
        of them; ``estimators[i].fast_path_`` tells which), else ``None`` (a loop of
        ``ES.fit``, as for runs the compiled loop does not apply to: restarts, bounds).
    """

    def __init__(self, params: list[dict[str, Any]], estimators: list[Any], fast_path: str | None,
                 n_programs: int, objectives: list[Any] | None = None) -> None:
        self.params = params
        self.objectives = list(objectives) if objectives is not None else [None] * len(estimators)
        self.estimators = estimators
        self.fast_path = fast_path
        self.n_programs = n_programs
        self.x = np.stack([_host(e.run_.state.best_x) for e in estimators])
        self.fun = np.array([e.fun_ for e in estimators], dtype=np.float64)
        self.n_evals = np.array([e.n_evals_ for e in estimators], dtype=np.int64)
        self.n_generations = np.array([e.n_generations_ for e in estimators], dtype=np.int64)
        self.stop_reason = np.array([str(e.stop_reason_) for e in estimators])

    def __len__(self) -> int:
        return len(self.estimators)

    @property
    def histories(self) -> list[list[dict[str, Any]]]:
        """Each run's ``history_`` (one dict per generation)."""
        return [e.history_ for e in self.estimators]

    @property
    def x_structured(self) -> list[Any]:
        """Each run's ``x_``: in ``x0``'s structure when it had one, else as the backend's array."""
        return [e.x_ for e in self.estimators]

    def to_frame(self) -> Any:
        """One row per run, as a ``pandas.DataFrame`` (pandas is imported here).

        The columns are the grid's names (in the order they first appear in the grid;
        ``strategy__<name>`` as given; NaN where a run's part of a list-of-dicts grid does
        not set one), ``random_state`` (the run's seed, named as in :attr:`params` and
        :class:`~evostrat.ES`), ``fun``, ``n_evals``, ``n_generations``, ``stop_reason``
        and ``seed`` (the same values as ``random_state``, kept for code written against
        the earlier frames, which named the seed so).

        Raises
        ------
        ImportError
            Without pandas (:attr:`params` and the arrays hold the same values).
        """
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError("BatchResult.to_frame needs pandas: pip install evostrat[pandas] (without it, "
                              "res.params, res.fun, res.n_evals, res.n_generations and res.stop_reason hold "
                              "the same values)") from err
        names = list(dict.fromkeys(k for p in self.params for k in p if k != "random_state"))
        columns: dict[str, Any] = {name: [p.get(name, np.nan) for p in self.params] for name in names}
        columns.update(random_state=[p.get("random_state") for p in self.params], fun=self.fun,
                       n_evals=self.n_evals, n_generations=self.n_generations, stop_reason=self.stop_reason)
        columns["seed"] = columns["random_state"]  # the earlier name of the column
        return pd.DataFrame(columns)

    def __getattr__(self, name: str) -> Any:  # only when the usual look-up failed
        if name in _ARRAYS_OF:  # an estimator's name: the batch's array drops the underscore
            raise AttributeError(f"'BatchResult' object has no attribute {name!r}: each run's {name} is in "
                                 f"res.{_ARRAYS_OF[name]} (an array over the runs), or res.estimators[i].{name}")
        return object.__getattribute__(self, name)

    def __repr__(self) -> str:
        return (f"BatchResult({len(self)} runs, median fun {np.median(self.fun):.4g}, "
                f"fast_path={self.fast_path!r}, programs={self.n_programs})")


#: A fitted estimator's attributes -> the :class:`BatchResult` attribute holding them for every run.
_ARRAYS_OF = {"x_": "x", "fun_": "fun", "n_evals_": "n_evals", "n_generations_": "n_generations",
              "stop_reason_": "stop_reason", "history_": "histories"}


def _host(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.asarray(x, dtype=np.float64)


def _committed(x0: Any) -> Any:
    """``x0``, a JAX array not yet committed to a device (``jnp.ones(3)``) committed to its own
    once, as each run would commit it (the same values on the same device), instead of once per run."""
    if getattr(x0, "committed", True) is not False:  # numpy, torch, a structure, a committed array
        return x0
    return resolve_backend(x0, "auto").asarray(x0)


def _configured(es: Any, combo: dict[str, Any]) -> Any:
    """A new estimator with ``es``'s parameters and ``combo``'s (``es`` is left as it is)."""
    settings = es.get_params(deep=False)
    if not isinstance(settings.get("strategy"), str):  # an instance: the combination's own copy
        settings["strategy"] = copy.deepcopy(settings["strategy"])
    return type(es)(**settings).set_params(**combo)


def _as_is_hint(grid: Any, combos: list[dict[str, Any]]) -> str:
    """For ``grid``, an iterable that yielded its combinations as they are, one of which has a
    list as a value: how to have the list's values combined instead (``""`` for another grid)."""
    if grid is None or isinstance(grid, (Mapping, list, tuple)):
        return ""
    for combo in combos:
        listed = [name for name, v in combo.items() if isinstance(v, (list, tuple, range, np.ndarray))]
        if listed:
            return (f"; grid (a {type(grid).__name__}) yields the combinations themselves, so {listed[0]!r} was "
                    f"given the whole list {combo[listed[0]]!r}: pass a dict of lists or a list of such dicts "
                    f"to have their values combined")
    return ""


def fit_batch(es: Any, objective: Callable, x0: Any, *, seeds: Any = 1, grid: Any = None,
              devices: Any = "auto") -> BatchResult:
    """Fit a copy of ``es`` for every grid combination and seed; see the module docstring.

    Parameters
    ----------
    es : ES
        The template; its parameters are copied (``get_params``) and overridden by
        the grid's values and ``random_state``; ``es`` itself is not fitted.
    objective : callable
        As for :meth:`ES.fit`; on JAX it must trace for the runs to be batched. An
        objective with state of its own across evaluations (the generation protocol of
        :mod:`evostrat.evaluators.sync`, or ``checkpoint_state()``: a
        :class:`~evostrat.problems.gym.GymProblem` with ``obs_norm``) is deep-copied for
        every run before any runs, so that each run starts from its state and is the run
        done alone; ``objective`` itself is left as it is and the copies are
        :attr:`BatchResult.objectives`.
    x0 : array-like or structure
        The start point of every run (as for :meth:`ES.fit`).
    seeds : int, list of int, iterator of int or None
        ``n`` for seeds ``0 .. n-1``, or the seeds (``random_state`` of each run); ``None``:
        one run per grid combination with ``es``'s own ``random_state``.
    grid : dict, list of dict, ParameterGrid or iterable of dict, optional
        Parameters of :class:`~evostrat.ES` (``popsize``, ``sigma0``, ``max_generations``,
        ...) and ``strategy__<name>`` hyper-parameters, each with a list of values; another
        iterable (a ``ParameterGrid``, a generator) yields the combinations themselves
        (``{"popsize": 8}``) and is read once (:func:`expand_grid`).
    devices : "auto", None or list of JAX devices
        Where a JAX batch runs: ``"auto"`` shards the runs across all devices when
        there are several, ``None`` keeps them on the default device.

    Returns
    -------
    BatchResult

    Examples
    --------
    >>> import numpy as np
    >>> import evostrat
    >>> res = evostrat.fit_batch(evostrat.ES("snes", max_generations=50), evostrat.problems.sphere,
    ...                          np.ones(3), seeds=3, grid={"popsize": [6, 12]})
    >>> res.fun.shape, res.params[3]
    ((6,), {'popsize': 12, 'random_state': 0})
    """
    if not callable(objective):
        raise InvalidTypeError(f"objective must be callable, got {type(objective).__name__}")
    if isinstance(es, type) or not hasattr(es, "get_params") or not hasattr(es, "fit"):  # the class: ES() needed
        got = f"the class {es.__name__}" if isinstance(es, type) else type(es).__name__
        raise InvalidTypeError(f"es must be an evostrat ES (the template of the runs, ES(...)), got {got}")
    listed = isinstance(devices, (list, tuple)) and len(devices) > 0 and all(hasattr(d, "platform") for d in devices)
    if not (devices is None or devices == "auto" or listed):  # checked also when no JAX batch runs
        raise InvalidArgumentError(f"devices must be 'auto', None or a non-empty list of JAX devices, got {devices!r}")
    params, estimators, families = [], [], []
    combos = expand_grid(grid)
    seed_values = [es.random_state] if seeds is None else seed_list(seeds)
    check_batch_runs(len(combos) * len(seed_values), f"{len(combos)} grid combinations x {len(seed_values)} seeds")
    for family, combo in enumerate(combos):
        if "random_state" in combo:
            raise InvalidArgumentError("grid must not set random_state: pass the seeds as seeds=")
        try:
            template = _configured(es, combo)
        except (InvalidArgumentError, InvalidTypeError) as err:  # a name ES or its strategy does not have
            raise type(err)(f"grid's combination {combo!r}: {err}") from err
        for seed in seed_values:
            run = copy.copy(template)  # the combination's parameters, set and checked once
            if not isinstance(run.strategy, str):  # an instance: each run has its own copy
                run.set_params(strategy=copy.deepcopy(template.strategy))
            run.set_params(random_state=seed)
            params.append({**combo, "random_state": seed})
            estimators.append(run)
            families.append(family)  # a combination's runs differ only in the seed
    start = _committed(x0)
    from evostrat.run.batch_init import initialize_runs
    from evostrat.run.batch_jax import run_batched

    try:
        initial = initialize_runs(estimators, families, start)  # all checked before any evaluation
    except (InvalidArgumentError, InvalidTypeError) as err:
        hint = _as_is_hint(grid, combos)  # a generator of {name: list} dicts, meant as a list of them
        if not hint:
            raise
        raise type(err)(f"{err}{hint}") from err
    if keeps_state(objective):  # each run its own copy, made before any run changes it; run one by one
        objectives = [copy.deepcopy(objective) for _ in estimators]
        for run, own in zip(estimators, objectives):
            _refit(run, own, x0)
        return BatchResult(params, estimators, None, 0, objectives)
    structure = getattr(estimators[0].run_, "structure", None)  # a structured x0: the runs search flat vectors
    flat_objective = objective if structure is None else structure.objective(objective)
    n_programs = run_batched([run.run_ for run in estimators], flat_objective, devices, families, initial)
    from evostrat.run.batch_torch import run_batched_torch

    n_programs += run_batched_torch([run.run_ for run in estimators if run.run_.fast_path != "batched"], objective)

    for run in estimators:
        if run.run_.fast_path != "batched":  # restarts, bounds, a host objective, numpy
            _refit(run, objective, x0)
        elif run.run_.state.best_f == (-np.inf if run.maximize else np.inf):  # as fit warns of a run alone
            warn_nothing_found(run.run_.state, constrained=False)
    return BatchResult(params, estimators, "batched" if n_programs else None, n_programs,
                       [objective] * len(estimators))


def _refit(run: Any, objective: Callable, x0: Any) -> None:
    """``run.fit(objective, x0)`` for a run :func:`~evostrat.run.batch_init.initialize_runs` initialised
    and warned of already: ``fit`` initialises it again, and its ``ParameterOverrideWarning`` (the
    strategy's ``popsize`` or ``sigma0`` overridden by the estimator's) is not given a second time."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParameterOverrideWarning)
        run.fit(objective, x0)


def keeps_state(objective: Any) -> bool:
    """Whether ``objective`` changes as it evaluates (observation statistics): it implements
    the generation protocol of :mod:`evostrat.evaluators.sync` or saves ``checkpoint_state()``."""
    from evostrat.evaluators.sync import syncs

    return syncs(objective) or callable(getattr(objective, "checkpoint_state", None))
