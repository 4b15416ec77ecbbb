"""Built-in distributions plugin: ``normal``, ``diag_normal``, ``multivariate_normal``,
``low_rank_normal`` and ``student_t``.

Consumed by the generic NES (``ES("nes", strategy__distribution=...)``,
:mod:`evostrat.strategies.nes`) through :func:`evostrat.distributions.registry.distribution_class`.
"""

from __future__ import annotations

from evostrat.distributions import DiagNormal, MultivariateNormal, Normal
from evostrat.distributions.low_rank_normal import LowRankNormal
from evostrat.distributions.student_t import StudentT
from evostrat.hookspecs import hookimpl


@hookimpl
def evostrat_distributions() -> dict[str, type]:
    return {"normal": Normal, "diag_normal": DiagNormal, "multivariate_normal": MultivariateNormal,
            "low_rank_normal": LowRankNormal, "student_t": StudentT}
