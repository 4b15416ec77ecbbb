"""The Pendulum sweep example (issue 19 item 3) at its CI size, and the sweep figure."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # about 45 s here, nearly all of it compiling the gymnax programs
def test_pendulum_sweep_tiny(tmp_path: Path) -> None:
    pytest.importorskip("gymnax")
    pytest.importorskip("matplotlib")
    sys.path.insert(0, str(ROOT / "examples" / "rl"))
    try:
        import pendulum_sweep
    finally:
        sys.path.pop(0)
    out = pendulum_sweep.run(**pendulum_sweep.TINY, verbose=False)
    assert len(out["params"]) == 2 and {p["hidden"] for p in out["params"]} == {2}
    assert [p["strategy__lr_mean"] for p in out["params"]] == [0.5, 1.0]  # the article's mean learning rate
    assert np.all(np.isfinite(out["test_return"])) and np.all(out["test_return"] <= 0)  # Pendulum rewards <= 0
    pendulum_sweep.plot(out, str(tmp_path / "sweep.png"))
    assert (tmp_path / "sweep.png").stat().st_size > 1000


def test_plot_sweep_panels_and_errors() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from evostrat import ES, InvalidArgumentError, fit_batch
    from evostrat.plotting import plot_sweep, sweep_summary
    from evostrat.problems import sphere

    res = fit_batch(ES("snes", max_generations=4), sphere, np.ones(3), seeds=3,
                    grid={"popsize": [6, 10], "strategy__lr_sigma": [0.1, 0.2]})
    fig = plot_sweep(res, logy=True)
    assert [ax.get_xlabel() for ax in fig.axes] == ["popsize", "lr_sigma"]
    s = sweep_summary(res, "popsize")
    assert s["n"].tolist() == [6, 6]
    assert s["median"][0] == pytest.approx(np.median(res.fun[:6]))
    with pytest.raises(InvalidArgumentError, match="param must be one of the swept names"):
        sweep_summary(res, "sigma0")


def test_plot_sweep_logy_shows_negative_values_on_a_symlog_axis() -> None:
    """logy=True on rewards or maximised values (all negative) drew an empty log panel."""
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from evostrat import ES, fit_batch
    from evostrat.plotting import plot_sweep

    res = fit_batch(ES("snes", max_generations=5, maximize=True), lambda X: -(X ** 2).sum(axis=1) - 1.0,
                    np.ones(3), seeds=2, grid={"popsize": [6, 10]})
    assert np.all(res.fun < 0)
    ax = plot_sweep(res, logy=True).axes[0]
    assert ax.get_yscale() == "symlog"
    low, high = ax.get_ylim()
    median = [np.median(res.fun[:2]), np.median(res.fun[2:])]
    assert low <= min(median) and max(median) <= high  # the medians are inside the drawn range
    res = fit_batch(ES("snes", max_generations=5), lambda X: (X ** 2).sum(axis=1), np.ones(3), seeds=2,
                    grid={"popsize": [6, 10]})
    assert plot_sweep(res, logy=True).axes[0].get_yscale() == "log"  # positive values: a log axis


def test_sweep_over_structured_and_array_sigma0() -> None:
    """A grid of per-leaf sigma0 dicts or arrays (unhashable) and a number (not orderable with them)."""
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from evostrat import ES, fit_batch
    from evostrat.plotting import plot_sweep, sweep_summary

    def loss(p):
        return float((p["w"] ** 2).sum() + (p["b"] ** 2).sum())

    grid = {"sigma0": [{"w": 0.1, "b": 1.0}, {"w": 1.0, "b": 0.1}, 0.5]}
    res = fit_batch(ES("snes", max_generations=3), loss, {"w": np.ones(2), "b": np.ones(1)}, seeds=2, grid=grid)
    s = sweep_summary(res, "sigma0")
    assert list(s["value"]) == grid["sigma0"] and s["n"].tolist() == [2, 2, 2]
    assert [ax.get_xlabel() for ax in plot_sweep(res).axes] == ["sigma0"]
    res = fit_batch(ES("snes", max_generations=3), loss, {"w": np.ones(2), "b": np.ones(1)}, seeds=1,
                    grid={"sigma0": [np.full(3, 0.1), np.full(3, 1.0)]})
    assert sweep_summary(res, "sigma0")["value"].shape == (2,)


def test_plot_sweep_refuses_what_would_misalign_or_drop_panels() -> None:
    """values of another length than the runs were zipped with the runs' parameters (a
    misaligned figure), too few axes dropped panels, and params="popsize" was read letter
    by letter ('got 'p'')."""
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from evostrat import ES, InvalidArgumentError, fit_batch
    from evostrat.plotting import plot_sweep, sweep_summary
    from evostrat.problems import sphere

    res = fit_batch(ES("snes", max_generations=3), sphere, np.ones(3), seeds=2,
                    grid={"popsize": [6, 10], "strategy__lr_sigma": [0.1, 0.2]})
    with pytest.raises(InvalidArgumentError, match=r"values must hold one number per run, shape \(8,\), got shape \(5,\)"):
        sweep_summary(res, "popsize", np.arange(5.0))
    with pytest.raises(InvalidArgumentError, match=r"values must hold one number per run, shape \(8,\), got shape \(9,\)"):
        plot_sweep(res, values=np.arange(9.0))
    with pytest.raises(InvalidArgumentError, match=r"axes must hold one Axes per parameter \(2: \['popsize', "
                                                   r"'strategy__lr_sigma'\]\), got 1"):
        plot_sweep(res, axes=[plt.subplots()[1]])
    fig, ax = plt.subplots()
    assert [a.get_xlabel() for a in plot_sweep(res, "popsize", axes=ax).axes] == ["popsize"]  # one name, one Axes
    s = sweep_summary(res, "popsize", values=-res.fun)
    assert s["median"] == pytest.approx([-np.median(res.fun[:4]), -np.median(res.fun[4:])], rel=1e-12)
    plt.close("all")


def test_sweep_tells_apart_long_arrays_that_differ_between_their_ends() -> None:
    """Unhashable values were grouped by numpy's repr, which shows a long array's ends only: two
    sigma0 arrays differing in between were one value (n=4 over both), and the default panels
    took sigma0 for unswept and drew popsize."""
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from evostrat import ES, fit_batch
    from evostrat.plotting import plot_sweep, sweep_summary
    from evostrat.problems import sphere

    a = np.full(1200, 0.1)
    b, c = a.copy(), a.copy()
    b[600:610] = 5.0
    c[600] = 0.1 + 1e-12  # beyond repr's 8 digits
    res = fit_batch(ES("snes", max_generations=2), sphere, np.ones(1200), seeds=2,
                    grid={"sigma0": [a, b, c], "popsize": [6]})
    s = sweep_summary(res, "sigma0")
    assert s["n"].tolist() == [2, 2, 2]
    assert [v is w for v, w in zip(s["value"], (a, b, c))] == [True, True, True]
    assert s["median"] == pytest.approx([np.median(res.fun[:2]), np.median(res.fun[2:4]), np.median(res.fun[4:])])
    assert [ax.get_xlabel() for ax in plot_sweep(res).axes] == ["sigma0"]


def test_plot_sweep_makes_its_figure_without_pyplot() -> None:
    """The sweep figure is a Figure made without pyplot, as the other plots': pyplot registers no figure
    (it used plt.subplots, so each call left one in pyplot's registry, on the GUI backend)."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    from evostrat import ES, fit_batch
    from evostrat.plotting import plot_sweep
    from evostrat.problems import sphere

    res = fit_batch(ES("snes", max_generations=4), sphere, np.ones(3), seeds=2, grid={"popsize": [6, 10]})
    before = plt.get_fignums()
    fig = plot_sweep(res, title="sweep")
    assert plt.get_fignums() == before and type(fig) is Figure
    (ax,) = fig.axes
    assert ax.get_xlabel() == "popsize" and ax.get_ylabel() == "final fitness"
    (line,) = ax.get_lines()
    assert line.get_xdata().tolist() == [6.0, 10.0]
    assert line.get_ydata().tolist() == [np.median(res.fun[:2]), np.median(res.fun[2:])]
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 1  # the 25-75 % band
    assert fig.get_suptitle() == "sweep"


def test_plot_sweep_imports_no_pyplot(tmp_path: Path) -> None:
    """A headless user: plotting a sweep starts no pyplot (so no GUI backend) in a fresh process."""
    pytest.importorskip("matplotlib")
    import subprocess

    code = ("import sys, numpy as np\nfrom evostrat import ES, fit_batch\nfrom evostrat.plotting import plot_sweep\n"
            "res = fit_batch(ES('snes', max_generations=3), lambda X: (X ** 2).sum(axis=1), np.ones(2), seeds=2,"
            " grid={'popsize': [6, 8]})\nplot_sweep(res).savefig(sys.argv[1])\n"
            "print('matplotlib.pyplot' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "sweep.png")], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False", out.stderr
    assert (tmp_path / "sweep.png").stat().st_size > 1000
