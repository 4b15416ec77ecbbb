"""Benchmark functions for every backend, vectorised over leading axes.

Each function takes ``x`` of shape ``(..., d)`` (one candidate or a whole
population, numpy/torch/JAX) and returns shape ``(...)``. Minima are 0.

- ``sphere``: ``sum x_i^2``, optimum at 0.
- ``ellipsoid``: ``sum 10^(6 i/(d-1)) x_i^2`` (condition 1e6), optimum at 0.
- ``rosenbrock``: ``sum 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2``, optimum at 1.
- ``rastrigin``: ``10 d + sum x_i^2 - 10 cos(2 pi x_i)``, optimum at 0.
- ``ackley``: ``-20 exp(-0.2 sqrt(mean x^2)) - exp(mean cos 2 pi x) + 20 + e``, optimum at 0.
- ``step_ellipsoid``: BBOB's f7 without rotations or shift: plateaus everywhere, optimum at 0.

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

__all__ = ["sphere", "ellipsoid", "rosenbrock", "rastrigin", "ackley", "step_ellipsoid", "FUNCTIONS"]


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


def step_ellipsoid(x: Array) -> Array:
    """BBOB's step ellipsoid f7 (Hansen, Finck, Ros & Auger, "Real-parameter black-box
    optimization benchmarking 2009: noiseless functions definitions", INRIA RR-6829) without
    its rotations, shift and ``f_opt``: ``z = 10^(i/(2(d-1))) x`` rounded to integers where
    ``|z_i| > 1/2`` and to tenths elsewhere, ``0.1 max(|z_1| / 10^4, sum_i 10^(2i/(d-1))
    round(z)_i^2)`` plus ``sum_i max(0, |x_i| - 5)^2``. A landscape of plateaus (a flat
    population stops a run on ``tolflatfitness``), minimum 0 at 0."""
    xp, x = _prep(x)
    t = xp.arange(x.shape[-1], dtype=x.dtype, device=array_api_compat.device(x)) / max(x.shape[-1] - 1, 1)
    z = xp.exp(t * (0.5 * math.log(10.0))) * x
    rounded = xp.where(xp.abs(z) > 0.5, xp.floor(0.5 + z), xp.floor(0.5 + 10.0 * z) / 10.0)
    ellipsoid_value = xp.sum(xp.exp(t * (2.0 * math.log(10.0))) * rounded * rounded, axis=-1)
    outside = xp.where(xp.abs(x) > 5.0, xp.abs(x) - 5.0, 0.0)
    return 0.1 * xp.maximum(xp.abs(z[..., 0]) / 1e4, ellipsoid_value) + xp.sum(outside * outside, axis=-1)


FUNCTIONS = {f.__name__: f for f in (sphere, ellipsoid, rosenbrock, rastrigin, ackley, step_ellipsoid)}

for _f in FUNCTIONS.values():
    _f.vectorized = True  # type: ignore[attr-defined]
