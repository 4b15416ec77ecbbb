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
