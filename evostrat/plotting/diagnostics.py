"""The diagnostic figure of a run, as pycma's ``cma.plot``: six panels from ``history_``."""

from __future__ import annotations

from typing import Any

import numpy as np

from evostrat.plotting.common import column, f64, figure_class, history_rows, restart_starts, run_title
from evostrat.plotting.convergence import distance_to_best, infer_maximize

__all__ = ["LINEAR_LIMIT", "plot_diagnostics", "VECTOR_FIELDS"]

#: Largest magnitude a linear panel (the mean's coordinates) draws on a linear axis; larger
#: values switch it to a symmetric log axis (matplotlib's tick and margin arithmetic overflows
#: on values near the largest float).
LINEAR_LIMIT = 1e100

#: The history fields :class:`~evostrat.callbacks.DistributionRecorder` adds, drawn here.
VECTOR_FIELDS = ("mean", "stds", "axes", "correlations")


def _vectors(history: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Evaluations and the ``(rows, dim)`` values of the rows that recorded ``key`` (a vector; the
    NaN that a DataFrame puts in the rows a sparse recorder skipped is no record)."""
    rows = [r for r in history if np.ndim(r.get(key)) == 1 and np.size(r[key]) > 0]
    if not rows:
        return np.empty(0), np.empty((0, 0))
    return column(rows, "n_evals"), np.stack([f64(r[key]) for r in rows])


def _lines(ax: Any, x: np.ndarray, Y: np.ndarray, log: bool, labels: bool) -> None:
    """One line per column of ``Y``; index labels at the right end for up to 20 columns."""
    if Y.size == 0:
        ax.text(0.5, 0.5, "not recorded: fit with\ncallbacks=[DistributionRecorder()]", ha="center",
                va="center", transform=ax.transAxes, fontsize="small", color="0.4")
        return
    from matplotlib import colormaps

    Y = np.where(np.isfinite(Y), Y, np.nan)  # inf and NaN: gaps
    finite = np.abs(Y[np.isfinite(Y)])
    if not log and finite.size and finite.max() > LINEAR_LIMIT:  # a linear axis's ticks overflow near 1e308
        ax.set_yscale("symlog")
    colors = [colormaps["viridis"](t) for t in np.linspace(0, 0.95, Y.shape[1])]
    marker = "." if len(x) < 60 else None  # sparse records: show where they are
    for j in range(Y.shape[1]):
        ax.plot(x, Y[:, j], color=colors[j], lw=1 if Y.shape[1] <= 20 else 0.6, marker=marker, ms=3)
        if labels and Y.shape[1] <= 20:
            ax.annotate(str(j), (x[-1], Y[-1, j]), xytext=(3, 0), textcoords="offset points",
                        fontsize="x-small", va="center", color=colors[j])
    if log:
        ax.set_yscale("log")


def plot_diagnostics(run: Any, fig: Any = None, title: str | None = None, problem: str | None = None,
                     maximize: bool | None = None) -> Any:
    """Six panels of a run against evaluations, as pycma's ``cma.plot``.

    1. ``f - f_best`` (``f_best - f`` when maximising; best so far, generation best and
       median) on a log scale;
    2. sigma and the axis ratio (longest over shortest principal axis), log scale;
    3. the mean's coordinates;
    4. the principal axis lengths of the distribution (log);
    5. the per-coordinate standard deviations (log);
    6. the correlation spectrum: eigenvalues of the correlation matrix (log; all 1 for
       diagonal strategies).

    Panels 2-6 use the ``mean``, ``stds``, ``axes`` and ``correlations`` that
    :class:`~evostrat.callbacks.DistributionRecorder` adds to ``history_`` (panel 2
    draws sigma alone without them; the others then say how to record them).

    Parameters
    ----------
    run : ES, list of dict or pandas.DataFrame
        A fitted estimator or its ``history_``.
    fig : matplotlib.figure.Figure, optional
        Drawn into (cleared); a new 11 x 9 inch figure by default.
    title : str, optional
        Default: strategy, problem, dimension and result of a fitted ES.
    problem : str, optional
        The problem's name, for the default title.
    maximize : bool, optional
        Default: the estimator's; for a bare history, whether best so far ever rose.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.callbacks import DistributionRecorder
    >>> from evostrat.problems import ellipsoid
    >>> es = ES("cma_es", max_generations=100, random_state=0).fit(
    ...     ellipsoid, np.full(6, 3.0), callbacks=[DistributionRecorder()])
    >>> fig = plot_diagnostics(es, problem="ellipsoid")
    >>> [ax.get_title() for ax in fig.axes]  # doctest: +NORMALIZE_WHITESPACE
    ['f - f_best', 'sigma and axis ratio', 'mean coordinates', 'principal axes lengths',
     'standard deviations in all coordinates', 'correlation spectrum']
    """
    Figure = figure_class()
    history = history_rows(run)
    maximize = infer_maximize(run, history) if maximize is None else bool(maximize)
    fig = fig if fig is not None else Figure(figsize=(11, 9), layout="constrained")
    fig.clear()
    axs = fig.subplots(3, 2, sharex=True).ravel()
    evals = column(history, "n_evals")

    best, median, gen_best = (column(history, k) for k in ("best", "median", "generation_best"))
    finite = np.concatenate([s[np.isfinite(s)] for s in (best, gen_best, median)])
    f_best = float((finite.max() if maximize else finite.min()) if finite.size else np.nan)
    ax = axs[0]
    ax.plot(evals, distance_to_best(median, f_best, maximize), color="tab:orange", lw=1, label="generation median")
    ax.plot(evals, distance_to_best(gen_best, f_best, maximize), color="tab:blue", lw=0.8, alpha=0.45,
            label="generation best")
    ax.plot(evals, distance_to_best(best, f_best, maximize), color="tab:blue", lw=2, label="best so far")
    ax.set_yscale("log")
    ax.set_title("f_best - f" if maximize else "f - f_best", fontsize="medium")
    ax.text(0.01, 0.02, f"f_best = {f_best:.10g}", transform=ax.transAxes, fontsize="x-small", color="0.3")
    ax.legend(loc="upper right", fontsize="x-small")

    ax = axs[1]
    ax.plot(evals, column(history, "sigma"), color="tab:green", lw=1.5, label="sigma")
    x_axes, axes = _vectors(history, "axes")
    if axes.size:
        ratio = axes.max(axis=1) / np.where(axes.min(axis=1) > 0, axes.min(axis=1), np.nan)
        ax.plot(x_axes, ratio, color="tab:red", lw=1.5, label="axis ratio", marker="." if len(x_axes) < 60 else None,
                ms=3)
    ax.set_yscale("log")
    ax.set_title("sigma and axis ratio", fontsize="medium")
    ax.legend(loc="best", fontsize="x-small")

    x_mean, means = _vectors(history, "mean")
    _lines(axs[2], x_mean, means, log=False, labels=True)
    axs[2].set_title("mean coordinates", fontsize="medium")
    _lines(axs[3], x_axes, axes, log=True, labels=False)
    axs[3].set_title("principal axes lengths", fontsize="medium")
    x_stds, stds = _vectors(history, "stds")
    _lines(axs[4], x_stds, stds, log=True, labels=True)
    axs[4].set_title("standard deviations in all coordinates", fontsize="medium")
    x_corr, corr = _vectors(history, "correlations")
    _lines(axs[5], x_corr, np.maximum(corr, 1e-12) if corr.size else corr, log=True, labels=False)
    axs[5].set_title("correlation spectrum", fontsize="medium")

    for x in restart_starts(history, evals):
        for ax in axs:
            ax.axvline(x, color="grey", ls="--", lw=0.8)
    for ax in axs:
        ax.grid(True, which="major", alpha=0.3)
    for ax in axs[4:]:
        ax.set_xlabel("evaluations")
    if title is None:
        title = run_title(run, problem, history)
    fig.suptitle(title, fontsize="medium")
    return fig
