"""Seed-compressed populations of any search distribution.

A :class:`DistributionSeed` is what a remote worker needs to rebuild rows of a population drawn
with :meth:`~evostrat.distributions.base.Distribution.sample_rows`: the generation key, the
family (a class, pickled by reference), its static part and its parameters, instead of the
``(popsize, d)`` candidates. It has the interface the evaluators use for Gaussian seeds
(:class:`evostrat.evaluators.seeded.GaussianSeed`): ``rows(start, stop, as_backend)`` and
``nbytes``. ``NES.population_seed`` returns one on CPU backends.

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies.nes import NES
>>> s = NES(distribution="student_t", popsize=6)
>>> state = s.init(np.zeros(3), random_state=0)
>>> seed = s.population_seed(state)
>>> X, _ = s.ask(state)
>>> bool((seed.rows(2, 5) == X[2:5]).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from evostrat.backends import Backend, get_backend
from evostrat.distributions.base import Distribution

__all__ = ["DistributionSeed"]


@dataclass(frozen=True)
class DistributionSeed:
    """The population ``p.sample_rows(key, range(popsize))``, described by ``key`` and ``p``."""

    backend: str
    key: np.ndarray
    family: type
    static: tuple
    params: tuple  # host copies of the parameters (pytree leaves)
    popsize: int
    dtype: str

    @classmethod
    def from_distribution(cls, p: Distribution, key: Any, popsize: int) -> "DistributionSeed | None":
        """Describe a population; ``None`` when the parameters live on an accelerator."""
        be: Backend = p.backend
        leaves, (_, static) = p.tree_flatten()
        if not all(be.on_cpu(v) for v in leaves):
            return None
        return cls(backend=be.name, key=np.asarray(be.key_to_numpy(key)).copy(), family=type(p), static=static,
                   params=tuple(np.array(be.to_numpy(v), copy=True) for v in leaves), popsize=int(popsize),
                   dtype=be.dtype_name(p.dtype))

    @property
    def nbytes(self) -> int:
        """Bytes of array data this description carries."""
        return int(self.key.nbytes + sum(v.nbytes for v in self.params))

    def rows(self, start: int, stop: int, as_backend: bool = False) -> Any:
        """Candidates ``start .. stop - 1`` rebuilt on this process's CPU.

        Built as the run's compiled ``ask`` builds them: by ``backend.compile`` and at
        least two rows at a time, so they are bit-identical to the driver's on JAX too
        (see "Layouts" in :mod:`evostrat.evaluators.seeded`).
        """
        be = get_backend(self.backend)
        leaves = be.from_host(self.params, dtype=be.require_dtype(self.dtype))
        lo, hi = start, stop
        if hi - lo < 2 <= self.popsize:
            lo, hi = (start, start + 2) if start + 2 <= self.popsize else (stop - 2, stop)
        family, static = self.family, self.static

        def build(key: Any, *values: Any) -> Any:
            return family.tree_unflatten((be, static), tuple(values)).sample_rows(key, range(lo, hi))

        program = be.compile(build, key=("distribution_rows", family, static, self.dtype, lo, hi))
        X = program(be.key_from_numpy(self.key), *leaves)[start - lo : stop - lo]
        return X if as_backend else be.to_numpy(X)
