"""pycma's ``result`` fields that :class:`~evostrat.ES` reads from its run: ``stds_`` and ``evals_best_``.

- ``ES.stds_`` (pycma's ``result.stds``): the per-coordinate standard deviations
  ``sigma * sqrt(diag C)`` of the current search distribution, as the strategy declares it
  (:meth:`~evostrat.strategies.base.Strategy.gaussian_readout`; a strategy that declares none:
  its ``sigma``, per coordinate or isotropic), 0 at ``fixed_variables``' coordinates
  (:mod:`evostrat.run.fixed`). As pycma's, they are in the space the strategy searches (pycma's
  genotype): the ``bounds`` mapping is not applied to them (it is the identity inside the box,
  away from its bounds, so there they are the spread of the candidates the objective sees; near
  a bound the candidates are folded into the box and spread less). With ``integer=`` and CMA-ES
  with margin (:mod:`evostrat.run.integers`) an integer coordinate's value is
  ``sigma * A_j * sqrt(C_jj)``, the spread of ``m + A (x - m)`` that is rounded (the margin's
  scaling ``A_j`` included, as pycma's lower bound on integer stds is in its ``stds``), not
  the strategy's own ``sigma * sqrt(C_jj)``, which falls far below 1 once the mean has
  settled on an integer.
- ``ES.evals_best_`` (pycma's ``result.evals_best``): the evaluation count at which ``x_`` was
  evaluated, the evaluations before its generation plus its position in the population
  (from 1), on the host loop, the compiled JAX loop and across restarts alike. A checkpoint
  written before evostrat recorded it resumes with the end of the first generation whose best
  so far equals ``fun_`` (:func:`evals_best_from_history`: at most ``popsize - 1`` too late).

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.problems import sphere
>>> es = ES("sep_cma_es", sigma0=np.array([1.0, 4.0]), max_generations=1, random_state=0)
>>> es.initialize(np.zeros(2)).stds_.tolist()
[1.0, 4.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evostrat.run.state import fitted_run
from evostrat.strategies.readout import host_readout, readout_variances, resolve_readout

__all__ = ["coordinate_stds", "evals_best_from_history", "readout_stds"]


def readout_stds(strategy: Any, state: Any, backend: Any) -> np.ndarray:
    """``sigma * sqrt(diag C)`` of ``strategy``'s distribution in ``state``, host float64 ``(dim,)``."""
    r = host_readout(resolve_readout(strategy, state), backend)
    dim = int(np.shape(backend.to_numpy(strategy.mean(state)))[0])
    variances = readout_variances(r)  # O(dim k) for a diagonal plus k directions (VkD-CMA, LM-MA-ES)
    diag = np.ones(dim) if variances is None else variances
    return np.broadcast_to(r.sigma * np.sqrt(np.maximum(diag, 0.0)), (dim,)).astype(np.float64)


def coordinate_stds(es: Any) -> np.ndarray:
    """``es.stds_``: the run's :func:`readout_stds` as a full vector (0 at fixed coordinates; flat
    for a structured ``x0``), times the margin's scaling ``A`` at integer coordinates."""
    run = fitted_run(es, "stds_")
    runner = run.runner
    stds = readout_stds(runner.strategy, runner.state, runner.backend)
    integers = run.integers
    if integers is not None and integers.with_margin and integers.runner is runner:
        stds = stds * integers.A  # the spread of m + A (x - m), which the margin keeps
    return stds if run.fixed is None else run.fixed.full_stds(stds)


def evals_best_from_history(history: list[dict[str, Any]], best_f: float) -> int:
    """The ``n_evals`` of the first history row whose best so far is ``best_f`` (0 when none):
    ``evals_best_`` of a run resumed from a checkpoint that did not record it."""
    return next((int(row["n_evals"]) for row in history if row.get("best") == best_f), 0)
