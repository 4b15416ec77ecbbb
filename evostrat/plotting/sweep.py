"""The figure of a hyper-parameter sweep: final fitness against each swept parameter.

:func:`plot_sweep` draws, for every parameter of a :class:`~evostrat.run.batch.BatchResult`'s
grid (or the ones named), the median of ``fun`` over the runs that share each value
(seeds and the other parameters) with its interquartile band: the kind of figure of the
JAX seed article's Pendulum sweep. matplotlib is imported here; the figure is a
``matplotlib.figure.Figure`` made without pyplot, as the other plots' (save it with
``fig.savefig``; no GUI backend is started and pyplot keeps no reference to it).

Examples
--------
>>> import numpy as np
>>> from evostrat import ES, fit_batch
>>> from evostrat.problems import sphere
>>> res = fit_batch(ES("snes", max_generations=20), sphere, np.ones(3), seeds=3,
...                 grid={"popsize": [6, 12]})
>>> fig = plot_sweep(res)
>>> [ax.get_xlabel() for ax in fig.axes]
['popsize']
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

import numpy as np

from evostrat.errors import InvalidArgumentError
from evostrat.plotting.common import figure_class, log_scale

__all__ = ["plot_sweep", "sweep_summary"]


def sweep_summary(result: Any, param: str, values: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``{"value", "median", "q25", "q75", "n"}`` of ``values`` (default ``result.fun``) per
    value of ``param``, over all runs with that value (values sorted).

    >>> from types import SimpleNamespace
    >>> r = SimpleNamespace(params=[{"a": 1}, {"a": 1}, {"a": 2}], fun=np.array([1.0, 3.0, 5.0]))
    >>> sweep_summary(r, "a")["median"].tolist()
    [2.0, 5.0]
    """
    fun = np.asarray(result.fun if values is None else values, dtype=np.float64)
    if fun.shape != (len(result.params),):  # zipped with the runs' parameters below: a misfit misaligns them
        raise InvalidArgumentError(f"values must hold one number per run, shape ({len(result.params)},), "
                                   f"got shape {fun.shape}")
    if not any(param in p for p in result.params):
        names = sorted({k for p in result.params for k in p})
        raise InvalidArgumentError(f"param must be one of the swept names {names}, got {param!r}")
    groups: dict[Any, tuple[Any, list[float]]] = {}  # a value (its repr when unhashable) -> (value, funs)
    for p, f in zip(result.params, fun):
        if param in p:
            groups.setdefault(_hashable(p[param]), (p[param], []))[1].append(f)
    try:
        keys = sorted(groups, key=lambda k: (groups[k][0] is None, groups[k][0]))
    except (TypeError, ValueError):  # values that do not order (sigma0 dicts, arrays, mixed types): grid order
        keys = list(groups)
    stats = [np.nanpercentile(groups[k][1], [25, 50, 75]) for k in keys]
    value = np.empty(len(keys), dtype=object)  # one entry per value, also for arrays of one shape
    value[:] = [groups[k][0] for k in keys]
    return {"value": value, "q25": np.array([s[0] for s in stats]),
            "median": np.array([s[1] for s in stats]), "q75": np.array([s[2] for s in stats]),
            "n": np.array([len(groups[k][1]) for k in keys])}


def _hashable(value: Any) -> Any:
    """``value`` as a dict key: itself, or its whole ``repr`` when unhashable (a dict, an array):
    every entry, each to the digits that tell it apart (numpy's ``repr`` of a long array shows its
    ends only, and 8 digits: two arrays differing in between were one value)."""
    try:
        hash(value)
    except TypeError:
        with np.printoptions(threshold=sys.maxsize, floatmode="unique"):
            return repr(value)
    return value


def plot_sweep(result: Any, params: Sequence[str] | None = None, *, values: Any = None, ylabel: str = "final fitness",
               title: str | None = None, axes: Any = None, logy: bool = False) -> Any:
    """One panel per swept parameter: median of ``values`` (default ``result.fun``) with the
    25-75 % band, against the parameter's values; returns the figure.

    Each panel pools, for each value of its parameter, every run that has that value,
    whatever the other parameters' values (the marginal effect of the parameter; with two
    swept parameters, two panels, neither showing how they interact: read that off
    ``result.to_frame().groupby([a, b])``). A run of a list-of-dicts grid whose part does
    not set a parameter is in none of that parameter's points.

    Parameters
    ----------
    result : BatchResult
    params : str or list of str, optional
        The parameters to draw (default: every grid parameter with more than one value among
        the runs that set it; the first grid parameter when none has).
    values : array, optional
        One number per run to summarise instead of ``fun`` (e.g. a test return).
    ylabel, title : str
    axes : matplotlib Axes or sequence of them, optional
        One per parameter (at least; the rest are left as they are); default: a new
        ``matplotlib.figure.Figure`` (not registered with pyplot) with a row of panels.
    logy : bool
        Logarithmic y axis (for fitness values spanning decades); symmetric logarithmic
        (``symlog``) when some of the plotted values are zero or negative, which a log axis
        would leave out.
    """
    if params is None:
        names = sorted({k for p in result.params for k in p if k != "random_state"})
        # swept: more than one value among the runs that set it (a list-of-dicts grid's part
        # without the name is no value of it)
        params = [k for k in names if len({_hashable(p[k]) for p in result.params if k in p}) > 1] or names[:1]
    elif isinstance(params, str):  # one name, not its letters
        params = [params]
    if not params:
        raise InvalidArgumentError("params is empty: the batch has no swept parameter to plot")
    known = sorted({k for p in result.params for k in p})
    unknown = [name for name in params if name not in known]
    if unknown:  # named as plot_sweep's argument (sweep_summary's own message names its param)
        raise InvalidArgumentError(f"params must name parameters of the batch's runs, one of {known}, "
                                   f"got {unknown[0]!r}")
    if axes is None:
        Figure = figure_class()  # no pyplot: no GUI backend, no figure kept in pyplot's registry
        fig = Figure(figsize=(3.6 * len(params), 3.2), layout="constrained")
        axes = fig.subplots(1, len(params), squeeze=False)[0]
    axes = list(np.ravel(np.asarray(axes, dtype=object)))  # one Axes, a row or a grid of them
    if len(axes) < len(params):  # zipped with params below: a panel would be left out
        raise InvalidArgumentError(f"axes must hold one Axes per parameter ({len(params)}: {list(params)}), "
                                   f"got {len(axes)}")
    fig = axes[0].figure
    for ax, name in zip(axes, params):
        s = sweep_summary(result, name, values)
        numeric = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in s["value"])
        x = s["value"].astype(float) if numeric else np.arange(len(s["value"]))
        ax.fill_between(x, s["q25"], s["q75"], alpha=0.3, label="25-75 %")
        ax.plot(x, s["median"], "o-", label="median")
        if not numeric:
            ax.set_xticks(x, [str(v) for v in s["value"]])
        ax.set_xlabel(name.replace("strategy__", ""))
        if logy:  # symlog where a value is not positive (rewards, maximised values): log would hide them
            log_scale(ax, s["q25"], s["median"], s["q75"])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[0].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    if fig.get_layout_engine() is None:  # the caller's axes: laid out as before, a layout of theirs kept
        fig.tight_layout()
    return fig
