"""``ask`` of the strategies whose population is ``mean + sigma * z`` with addressable noise.

SNES, OpenAI-ES and PGPE differ only in the layout of the noise rows
(:func:`evostrat.evaluators.seeded.layout_rows`). :class:`GaussianAsk` gives them one
``ask``, the population's seed (:mod:`evostrat.evaluators.seeded`) and ``ask_seed``
(for ``tell_seed``, :mod:`evostrat.strategies.seeded_tell`).

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies.snes import SNES
>>> s = SNES(popsize=6)
>>> state = s.init(np.zeros(3), random_state=0)
>>> X, _ = s.ask(state)
>>> bool((s.population_seed(state).rows(0, 6) == X).all())
True
"""

from __future__ import annotations

from typing import Any

from evostrat.backends import get_backend
from evostrat.evaluators.seeded import GaussianSeed, gaussian_population
from evostrat.backends.trees import replace
from evostrat.strategies.readout import GaussianReadout

__all__ = ["GaussianAsk"]


class GaussianAsk:
    """Mixin (before :class:`~evostrat.strategies.base.Strategy`) for states with ``mean``, ``sigma``, ``key``.

    Subclasses set ``layout`` (``"independent"``, ``"mirrored"`` or ``"pairs"``)
    or override :meth:`noise_layout`.
    """

    layout: str = "independent"

    def noise_layout(self) -> str:
        """Layout of the noise rows of this strategy's populations."""
        return self.layout

    def ask(self, state: Any) -> tuple[Any, Any]:
        be = get_backend(state.mean)
        n = self.resolved_popsize(state.mean.shape[0])  # type: ignore[attr-defined]
        key, sub = be.split(state.key)
        X = gaussian_population(be, sub, state.mean, state.sigma, n, self.noise_layout())
        return X, replace(state, key=key)

    def gaussian_readout(self, state: Any) -> GaussianReadout:
        """``x = mean + sigma z``: ``sigma`` per coordinate (or isotropic), ``C = I``."""
        return GaussianReadout(state.mean, state.sigma)

    def population_seed(self, state: Any) -> GaussianSeed | None:
        """The population ``ask(state)`` returns, as a seed (:mod:`evostrat.evaluators.seeded`)."""
        be = get_backend(state.mean)
        _, sub = be.split(state.key)
        n = self.resolved_popsize(state.mean.shape[0])  # type: ignore[attr-defined]
        return GaussianSeed.from_state(be, sub, state.mean, state.sigma, n, self.noise_layout())

    def ask_seed(self, state: Any) -> tuple[GaussianSeed | None, Any]:
        """``ask`` without the population: its seed (``None`` on an accelerator) and the
        state ``ask`` would return, for ``tell_seed`` (:mod:`evostrat.strategies.seeded_tell`)."""
        key, _ = get_backend(state.mean).split(state.key)
        return self.population_seed(state), replace(state, key=key)
