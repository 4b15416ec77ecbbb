"""Built-in strategies (registered by :mod:`evostrat.plugins.strategies`).

Each class is exported here and loaded on first access (so ``import evostrat`` does
not import every strategy): ``from evostrat.strategies import CMAES`` is
``from evostrat.strategies.cma_es import CMAES``. ``ES("cma_es")`` names the same class.

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies import SNES
>>> opt = SNES(popsize=8).initialize(np.zeros(3), random_state=0)
>>> X = opt.ask()
>>> X.shape
(8, 3)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evostrat.plugins.lazy import lazy_exports

if TYPE_CHECKING:
    from evostrat.strategies.base import Strategy
    from evostrat.strategies.cma_es import CMAES
    from evostrat.strategies.evolvability import MaxEntES, MaxVarES
    from evostrat.strategies.expectation_es import ExpectationES
    from evostrat.strategies.lm_ma_es import LMMAES
    from evostrat.strategies.nes import NES
    from evostrat.strategies.openai_es import OpenAIES
    from evostrat.strategies.pgpe import PGPE
    from evostrat.strategies.sep_cma_es import SepCMAES
    from evostrat.strategies.snes import SNES
    from evostrat.strategies.vkd_cma import VkDCMA
    from evostrat.strategies.xnes import XNES

_HOMES = {  # name -> the submodule that defines it (imported on first access)
    "Strategy": "evostrat.strategies.base", "CMAES": "evostrat.strategies.cma_es",
    "MaxEntES": "evostrat.strategies.evolvability", "MaxVarES": "evostrat.strategies.evolvability",
    "ExpectationES": "evostrat.strategies.expectation_es", "LMMAES": "evostrat.strategies.lm_ma_es",
    "NES": "evostrat.strategies.nes", "OpenAIES": "evostrat.strategies.openai_es", "PGPE": "evostrat.strategies.pgpe",
    "SepCMAES": "evostrat.strategies.sep_cma_es", "SNES": "evostrat.strategies.snes",
    "VkDCMA": "evostrat.strategies.vkd_cma", "XNES": "evostrat.strategies.xnes",
}

__all__ = sorted(_HOMES)

__getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals())
