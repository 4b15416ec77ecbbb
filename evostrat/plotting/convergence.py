"""The convergence figure: ``f - f_best`` and sigma against evaluations."""

from __future__ import annotations

from typing import Any

import numpy as np

from evostrat.plotting.common import column, figure_class, history_rows, log_scale, restart_starts, run_title

__all__ = ["plot_convergence", "distance_to_best", "infer_maximize"]


def infer_maximize(run: Any, history: list[dict[str, Any]]) -> bool:
    """``run.maximize`` for a fitted ES; for a bare history, whether best so far ever rose."""
    if hasattr(run, "maximize") and hasattr(run, "history_"):
        return bool(run.maximize)
    best = column(history, "best")
    best = best[np.isfinite(best)]
    return bool(best.size > 1 and np.any(np.diff(best) > 0))


def distance_to_best(values: np.ndarray, f_best: float, maximize: bool) -> np.ndarray:
    """``f - f_best`` (``f_best - f`` when maximising), NaN where not positive (a log scale's gaps)."""
    gap = (f_best - values) if maximize else (values - f_best)
    return np.where(gap > 0, gap, np.nan)


def plot_convergence(run: Any, fig: Any = None, title: str | None = None, problem: str | None = None,
                     maximize: bool | None = None) -> Any:
    """``f - f_best`` and sigma against evaluations, on log axes; restarts are dashed lines.

    ``f_best`` is the best value of the run, so the curves fall to the run's precision
    whatever the sign or offset of ``f`` (``f_best - f`` when maximising), as pycma's
    ``cma.plot`` shows ``f - min(f)``.

    Parameters
    ----------
    run : ES, list of dict or pandas.DataFrame
        A fitted estimator or its ``history_``.
    fig : matplotlib.figure.Figure, optional
        Drawn into (cleared); a new 7 x 5.5 inch figure by default.
    title : str, optional
        Default: strategy, problem, dimension and result of a fitted ES.
    problem : str, optional
        The problem's name, for the default title.
    maximize : bool, optional
        Default: the estimator's; for a bare history, whether best so far ever rose.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes sharing the x axis: ``f - f_best`` (top: best so far, generation best,
        generation median) and sigma (bottom).

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> es = ES("snes", maximize=True, max_generations=60, random_state=0).fit(
    ...     lambda X: 100 - (X ** 2).sum(axis=1), np.ones(3))
    >>> fig = plot_convergence(es, problem="100 - sphere")
    >>> fig.axes[0].get_ylabel(), fig.axes[0].get_yscale()
    ('f_best - f', 'log')
    """
    Figure = figure_class()
    history = history_rows(run)
    maximize = infer_maximize(run, history) if maximize is None else bool(maximize)
    fig = fig if fig is not None else Figure(figsize=(7, 5.5), layout="constrained")
    fig.clear()
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    evals = column(history, "n_evals")
    best, median, gen_best = (column(history, k) for k in ("best", "median", "generation_best"))
    finite = np.concatenate([s[np.isfinite(s)] for s in (best, gen_best, median)])
    f_best = float((finite.max() if maximize else finite.min()) if finite.size else np.nan)
    label = "f_best - f" if maximize else "f - f_best"
    for series, style in ((median, dict(color="tab:orange", lw=1, alpha=0.8, label="generation median")),
                          (gen_best, dict(color="tab:blue", lw=0.8, alpha=0.45, label="generation best")),
                          (best, dict(color="tab:blue", lw=2, label="best so far"))):
        top.plot(evals, distance_to_best(series, f_best, maximize), **style)
    sigma = column(history, "sigma")
    bottom.plot(evals, sigma, color="tab:green", lw=1.5)
    top.set_yscale("log")
    log_scale(bottom, sigma)
    top.set_ylabel(label)
    bottom.set_ylabel("sigma")
    for ax in (top, bottom):
        ax.grid(True, which="major", alpha=0.3)
    top.text(0.01, 0.02, f"f_best = {f_best:.10g}", transform=top.transAxes, fontsize="small", color="0.3")
    bottom.set_xlabel("evaluations")
    for k, x in enumerate(restart_starts(history, evals)):
        for ax in (top, bottom):
            ax.axvline(x, color="grey", ls="--", lw=0.8, label="restart" if (k == 0 and ax is top) else None)
    top.legend(loc="upper right", fontsize="small")
    if title is None and hasattr(run, "strategy_"):
        title = run_title(run, problem, history)
    if title:
        top.set_title(title, fontsize="medium")
    return fig
