"""A point robot on a plane driven by a small policy network: a 2-D behaviour task.

The robot starts at the origin and takes ``steps`` steps. At each step a tanh MLP (one
hidden layer) reads its position (divided by the reach) and the elapsed fraction of the
episode and outputs a velocity ``tanh(.)`` clipped to the unit disk and scaled by
``reach / steps``, so no robot ends farther than ``reach`` from the origin. A population
``(n, dim)`` is simulated at once on numpy, torch or JAX (traceable under ``jax.jit``).
The behaviour is the final position ``(x, y)``, as in the evolvability ES experiments
(Gajewski et al., GECCO 2019, arXiv 1907.06077, with an Ant robot's final position):
:func:`sector_coverage` counts the angular sectors that perturbations reach.

Examples
--------
>>> import numpy as np
>>> from evostrat.problems.point_robot import PointRobot, sector_coverage
>>> robot = PointRobot(steps=20, hidden=8)
>>> theta = robot.init_params(seed=0)
>>> theta.shape == (robot.dim,)
True
>>> X = theta + 0.5 * np.random.default_rng(0).standard_normal((100, robot.dim))
>>> B = robot(X)                                 # final positions, one per candidate
>>> B.shape, bool(np.all(np.linalg.norm(B, axis=1) <= robot.reach + 1e-12))
((100, 2), True)
>>> robot(theta).shape                            # one candidate
(2,)
>>> fraction, counts = sector_coverage(B, radius=0.0)
>>> int(counts.sum())
100
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat
import numpy as np

from evostrat.errors import InvalidArgumentError, InvalidTypeError

Array = Any

__all__ = ["PointRobot", "sector_coverage", "distance"]

N_INPUTS = 3  # x / reach, y / reach, t / steps


def positive_int(name: str, value: Any, allow_none: bool = False) -> Any:
    """``int(value)``, or ``InvalidArgumentError`` unless it is a positive int (``None`` passes with ``allow_none``)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgumentError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def layer_sizes(name: str, value: Any) -> tuple[int, ...]:
    """A policy's hidden layer sizes: a tuple or list of positive ints, or ``InvalidArgumentError``
    (an int alone, a common slip for ``(8,)``, is named as such)."""
    if not isinstance(value, (tuple, list)):
        raise InvalidArgumentError(f"{name} must be a tuple of layer sizes such as (8,) or (32, 32), got {value!r}")
    return tuple(positive_int(name, h) for h in value)


