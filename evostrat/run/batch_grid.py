"""The runs a batch makes: a parameter grid's combinations and the seeds.

Used by :func:`evostrat.run.batch.fit_batch` (which re-exports :func:`expand_grid` and
:func:`seed_list`): the grid in scikit-learn's ``ParameterGrid`` vocabulary (a dict of
lists, a list of such dicts, or an iterable of combinations) and the seeds (a count, a
list, an iterator), each checked and refused with the argument named before any run.
"""

from __future__ import annotations

import collections
import itertools
import math
import numbers
import warnings
from collections.abc import Mapping
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from evostrat.backends.points import physical_memory
from evostrat.errors import EvostratWarning, InvalidArgumentError, InvalidTypeError

__all__ = ["expand_grid", "seed_list", "check_batch_runs", "RUN_BYTES"]


#: Bytes each run of a batch takes at the least (its estimator and parameters, before any state):
#: a batch of more runs than the memory holds at this rate is refused before they are listed.
RUN_BYTES = 512


def check_batch_runs(runs: int, what: str) -> None:
    """Raise :class:`InvalidArgumentError` naming ``what`` when ``runs`` runs of
    :data:`RUN_BYTES` each exceed the physical memory."""
    if runs * RUN_BYTES > physical_memory():
        raise InvalidArgumentError(f"{what} makes {runs} runs: at {RUN_BYTES} bytes each at the least, "
                                   f"more than the {physical_memory() / 2**30:.3g} GiB of memory")


def expand_grid(grid: Any) -> list[dict[str, Any]]:
    """The parameter combinations of ``grid``, in scikit-learn's ``ParameterGrid`` order.

    ``grid`` is ``None`` (one empty combination), a dict ``{name: list of values}``
    or a list of such dicts (their grids one after the other); another iterable of dicts
    (``sklearn.model_selection.ParameterGrid``, a generator) yields the combinations themselves
    and is read once.

    >>> expand_grid({"popsize": [8, 16], "sigma0": [0.5]})
    [{'popsize': 8, 'sigma0': 0.5}, {'popsize': 16, 'sigma0': 0.5}]
    """
    if grid is None:
        return [{}]
    if isinstance(grid, Mapping):
        grid = [grid]
    elif not isinstance(grid, (list, tuple)):  # e.g. sklearn's ParameterGrid: it yields the combinations
        if not isinstance(grid, Iterable) or isinstance(grid, (str, bytes)):
            raise InvalidTypeError(f"grid must be a dict of lists or a list of such dicts, got {type(grid).__name__}")
        combos = []
        for combo in grid:  # read once: a generator or iterator is taken as well
            if not isinstance(combo, Mapping):
                raise InvalidTypeError(f"grid must be a dict of lists, a list of such dicts or an iterable of "
                                       f"combinations (dicts, as ParameterGrid yields them); it yielded "
                                       f"{combo!r} of type {type(combo).__name__}")
            _check_names(combo)
            combos.append(dict(combo))
        return _checked_combinations(combos, grid)
    combos: list[dict[str, Any]] = []
    for part in grid:
        if not isinstance(part, Mapping):
            raise InvalidTypeError(f"grid must be a dict of lists or a list of such dicts; got an entry of type "
                                   f"{type(part).__name__}")
        _check_names(part)
        names = sorted(part)  # ParameterGrid's order: names sorted, the last varying fastest
        values = []
        for name in names:
            v = part[name]
            if isinstance(v, (str, bytes)) or not isinstance(v, (Sequence, np.ndarray)) or len(v) == 0:
                raise InvalidArgumentError(f"grid[{name!r}] must be a non-empty list of values, got {v!r}")
            values.append(list(v))
        check_batch_runs(len(combos) + math.prod(len(v) for v in values), "grid")
        combos.extend(dict(zip(names, c)) for c in itertools.product(*values))
    return _checked_combinations(combos, grid)


def _check_names(combination: Mapping) -> None:
    """Refuse a grid name that is not a string (a parameter's name, as ``set_params`` takes it)."""
    for name in combination:
        if not isinstance(name, str):
            raise InvalidTypeError(f"grid's names must be parameter names (str), got {name!r} of type "
                                   f"{type(name).__name__}")


def _checked_combinations(combos: list[dict[str, Any]], grid: Any) -> list[dict[str, Any]]:
    """``combos``, refused when ``grid`` made none (an empty list, an empty ``ParameterGrid``)."""
    if not combos:
        raise InvalidArgumentError(f"grid must make at least one combination (None or {{}} for one run per "
                                   f"seed), got {grid!r}")
    return combos


def seed_list(seeds: Any) -> list[int]:
    """``seeds`` as a list: an int ``n`` is ``0 .. n-1``; a sequence of ints (or an iterator of
    them, read once) is taken as given; a repeated seed is warned of (:class:`~evostrat.errors.EvostratWarning`:
    it fits the same run again).

    >>> seed_list(3), seed_list([7, 11])
    ([0, 1, 2], [7, 11])
    """
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        if seeds < 1:
            raise InvalidArgumentError(f"seeds must be a positive number of seeds or a list of ints, got {seeds}")
        check_batch_runs(int(seeds), f"seeds={seeds}")
        return list(range(int(seeds)))
    if isinstance(seeds, Iterator):  # a generator or iterator: read once
        seeds = list(seeds)
    if isinstance(seeds, (Sequence, np.ndarray)) and not isinstance(seeds, (str, bytes)) and len(seeds) > 0 \
            and all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in seeds):
        negative = [int(s) for s in seeds if s < 0]
        if negative:  # as random_state: a seed is a non-negative int
            raise InvalidArgumentError(f"seeds must be non-negative ints (each run's random_state), got {negative[0]}")
        seeds = [int(s) for s in seeds]
        counts = collections.Counter(seeds)
        repeated = sorted(s for s, n in counts.items() if n > 1)
        if repeated:  # the same random_state: the same run, counted twice in a median over the seeds
            warnings.warn(f"seeds repeats {repeated}: a repeated seed fits the same run again (each grid "
                          f"combination's run for it is there {counts[repeated[0]]} times, the same values)",
                          EvostratWarning, stacklevel=3)
        return seeds
    raise InvalidArgumentError(f"seeds must be a positive int, a non-empty list of ints or None, got {seeds!r}")
