"""Built-in distributions plugin: ``normal``, ``diag_normal``, ``multivariate_normal``."""

from __future__ import annotations

from evostrat.hookspecs import hookimpl


@hookimpl
def evostrat_distributions() -> dict[str, type]:
    from evostrat.distributions import DiagNormal, MultivariateNormal, Normal

    return {"normal": Normal, "diag_normal": DiagNormal, "multivariate_normal": MultivariateNormal}