def seed_int(value: Any, nonnegative: bool = False) -> int:
    """``int(value)`` for a seed, or ``InvalidArgumentError`` unless it is an int (not a bool or a float),
    and with ``nonnegative`` an int >= 0 (gymnasium's ``reset(seed=...)``, numpy's generators)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or nonnegative and value < 0:
        raise InvalidArgumentError(f"seed must be an int{' >= 0' if nonnegative else ''}, got {value!r}")
    return int(value)


class PointRobot:
    """Vectorised point-robot rollouts; ``robot(X)`` gives final positions.

    Parameters
    ----------
    steps : int
        Time steps per episode.
    hidden : int
        Hidden units of the policy (tanh).
    reach : float
        Farthest distance from the origin a robot can end at (speed ``reach / steps``).

    Attributes
    ----------
    dim : int
        Parameters per candidate: ``3 h + h + 2 h + 2`` for ``h`` hidden units.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.problems import PointRobot
    >>> robot = PointRobot(steps=20, hidden=8)
    >>> far = lambda X: -np.linalg.norm(robot(X), axis=1)   # go as far from the origin as possible
    >>> es = ES("snes", max_generations=20, random_state=0).fit(far, robot.init_params(seed=0))
    >>> robot.dim, bool(np.isclose(es.fun_, -robot.reach))
    (50, True)
    """

    #: ``robot(X)`` takes the population: ``evaluator="auto"`` calls it once per generation.
    vectorized = True

    def __init__(self, steps: int = 50, hidden: int = 16, reach: float = 1.0) -> None:
        self.steps = positive_int("steps", steps)
        self.hidden = positive_int("hidden", hidden)
        if isinstance(reach, bool) or not isinstance(reach, (int, float)) or not 0 < reach < math.inf:
            raise InvalidArgumentError(f"reach must be a positive number, got {reach!r}")
        self.reach = float(reach)
        h = self.hidden
        self._shapes = ((N_INPUTS, h), (h,), (h, 2), (2,))
        self.dim = N_INPUTS * h + h + 2 * h + 2

    def init_params(self, seed: int = 0, scale: float = 1.0) -> np.ndarray:
        """A random parameter vector (numpy float64): weights ``N(0, scale^2 / fan_in)``, biases 0."""
        rng = np.random.default_rng(seed)
        parts = [
            scale * rng.standard_normal(shape).ravel() / math.sqrt(shape[0]) if len(shape) == 2 else np.zeros(shape)
            for shape in self._shapes
        ]
        return np.concatenate(parts)

    def _unpack(self, X: Array) -> list[Array]:
        xp = array_api_compat.array_namespace(X)
        n, out, start = X.shape[0], [], 0
        for shape in self._shapes:
            size = math.prod(shape)
            out.append(xp.reshape(X[:, start : start + size], (n,) + shape))
            start += size
        return out

    def rollout(self, X: Array) -> Array:
        """Positions over time, shape ``(n, steps + 1, 2)`` for ``X`` of shape ``(n, dim)``."""
        X = self._check(X)
        xp = array_api_compat.array_namespace(X)
        X = xp.reshape(X, (1, X.shape[0])) if X.ndim == 1 else X
        W1, b1, W2, b2 = self._unpack(X)
        n = X.shape[0]
        pos = xp.zeros((n, 2), dtype=X.dtype, device=array_api_compat.device(X))
        ones = xp.ones((n, 1), dtype=X.dtype, device=array_api_compat.device(X))
        speed = self.reach / self.steps
        path = [pos]
        for t in range(self.steps):
            inputs = xp.concat([pos / self.reach, ones * (t / self.steps)], axis=1)
            h = xp.tanh(xp.matmul(inputs[:, None, :], W1)[:, 0, :] + b1)
            a = xp.tanh(xp.matmul(h[:, None, :], W2)[:, 0, :] + b2)
            norm = xp.sqrt(xp.sum(a * a, axis=1, keepdims=True))
            pos = pos + speed * a / xp.maximum(norm, ones)
            path.append(pos)
        return xp.stack(path, axis=1)

    def __call__(self, X: Array) -> Array:
        """Final positions: ``(n, 2)`` for ``X`` of shape ``(n, dim)``, ``(2,)`` for ``(dim,)``."""
        X = self._check(X)
        final = self.rollout(X)[:, -1, :]
        return final[0, :] if X.ndim == 1 else final

    def _check(self, X: Any) -> Array:
        if isinstance(X, (list, tuple)):
            X = np.asarray(X, dtype=np.float64)
        try:
            array_api_compat.array_namespace(X)
        except TypeError as err:
            raise InvalidTypeError(
                f"X must be an array of shape (n, {self.dim}) or ({self.dim},), got {type(X).__name__}"
            ) from err
        if X.ndim not in (1, 2) or X.shape[-1] != self.dim:
            raise InvalidArgumentError(
                f"X must have shape (n, {self.dim}) or ({self.dim},) for this robot "
                f"(hidden={self.hidden}), got {tuple(X.shape)}"
            )
        return X

    def __repr__(self) -> str:
        return f"PointRobot(steps={self.steps}, hidden={self.hidden}, reach={self.reach})"


def distance(B: Array) -> Array:
    """Distance of each final position from the origin: ``||B_i||``, shape ``(n,)``."""
    xp = array_api_compat.array_namespace(B)
    return xp.sqrt(xp.sum(B * B, axis=-1))


def sector_coverage(
    B: Any, radius: float, sectors: int = 8, min_count: int = 1
) -> tuple[float, np.ndarray]:
    """Fraction of angular sectors reached beyond ``radius`` by the behaviours ``B``.

    The plane is cut into ``sectors`` equal angular sectors (the first starts at
    angle 0). A sector counts as reached when at least ``min_count`` points of
    ``B`` lie in it at distance greater than ``radius`` from the origin.

    Parameters
    ----------
    B : array, shape (n, 2)
        Final positions (any backend; copied to the host).
    radius : float
    sectors : int
    min_count : int

    Returns
    -------
    fraction : float
        Reached sectors divided by ``sectors``.
    counts : ndarray of int, shape (sectors,)
        Points beyond ``radius`` in each sector.

    Examples
    --------
    >>> import numpy as np
    >>> B = np.array([[1.0, 0.1], [0.0, 2.0], [-0.1, 0.05], [0.5, -0.6]])
    >>> fraction, counts = sector_coverage(B, radius=0.5, sectors=4)
    >>> fraction, counts.tolist()
    (0.75, [1, 1, 0, 1])
    """
    host = np.asarray(B.detach().cpu() if hasattr(B, "detach") else B, dtype=np.float64)
    if host.ndim != 2 or host.shape[1] != 2:
        raise InvalidArgumentError(f"B must have shape (n, 2), got {host.shape}")
    sectors = positive_int("sectors", sectors)
    min_count = positive_int("min_count", min_count)
    far = np.hypot(host[:, 0], host[:, 1]) > radius
    angle = np.mod(np.arctan2(host[far, 1], host[far, 0]), 2 * np.pi)
    index = np.minimum((angle / (2 * np.pi) * sectors).astype(int), sectors - 1)
    counts = np.bincount(index, minlength=sectors)
    return float(np.mean(counts >= min_count)), counts
