"""Figures of a run: the public names of :mod:`evostrat.plotting`, under their first address.

``from evostrat.plot import plot_convergence, plot_diagnostics, plot_search_2d,
save_run_plots, plot_run_folder`` keeps working; the code lives in :mod:`evostrat.plotting`.
"""

from __future__ import annotations

from evostrat.plotting import (
    plot_convergence,
    plot_diagnostics,
    plot_run_folder,
    plot_search_2d,
    read_history_csv,
    save_run_plots,
)

__all__ = ["plot_convergence", "plot_diagnostics", "plot_search_2d", "save_run_plots", "plot_run_folder",
           "read_history_csv"]
