"""Figures of a run (matplotlib; ``pip install evostrat[plot]``); also importable as ``evostrat.plot``.

- :func:`plot_diagnostics`: six panels as pycma's ``cma.plot`` (``f - f_best``, sigma
  and axis ratio, mean coordinates, principal axes lengths, per-coordinate standard
  deviations, correlation spectrum), from a history recorded with
  :class:`~evostrat.callbacks.DistributionRecorder`;
- :func:`plot_convergence`: ``f - f_best`` and sigma against evaluations;
- :func:`plot_search_2d`: the search distribution of a 2-D problem (recorded by
  :class:`~evostrat.callbacks.SearchRecorder`) over the objective's contours;
- :func:`save_run_plots` writes them as PNG files (``evostrat run --plot``) and
  :func:`plot_run_folder` draws a run folder's ``history.csv`` (``evostrat plot DIR``);
- :func:`plot_sweep`: final fitness of a batch of runs (:func:`evostrat.fit_batch`) against
  each swept hyper-parameter, median and quartiles over seeds.

They draw into a given figure or a new ``matplotlib.figure.Figure`` made without pyplot
(no GUI backend, safe on servers) and return it.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.callbacks import DistributionRecorder, SearchRecorder
>>> from evostrat.plot import plot_diagnostics, plot_search_2d
>>> from evostrat.problems import rosenbrock
>>> rec = SearchRecorder()
>>> es = ES("cma_es", ftarget=1e-10, random_state=0).fit(rosenbrock, np.array([-1.5, 2.0]),
...                                                       callbacks=[DistributionRecorder(), rec])
>>> fig = plot_diagnostics(es, problem="rosenbrock")
>>> fig = plot_search_2d(rosenbrock, rec, best=es.x_)
>>> fig.savefig("/tmp/evostrat-search.png")          # doctest: +SKIP
"""

from __future__ import annotations

from evostrat.plotting.convergence import plot_convergence
from evostrat.plotting.diagnostics import plot_diagnostics
from evostrat.plotting.files import plot_run_folder, read_history_csv, save_run_plots
from evostrat.plotting.search import plot_search_2d
from evostrat.plotting.sweep import plot_sweep, sweep_summary

__all__ = ["plot_convergence", "plot_diagnostics", "plot_search_2d", "save_run_plots", "plot_run_folder",
           "read_history_csv", "plot_sweep", "sweep_summary"]
