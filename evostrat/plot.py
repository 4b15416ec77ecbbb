"""Figures of a run (matplotlib; ``pip install evostrat[plot]``).

:func:`plot_convergence` draws fitness and sigma against evaluations, :func:`plot_search_2d`
the search distribution of a 2-D problem (recorded by
:class:`~evostrat.callbacks.SearchRecorder`) over the objective's contours, and
:func:`save_run_plots` writes both as PNG files (what ``evostrat run --plot`` does). They
draw into a given figure or a new :class:`matplotlib.figure.Figure` made without pyplot
(no GUI backend, safe on servers) and return it.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.callbacks import SearchRecorder
>>> from evostrat.plot import plot_convergence, plot_search_2d
>>> from evostrat.problems import rosenbrock
>>> rec = SearchRecorder()
>>> es = ES("cma_es", ftarget=1e-10, random_state=0).fit(rosenbrock, np.array([-1.5, 2.0]),
...                                                       callbacks=[rec])
>>> fig = plot_convergence(es)
>>> fig = plot_search_2d(rosenbrock, rec, best=es.x_)
>>> fig.savefig("/tmp/evostrat-search.png")          # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from evostrat.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["plot_convergence", "plot_search_2d", "save_run_plots"]


def _matplotlib() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("evostrat.plot needs matplotlib: pip install evostrat[plot]") from err
    return Figure


def _history(run: Any) -> list[dict[str, Any]]:
    history = getattr(run, "history_", run)
    if hasattr(history, "to_dict"):  # a pandas DataFrame
        history = history.to_dict("records")
    if not isinstance(history, (list, tuple)) or not all(isinstance(r, dict) for r in history):
        raise InvalidTypeError(
            f"expected a fitted ES, its history_ (list of dicts) or a DataFrame, got {type(run).__name__}"
        )
    if not history:
        raise InvalidArgumentError("the history is empty: fit the estimator first")
    return list(history)


def _column(history: list[dict[str, Any]], key: str) -> np.ndarray:
    return _f64([float(r.get(key, math.nan)) for r in history])


def _scale(ax: Any, *series: np.ndarray) -> None:
    values = np.concatenate([s[np.isfinite(s)] for s in series]) if series else np.array([])
    if values.size and np.all(values > 0):
        ax.set_yscale("log")
    elif values.size:
        tiny = np.abs(values[values != 0])
        ax.set_yscale("symlog", linthresh=float(tiny.min()) if tiny.size else 1.0)


def plot_convergence(run: Any, fig: Any = None, title: str | None = None) -> Any:
    """Fitness and sigma against evaluations, on log axes; restarts are dashed lines.

    Parameters
    ----------
    run : ES, list of dict or pandas.DataFrame
        A fitted estimator or its ``history_``.
    fig : matplotlib Figure, optional
        Drawn into (cleared); a new 7 x 5.5 inch figure by default.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Two axes sharing the x axis: fitness (top) and sigma (bottom), log scales
        (symlog when values are not all positive).
    """
    Figure = _matplotlib()
    history = _history(run)
    fig = fig if fig is not None else Figure(figsize=(7, 5.5), layout="constrained")
    fig.clear()
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    evals = _column(history, "n_evals")
    best, median, gen_best = (_column(history, k) for k in ("best", "median", "generation_best"))
    top.plot(evals, median, color="tab:orange", lw=1, alpha=0.8, label="generation median")
    top.plot(evals, gen_best, color="tab:blue", lw=0.8, alpha=0.45, label="generation best")
    top.plot(evals, best, color="tab:blue", lw=2, label="best so far")
    sigma = _column(history, "sigma")
    bottom.plot(evals, sigma, color="tab:green", lw=1.5)
    for ax, label, series in ((top, "fitness", (best, median, gen_best)), (bottom, "sigma", (sigma,))):
        _scale(ax, *series)
        ax.set_ylabel(label)
        ax.grid(True, which="major", alpha=0.3)
    bottom.set_xlabel("evaluations")
    runs = [r.get("run") for r in history]
    starts = [evals[i - 1] for i in range(1, len(runs)) if runs[i] is not None and runs[i] != runs[i - 1]]
    for k, x in enumerate(starts):
        for ax in (top, bottom):
            ax.axvline(x, color="grey", ls="--", lw=0.8, label="restart" if (k == 0 and ax is top) else None)
    top.legend(loc="upper right", fontsize="small")
    if title is None and hasattr(run, "strategy_"):
        title = (f"{run.strategy_.strategy.name}: best {run.fun_:.3g} after {run.n_evals_} evaluations "
                 f"({run.stop_reason_})")
    if title:
        top.set_title(title, fontsize="medium")
    return fig


def _values(objective: Any, points: np.ndarray) -> np.ndarray:
    """``objective`` on an ``(n, 2)`` grid: vectorised if it can, point by point otherwise."""
    try:
        out = _f64(objective(points))
        if out.shape == (points.shape[0],):
            return out
    except Exception:  # noqa: BLE001 - fall back to one point at a time
        pass
    return _f64([float(objective(p)) for p in points])


def _snapshots(recorded: Any) -> list[dict[str, Any]]:
    snaps = getattr(recorded, "snapshots", recorded)
    if not isinstance(snaps, (list, tuple)) or not snaps:
        raise InvalidArgumentError("plot_search_2d needs a SearchRecorder (or its snapshots) with at least one snapshot")
    for s in snaps:
        if not isinstance(s, dict) or np.asarray(s.get("mean")).shape != (2,):
            raise InvalidArgumentError("plot_search_2d draws 2-D problems only: snapshots must have a mean of shape (2,)")
    return list(snaps)


def _ellipse(ax: Any, mean: np.ndarray, samples: np.ndarray, color: Any) -> None:
    cov = np.cov(samples, rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    t = np.linspace(0, 2 * np.pi, 100)
    circle = np.stack([np.cos(t), np.sin(t)])
    pts = mean[:, None] + vecs @ (2 * np.sqrt(np.maximum(vals, 0))[:, None] * circle)
    ax.plot(pts[0], pts[1], color=color, lw=1.2)


def plot_search_2d(
    objective: Any,
    recorded: Any,
    best: Any = None,
    fig: Any = None,
    max_ellipses: int = 8,
    resolution: int = 200,
    title: str | None = None,
) -> Any:
    """The search distribution over the contours of a 2-D objective.

    Draws the path of the mean, 2-sigma ellipses of the distribution at the recorded
    generations (colour = generation) and the latest sample; an inset zooms in when the
    final distribution is too small to see.

    Parameters
    ----------
    objective : callable
        ``f(X (n, 2)) -> (n,)`` or ``f(x (2,)) -> float`` (numpy arrays).
    recorded : SearchRecorder or list of dict
        Snapshots with ``generation``, ``mean`` (2,) and ``samples`` (n, 2).
    best : array of shape (2,), optional
        A point to mark (e.g. ``es.x_``).
    fig : matplotlib Figure, optional
    max_ellipses : int
        At most this many snapshots get an ellipse (evenly picked, first and last kept).
    resolution : int
        Grid points per axis of the contour plot.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    Figure = _matplotlib()
    from matplotlib import cm, colors

    snaps = _snapshots(recorded)
    means = np.stack([_f64(s["mean"]) for s in snaps])
    pts = np.concatenate([means] + [_f64(s["samples"]) for s in snaps[:2]])
    lo, hi = np.percentile(pts, 1, axis=0), np.percentile(pts, 99, axis=0)
    lo, hi = np.minimum(lo, means.min(0)), np.maximum(hi, means.max(0))
    span = np.maximum(hi - lo, 1e-12)
    lo, hi = lo - 0.15 * span, hi + 0.15 * span
    fig = fig if fig is not None else Figure(figsize=(6.5, 5.5), layout="constrained")
    fig.clear()
    ax = fig.subplots()
    cs = _contours(ax, objective, np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution), 25)
    fig.colorbar(cs, ax=ax, label="objective", format="%.1e")
    picks = np.unique(np.linspace(0, len(snaps) - 1, min(max_ellipses, len(snaps))).round().astype(int))
    gens = [int(snaps[i]["generation"]) for i in picks]
    norm = colors.Normalize(vmin=min(gens), vmax=max(max(gens), min(gens) + 1))
    cmap = cm.viridis
    _draw(ax, snaps, picks, norm, cmap, best, inset=False)
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="generation (2-sigma ellipses)")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    _zoom(ax, objective, snaps, picks, norm, cmap, best, hi - lo, resolution)
    ax.set_xlabel("x[0]")
    ax.set_ylabel("x[1]")
    ax.legend(loc="upper left", fontsize="small")
    if title:
        ax.set_title(title, fontsize="medium")
    return fig


