"""Running observation statistics that merge: count, mean and sum of squared deviations.

:class:`RunningStat` keeps the sufficient statistics ``(count, mean, M2)`` of the
observations a policy has seen (``M2`` = the sum of squared deviations from the mean) and
folds in a batch of observations, or the statistics of another set, with the parallel
formula of Chan, Golub and LeVeque (1979): for sets ``a`` and ``b``,
``n = n_a + n_b``, ``delta = mean_b - mean_a``, ``mean = mean_a + delta n_b / n``,
``M2 = M2_a + M2_b + delta^2 n_a n_b / n``. Merging per-worker statistics this way gives
the statistics of all observations, whatever the split. :class:`SeenObservations` gathers
one candidate's observations (in blocks, so a long Atari episode is never held whole).

Examples
--------
>>> import numpy as np
>>> from evostrat.problems.obs_stats import RunningStat
>>> obs = np.arange(12.0).reshape(6, 2)
>>> whole, a, b = RunningStat((2,), eps=0.0), RunningStat((2,), eps=0.0), RunningStat((2,), eps=0.0)
>>> whole.update(obs); a.update(obs[:2]); b.update(obs[2:])
>>> a.merge(*b.moments())
>>> a.count, np.allclose(a.mean, whole.mean), np.allclose(a.m2, whole.m2)
(6.0, True, True)
>>> whole.mean.tolist(), (whole.m2 / whole.count).tolist()    # the population variance
([5.0, 6.0], [11.666666666666666, 11.666666666666666])
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from evostrat.errors import InvalidArgumentError

__all__ = ["Moments", "ObservationStats", "RunningStat", "SeenObservations"]

#: ``(count, mean, M2)`` of a set of observations: what a worker returns per candidate.
Moments = tuple[float, np.ndarray, np.ndarray]


class RunningStat:
    """Running mean and variance of observations: ``count``, ``mean`` and ``m2``.

    Parameters
    ----------
    shape : tuple
        Shape of one observation.
    eps : float
        Weight of the prior (mean 0, variance 1) the statistics start from, so that the
        first observations are not divided by a zero standard deviation; ``0`` for none.
    """

    def __init__(self, shape: tuple, eps: float = 1e-2) -> None:
        self.count = float(eps)
        self.mean = np.zeros(shape)
        self.m2 = np.full(shape, float(eps))  # variance m2 / count = 1

    def merge(self, count: float, mean: Any, m2: Any) -> None:
        """Fold in the statistics ``(count, mean, m2)`` of other observations (Chan et al.)."""
        count = float(count)
        if count <= 0:
            return
        total = self.count + count
        delta = np.asarray(mean, dtype=np.float64) - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + np.asarray(m2, dtype=np.float64) + np.square(delta) * (self.count * count / total)
        self.count = total

    def update(self, obs: Any) -> None:
        """Fold in a batch of observations ``(n, *shape)`` (or one observation)."""
        obs = np.asarray(obs, dtype=np.float64).reshape((-1,) + self.mean.shape)
        if obs.shape[0] == 0:
            return
        mean = obs.mean(axis=0)
        self.merge(obs.shape[0], mean, np.square(obs - mean).sum(axis=0))

    def moments(self) -> Moments:
        """``(count, mean, m2)``, copies."""
        return self.count, self.mean.copy(), self.m2.copy()

    @property
    def var(self) -> np.ndarray:
        """The variance of the observations (and the prior)."""
        return self.m2 / self.count

    @property
    def std(self) -> np.ndarray:
        """The standard deviation, at least 0.1 (as Salimans et al. 2017)."""
        return np.sqrt(np.maximum(self.var, 1e-2))

    @property
    def sum(self) -> np.ndarray:
        """The sum of the observations (and the prior's)."""
        return self.mean * self.count

    @property
    def sumsq(self) -> np.ndarray:
        """The sum of the squared observations (and the prior's)."""
        return self.m2 + self.count * np.square(self.mean)


class SeenObservations:
    """One candidate's observations, folded into statistics (without a prior) in blocks.

    The blocks depend on the order of the observations only, so the same episodes give the
    same statistics bit for bit, in any process.
    """

    #: Observations held before they are folded in.
    block = 256

    def __init__(self, shape: tuple) -> None:
        self.stat = RunningStat(shape, eps=0.0)
        self._held: list[np.ndarray] = []

    def add(self, obs: np.ndarray) -> None:
        """Note one observation (a copy: an environment may reuse its buffer)."""
        self._held.append(np.array(obs, dtype=np.float64))
        if len(self._held) >= self.block:
            self._fold()

    def _fold(self) -> None:
        if self._held:
            self.stat.update(np.stack(self._held))
            self._held = []

    def moments(self) -> Moments:
        """``(count, mean, m2)`` of every observation noted."""
        self._fold()
        return self.stat.moments()


class ObservationStats:
    """The observation statistics of a problem (``GymProblem``), as the run sees them.

    A mixin for a class with ``obs_stat`` (a :class:`RunningStat`, or ``None`` without
    normalisation), ``obs_shape`` and ``frozen``: the generation protocol of
    :mod:`evostrat.evaluators.sync` (:meth:`generation_start`, :meth:`collect`,
    :meth:`merge`) and the checkpoint methods. The evaluating code makes a
    :meth:`_seen` per candidate and hands them to :meth:`_record`.
    """

    obs_stat: RunningStat | None
    obs_shape: tuple
    frozen: bool
    _pending: list[Moments] | None = None  # inside a generation: its candidates' observation statistics

    def generation_start(self) -> None:
        """Start a generation: evaluations keep the statistics and gather their observations'."""
        self._pending = []

    def collect(self) -> list[Moments]:
        """The ``(count, mean, M2)`` of each candidate evaluated since the last call, in order (then forgotten)."""
        records = self._pending or []
        if self._pending is not None:
            self._pending = []
        return records

    def merge(self, records: list) -> None:
        """Fold the candidates' ``(count, mean, M2)`` (population order) into the statistics; end the generation."""
        self._pending = None
        if self.obs_stat is not None:
            for count, mean, m2 in records:
                self.obs_stat.merge(count, mean, m2)

    def _seen(self, update: bool = True) -> SeenObservations | None:
        """Where one candidate's observations go (``None``: statistics off or frozen)."""
        return SeenObservations(self.obs_shape) if update and self.obs_stat is not None and not self.frozen else None

    def _record(self, seen: list[SeenObservations | None]) -> None:
        """Gather the candidates' statistics in a generation; outside one, merge them now."""
        records = [s.moments() for s in seen if s is not None]
        if self._pending is not None:
            self._pending.extend(records)
        elif records:
            self.merge(records)

    def checkpoint_state(self) -> dict[str, Any] | None:
        """The running observation statistics (``None`` without ``obs_norm``): what a checkpoint saves."""
        stat = self.obs_stat
        return None if stat is None else {"count": stat.count, "mean": stat.mean.copy(), "m2": stat.m2.copy()}

    def load_checkpoint_state(self, state: Any) -> None:
        """Set the statistics :meth:`checkpoint_state` returned (``ES.resume`` calls this).

        A dict of ``count``, ``mean`` and ``m2``, or of ``count``, ``sum`` and ``sumsq`` (older
        checkpoints kept sums).
        """
        if state is None:
            return
        if self.obs_stat is None:
            raise InvalidArgumentError("state holds observation statistics but this problem has obs_norm=False; "
                                       "make it with obs_norm=True, as the saved run's was")
        try:
            count = float(state["count"])
            if "sum" in state:  # the sums of older checkpoints
                total, sumsq = np.asarray(state["sum"], dtype=float), np.asarray(state["sumsq"], dtype=float)
                mean = total / count
                m2 = sumsq - count * np.square(mean)
            else:
                mean, m2 = np.asarray(state["mean"], dtype=float), np.asarray(state["m2"], dtype=float)
        except (KeyError, TypeError, ValueError):
            raise InvalidArgumentError(f"state must be a dict of count, mean and m2, got {state!r}") from None
        if not (0 < count < math.inf and mean.shape == m2.shape == self.obs_shape):
            raise InvalidArgumentError(f"state must hold a positive count and a mean and m2 of shape {self.obs_shape}, "
                                       f"got count {count} and shapes {mean.shape}, {m2.shape}")
        self.obs_stat.count, self.obs_stat.mean, self.obs_stat.m2 = count, mean, m2

