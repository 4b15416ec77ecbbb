"""The uncertainty handling's options and measurement (UH-CMA-ES; see :mod:`evostrat.run.noise`).

:class:`UncertaintyHandling` holds the options and state of pycma's ``NoiseHandler``
(the measure ``s``, the evaluations per candidate), :func:`rank_change_measure` the
measurement of Hansen et al. (2009), :func:`aggregate_values` the aggregation of a
candidate's repeated evaluations (pycma's ``aggregate``, the median by default).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from evostrat.params import Interval, Params, StrOptions

__all__ = ["AGGREGATES", "MAX_EVALUATIONS", "UncertaintyHandling", "aggregate_values", "rank_change_measure"]

#: The most evaluations per candidate ``reevaluations`` and ``max_evaluations`` may ask for
#: (100 times the 1000 of pycma's noisy-sphere studies): larger counts are refused, not run.
MAX_EVALUATIONS = 100_000

#: How the repeated evaluations of a candidate become its value (pycma's ``aggregate``).
AGGREGATES = {"median": np.median, "mean": np.mean}


def aggregate_values(values: np.ndarray, how: str = "median") -> np.ndarray:
    """Each column's aggregate: ``values`` of shape ``(evaluations, candidates)``.

    ``"median"`` is pycma's default (``NoiseHandler(aggregate=np.median)``, ``fmin``'s
    ``ask_and_eval(aggregation=np.median)``); ``"mean"`` the alternative.

    Examples
    --------
    >>> aggregate_values(np.array([[1.0, 2.0], [2.0, 2.0], [30.0, 5.0]]))
    array([2., 2.])
    >>> aggregate_values(np.array([[1.0, 2.0], [2.0, 2.0], [30.0, 5.0]]), "mean")
    array([11.,  3.])
    """
    return values[0] if values.shape[0] == 1 else AGGREGATES[how](values, axis=0)


def rank_change_measure(fit: np.ndarray, refit: np.ndarray, idx: np.ndarray, theta: float = 0.5) -> np.ndarray:
    """Per reevaluated candidate, the rank change beyond its expected size (Hansen et al. 2009).

    Parameters
    ----------
    fit, refit : arrays, shape (popsize,)
        Values (minimised) and reevaluated values (equal to ``fit`` outside ``idx``).
    idx : array of int
        The reevaluated candidates.
    theta : float
        Percentile (as a fraction of 100 / 2) of the rank distances taken as the limit.

    Returns
    -------
    array, shape (len(idx),)
        ``|Delta_i| - max(1, limit_i)``; positive entries indicate noise.

    Examples
    --------
    >>> f = np.arange(10.0)
    >>> bool((rank_change_measure(f, f, np.array([0, 1])) < 0).all())  # no noise: no rank change
    True
    >>> bool(rank_change_measure(f, f[::-1].copy(), np.arange(10)).mean() > 0)  # ranks reversed
    True
    """
    lam = fit.shape[0]
    order = np.argsort(np.concatenate([fit, refit]), kind="stable")
    ranks = np.empty(2 * lam, dtype=np.int64)
    ranks[order] = np.arange(2 * lam)
    r0, r1 = ranks[:lam], ranks[lam:]
    delta = r0 - r1 - np.sign(r0 - r1)
    r = np.arange(1, 2 * lam)
    limits = []
    for i in idx:
        a = np.percentile(np.abs(r - (r0[i] + 1 - (r0[i] > r1[i]))), theta * 50, method="hazen")
        b = np.percentile(np.abs(r - (r1[i] + 1 - (r1[i] > r0[i]))), theta * 50, method="hazen")
        limits.append(0.5 * (a + b))
    return np.abs(delta[idx]) - np.maximum(np.asarray(limits, dtype=np.float64), 1.0)


class UncertaintyHandling(Params):
    """Options and state of the uncertainty handling (see the module docstring).

    Parameters
    ----------
    reevals : float, optional
        Candidates reevaluated per generation; default ``2 + popsize / 20`` (a
        fractional part is the probability of one more).
    epsilon : float
        Size of the perturbation of a reevaluated candidate, relative to a step of the
        search distribution (``epsilon sigma C^{1/2} z``, as pycma's); 0: none.
    theta : float
        Rank-distance percentile (``theta * 50``) of the limit.
    cum : float
        Smoothing rate ``c_s`` of the noise measure.
    alpha_sigma : float, optional
        Step-size factor while ``s > 0``; default ``1 + 2 / (dim + 10)``.
    max_evaluations : int, optional
        Largest number of evaluations per candidate (at most ``MAX_EVALUATIONS``);
        default: ``reevaluations`` (the step size alone treats the noise, as pycma's
        ``fmin`` by default). A generation uses fewer where ``max_evals`` would not hold.
    aggregate : {"median", "mean"}
        How the evaluations of a candidate (and of a reevaluated one) become its value:
        pycma's default, the median, or the mean.
    """

    parameter_constraints = {
        "reevals": [None, Interval(Real, 0, None, closed="neither")],
        "epsilon": [Interval(Real, 0, None, closed="left")],
        "theta": [Interval(Real, 0, 2, closed="neither")],
        "cum": [Interval(Real, 0, 1, closed="right")],
        "alpha_sigma": [None, Interval(Real, 1, None, closed="left")],
        "max_evaluations": [None, Interval(Integral, 1, MAX_EVALUATIONS, closed="both")],
        "aggregate": [StrOptions(AGGREGATES)],
    }

    def __init__(self, reevals: float | None = None, epsilon: float = 1e-7, theta: float = 0.5,
                 cum: float = 0.3, alpha_sigma: float | None = None, max_evaluations: int | None = None,
                 aggregate: str = "median") -> None:
        self.reevals, self.epsilon, self.theta, self.cum = reevals, epsilon, theta, cum
        self.alpha_sigma, self.max_evaluations, self.aggregate = alpha_sigma, max_evaluations, aggregate
        self.s = 0.0
        self.evaluations = 1.0

    def factor(self, dim: int) -> float:
        """``alpha_sigma`` for dimension ``dim``."""
        return self.alpha_sigma if self.alpha_sigma is not None else 1.0 + 2.0 / (dim + 10.0)

    def count(self, lam: int, rng: np.random.Generator) -> int:
        """How many of ``lam`` candidates to reevaluate: ``reevals`` (default ``2 + lam / 20``), its
        fractional part the probability of one more (pycma's draw)."""
        target = self.reevals if self.reevals is not None else 2.0 + lam / 20.0
        return min(lam, int(target) + int((target % 1) > rng.random()))

    @staticmethod
    def choose(fit: np.ndarray, k: int) -> np.ndarray:
        """The ``k`` candidates to reevaluate: the first ones and the best of the rest (pycma's choice)."""
        first = k - k // 2
        rest = np.argsort(np.where(np.isnan(fit[first:]), np.inf, fit[first:]), kind="stable") + first
        return np.concatenate([np.arange(first), rest[: k - first]]).astype(np.int64)

    def indices(self, fit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The candidates to reevaluate (:meth:`count`, then :meth:`choose`)."""
        return self.choose(fit, self.count(fit.shape[0], rng))

    def update(self, fit: np.ndarray, refit: np.ndarray, idx: np.ndarray) -> None:
        """Smooth the noise measure with this generation's rank changes."""
        s = rank_change_measure(fit, refit, idx, self.theta)
        self.s += self.cum * (float(np.mean(s)) - self.s)

    def adapt(self, dim: int, least: int) -> float:
        """Adapt ``evaluations`` between ``least`` and ``max_evaluations``; the sigma factor."""
        most = max(least, self.max_evaluations or least)
        alpha = 1.0 + 2.0 / (dim + 10.0)
        if self.s > 0:
            self.evaluations = min(self.evaluations * alpha, most)
            return self.factor(dim)
        self.evaluations = max(self.evaluations * alpha ** -0.25, least)
        return 1.0
