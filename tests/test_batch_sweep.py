"""A batch's result as a researcher sweeping hyper-parameters reads it: ``params``,
``to_frame()`` and the sweep figure, with scikit-learn's ``ParameterGrid`` as the model."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from evostrat import ES
from evostrat.problems import sphere
from evostrat.run.batch import fit_batch


def test_frame_has_one_row_per_run_the_grid_s_columns_first():
    pytest.importorskip("pandas")
    res = fit_batch(ES("snes", max_generations=3), sphere, np.ones(3), seeds=2,
                    grid=[{"popsize": [6]}, {"sigma0": [0.5, 2.0]}])
    frame = res.to_frame()
    # was [popsize, seed, fun, n_evals, n_generations, stop_reason, sigma0]: the second dict's name came last
    assert list(frame.columns) == ["popsize", "sigma0", "random_state", "fun", "n_evals", "n_generations",
                                   "stop_reason", "seed"]
    assert len(frame) == 6 and frame["fun"].tolist() == res.fun.tolist()
    assert frame["popsize"].tolist()[:2] == [6, 6] and np.isnan(frame["popsize"].tolist()[2:]).all()
    assert np.isnan(frame["sigma0"].tolist()[:2]).all() and frame["sigma0"].tolist()[2:] == [0.5, 0.5, 2.0, 2.0]


def test_frame_names_the_seed_random_state_as_params_do_and_keeps_seed():
    pytest.importorskip("pandas")
    res = fit_batch(ES("snes", max_generations=3), sphere, np.ones(3), seeds=[4, 9],
                    grid={"strategy__lr_sigma": [0.1, 0.3]})
    frame = res.to_frame()
    # was only "seed", while res.params[i] and ES name it random_state
    assert frame["random_state"].tolist() == [p["random_state"] for p in res.params] == [4, 9, 4, 9]
    assert frame["seed"].tolist() == [4, 9, 4, 9]  # the earlier name, still there
    assert frame.to_dict("records")[3]["strategy__lr_sigma"] == res.params[3]["strategy__lr_sigma"] == 0.3
    by_params = frame.set_index(["strategy__lr_sigma", "random_state"])["fun"]
    for p, fun in zip(res.params, res.fun):
        assert by_params[(p["strategy__lr_sigma"], p["random_state"])] == fun


def test_frame_without_pandas_says_what_to_install_and_what_holds_the_values(monkeypatch):
    res = fit_batch(ES("snes", max_generations=2), sphere, np.ones(2), seeds=1)
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas raises ImportError
    with pytest.raises(ImportError, match=r"to_frame needs pandas: pip install evostrat\[pandas\] \(without it, "
                       r"res.params, res.fun"):
        res.to_frame()


def test_sweep_figure_draws_the_parameters_swept_in_a_list_of_dicts_grid():
    pytest.importorskip("matplotlib")
    from evostrat.plotting import plot_sweep

    res = fit_batch(ES("snes", max_generations=3), sphere, np.ones(3), seeds=2,
                    grid=[{"popsize": [6]}, {"popsize": [6], "sigma0": [0.5, 2.0]}, {"sigma0": [1.0]}])
    fig = plot_sweep(res)
    # was ['popsize', 'sigma0']: popsize, 6 in every run that sets it, counted the runs without it as a value
    assert [ax.get_xlabel() for ax in fig.axes] == ["sigma0"]
    assert fig.axes[0].lines[0].get_xdata().tolist() == [0.5, 1.0, 2.0]


def test_sweep_figure_of_two_swept_parameters_pools_the_other_s_values():
    pytest.importorskip("matplotlib")
    from evostrat.plotting import plot_sweep

    res = fit_batch(ES("snes", max_generations=3), sphere, np.ones(3), seeds=2,
                    grid={"popsize": [6, 8], "sigma0": [0.5, 2.0]})
    fig = plot_sweep(res)
    assert [ax.get_xlabel() for ax in fig.axes] == ["popsize", "sigma0"]
    for ax, name in zip(fig.axes, ["popsize", "sigma0"]):  # each point: the median over 2 seeds x 2 other values
        xs, medians = ax.lines[0].get_xdata(), ax.lines[0].get_ydata()
        for x, median in zip(xs, medians):
            assert median == np.median([f for p, f in zip(res.params, res.fun) if p[name] == x])


@pytest.mark.parametrize("grid, match", [
    ({"popsize": [6], "nosuch": [1]}, r"grid's combination \{'nosuch': 1, 'popsize': 6\}: ES has no parameter "
                                      r"'nosuch'; valid: \['backend', .*'warm_start'\] and strategy__<name>"),
    ([{"popsize": [6]}, {"strategy__nosuch": [1]}], r"grid's combination \{'strategy__nosuch': 1\}: SNES has no "
                                                    r"parameter 'nosuch'; valid: \['lr_mean', 'lr_sigma', "),
])
def test_a_grid_name_the_estimator_does_not_have_is_named_before_any_run(grid, match):
    from evostrat import InvalidArgumentError

    calls = []

    def objective(x):
        calls.append(1)
        return sphere(x)

    with pytest.raises(InvalidArgumentError, match=match):  # was the message without "grid's combination"
        fit_batch(ES("snes", max_generations=3), objective, np.ones(3), seeds=2, grid=grid)
    assert calls == []


def test_repeated_seeds_are_warned_of_as_the_same_run_again():
    from evostrat.errors import EvostratWarning

    # was silent: a median over the seeds counted the run of seed 1 twice
    with pytest.warns(EvostratWarning, match=r"seeds repeats \[1\]: a repeated seed fits the same run again "
                                             r"\(each grid combination's run for it is there 2 times"):
        res = fit_batch(ES("snes", max_generations=3), sphere, np.ones(3), seeds=[1, 1, 2])
    assert res.fun[0] == res.fun[1] and [p["random_state"] for p in res.params] == [1, 1, 2]


def test_sweep_figure_names_its_params_argument_for_a_name_not_in_the_batch():
    pytest.importorskip("matplotlib")
    from evostrat import InvalidArgumentError
    from evostrat.plotting import plot_sweep

    res = fit_batch(ES("snes", max_generations=2), sphere, np.ones(2), seeds=2, grid={"popsize": [6, 8]})
    # was "param must be one of the swept names ...": sweep_summary's argument, not plot_sweep's
    with pytest.raises(InvalidArgumentError, match=r"params must name parameters of the batch's runs, one of "
                                                   r"\['popsize', 'random_state'\], got 'sigma0'"):
        plot_sweep(res, ["popsize", "sigma0"])


@pytest.mark.parametrize("name,array", [("fun_", "fun"), ("x_", "x"), ("n_evals_", "n_evals"),
                                        ("stop_reason_", "stop_reason"), ("history_", "histories")])
def test_an_estimator_s_attribute_name_points_to_the_batch_s_array(name, array):
    res = fit_batch(ES("snes", max_generations=2), sphere, np.ones(2), seeds=2)
    with pytest.raises(AttributeError, match=rf"no attribute '{name}': each run's {name} is in res\.{array} "):
        getattr(res, name)
    assert getattr(res.estimators[1], name) is not None and len(getattr(res, array)) == 2
    with pytest.raises(AttributeError, match="'BatchResult' object has no attribute 'funn'"):
        res.funn  # other names: Python's own error
    assert not hasattr(res, "fun_") and hasattr(res, "fun")
