"""What the figures share: matplotlib's ``Figure`` (imported lazily), a run's history and titles."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from evostrat.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["figure_class", "history_rows", "column", "f64", "log_scale", "run_title", "restart_starts"]


def figure_class() -> Any:
    """``matplotlib.figure.Figure`` (no pyplot: no GUI backend), or a clear ImportError."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("evostrat.plot needs matplotlib: pip install evostrat[plot]") from err
    return Figure


def history_rows(run: Any) -> list[dict[str, Any]]:
    """``run``'s history: a fitted ES, its ``history_`` (list of dicts) or a DataFrame."""
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


def f64(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def column(history: list[dict[str, Any]], key: str) -> np.ndarray:
    """One scalar column of the history (NaN where a row lacks it)."""
    return f64([float(r.get(key, math.nan)) for r in history])


def log_scale(ax: Any, *series: np.ndarray) -> None:
    """Log scale for positive data, symlog otherwise."""
    values = np.concatenate([s[np.isfinite(s)] for s in series]) if series else np.array([])
    if values.size and np.all(values > 0):
        ax.set_yscale("log")
    elif values.size:
        tiny = np.abs(values[values != 0])
        ax.set_yscale("symlog", linthresh=float(tiny.min()) if tiny.size else 1.0)


def restart_starts(history: list[dict[str, Any]], evals: np.ndarray) -> list[float]:
    """Evaluation counts at which a restart began."""
    runs = [r.get("run") for r in history]
    return [float(evals[i - 1]) for i in range(1, len(runs)) if runs[i] is not None and runs[i] != runs[i - 1]]


def run_title(run: Any, problem: str | None, history: list[dict[str, Any]], what: str = "") -> str:
    """``"<strategy> on <problem>, <dim>-D: <what>"`` with what the run tells (a fitted ES)."""
    strategy = getattr(getattr(getattr(run, "strategy_", None), "strategy", None), "name", None)
    dim = None
    if hasattr(run, "x_"):
        dim = int(np.size(np.asarray(run.strategy_.backend.to_numpy(run.x_))))
    elif history and "mean" in history[-1]:
        dim = len(history[-1]["mean"])
    head = " on ".join(p for p in (strategy, problem) if p) or "run"
    if dim is not None:
        head += f", {dim}-D"
    tail = []
    if hasattr(run, "fun_"):
        tail.append(f"best {run.fun_:.4g} after {run.n_evals_} evaluations ({run.stop_reason_})")
    if what:
        tail.insert(0, what)
    return head + (": " + ", ".join(tail) if tail else "")