def _f64(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _contours(ax: Any, objective: Any, gx: np.ndarray, gy: np.ndarray, levels: int) -> Any:
    """Filled contours of ``objective`` on the grid ``gx x gy`` (log-spaced levels when all positive)."""
    from matplotlib import colors

    XX, YY = np.meshgrid(gx, gy)
    Z = _values(objective, np.stack([XX.ravel(), YY.ravel()], axis=1)).reshape(XX.shape)
    finite = Z[np.isfinite(Z)]
    if finite.size and finite.min() > 0:
        log_levels = np.geomspace(finite.min(), finite.max(), levels)
        return ax.contourf(XX, YY, Z, levels=log_levels, norm=colors.LogNorm(), cmap="Greys_r", alpha=0.75)
    return ax.contourf(XX, YY, Z, levels=levels, cmap="Greys_r", alpha=0.75)


def _draw(ax: Any, snaps: list, picks: Any, norm: Any, cmap: Any, best: Any, inset: bool) -> None:
    """The ellipses of ``picks``, the latest sample, the path of the mean and ``best`` (smaller in an inset)."""
    for i in picks:
        s = snaps[i]
        _ellipse(ax, _f64(s["mean"]), _f64(s["samples"]), cmap(norm(int(s["generation"]))))
    last, means = _f64(snaps[-1]["samples"]), np.stack([_f64(s["mean"]) for s in snaps])
    alpha = 0.6 if inset else 0.5
    ax.scatter(last[:, 0], last[:, 1], s=4 if inset else 6, color=cmap(1.0), alpha=alpha, label="latest sample")
    ax.plot(means[:, 0], means[:, 1], "-o", color="tab:red", ms=2 if inset else 3, lw=1 if inset else 1.2, label="mean")
    if best is not None:
        b = _f64(best.tolist() if hasattr(best, "tolist") else best)
        ax.plot(b[0], b[1], "*", color="gold", mec="black", ms=10 if inset else 14, label="best")


def _zoom(ax: Any, objective: Any, snaps: list, picks: Any, norm: Any, cmap: Any, best: Any,
          span: np.ndarray, resolution: int) -> None:
    """An inset around the final distribution when it is too small to see in the full view."""
    last = snaps[-1]
    centre = _f64(last["mean"])
    half = 4.0 * np.std(_f64(last["samples"]), axis=0, ddof=1).max()
    if not np.isfinite(half) or half <= 0 or 2 * half > 0.1 * span.min():
        return
    inset = ax.inset_axes([0.6, 0.04, 0.38, 0.38])
    gx = np.linspace(centre[0] - half, centre[0] + half, resolution // 2)
    gy = np.linspace(centre[1] - half, centre[1] + half, resolution // 2)
    _contours(inset, objective, gx, gy, 15)
    _draw(inset, snaps, picks, norm, cmap, best, inset=True)
    inset.set_xlim(gx[0], gx[-1])
    inset.set_ylim(gy[0], gy[-1])
    inset.set_xticks([])
    inset.set_yticks([])
    inset.set_title(f"generation {int(last['generation'])}: mean \u00b1 {half:.1e}", fontsize="x-small")
    ax.indicate_inset_zoom(inset, edgecolor="black")


def save_run_plots(folder: str | os.PathLike, es: Any, objective: Any = None, recorded: Any = None,
                   dpi: int = 120) -> list[str]:
    """Write ``convergence.png`` and (with 2-D snapshots) ``search.png``; returns the names.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.callbacks import SearchRecorder
    >>> from evostrat.problems import sphere
    >>> rec = SearchRecorder()
    >>> es = ES("snes", max_generations=40, random_state=0).fit(sphere, np.ones(2), callbacks=[rec])
    >>> save_run_plots(tempfile.mkdtemp(), es, sphere, rec)
    ['convergence.png', 'search.png']
    """
    def on_host(X: np.ndarray) -> np.ndarray:  # a numpy grid through the run's backend
        be, strategy = es.strategy_.backend, es.strategy_
        return _f64(be.to_numpy(objective(be.asarray(X, dtype=strategy.dtype, device=strategy.device))))

    os.makedirs(folder, exist_ok=True)
    plot_convergence(es).savefig(os.path.join(folder, "convergence.png"), dpi=dpi)
    written = ["convergence.png"]
    if objective is not None and recorded is not None:
        best = _f64(es.strategy_.backend.to_numpy(es.x_))
        title = f"{es.strategy_.strategy.name}: search distribution, generations 0-{es.n_generations_}"
        fig = plot_search_2d(on_host, recorded, best=best, title=title)
        fig.savefig(os.path.join(folder, "search.png"), dpi=dpi)
        written.append("search.png")
    return written

