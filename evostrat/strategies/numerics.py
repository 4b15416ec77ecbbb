"""Numeric helpers of the strategies: host copies of hyper-parameters and safe step sizes.

Examples
--------
>>> import numpy as np
>>> host_value(0.5), clamp_sigma(np.asarray([0.0, 1.0, np.inf])).tolist()[1:]
(0.5, [1.0, 1.3407807929942596e+154])
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from array_api_compat import array_namespace

from evostrat.backends import get_backend

__all__ = ["clamp_sigma", "host_value"]

Array = Any


def host_value(value: Any) -> Any:
    """A host (numpy) copy of a scalar or array hyper-parameter of any backend.

    Python scalars, strings, lists, numpy values and ``None`` come back unchanged.

    Examples
    --------
    >>> host_value(0.5), host_value(None)
    (0.5, None)
    """
    if value is None or isinstance(value, (int, float, str, np.ndarray, np.generic, list, tuple)):
        return value  # None and str fail the float conversion with a clear error
    return get_backend(value).to_numpy(value)


def clamp_sigma(sigma: Array) -> Array:
    """Keep standard deviations inside the finite range of their dtype."""
    xp = array_namespace(sigma)
    info = xp.finfo(sigma.dtype)
    lo, hi = math.sqrt(float(info.smallest_normal)), math.sqrt(float(info.max))
    return xp.clip(sigma, lo, hi)
