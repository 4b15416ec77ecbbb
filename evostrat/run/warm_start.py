"""Warm starts: a run that begins where an earlier one, or an earlier task, left off.

``ES(warm_start=...)`` replaces the initial search distribution of the first run
(restart runs start from ``x0`` as usual); ``x0`` still sets the dimension,
backend and dtype and must have the same dimension (and, where both runs had a
structured ``x0``, the same leaves and shapes). Accepted sources:

- a fitted (or initialized) :class:`~evostrat.ES`, or the path of a checkpoint
  (:mod:`evostrat.checkpoint`): with the same strategy and population size the
  whole strategy state (mean, step size, covariance, evolution paths, counters; with
  ``integer=``, CMA-ES with margin's scaling ``A`` and a correction still due) is taken
  over when both runs have the same ``bounds`` and integer mask too, so fitting again
  continues the search; otherwise its search distribution (mean, step size and the
  covariance a strategy declares in its ``gaussian_readout``: CMA-ES's, xNES's, VkD-CMA's...)
  is, its mean mapped into the source's box and then into this run's.
  The random key is the new run's (``random_state``).
- evaluated solutions of a similar task, ``(X, values)`` or a :class:`WarmStart` (for a
  structured ``x0``, ``X`` may be in its structure, each leaf with a leading axis ``N``):
  WS-CMA-ES (Nomura, Watanabe, Akimoto, Ozaki, Onishi, "Warm Starting CMA-ES for
  Hyperparameter Optimization", AAAI 2021, arXiv 2012.06932, sec. 4). With the
  best ``floor(gamma N)`` solutions ``x_1..x_k`` (lowest values; highest with
  ``maximize=True``), the promising distribution is ``N(mu, Sigma)`` with
  ``mu = mean(x_i)`` and ``Sigma = alpha^2 I + mean(x_i x_i^T) - mu mu^T``
  (eq. 9, a Gaussian prior of variance ``alpha^2`` on each point); the run
  starts at ``m = mu``, ``sigma = det(Sigma)^(1 / 2n)``,
  ``C = Sigma / det(Sigma)^(1/n)``. CMA-ES and xNES (``B = C^(1/2)``) take C whole;
  sep-CMA-ES its diagonal; other strategies with a ``sigma`` take ``m`` and the
  coordinate standard deviations (a vector sigma) or ``sigma`` (a scalar one).

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.run.warm_start import WarmStart
>>> rng = np.random.default_rng(0)
>>> X = rng.uniform(0, 1, (1000, 2))               # solutions of a similar task (cmaes' example)
>>> source = ((X - 0.4) ** 2).sum(axis=1)          # its optimum is at 0.4
>>> mean, sigma, C = WarmStart(X, source).distribution()
>>> mean.round(2).tolist(), round(sigma, 3)
([0.4, 0.4], 0.131)
>>> es = ES("cma_es", warm_start=(X, source), ftarget=1e-10, random_state=0)
>>> es = es.fit(lambda Y: ((Y - 0.6) ** 2).sum(axis=1), np.zeros(2))   # the new task: optimum at 0.6
>>> bool(es.fun_ <= 1e-10)
True
"""

from __future__ import annotations

import math
import os
from numbers import Real
from typing import Any

import numpy as np

from evostrat.backends import to_host
from evostrat.backends.structure_args import flat_solutions
from evostrat.backends.trees import field_names, map_tree, named_leaves, replace
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.params import Interval, Params
from evostrat.strategies.cma_es import CMAES
from evostrat.strategies.readout import host_readout, readout_covariance, resolve_readout
from evostrat.strategies.sep_cma_es import SepCMAES
from evostrat.strategies.xnes import XNES

__all__ = ["WarmStart", "apply_warm_start", "promising_distribution"]


