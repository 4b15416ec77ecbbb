"""evostrat.plot: the diagnostic, convergence and 2-D search figures, and import lightness."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evostrat import ES
from evostrat.callbacks import DistributionRecorder, SearchRecorder
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.problems import ellipsoid, rastrigin, rosenbrock, sphere

pytest.importorskip("matplotlib")
from evostrat.plot import plot_convergence, plot_diagnostics, plot_search_2d, save_run_plots  # noqa: E402


def test_convergence_plot_has_fitness_and_sigma_on_log_axes_and_restart_lines() -> None:
    es = ES("cma_es", restarts="ipop", tolfun=1e-3, max_evals=1500, random_state=1).fit(rastrigin, np.full(2, 2.0))
    n_restarts = len(es.restarts_) - 1
    assert n_restarts >= 1
    fig = plot_convergence(es, problem="rastrigin")
    top, bottom = fig.axes
    assert top.get_yscale() == "log" and bottom.get_yscale() == "log"
    assert top.get_ylabel() == "f - f_best" and bottom.get_ylabel() == "sigma"
    labels = [line.get_label() for line in top.get_lines()]
    assert {"best so far", "generation median", "generation best", "restart"} <= set(labels)
    best = next(line for line in top.get_lines() if line.get_label() == "best so far")
    f_best = min(r["best"] for r in es.history_)
    gap = np.array([r["best"] for r in es.history_]) - f_best
    np.testing.assert_array_equal(best.get_ydata(), np.where(gap > 0, gap, np.nan))
    assert np.array_equal(best.get_xdata(), [r["n_evals"] for r in es.history_])
    dashed = [line for line in bottom.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == n_restarts
    assert top.get_title().startswith("cma_es on rastrigin, 2-D: best")


@pytest.mark.filterwarnings("ignore::evostrat.errors.PerCandidateWarning")  # a one-candidate objective
def test_convergence_of_negative_and_maximised_values_is_the_distance_to_the_best() -> None:
    es = ES("snes", max_generations=20, random_state=0).fit(lambda X: sphere(X) - 5.0, np.ones(2))
    fig = plot_convergence(es.history_)
    assert fig.axes[0].get_yscale() == "log" and fig.axes[1].get_yscale() == "log"
    # maximising 1000 - f: symlog of raw f was flat; f_best - f falls over decades
    up = ES("snes", maximize=True, max_generations=150, random_state=0).fit(
        lambda X: 1000.0 - sphere(X), np.full(3, 3.0))
    for run in (up, up.history_):  # the estimator says maximize; a bare history shows it
        top = plot_convergence(run).axes[0]
        assert top.get_ylabel() == "f_best - f"
        best = next(line for line in top.get_lines() if line.get_label() == "best so far").get_ydata()
        finite = best[np.isfinite(best)]
        assert np.all(finite > 0) and finite[0] / finite[-1] > 1e4


def test_diagnostics_draws_six_pycma_panels_from_the_history() -> None:
    es = ES("cma_es", max_generations=60, random_state=0).fit(
        ellipsoid, np.full(4, 3.0), callbacks=[DistributionRecorder(every=1)])
    fig = plot_diagnostics(es, problem="ellipsoid")
    assert [ax.get_title() for ax in fig.axes] == [
        "f - f_best", "sigma and axis ratio", "mean coordinates", "principal axes lengths",
        "standard deviations in all coordinates", "correlation spectrum"]
    assert fig._suptitle.get_text().startswith("cma_es on ellipsoid, 4-D: best")
    f_axis, sigma_axis, mean_axis, axes_axis, stds_axis, corr_axis = fig.axes
    ratio = next(line for line in sigma_axis.get_lines() if line.get_label() == "axis ratio").get_ydata()
    axes = np.array([r["axes"] for r in es.history_])
    np.testing.assert_allclose(ratio, axes[:, -1] / axes[:, 0])
    assert ratio[-1] > 10  # the ellipsoid's conditioning is being learnt
    assert len(mean_axis.get_lines()) == 4 and len(stds_axis.get_lines()) == 4 and len(corr_axis.get_lines()) == 4
    np.testing.assert_allclose(mean_axis.get_lines()[2].get_ydata(), [r["mean"][2] for r in es.history_])
    np.testing.assert_allclose(stds_axis.get_lines()[0].get_ydata(), [r["stds"][0] for r in es.history_])
    assert all(ax.get_yscale() == "log" for ax in (f_axis, sigma_axis, axes_axis, stds_axis, corr_axis))
    # without the recorder: the f and sigma panels, and a hint in the others
    bare = plot_diagnostics(ES("snes", max_generations=5, random_state=0).fit(sphere, np.ones(3)))
    assert "DistributionRecorder" in bare.axes[2].texts[0].get_text()


def test_search_plot_colour_bar_ticks_are_powers_of_ten() -> None:
    rec = SearchRecorder(n_samples=20)
    es = ES("cma_es", max_generations=30, random_state=0).fit(rosenbrock, np.array([-1.5, 2.0]), callbacks=[rec])
    fig = plot_search_2d(rosenbrock, rec, best=es.x_)
    bar = next(ax for ax in fig.axes if ax.get_ylabel() == "objective")
    ticks = [t for t in bar.get_yticks() if bar.get_ylim()[0] <= t <= bar.get_ylim()[1]]
    assert 2 <= len(ticks) <= 10
    assert all(np.isclose(np.log10(t), round(np.log10(t))) for t in ticks)


def test_search_grid_calls_a_per_point_objective_with_points_only() -> None:
    ndims: list[int] = []

    def per_point(x: np.ndarray) -> float:
        ndims.append(np.ndim(x))
        return float(np.sum(x**2))

    rec = SearchRecorder(n_samples=10)
    ES("snes", evaluator="serial", max_generations=3, random_state=0).fit(per_point, np.ones(2), callbacks=[rec])
    ndims.clear()
    plot_search_2d(per_point, rec, resolution=12)
    assert set(ndims) == {1}


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
    es = ES("snes", max_generations=10, random_state=0).fit(
        sphere, torch.ones(2), callbacks=[DistributionRecorder(), rec])
    assert save_run_plots(tmp_path, es, sphere, rec) == ["convergence.png", "diagnostics.png", "search.png"]
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


def test_diagnostics_of_a_dataframe_with_sparse_records_draws_the_recorded_rows() -> None:
    pytest.importorskip("pandas")
    from evostrat.callbacks import DataFrameLogger, history_frame

    frame = DataFrameLogger()
    es = ES("cma_es", max_generations=40, random_state=0).fit(
        rosenbrock, np.zeros(3), callbacks=[DistributionRecorder(every=10), frame])
    recorded = [r for r in es.history_ if "mean" in r]
    assert 0 < len(recorded) < len(es.history_)  # the DataFrame has NaN in the other rows' vector cells
    for table in (history_frame(es), frame.frame):
        fig = plot_diagnostics(table)
        means = fig.axes[2].get_lines()
        assert len(means) == 3
        np.testing.assert_array_equal(means[0].get_xdata(), [r["n_evals"] for r in recorded])
        np.testing.assert_array_equal(means[1].get_ydata(), [r["mean"][1] for r in recorded])
