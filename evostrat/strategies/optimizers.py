"""Gradient-step optimisers as pure ``init``/``update`` pairs over a NamedTuple.

The gradient-based strategies (OpenAI-ES, PGPE, ...) take one by name
(``optimizer="adam"``, with ``optimizer_options``) or as an instance. ``update`` returns
the *step to subtract* for a gradient of the loss, and the new state, on the parameters'
backend and device. Weight decay (:meth:`Optimizer.update`) is L2, as Salimans et al.
2017, or decoupled with ``decoupled=True`` (Loshchilov & Hutter 2019).

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies.optimizers import make_optimizer
>>> opt = make_optimizer("adam")
>>> state = opt.init(np.zeros(2))
>>> step, state = opt.update(np.array([1.0, -1.0]), state, lr=0.1)
>>> np.round(step, 6)
array([ 0.1, -0.1])
>>> sgd = make_optimizer("sgd", weight_decay=0.5)
>>> step, _ = sgd.update(np.array([1.0, 1.0]), sgd.init(np.zeros(2)), lr=1.0, params=np.array([2.0, 0.0]))
>>> step.tolist()
[2.0, 1.0]
"""

from __future__ import annotations

import copy
from numbers import Real
from typing import Any, NamedTuple

import array_api_compat

from evostrat.errors import InvalidArgumentError, UnknownNameError
from evostrat.params import Interval, Params

__all__ = ["OPTIMIZERS", "Adam", "ClipUp", "Optimizer", "SGD", "make_optimizer"]

Array = Any


class VelocityState(NamedTuple):
    """State of :class:`SGD` and :class:`ClipUp`."""

    velocity: Array


class AdamState(NamedTuple):
    m: Array
    v: Array
    t: Array


class Optimizer(Params):
    """Base of the optimisers: ``init(params)``, ``direction`` and weight decay.

    Parameters
    ----------
    weight_decay : float
        Decay coefficient; 0 (default) applies none.
    decoupled : bool
        ``False``: L2, ``grad + weight_decay * params`` is what the optimiser sees;
        ``True``: ``lr * weight_decay * params`` is added to the step.
    """

    parameter_constraints = {
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "decoupled": [bool],
    }

    def __init__(self, weight_decay: float = 0.0, decoupled: bool = False) -> None:
        self.weight_decay, self.decoupled = weight_decay, decoupled

    def init(self, params: Array) -> Any:
        """The optimiser state for parameters like ``params``."""
        raise NotImplementedError

    def direction(self, grad: Array, state: Any, lr: Any) -> tuple[Array, Any]:
        """The step (to subtract) for ``grad`` without weight decay, and the new state."""
        raise NotImplementedError

    def update(self, grad: Array, state: Any, lr: Any,
               params: Array | None = None) -> tuple[Array, Any]:
        """The step to subtract from ``params`` and the new state; decays ``params`` if given."""
        decay = params is not None and self.weight_decay != 0
        if decay and not self.decoupled:
            grad = grad + self.weight_decay * params
        step, state = self.direction(grad, state, lr)
        if decay and self.decoupled:
            step = step + lr * self.weight_decay * params
        return step, state


class SGD(Optimizer):
    """Gradient descent with optional heavy-ball momentum."""

    def __init__(self, momentum: float = 0.0, weight_decay: float = 0.0,
                 decoupled: bool = False) -> None:
        super().__init__(weight_decay, decoupled)
        self.momentum = momentum

    def init(self, params: Array) -> VelocityState:
        return VelocityState(velocity=params * 0)

    def direction(self, grad: Array, state: VelocityState, lr: Any) -> tuple[Array, VelocityState]:
        velocity = self.momentum * state.velocity + grad
        return lr * velocity, VelocityState(velocity)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1); AdamW with ``decoupled=True``."""

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled: bool = False) -> None:
        super().__init__(weight_decay, decoupled)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def init(self, params: Array) -> AdamState:
        xp = array_api_compat.array_namespace(params)
        zero = params * 0
        t = xp.zeros((), dtype=params.dtype, device=array_api_compat.device(params))
        return AdamState(m=zero, v=zero, t=t)

    def direction(self, grad: Array, state: AdamState, lr: Any) -> tuple[Array, AdamState]:
        xp = array_api_compat.array_namespace(grad)
        t = state.t + 1
        m = self.beta1 * state.m + (1 - self.beta1) * grad
        v = self.beta2 * state.v + (1 - self.beta2) * grad * grad
        m_hat = m / (1 - self.beta1**t)
        v_hat = v / (1 - self.beta2**t)
        return lr * m_hat / (xp.sqrt(v_hat) + self.eps), AdamState(m, v, t)


class ClipUp(Optimizer):
    """ClipUp (Toklu et al. 2020): normalised gradient, momentum, speed clipping.

    ``v <- momentum * v + lr * g / ||g||``; ``v`` is rescaled to ``max_speed`` when
    longer. ``max_speed`` defaults to ``2 * lr`` as the paper recommends.
    """

    def __init__(self, momentum: float = 0.9, max_speed: float | None = None,
                 weight_decay: float = 0.0, decoupled: bool = False) -> None:
        super().__init__(weight_decay, decoupled)
        self.momentum, self.max_speed = momentum, max_speed

    init = SGD.init  # the same state: a velocity, zero at first

    def direction(self, grad: Array, state: VelocityState, lr: Any) -> tuple[Array, VelocityState]:
        xp = array_api_compat.array_namespace(grad)
        norm = xp.linalg.vector_norm(grad)
        tiny = xp.finfo(grad.dtype).tiny
        velocity = self.momentum * state.velocity + lr * grad / xp.clip(norm, min=tiny)
        max_speed = 2 * lr if self.max_speed is None else self.max_speed
        speed = xp.linalg.vector_norm(velocity)
        scale = xp.minimum(xp.ones_like(speed), max_speed / xp.clip(speed, min=tiny))
        velocity = velocity * scale
        return velocity, VelocityState(velocity)


#: The optimisers by name.
OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam, "clipup": ClipUp}


def make_optimizer(optimizer: str | Optimizer, **options: Any) -> Optimizer:
    """An optimiser by name (``"sgd"``, ``"adam"``, ``"clipup"``), or a copy of an instance.

    ``options`` are its parameters (``momentum``, ``beta1``, ``weight_decay``, ...).
    Strategies build their optimiser every generation and validate it once, at
    init (``opt.validate_params()``), so this does not.

    Raises
    ------
    UnknownNameError
        For an unknown name.
    InvalidArgumentError
        For options the optimiser does not take.
    """
    if isinstance(optimizer, Optimizer):
        opt = copy.copy(optimizer).set_params(**options)
    elif optimizer not in OPTIMIZERS:
        raise UnknownNameError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    else:
        try:
            opt = OPTIMIZERS[optimizer](**options)
        except TypeError as err:
            raise InvalidArgumentError(
                f"optimizer_options {options!r} do not fit optimizer {optimizer!r}: {err}"
            ) from err
    return opt
