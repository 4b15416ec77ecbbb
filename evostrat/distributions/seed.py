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
        """Candidates ``start .. stop - 1`` rebuilt on this process's CPU."""
        be = get_backend(self.backend)
        leaves = be.from_host(self.params, dtype=be.require_dtype(self.dtype))
        p = self.family.tree_unflatten((be, self.static), tuple(leaves))
        X = p.sample_rows(be.key_from_numpy(self.key), range(start, stop))
        return X if as_backend else be.to_numpy(X)
