"""Built-in strategy plugin."""

from __future__ import annotations

from evostrat.hookspecs import hookimpl


@hookimpl
def evostrat_strategies() -> dict[str, type]:
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

    return {"openai_es": OpenAIES, "snes": SNES, "xnes": XNES, "pgpe": PGPE,
            "expectation_es": ExpectationES, "cma_es": CMAES, "sep_cma_es": SepCMAES,
            "maxvar_es": MaxVarES, "maxent_es": MaxEntES, "nes": NES,
            "lm_ma_es": LMMAES, "vkd_cma": VkDCMA}