def promising_distribution(X: np.ndarray, values: np.ndarray, gamma: float = 0.1, alpha: float = 0.1,
                           maximize: bool = False) -> tuple[np.ndarray, float, np.ndarray]:
    """WS-CMA-ES's ``(mean, sigma, C)`` from evaluated solutions (module docstring).

    Examples
    --------
    >>> X = np.array([[0.0, 0.0], [2.0, 0.0], [9.0, 9.0]])
    >>> m, s, C = promising_distribution(X, np.array([1.0, 2.0, 50.0]), gamma=0.7, alpha=1.0)
    >>> m.tolist(), round(s, 6), round(float(np.linalg.det(C)), 12)
    ([1.0, 0.0], 1.189207, 1.0)
    """
    v = np.where(np.isnan(values), -np.inf if maximize else np.inf, values)
    k = math.floor(len(v) * gamma)
    if k < 1:
        raise InvalidArgumentError(f"warm_start: gamma * len(values) = {gamma} * {len(v)} selects no solution; "
                                   "give more solutions or a larger gamma")
    order = np.argsort(-v if maximize else v, kind="stable")[:k]
    top = X[order]
    mu = top.mean(axis=0)
    n = X.shape[1]
    Sigma = alpha ** 2 * np.eye(n) + top.T @ top / k - np.outer(mu, mu)
    Sigma = 0.5 * (Sigma + Sigma.T)
    sign, logdet = np.linalg.slogdet(Sigma)
    if sign <= 0 or not np.isfinite(logdet):
        raise InvalidArgumentError("warm_start: the estimated covariance is not positive definite; use alpha > 0")
    return mu, float(math.exp(logdet / (2 * n))), Sigma / math.exp(logdet / n)


