"""Gradient-step optimisers as pure ``init``/``update`` pairs over a NamedTuple.

Used by the gradient-based strategies (OpenAI-ES, PGPE, ...). ``update``
returns the *step to subtract* from the parameters given a gradient of the
loss to minimise, and the new optimiser state. All arrays stay on the
parameters' backend and device.

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies.optimizers import make_optimizer
>>> opt = make_optimizer("adam")
>>> state = opt.init(np.zeros(2))
>>> step, state = opt.update(np.array([1.0, -1.0]), state, lr=0.1)
>>> np.round(step, 6)
array([ 0.1, -0.1])
"""

from __future__ import annotations

from typing import Any, NamedTuple

import array_api_compat

from evostrat.errors import UnknownNameError

Array = Any


class SGDState(NamedTuple):
    velocity: Array


class AdamState(NamedTuple):
    m: Array
    v: Array
    t: Array


class ClipUpState(NamedTuple):
    velocity: Array


class SGD:
    """Gradient descent with optional heavy-ball momentum."""

    def __init__(self, momentum: float = 0.0) -> None:
        self.momentum = momentum

    def init(self, params: Array) -> SGDState:
        return SGDState(velocity=params * 0)

    def update(self, grad: Array, state: SGDState, lr: Any) -> tuple[Array, SGDState]:
        velocity = self.momentum * state.velocity + grad
        return lr * velocity, SGDState(velocity)


class Adam:
    """Adam (Kingma & Ba 2015, Algorithm 1)."""

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def init(self, params: Array) -> AdamState:
        xp = array_api_compat.array_namespace(params)
        zero = params * 0
        t = xp.zeros((), dtype=params.dtype, device=array_api_compat.device(params))
        return AdamState(m=zero, v=zero, t=t)

    def update(self, grad: Array, state: AdamState, lr: Any) -> tuple[Array, AdamState]:
        xp = array_api_compat.array_namespace(grad)
        t = state.t + 1
        m = self.beta1 * state.m + (1 - self.beta1) * grad
        v = self.beta2 * state.v + (1 - self.beta2) * grad * grad
        m_hat = m / (1 - self.beta1**t)
        v_hat = v / (1 - self.beta2**t)
        return lr * m_hat / (xp.sqrt(v_hat) + self.eps), AdamState(m, v, t)


class ClipUp:
    """ClipUp (Toklu et al. 2020): normalised gradient, momentum, speed clipping.

    ``v <- momentum * v + lr * g / ||g||``; ``v`` is rescaled to ``max_speed`` when
    longer. ``max_speed`` defaults to ``2 * lr`` as the paper recommends.
    """

    def __init__(self, momentum: float = 0.9, max_speed: float | None = None) -> None:
        self.momentum, self.max_speed = momentum, max_speed

    def init(self, params: Array) -> ClipUpState:
        return ClipUpState(velocity=params * 0)

    def update(self, grad: Array, state: ClipUpState, lr: Any) -> tuple[Array, ClipUpState]:
        xp = array_api_compat.array_namespace(grad)
        norm = xp.linalg.vector_norm(grad)
        tiny = xp.finfo(grad.dtype).tiny
        velocity = self.momentum * state.velocity + lr * grad / xp.clip(norm, min=tiny)
        max_speed = 2 * lr if self.max_speed is None else self.max_speed
        speed = xp.linalg.vector_norm(velocity)
        scale = xp.minimum(xp.ones_like(speed), max_speed / xp.clip(speed, min=tiny))
        velocity = velocity * scale
        return velocity, ClipUpState(velocity)


_OPTIMIZERS = {"sgd": SGD, "adam": Adam, "clipup": ClipUp}


def make_optimizer(name: str, **options: Any) -> Any:
    """Build an optimiser by name: ``"sgd"``, ``"adam"`` or ``"clipup"``."""
    if name not in _OPTIMIZERS:
        raise UnknownNameError(f"optimizer must be one of {sorted(_OPTIMIZERS)}, got {name!r}")
    return _OPTIMIZERS[name](**options)
