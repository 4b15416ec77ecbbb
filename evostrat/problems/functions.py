"""Benchmark functions for every backend, vectorised over leading axes.

Each function takes ``x`` of shape ``(..., d)`` (one candidate or a whole
population, numpy/torch/JAX) and returns shape ``(...)``. Minima are 0.

- ``sphere``: ``sum x_i^2``, optimum at 0.
- ``ellipsoid``: ``sum 10^(6 i/(d-1)) x_i^2`` (condition 1e6), optimum at 0.
- ``rosenbrock``: ``sum 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2``, optimum at 1.
- ``rastrigin``: ``10 d + sum x_i^2 - 10 cos(2 pi x_i)``, optimum at 0.
- ``ackley``: ``-20 exp(-0.2 sqrt(mean x^2)) - exp(mean cos 2 pi x) + 20 + e``, optimum at 0.

Examples
--------
>>> import numpy as np
>>> from evostrat.problems import rosenbrock, sphere
>>> float(rosenbrock(np.ones(5))), sphere(np.ones((3, 2))).tolist()
(0.0, [2.0, 2.0, 2.0])
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat

Array = Any

__all__ = ["sphere", "ellipsoid", "rosenbrock", "rastrigin", "ackley", "FUNCTIONS"]


def _prep(x: Any) -> tuple[Any, Array]:
    if isinstance(x, (list, tuple, float, int)):
        import numpy as np

        x = np.asarray(x, dtype=np.float64)
    return array_api_compat.array_namespace(x), x


def sphere(x: Array) -> Array:
    """``sum_i x_i^2``."""
    xp, x = _prep(x)
    return xp.sum(x * x, axis=-1)


def ellipsoid(x: Array, condition: float = 1e6) -> Array:
    """``sum_i condition^(i/(d-1)) x_i^2``; axis ratio ``sqrt(condition)``."""
    xp, x = _prep(x)
    d = x.shape[-1]
    exps = xp.arange(d, dtype=x.dtype, device=array_api_compat.device(x)) / max(d - 1, 1)
    scales = xp.exp(exps * math.log(condition))
    return xp.sum(scales * x * x, axis=-1)


def rosenbrock(x: Array) -> Array:
    """``sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2``; needs ``d >= 2``."""
    xp, x = _prep(x)
    head, tail = x[..., :-1], x[..., 1:]
    return xp.sum(100.0 * (tail - head * head) ** 2 + (1.0 - head) ** 2, axis=-1)


def rastrigin(x: Array) -> Array:
    """``10 d + sum_i x_i^2 - 10 cos(2 pi x_i)``."""
    xp, x = _prep(x)
    d = x.shape[-1]
    return 10.0 * d + xp.sum(x * x - 10.0 * xp.cos(2 * math.pi * x), axis=-1)


def ackley(x: Array) -> Array:
    """Ackley's function with ``a=20, b=0.2, c=2 pi``."""
    xp, x = _prep(x)
    rms = xp.sqrt(xp.mean(x * x, axis=-1))
    cosmean = xp.mean(xp.cos(2 * math.pi * x), axis=-1)
    return -20.0 * xp.exp(-0.2 * rms) - xp.exp(cosmean) + 20.0 + math.e


FUNCTIONS = {f.__name__: f for f in (sphere, ellipsoid, rosenbrock, rastrigin, ackley)}

for _f in FUNCTIONS.values():
    _f.vectorized = True  # type: ignore[attr-defined]
