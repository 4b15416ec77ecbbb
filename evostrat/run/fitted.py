"""The fitted attributes of :class:`~evostrat.ES`, read from its run.

:class:`FittedAttributes` is the estimator's read-only view of its run (the
:class:`~evostrat.run.driver.Driver` in ``es.run_``): the best candidate and its value, the
mean, the counters, the history, the restarts, why the run stopped and the ask/tell runner.
Before :meth:`~evostrat.ES.fit` or :meth:`~evostrat.ES.initialize` each raises
:class:`~evostrat.errors.NotFittedError` (an ``AttributeError`` too, as scikit-learn's
``hasattr`` checks expect).

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.problems import sphere
>>> es = ES("snes", max_generations=4, random_state=0)
>>> hasattr(es, "x_")
False
>>> es = es.fit(sphere, np.ones(2))
>>> es.n_generations_, es.stop_reason_, es.x_.shape
(4, 'maxiter', (2,))
"""

from __future__ import annotations

from typing import Any

from evostrat.run.asktell import AskTell
from evostrat.run.result import coordinate_stds
from evostrat.run.state import fitted_attribute, fitted_run

__all__ = ["FittedAttributes"]


class FittedAttributes:
    """The fitted attributes (``x_``, ``fun_``, ``mean_``, ...) of an estimator with a run in ``run_``."""

    @property
    def x_(self) -> Any:
        """The best candidate so far (inside ``bounds`` when given), in ``x0``'s structure when it
        had one (:mod:`evostrat.backends.structured`)."""
        run = self._fitted_run("x_")
        return run.state.best_x if run.structure is None else run.structure.restore(run.state.best_x)

    @property
    def mean_(self) -> Any:
        """The search distribution's current mean as a candidate (pycma's ``xfavorite``): mapped into
        ``bounds`` and its integer coordinates decoded, as the candidates are, in ``x0``'s structure when
        it had one (``strategy_.mean`` is the strategy's own, before that mapping)."""
        run = self._fitted_run("mean_")
        mean = run.to_box(run.runner.backend.xp.stack([run.runner.mean]))[0]  # a copy, never the state's
        return mean if run.structure is None else run.structure.restore(mean)

    fun_ = fitted_attribute("best_f", "Its value (user's sense) in the run's dtype (docs/guides/backends.md); ``inf`` "
                            "(``-inf`` maximising) while no value was finite, ``x_`` then the initial mean.",
                            attribute="fun_")
    n_evals_ = fitted_attribute("n_evals", "Evaluations over all restarts.")
    n_generations_ = fitted_attribute("n_generations", "Generations over all restarts.")
    history_ = fitted_attribute("history", "One dict per generation (see :meth:`fit`).")
    restarts_ = fitted_attribute("restarts", "One dict per restart run (:mod:`evostrat.run.restarts`).")
    stop_reason_ = fitted_attribute("stop_reason", "Why the run stopped, or ``None``.", settable=True)
    evals_best_ = fitted_attribute("best_evals", "pycma's ``evals_best``: the evaluation count at which ``x_`` "
                                   "was evaluated (:mod:`evostrat.run.result`).", attribute="evals_best_")
    stds_ = property(coordinate_stds, doc="pycma's ``stds``: ``sigma * sqrt(diag C)`` per coordinate, numpy, "
                     "no ``bounds`` mapping, integers' margin included (:mod:`evostrat.run.result`).")

    def _fitted_run(self, what: str) -> Any:
        return fitted_run(self, what)

    @property
    def strategy_(self) -> AskTell:
        """The stateful ask/tell runner of the current (restart) run: strategy, state, counters."""
        return self._fitted_run("strategy_").runner

    @property
    def fast_path_(self) -> str | None:
        """``"compiled_loop"`` when the last fit ran in compiled JAX chunks, else ``None``."""
        return self._fitted_run("fast_path_").fast_path

    @property
    def _termination(self) -> Any:  # the current run's criteria (read by tests and tools)
        return self._fitted_run("_termination").termination
