"""Seed-compressed populations: ship a key and the distribution, not the vectors.

Following Salimans et al. (2017), the Gaussian strategies (``openai_es``,
``snes``, ``pgpe``) let the remote evaluators (``"executor"``, ``"ray"``) send a
:class:`GaussianSeed` (the generation key, mean and sigma) instead of the
population, and each worker rebuilds only its own rows. ``docs/guides/distributed.md``
compares the sizes and costs of the ``seeded=`` modes (plain, seed and
:mod:`evostrat.evaluators.replay`); every mode gives the plain run bit for bit.

*Per-row noise, drawn in blocks.* The strategies draw their noise with
:meth:`~evostrat.backends.base.Backend.normal_rows`: row ``r`` is a function of
the generation key and ``r`` alone, so a worker draws only its rows. The rows are
drawn as blocks of :func:`~evostrat.backends.host_keys.block_rows` rows, one generator
call per block; a row is rebuilt from (key, block, offset) by drawing its block up
to it.

*Layouts.* Candidate ``i`` is ``x_i = mean + sigma * (s_i z_{r_i})`` with a
noise row ``r_i`` and a sign ``s_i``: ``"independent"`` (SNES) ``r_i = i``,
``s_i = +1``; ``"mirrored"`` (OpenAI-ES) ``r_i = i mod n/2``, ``s_i = -1`` in
the second half; ``"pairs"`` (PGPE) ``r_i = i // 2``, ``s_i = -1`` for odd ``i``.
:func:`gaussian_population` builds both the strategy's ``ask`` and a worker's
chunk with the same operations, compiled by ``backend.compile`` as ``ask`` is
(under ``jax.jit`` XLA fuses ``mean + sigma * z`` into multiply-adds) and with
at least two rows (XLA compiles a single row without that fusion), so the
rebuilt rows are bit-identical to the driver's (``tests/test_seeded.py``).

*Protocol.* A strategy supports compression by defining
``population_seed(state) -> GaussianSeed | None`` (splitting the key as ``ask``
does). Populations on an accelerator, mapped into ``bounds`` by ``ES`` or holding
candidates queued by ``inject``, are shipped plain.

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies.snes import SNES
>>> s = SNES(sigma0=0.5)
>>> state = s.init(np.zeros(4), random_state=0)
>>> seed = s.population_seed(state)
>>> X, state = s.ask(state)
>>> bool((seed.rows(2, 5) == X[2:5]).all())
True
>>> seed.nbytes < X.nbytes
True
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from evostrat.backends import Backend, get_backend
from evostrat.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["LAYOUTS", "GaussianSeed", "gaussian_population", "layout_rows", "population_seed"]

Array = Any

#: Noise layouts of the Gaussian strategies (see the module docstring).
LAYOUTS = ("independent", "mirrored", "pairs")


def layout_rows(layout: str, popsize: int, candidates: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Noise rows and signs of ``candidates`` (host arrays).

    Examples
    --------
    >>> rows, signs = layout_rows("pairs", 6, range(6))
    >>> rows.tolist(), signs.tolist()
    ([0, 0, 1, 1, 2, 2], [1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    """
    i = np.asarray(candidates, dtype=np.int64).reshape(-1)
    if i.size and (i.min() < 0 or i.max() >= popsize):
        raise InvalidArgumentError(f"candidates must lie in [0, {popsize}), got {i.min()}..{i.max()}")
    if layout == "independent":
        return i, np.ones(i.size)
    half = popsize // 2
    if layout == "mirrored":
        return i % half, np.where(i < half, 1.0, -1.0)
    if layout == "pairs":
        return i // 2, np.where(i % 2 == 0, 1.0, -1.0)
    raise InvalidArgumentError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def gaussian_population(backend: Backend, key: Any, mean: Array, sigma: Array, popsize: int, layout: str,
                        candidates: Sequence[int] | None = None) -> Array:
    """Candidates ``mean + sigma * (s_i z_{r_i})`` of a Gaussian population.

    Parameters
    ----------
    backend : Backend
    key : backend key
        The generation key (the one ``ask`` splits off the state's key).
    mean : array, shape (d,)
    sigma : array, shape (d,) or ()
    popsize : int
    layout : {"independent", "mirrored", "pairs"}
    candidates : sequence of int, optional
        Which candidates to build (default all, in order).

    Returns
    -------
    array, shape (len(candidates), d)
        On ``mean``'s backend, device and dtype. Row ``j`` is bit-identical to
        row ``candidates[j]`` of the full population.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat.backends import get_backend
    >>> be = get_backend("numpy")
    >>> X = gaussian_population(be, be.key(0), np.zeros(3), np.ones(3), 4, "mirrored")
    >>> bool((X[:2] == -X[2:]).all())
    True
    """
    xp = backend.xp
    device, dim = backend.device(mean), mean.shape[0]
    if candidates is None and layout != "independent" and popsize % 2 == 0:
        # the whole population: +z and -z of each noise row by concatenation, the same
        # values as the gather below without copying index arrays to the device
        z = backend.normal_rows(key, range(popsize // 2), dim, mean.dtype, device)
        if layout == "mirrored":
            z = xp.concat([z, -z], axis=0)
        else:  # pairs: +z_0, -z_0, +z_1, -z_1, ...
            z = xp.reshape(xp.stack([z, -z], axis=1), (popsize, dim))
        return _shift_scale(z, mean, sigma)
    if layout == "independent" and isinstance(candidates, (range, type(None))):
        span = range(popsize) if candidates is None else candidates
        if span.step == 1 and (not span or 0 <= span.start and span.stop <= popsize):
            # a run of rows: the backend draws it block by block, no index arrays
            return _shift_scale(backend.normal_rows(key, span, dim, mean.dtype, device), mean, sigma)
    rows, signs = layout_rows(layout, popsize, range(popsize) if candidates is None else candidates)
    if layout == "independent":
        z = backend.normal_rows(key, rows, dim, mean.dtype, device)
    else:  # draw each noise row once, then gather it (with its sign) per candidate
        unique, inverse = np.unique(rows, return_inverse=True)
        z = backend.normal_rows(key, unique, dim, mean.dtype, device)
        take = backend.asarray(inverse.reshape(-1).astype(np.int64), device=device)
        sign = backend.asarray(signs, dtype=mean.dtype, device=device)
        z = xp.take(z, take, axis=0) * sign[:, None]
    return _shift_scale(z, mean, sigma)


def _shift_scale(z: Array, mean: Array, sigma: Array) -> Array:
    """``mean + sigma * z`` in the fresh ``z``'s own memory (same bits; JAX's ``*=`` rebinds).

    At d = 100,000 every population-sized temporary costs tens of milliseconds on torch.
    """
    z *= sigma
    z += mean
    return z


@dataclass(frozen=True)
class GaussianSeed:
    """Everything a worker needs to rebuild candidates of one generation.

    Attributes
    ----------
    backend : str
        Backend name of the driver's population (the worker rebuilds with it, on CPU).
    key : ndarray
        The generation key as numpy words.
    mean, sigma : ndarray
        Distribution parameters (host copies, the population's dtype).
    popsize : int
    layout : str
    dtype : str
    """

    backend: str
    key: np.ndarray
    mean: np.ndarray
    sigma: np.ndarray
    popsize: int
    layout: str
    dtype: str

    @classmethod
    def from_state(
        cls, backend: Backend, key: Any, mean: Array, sigma: Array, popsize: int, layout: str
    ) -> "GaussianSeed | None":
        """Describe a population; ``None`` when it lives on an accelerator."""
        if not backend.on_cpu(mean):
            return None
        return cls(
            backend=backend.name, key=np.asarray(backend.key_to_numpy(key)).copy(),
            mean=np.array(backend.to_numpy(mean), copy=True), sigma=np.array(backend.to_numpy(sigma), copy=True),
            popsize=int(popsize), layout=layout, dtype=backend.dtype_name(mean.dtype),
        )

    @property
    def nbytes(self) -> int:
        """Bytes of array data this description carries."""
        return int(self.key.nbytes + self.mean.nbytes + self.sigma.nbytes)

    def rows(self, start: int, stop: int, as_backend: bool = False) -> Any:
        """Candidates ``start .. stop - 1`` rebuilt on this process's CPU (numpy, or :attr:`backend`).

        They are built as ``ask`` builds them: compiled (one program per chunk) and at least
        two rows at a time (see "Layouts" in the module docstring).
        """
        be = get_backend(self.backend)
        mean, sigma = be.from_host((self.mean, self.sigma), dtype=be.require_dtype(self.dtype))
        lo, hi = start, stop
        if hi - lo < 2 <= self.popsize:
            lo, hi = (start, start + 2) if start + 2 <= self.popsize else (stop - 2, stop)

        def build(key: Any, mean: Array, sigma: Array) -> Array:
            return gaussian_population(be, key, mean, sigma, self.popsize, self.layout, range(lo, hi))

        program = be.compile(build, key=("gaussian_population", self.popsize, self.layout, lo, hi))
        X = program(be.key_from_numpy(self.key), mean, sigma)[start - lo : stop - lo]
        return X if as_backend else be.to_numpy(X)


def population_seed(runner: Any) -> GaussianSeed | None:
    """The seed of the population ``runner.ask()`` will return (``runner``: an ``AskTell``).

    ``None`` when its strategy has no seeds or the population lives on an accelerator. The first
    seed of a runner is checked against the population its strategy's ``ask`` returns (a plugin's
    ``population_seed`` that rebuilds other rows would have the workers evaluate other points):
    :class:`~evostrat.errors.InvalidTypeError` naming the strategy when they differ.
    """
    seed = runner.strategy.population_seed(runner.state)
    if seed is not None and runner not in _SEEDS_CHECKED:
        asked = runner.backend.to_numpy(runner.strategy.ask(runner.state)[0])
        rows = np.asarray(seed.rows(0, asked.shape[0]))
        # to a few units in the last place: JAX's eager ask rounds otherwise than its compiled one
        tol = 64 * float(np.finfo(asked.dtype).eps) * max(1.0, float(np.abs(asked).max(initial=0.0)))
        if rows.shape != asked.shape or not np.allclose(rows, asked, rtol=0.0, atol=tol):
            strategy = runner.strategy
            raise InvalidTypeError(f"population_seed(state) of strategy {strategy.name or type(strategy).__name__!r} "
                                   "must rebuild the population ask(state) returns; its rows differ")
        _SEEDS_CHECKED.add(runner)
    return seed


#: The runners whose first seed :func:`population_seed` checked.
_SEEDS_CHECKED: "weakref.WeakSet[Any]" = weakref.WeakSet()
