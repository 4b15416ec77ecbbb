"""evostrat.plot: the convergence and 2-D search figures, and import lightness."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evostrat import ES
from evostrat.callbacks import SearchRecorder
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.problems import rastrigin, rosenbrock, sphere

pytest.importorskip("matplotlib")
from evostrat.plot import plot_convergence, plot_search_2d, save_run_plots  # noqa: E402


def test_convergence_plot_has_fitness_and_sigma_on_log_axes_and_restart_lines() -> None:
    es = ES("cma_es", restarts="ipop", tolfun=1e-3, max_evals=1500, random_state=1).fit(rastrigin, np.full(2, 2.0))
    n_restarts = len(es.restarts_) - 1
    assert n_restarts >= 1
    fig = plot_convergence(es)
    top, bottom = fig.axes
    assert top.get_yscale() == "log" and bottom.get_yscale() == "log"
    assert top.get_ylabel() == "fitness" and bottom.get_ylabel() == "sigma"
    labels = [line.get_label() for line in top.get_lines()]
    assert {"best so far", "generation median", "generation best", "restart"} <= set(labels)
    best = next(line for line in top.get_lines() if line.get_label() == "best so far")
    assert np.array_equal(best.get_ydata(), [r["best"] for r in es.history_])
    assert np.array_equal(best.get_xdata(), [r["n_evals"] for r in es.history_])
    dashed = [line for line in bottom.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == n_restarts
    assert "cma_es" in top.get_title()


def test_convergence_plot_of_negative_values_uses_symlog() -> None:
    es = ES("snes", max_generations=20, random_state=0).fit(lambda X: sphere(X) - 5.0, np.ones(2))
    fig = plot_convergence(es.history_)
    assert fig.axes[0].get_yscale() == "symlog" and fig.axes[1].get_yscale() == "log"


def test_search_plot_draws_contours_path_and_ellipses() -> None:
    rec = SearchRecorder(every=2, n_samples=100)
    es = ES("cma_es", max_generations=30, random_state=0).fit(rosenbrock, np.array([-1.5, 2.0]), callbacks=[rec])
    fig = plot_search_2d(rosenbrock, rec, best=es.x_, max_ellipses=5)
    ax = fig.axes[0]
    assert ax.collections, "no contours"
    mean_path = next(line for line in ax.get_lines() if line.get_label() == "mean")
    assert np.allclose(mean_path.get_xydata(), [s["mean"] for s in rec.snapshots])
    ellipses = [line for line in ax.get_lines() if line.get_label().startswith("_")]
    assert len(ellipses) == 5
    # an ellipse is 2 sigma of the recorded sample: its extent matches the sample's spread
    last = rec.snapshots[-1]
    width = np.ptp(ellipses[-1].get_xdata())
    assert width == pytest.approx(4 * np.std(last["samples"][:, 0], ddof=1), rel=0.35)


def test_search_plot_needs_two_dimensions_and_snapshots() -> None:
    rec = SearchRecorder(n_samples=10)
    ES("snes", max_generations=3, random_state=0).fit(sphere, np.ones(3), callbacks=[rec])
    with pytest.raises(InvalidArgumentError, match="2-D problems only"):
        plot_search_2d(sphere, rec)
    with pytest.raises(InvalidArgumentError, match="at least one snapshot"):
        plot_search_2d(sphere, [])
    with pytest.raises(InvalidArgumentError, match="history is empty"):
        plot_convergence([])
    with pytest.raises(InvalidTypeError, match="fitted ES"):
        plot_convergence("history")


def test_save_run_plots_with_a_torch_objective(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    rec = SearchRecorder(n_samples=20)
    es = ES("snes", max_generations=10, random_state=0).fit(sphere, torch.ones(2), callbacks=[rec])
    assert save_run_plots(tmp_path, es, sphere, rec) == ["convergence.png", "search.png"]
    assert (tmp_path / "search.png").read_bytes()[:4] == b"\x89PNG"


def test_import_evostrat_stays_light() -> None:
    code = (
        "import sys, evostrat, evostrat.callbacks, evostrat.checkpoint, evostrat.callbacks.progress, evostrat.cli; "
        "heavy = ('torch', 'jax', 'matplotlib', 'rich', 'tqdm', 'sklearn', 'pandas', 'ray'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