class WarmStart(Params):
    """Evaluated solutions of a similar task, for WS-CMA-ES.

    Parameters
    ----------
    X : array-like, shape (N, dim)
    values : array-like, shape (N,)
        Their values, in the user's sense (``maximize`` of the new run applies).
    gamma : float in (0, 1]
        Fraction of the best solutions used (default 0.1, as the paper's).
    alpha : float > 0
        Prior standard deviation added to each solution (default 0.1).
    """

    parameter_constraints = {"gamma": [Interval(Real, 0, 1, closed="right")],
                             "alpha": [Interval(Real, 0, None, closed="neither")]}

    def __init__(self, X: Any, values: Any, gamma: float = 0.1, alpha: float = 0.1) -> None:
        self.X, self.values, self.gamma, self.alpha = X, values, gamma, alpha

    def arrays(self, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``X`` and ``values`` as float64, checked (``dim``: the run's dimension)."""
        try:
            X = np.asarray(to_host(self.X), dtype=np.float64)
            v = np.asarray(to_host(self.values), dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise InvalidTypeError(f"warm_start solutions must be real arrays X (N, dim) and values (N,): {err}") \
                from err
        if X.ndim != 2 or v.shape != (X.shape[0],) or (dim is not None and X.shape[1] != dim):
            want = "dim" if dim is None else str(dim)
            raise InvalidArgumentError(f"warm_start solutions must be X of shape (N, {want}) and values of shape "
                                       f"(N,); got X {X.shape} and values {v.shape}")
        if not np.isfinite(X).all():
            raise InvalidArgumentError("warm_start solutions X must be finite")
        return X, v

    def distribution(self, maximize: bool = False, dim: int | None = None) -> tuple[np.ndarray, float, np.ndarray]:
        """``(mean, sigma, C)`` of :func:`promising_distribution`."""
        self.validate_params()
        X, v = self.arrays(dim)
        return promising_distribution(X, v, self.gamma, self.alpha, maximize)


def _source(spec: Any) -> Any:
    """``spec`` as a driver (ES or checkpoint) or a :class:`WarmStart`."""
    if isinstance(spec, WarmStart):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        from evostrat.checkpoint import load_checkpoint

        return load_checkpoint(spec).run_
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        return WarmStart(*spec)
    run = vars(spec).get("run_") if hasattr(spec, "get_params") and hasattr(spec, "__dict__") else None
    if run is not None:
        return run
    if hasattr(spec, "get_params"):
        raise InvalidArgumentError("warm_start: this ES has no run; fit or initialize it first")
    raise InvalidTypeError(f"warm_start must be a fitted ES, a checkpoint path, (X, values) or a WarmStart, "
                           f"got {type(spec).__name__}")


def _same_shapes(a: Any, b: Any) -> bool:
    """The same state type with the same (dotted) fields of the same shapes, nested states' too
    (NES's family parameters and optimiser state)."""
    return type(a) is type(b) and [(n, tuple(np.shape(x))) for n, x in named_leaves(a)] == \
        [(n, tuple(np.shape(y))) for n, y in named_leaves(b)]


def _same_box(a: Any, b: Any) -> bool:
    """Two runs' ``bounds`` (:class:`~evostrat.run.bounds.BoxBounds` or ``None``) map the same way."""
    if a is None or b is None:
        return a is b
    masks = [getattr(getattr(space, "integers", None), "mask", None) for space in (a, b)]
    return bool(type(a) is type(b) and np.array_equal(a.lower, b.lower) and np.array_equal(a.upper, b.upper)
                and (masks[0] is None or np.array_equal(masks[0], masks[1])))


def _host(be: Any, value: Any) -> np.ndarray:
    return np.asarray(be.to_numpy(value), dtype=np.float64)


def _distribution_of(runner: Any) -> tuple[np.ndarray, float, np.ndarray]:
    """``(mean, sigma, C)`` of a run's search distribution (C of the CMA family, else identity)."""
    be, state, strategy = runner.backend, runner.state, runner.strategy
    mean = _host(be, state.mean)
    n = mean.shape[0]
    if isinstance(strategy, CMAES) and "queue" in field_names(state):  # the factor model: its read-out below
        return mean, float(_host(be, state.sigma)), _host(be, strategy.current_cov(state))
    if isinstance(strategy, SepCMAES):
        return mean, float(_host(be, state.sigma)), np.diag(_host(be, state.C))
    if isinstance(strategy, XNES):
        B = _host(be, state.B)
        return mean, float(_host(be, state.sigma)), B @ B.T
    readout = host_readout(resolve_readout(strategy, state), be)
    covariance = readout_covariance(readout)
    if covariance is not None:  # VkD-CMA, a plugin's: N(mean, S), as sigma = det(S)^(1/2n) and C of det 1
        sign, logdet = np.linalg.slogdet(covariance)
        if sign > 0 and np.isfinite(logdet):
            scale = math.exp(logdet / (2 * n))
            return mean, scale, covariance / scale**2
    sigma = readout.sigma  # per coordinate (SNES, NES's normal families, ExpectationES) or isotropic
    if sigma.ndim == 1:
        scale = float(np.exp(np.mean(np.log(sigma))))
        return mean, scale, np.diag((sigma / scale) ** 2)
    return mean, float(sigma), np.eye(n)


def _set_distribution(runner: Any, mean: np.ndarray, sigma: float, C: np.ndarray) -> Any:
    """The runner's state with search distribution ``N(mean, sigma^2 C)`` (as the strategy can hold it)."""
    be, state, strategy = runner.backend, runner.state, runner.strategy
    if "mean" not in field_names(state) or "sigma" not in field_names(state):
        raise InvalidArgumentError(f"warm_start needs a strategy with a mean and a step size sigma; "
                                   f"{strategy.name!r} has state fields {list(field_names(state))}")

    def arr(a: Any) -> Any:
        return be.asarray(np.asarray(a, dtype=np.float64), dtype=runner.dtype, device=runner.device)

    new = replace(state, mean=arr(mean))
    if isinstance(strategy, CMAES) and "A" in field_names(state):  # covariance="factor": C = A A^T, never decomposed
        w, V = np.linalg.eigh(0.5 * (C + C.T))
        root = np.sqrt(np.maximum(w, np.finfo(np.float64).tiny))  # ascending
        return replace(new, sigma=arr(sigma), A=arr((V * root) @ V.T), A_inv=arr((V / root) @ V.T), scale=arr(1.0),
                       diag_C=arr(np.diag(C)), D=arr(root[[0, -1]]), axes=arr(np.stack([V[:, -1], V[:, 0]])))
    if isinstance(strategy, CMAES):
        xp = be.xp
        new = replace(new, sigma=arr(sigma), queue_coef=xp.zeros_like(state.queue_coef),
                      decay=xp.ones_like(state.decay))
        return strategy.eigen(new, arr(C))
    if isinstance(strategy, SepCMAES):
        return replace(new, sigma=arr(sigma), C=arr(np.diag(C)))
    if isinstance(strategy, XNES):  # x = m + sigma B z: B = C^(1/2), det B = 1
        w, V = np.linalg.eigh(C)
        return replace(new, sigma=arr(sigma), B=arr((V * np.sqrt(np.clip(w, 0.0, None))) @ V.T))
    if tuple(np.shape(state.sigma)) == tuple(np.shape(mean)):
        return replace(new, sigma=arr(sigma * np.sqrt(np.diag(C))))
    return replace(new, sigma=arr(sigma))


def apply_warm_start(driver: Any, spec: Any) -> None:
    """Start ``driver``'s first run from ``spec`` (see the module docstring).

    Raises
    ------
    InvalidArgumentError, InvalidTypeError
        Naming ``warm_start``: a wrong type, an unfitted ES, solutions or a source
        run of another dimension, a strategy without mean and sigma.
    """
    runner = driver.runner
    source = _source(spec)
    if isinstance(source, WarmStart):
        if driver.structure is not None:  # X may be in x0's structure, its leaves with a leading axis N
            source = WarmStart(flat_solutions(driver.structure, source.X), source.values, source.gamma, source.alpha)
        X = np.asarray(to_host(source.X), dtype=np.float64) if driver.fixed is not None else None
        if X is not None and X.ndim == 2 and X.shape[1] == driver.fixed.full_dim:  # fixed_variables: full rows,
            source = WarmStart(X[:, driver.fixed.free], source.values, source.gamma, source.alpha)  # free ones searched
        mean, sigma, C = source.distribution(driver.maximize, runner.dim)
        mean = mean if driver.fixed is None else np.asarray(driver.fixed.embed(np.asarray(mean, dtype=np.float64)))
    else:
        other = source.runner
        fixed = [getattr(getattr(d, "fixed", None), "values", None) for d in (source, driver)]
        if fixed[0] != fixed[1]:
            raise InvalidArgumentError(f"warm_start run has fixed_variables {fixed[0]}, this run {fixed[1]}: "
                                       "they must agree")
        if other.dim != runner.dim:
            raise InvalidArgumentError(f"warm_start run has dimension {other.dim}, x0 has dimension {runner.dim}")
        mine, theirs = (None if s is None else (s.names, s.shapes) for s in (driver.structure, source.structure))
        if mine is not None and theirs is not None and mine != theirs:  # a flat run's coordinates are any layout's
            raise InvalidArgumentError(f"warm_start run's x0 has leaves {list(theirs[0])} of shapes {list(theirs[1])}, "
                                       f"this x0 {list(mine[0])} of shapes {list(mine[1])}: the layouts must agree")
        if type(other.strategy) is type(runner.strategy) and other.backend.name == runner.backend.name and \
                _same_shapes(other.state, runner.state) and _same_box(source.bounds, driver.bounds):
            key = runner.state.key
            copied = map_tree(lambda v, is_key: v if is_key or v is None else be_copy(runner, v), other.state)
            runner.state = replace(copied, key=key)  # nested states (NES's params, opt) kept nested
            if driver.integers is not None:  # CMA-ES with margin: its scaling A and a due correction too
                driver.integers.continue_from(source.integers, other, runner)
            driver.state.best_x = driver.to_box(runner.mean)
            return
        mean, sigma, C = _distribution_of(other)
        if source.bounds is not None:
            mean = _host(other.backend, source.bounds.transform(other.backend.asarray(mean)))
    if driver.bounds is not None:
        mean = _host(runner.backend, driver.bounds.inverse(runner.backend.asarray(
            np.clip(mean, driver.bounds.lower, driver.bounds.upper), dtype=runner.dtype, device=runner.device)))
    runner.state = _set_distribution(runner, mean, sigma, C)
    driver.state.best_x = driver.to_box(runner.mean)


def be_copy(runner: Any, value: Any) -> Any:
    """``value`` (another run's state leaf) as a fresh array of this run's backend and device."""
    host = np.array(to_host(value), copy=True)
    dtype = runner.dtype if np.issubdtype(host.dtype, np.floating) else None
    return runner.backend.asarray(host, dtype=dtype, device=runner.device)
