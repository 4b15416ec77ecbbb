"""The rank of the unperturbed centre among the population, every generation (pytorch-es).

pytorch-es watches, each generation, how the unperturbed model (the search
distribution's mean) ranks among its perturbed children: a centre that keeps ranking
near the bottom means the steps are too large or the fitness too noisy. :class:`CentreRank`
builds this in with one extra evaluation per generation, run *with* the population by
the same evaluator (so a process pool or Ray evaluates it in parallel with the others):
it is an evaluator that wraps another one, appending the centre as row ``popsize`` and
returning the population's values only (the strategy's trajectory is unchanged), and a
callback that records ``centre_value`` and ``centre_rank`` in the generation's
``history_`` entry (shown in the progress line) and reads the next centre. Pass the same
object as ``ES(evaluator=...)`` and in ``fit(callbacks=[...])``.

The rank is ``1 + `` the number of candidates strictly better than the centre (in the
run's sense, ``maximize`` or not): ``1`` when no child beats it, ``popsize + 1`` when all
do; ties rank the centre first.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.callbacks.centre_rank import CentreRank
>>> rank = CentreRank("vectorized")
>>> es = ES("openai_es", popsize=10, max_generations=3, random_state=0, evaluator=rank)
>>> es = es.fit(lambda X: (X ** 2).sum(axis=1), np.ones(4), callbacks=[rank])
>>> [entry["centre_rank"] for entry in es.history_]            # from 1 (best) to 11 (worst)
[6, 6, 6]
>>> es.n_evals_                                                 # the centre is not counted
30
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from evostrat.callbacks.base import Callback
from evostrat.errors import InvalidArgumentError, StateError
from evostrat.evaluators.local import Evaluator
from evostrat.plugins.factories import make_evaluator

__all__ = ["CentreRank", "centre_rank"]


def centre_rank(values: Any, centre: float, maximize: bool = False) -> int:
    """``1 +`` the number of finite ``values`` strictly better than ``centre`` (NaN never better).

    >>> centre_rank([3.0, 1.0, 2.0], 2.5)
    3
    >>> centre_rank([3.0, 1.0, 2.0], 2.5, maximize=True)
    2
    """
    v = np.asarray(values, dtype=np.float64)
    better = v > centre if maximize else v < centre
    if math.isnan(centre):  # a NaN centre: every number beats it
        better = ~np.isnan(v)
    return 1 + int(np.count_nonzero(better))


class CentreRank(Evaluator, Callback):
    """Evaluate the distribution's mean with every population and log its rank.

    Parameters
    ----------
    evaluator : str or Evaluator
        The evaluator doing the work (``"serial"``, ``"executor"``, ``"ray"``, an instance ...).
    evaluator_options : dict, optional
        Its options when given by name.

    Attributes
    ----------
    values, ranks : list
        The centre's value and rank of every generation of the last fit.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.callbacks import CentreRank
    >>> centre = CentreRank("serial")
    >>> es = ES("snes", evaluator=centre, max_generations=3, random_state=0).fit(
    ...     lambda x: float(x @ x), np.ones(2), callbacks=[centre])
    >>> len(centre.ranks), centre.values[0], es.history_[-1]["centre_rank"] == centre.ranks[-1]
    (3, 2.0, True)
    """

    name = "centre_rank"

    def __init__(self, evaluator: Any = "serial", evaluator_options: dict | None = None) -> None:
        self.evaluator = evaluator
        self.evaluator_options = evaluator_options
        self.values: list[float] = []
        self.ranks: list[int] = []
        self.centre: Any = None
        self.maximize = False
        self.inner: Evaluator | None = None
        self.pending: tuple[float, int] | None = None

    # -- the callback ----------------------------------------------------------------------
    def on_fit_start(self, es: Any) -> None:
        """Read the first centre (``x0``, or the resumed run's mean)."""
        self.maximize = bool(es.maximize)
        self.values, self.ranks = [], []
        self.centre = es.run_.to_box(es.strategy_.mean)

    def __call__(self, es: Any) -> None:
        """Put the generation's centre value and rank in its history entry; read the next centre."""
        if self.pending is not None and es.history_:
            value, rank = self.pending
            es.history_[-1].update(centre_value=value, centre_rank=rank)
            self.values.append(value)
            self.ranks.append(rank)
        self.pending = None
        self.centre = es.run_.to_box(es.strategy_.mean)

    # -- the evaluator ---------------------------------------------------------------------
    def evaluate(self, objective: Callable, X: Any, backend: Any) -> Any:
        """Values of the ``popsize`` rows of ``X``; the centre is evaluated as one more row."""
        if self.centre is None:
            raise StateError("CentreRank has no centre: pass the same object to fit(callbacks=[...]) "
                             "as well as to ES(evaluator=...)")
        if self.behaviours:
            raise InvalidArgumentError("CentreRank ranks fitness values; the strategy is told behaviours")
        if self.inner is None:
            self.inner = make_evaluator(self.evaluator, self.evaluator_options)
        n = X.shape[0]
        xp = backend.xp
        centre = xp.reshape(backend.asarray(self.centre, dtype=X.dtype, device=backend.device(X)), (1, -1))
        values = self.inner.evaluate(objective, xp.concat([X, centre], axis=0), backend)
        host = backend.to_numpy(values).astype(np.float64)
        self.pending = (float(host[n]), centre_rank(host[:n], float(host[n]), self.maximize))
        return values[:n]

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()

    def __repr__(self) -> str:
        return f"CentreRank({self.evaluator!r})"
