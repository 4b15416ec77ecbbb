"""Built-in strategy plugin."""

from __future__ import annotations

from evostrat.hookspecs import hookimpl


@hookimpl
def evostrat_strategies() -> dict[str, type]:
    from evostrat.strategies.openai_es import OpenAIES
    from evostrat.strategies.snes import SNES

    return {"openai_es": OpenAIES, "snes": SNES}
