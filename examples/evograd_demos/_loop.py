"""Plain gradient ascent on a population statistic, on torch or JAX (shared by the demos).

Each demo defines ``statistic(x, p) -> scalar`` with :func:`evostrat.expectation`,
written once over the array namespace, and hands it to :func:`run`. One step:
draw ``x ~ p = Normal(mu, sigma)`` (``popsize`` draws, vectorised), compute the
statistic, differentiate it w.r.t. ``mu`` (``torch.autograd`` / ``jax.grad``)
and take ``mu <- mu + lr * grad``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from evostrat.distributions import Normal

Statistic = Callable[[Any, Normal], Any]

BACKENDS = ("torch", "jax")


def make_step(
    statistic: Statistic,
    backend: str = "torch",
    popsize: int = 500,
    sigma: float = 0.5,
    mu0: float = 1.0,
    lr: float = 0.03,
    seed: int = 0,
) -> tuple[Any, Callable[[Any], Any]]:
    """``(state, step)``: ``step(state) -> state`` performs one generation.

    The state is ``(mu, rng)``; ``mu`` has shape ``(1,)``. On JAX ``rng`` is a
    PRNG key and ``step`` is jitted; on torch ``rng`` is a ``torch.Generator``
    and ``step`` runs eagerly with ``torch.autograd``.
    """
    if backend == "torch":
        import torch

        mu = torch.tensor([mu0], dtype=torch.float32)
        generator = torch.Generator().manual_seed(seed)

        def torch_step(state: Any) -> Any:
            mu, generator = state
            leaf = mu.detach().requires_grad_(True)
            p = Normal(leaf, sigma)
            x = p.sample(popsize, generator=generator)
            (grad,) = torch.autograd.grad(statistic(x, p), leaf)
            return (mu + lr * grad, generator)

        return (mu, generator), torch_step
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        def jax_step(state: Any) -> Any:
            mu, key = state
            key, sub = jax.random.split(key)

            def objective(m: Any) -> Any:
                p = Normal(m, sigma)
                return statistic(p.sample(popsize, key=sub), p)

            return (mu + lr * jax.grad(objective)(mu), key)

        return (jnp.asarray([mu0], dtype=jnp.float32), jax.random.PRNGKey(seed)), jax.jit(jax_step)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def run(
    statistic: Statistic,
    backend: str = "torch",
    steps: int = 2000,
    popsize: int = 500,
    sigma: float = 0.5,
    mu0: float = 1.0,
    lr: float = 0.03,
    seed: int = 0,
) -> np.ndarray:
    """``steps`` generations of gradient ascent; returns ``mu`` after each, shape ``(steps,)``."""
    state, step = make_step(statistic, backend, popsize, sigma, mu0, lr, seed)
    if backend == "jax":  # the whole loop in one compiled lax.scan
        import jax

        def body(carry: Any, _: Any) -> Any:
            carry = step(carry)
            return carry, carry[0][0]

        _, trajectory = jax.jit(lambda s: jax.lax.scan(body, s, None, length=steps))(state)
        return np.asarray(trajectory, dtype=np.float64)
    trajectory = np.empty(steps)
    for t in range(steps):
        state = step(state)
        trajectory[t] = float(state[0][0])
    return trajectory


def summary(trajectory: np.ndarray, optimum: float, last: int = 200) -> str:
    """The demo's closing line: the final ``mu`` and the mean over the last ``last`` steps (or all)."""
    last = min(last, len(trajectory))
    return (f"mu after {len(trajectory)} steps: {trajectory[-1]:.4f}, mean of the last {last}: "
            f"{trajectory[-last:].mean():.4f} (optimum {optimum:.4f})")
