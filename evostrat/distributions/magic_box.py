"""The DiCE magic box operator.

Foerster, Farquhar, Al-Shedivat, Rocktäschel, Xing, Whiteson, "DiCE: The
Infinitely Differentiable Monte Carlo Estimator", ICML 2018, eq. (3)::

    box(l) = exp(l - stop_gradient(l))

Its value is exactly 1, and ``d box(l) = box(l) d l``, so every derivative of
``f * box(sum of log-probabilities)`` reproduces the score-function terms of
the matching order: ``d[f box] = box (df + f dl)``,
``d^2[f box] = box (d^2 f + df dl^T + dl df^T + f (dl dl^T + d^2 l))``, and so on. Writing
the box with the framework's own ``exp`` and ``stop_gradient`` (rather than a
hand-written backward) is what keeps the higher derivatives right.

Examples
--------
>>> import numpy as np
>>> from evostrat.distributions.magic_box import magic_box
>>> magic_box(np.array([-3.0, 0.5])).tolist()
[1.0, 1.0]
>>> import torch                                                   # doctest: +SKIP
>>> l = torch.tensor(0.3, requires_grad=True)                      # doctest: +SKIP
>>> (g,) = torch.autograd.grad(magic_box(2 * l), l, create_graph=True)  # doctest: +SKIP
>>> float(g.detach())                                              # doctest: +SKIP
2.0
"""

from __future__ import annotations

from typing import Any

from evostrat.backends import get_backend

Array = Any

__all__ = ["magic_box"]


def magic_box(log_prob: Array) -> Array:
    """``exp(log_prob - stop_gradient(log_prob))``: 1 in value, ``d log_prob`` in derivative.

    Parameters
    ----------
    log_prob : array
        Log-probabilities (numpy, torch or JAX; any shape).

    Returns
    -------
    array
        Ones of the same shape, carrying the derivatives of ``log_prob``. On
        numpy (no autodiff) the result is plain ones.
    """
    be = get_backend(log_prob)
    return be.xp.exp(log_prob - be.stop_gradient(log_prob))
