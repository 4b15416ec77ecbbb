"""Memory-bounded ``tell`` from a seed: weighted noise sums, chunk by chunk.

The plain ``tell`` of the Gaussian strategies forms ``z = (X - mean) / sigma`` from
the ``(popsize, d)`` population for ``g1 = sum_i w_i z_i`` (and, for SNES,
``g2 = sum_i w_i (z_i^2 - 1)``); at d = 1,000,000 and popsize 1,000 the population
alone is 8 GB. In the seed-compressed mode (:mod:`evostrat.evaluators.seeded`)
:func:`weighted_noise_sums` rebuilds the rows from the
:class:`~evostrat.evaluators.seeded.GaussianSeed` ``chunk_size`` at a time instead:
peak memory O(chunk_size x d) + O(popsize) (69 MiB for OpenAI-ES, 99 MiB for SNES at
that size; ``BENCHMARKS.md``), for one more sampling of every row. The rows are
bit-identical to ``ask``'s; only the order of summation differs, so the state agrees
with the plain ``tell`` to a few ulps (relative 1e-15 in float64, 1e-6 in float32).

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies.snes import SNES
>>> s = SNES(sigma0=0.5)
>>> state = s.init(np.zeros(6), random_state=0)
>>> seed, state2 = s.ask_seed(state)
>>> X, state1 = s.ask(state)
>>> f = (X ** 2).sum(axis=1)
>>> a, b = s.tell(state1, X, f), s.tell_seed(state2, seed, f, chunk_size=3)
>>> bool(np.allclose(a.mean, b.mean, rtol=1e-14) and np.allclose(a.sigma, b.sigma, rtol=1e-14))
True
"""

from __future__ import annotations

from typing import Any

from evostrat.backends import get_backend
from evostrat.errors import InvalidArgumentError
from evostrat.evaluators.seeded import GaussianSeed

__all__ = ["CHUNK_NUMBERS", "default_chunk_size", "seeded_generation", "weighted_noise_sums"]

Array = Any

#: Numbers per chunk of rebuilt rows by default (2**21: 16 MiB in float64).
CHUNK_NUMBERS = 1 << 21


def default_chunk_size(dim: int, popsize: int) -> int:
    """Candidates per chunk: ``CHUNK_NUMBERS // dim``, at least 2, at most ``popsize``.

    Examples
    --------
    >>> default_chunk_size(1_000_000, 1000), default_chunk_size(10, 20)
    (2, 20)
    """
    return max(2, min(popsize, CHUNK_NUMBERS // max(dim, 1)))


def weighted_noise_sums(seed: GaussianSeed | None, mean: Array, sigma: Array, weights: Array,
                        squares: bool = False,
                        chunk_size: int | None = None) -> tuple[Array, Array | None]:
    """``sum_i w_i z_i`` (and ``sum_i w_i (z_i^2 - 1)``) over the seed's population.

    Parameters
    ----------
    seed : GaussianSeed
        The population's description (``strategy.population_seed(state)``,
        taken before ``ask``/``ask_seed``).
    mean, sigma : array
        The distribution the population was drawn from (the state's), on the
        backend the sums are computed on.
    weights : array, shape (popsize,)
        Per-candidate weights (utilities, centered ranks).
    squares : bool
        Also return ``sum_i w_i (z_i^2 - 1)`` (SNES's sigma gradient).
    chunk_size : int, optional
        Candidates rebuilt at a time; default :func:`default_chunk_size`.

    Returns
    -------
    (array, array or None)
        Shapes ``(d,)``; the second is ``None`` unless ``squares``.

    Raises
    ------
    InvalidArgumentError
        When ``seed`` is ``None`` (a population on an accelerator has no seed)
        or ``weights`` does not have one value per candidate.
    """
    if seed is None:
        raise InvalidArgumentError(
            "no seed: populations on an accelerator (torch CUDA, JAX GPU) are not "
            "seed-compressed; use tell(state, X, fitness)"
        )
    be = get_backend(mean)
    xp = be.xp
    n, dim = seed.popsize, mean.shape[0]
    if weights.shape[0] != n:
        raise InvalidArgumentError(f"weights must have {n} values, got {weights.shape[0]}")
    if chunk_size is None:
        chunk_size = default_chunk_size(dim, n)
    if chunk_size < 1:
        raise InvalidArgumentError(f"chunk_size must be >= 1, got {chunk_size}")
    first = second = None
    for start in range(0, n, chunk_size):
        stop = min(n, start + chunk_size)
        z = (seed.rows(start, stop, as_backend=True) - mean) / sigma  # as in the plain tell
        w = weights[start:stop]
        part = xp.matmul(w, z)
        first = part if first is None else first + part
        if squares:
            part2 = xp.matmul(w, z * z - 1)
            second = part2 if second is None else second + part2
        del z
    return first, second


def seeded_generation(strategy: Any, state: Any, objective: Any,
                      chunk_size: int | None = None) -> tuple[Any, Array]:
    """One generation without the population: ``ask_seed``, evaluate by chunks, ``tell_seed``.

    The driver's and the workers' part of the seed-compressed mode in one process: the
    rows are rebuilt ``chunk_size`` at a time and only their values kept.

    Parameters
    ----------
    strategy : SNES or OpenAIES
        A strategy with ``ask_seed`` and ``tell_seed``.
    state : its state (on a CPU backend)
    objective : callable
        Vectorised: rows ``(k, d)`` on the state's backend -> values ``(k,)``.
    chunk_size : int, optional
        Candidates per chunk; default :func:`default_chunk_size`.

    Returns
    -------
    (state, fitness)
        The next state and the population's values, shape ``(popsize,)``.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat.strategies.openai_es import OpenAIES
    >>> s = OpenAIES(popsize=8, sigma0=0.1)
    >>> state, f = seeded_generation(s, s.init(np.ones(5), random_state=0), lambda X: (X * X).sum(1))
    >>> f.shape
    (8,)
    """
    seed, state = strategy.ask_seed(state)
    if seed is None:
        raise InvalidArgumentError("no seed: the population lives on an accelerator")
    be = get_backend(state.mean)
    n, dim = seed.popsize, state.mean.shape[0]
    step = chunk_size or default_chunk_size(dim, n)
    parts = []
    for start in range(0, n, step):
        parts.append(objective(seed.rows(start, min(n, start + step), as_backend=True)))
    fitness = be.xp.concat(parts) if len(parts) > 1 else parts[0]
    return strategy.tell_seed(state, seed, fitness, chunk_size=chunk_size), fitness
