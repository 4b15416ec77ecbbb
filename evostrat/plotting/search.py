"""The 2-D search figure: the search distribution over the objective's contours."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from evostrat.backends import get_backend
from evostrat.errors import InvalidArgumentError, PerCandidateWarning
from evostrat.evaluators.local import AutoEvaluator
from evostrat.plotting.common import f64, figure_class

__all__ = ["plot_search_2d", "grid_values", "colorbar"]


def grid_values(objective: Any, points: np.ndarray) -> np.ndarray:
    """``objective`` on the ``(n, 2)`` grid ``points``, by the evaluators' rule.

    A marked objective is called as marked; an unmarked one with one point first, and
    with the whole grid only if it refuses one point (:mod:`evostrat.evaluators.local`),
    so a per-point function is never called with a 2-D array.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PerCandidateWarning)  # a per-point function is expected here
        return f64(AutoEvaluator().evaluate(objective, points, get_backend("numpy")))


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
    Figure = figure_class()
    from matplotlib import cm, colors

    snaps = _snapshots(recorded)
    means = np.stack([f64(s["mean"]) for s in snaps])
    pts = np.concatenate([means] + [f64(s["samples"]) for s in snaps[:2]])
    lo, hi = np.percentile(pts, 1, axis=0), np.percentile(pts, 99, axis=0)
    lo, hi = np.minimum(lo, means.min(0)), np.maximum(hi, means.max(0))
    span = np.maximum(hi - lo, 1e-12)
    lo, hi = lo - 0.15 * span, hi + 0.15 * span
    fig = fig if fig is not None else Figure(figsize=(6.5, 5.5), layout="constrained")
    fig.clear()
    ax = fig.subplots()
    cs = _contours(ax, objective, np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution), 25)
    colorbar(fig, cs, ax, "objective")
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


def colorbar(fig: Any, mappable: Any, ax: Any, label: str) -> Any:
    """A colour bar with a few readable ticks: powers of ten on a log scale, else plain numbers."""
    from matplotlib import colors, ticker

    if isinstance(getattr(mappable, "norm", None), colors.LogNorm):
        return fig.colorbar(mappable, ax=ax, label=label, ticks=ticker.LogLocator(numticks=8),
                            format=ticker.LogFormatterSciNotation())
    return fig.colorbar(mappable, ax=ax, label=label, ticks=ticker.MaxNLocator(7))


def _contours(ax: Any, objective: Any, gx: np.ndarray, gy: np.ndarray, levels: int) -> Any:
    """Filled contours of ``objective`` on the grid ``gx x gy`` (log-spaced levels when all positive)."""
    from matplotlib import colors

    XX, YY = np.meshgrid(gx, gy)
    Z = grid_values(objective, np.stack([XX.ravel(), YY.ravel()], axis=1)).reshape(XX.shape)
    finite = Z[np.isfinite(Z)]
    if finite.size and finite.min() > 0:
        log_levels = np.geomspace(finite.min(), finite.max(), levels)
        return ax.contourf(XX, YY, Z, levels=log_levels, norm=colors.LogNorm(), cmap="Greys_r", alpha=0.75)
    return ax.contourf(XX, YY, Z, levels=levels, cmap="Greys_r", alpha=0.75)


def _draw(ax: Any, snaps: list, picks: Any, norm: Any, cmap: Any, best: Any, inset: bool) -> None:
    """The ellipses of ``picks``, the latest sample, the path of the mean and ``best`` (smaller in an inset)."""
    for i in picks:
        s = snaps[i]
        _ellipse(ax, f64(s["mean"]), f64(s["samples"]), cmap(norm(int(s["generation"]))))
    last, means = f64(snaps[-1]["samples"]), np.stack([f64(s["mean"]) for s in snaps])
    alpha = 0.6 if inset else 0.5
    ax.scatter(last[:, 0], last[:, 1], s=4 if inset else 6, color=cmap(1.0), alpha=alpha, label="latest sample")
    ax.plot(means[:, 0], means[:, 1], "-o", color="tab:red", ms=2 if inset else 3, lw=1 if inset else 1.2, label="mean")
    if best is not None:
        b = f64(best.tolist() if hasattr(best, "tolist") else best)
        ax.plot(b[0], b[1], "*", color="gold", mec="black", ms=10 if inset else 14, label="best")


def _zoom(ax: Any, objective: Any, snaps: list, picks: Any, norm: Any, cmap: Any, best: Any,
          span: np.ndarray, resolution: int) -> None:
    """An inset around the final distribution when it is too small to see in the full view."""
    last = snaps[-1]
    centre = f64(last["mean"])
    half = 4.0 * np.std(f64(last["samples"]), axis=0, ddof=1).max()
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
