"""Default population sizes: ``4 + floor(3 ln d)``, and the rules of the mirrored-sampling strategies.

Re-exported by :mod:`evostrat.strategies.base`, where strategies import them from.

Examples
--------
>>> default_popsize(10)
10
"""

from __future__ import annotations

import math

from evostrat.errors import InvalidArgumentError

__all__ = ["MirroredPopsize", "default_popsize"]


def default_popsize(dim: int) -> int:
    """``4 + floor(3 ln n)`` (Hansen's tutorial, Table 1; Wierstra et al. 2014)."""
    return 4 + int(math.floor(3 * math.log(dim)))


class MirroredPopsize:
    """Popsize rules of the mirrored-sampling strategies (a mixin before :class:`~evostrat.strategies.base.Strategy`).

    The default is twice ``4 + floor(3 ln d)`` (antithetic pairs, Salimans et al.
    2017, sec. 2.1); with ``self.mirrored`` true an odd popsize is rejected.

    Examples
    --------
    >>> from evostrat.strategies.openai_es import OpenAIES
    >>> OpenAIES().resolved_popsize(10)
    20
    """

    mirrored: bool

    def default_popsize(self, dim: int) -> int:
        return 2 * default_popsize(dim)

    def resolved_popsize(self, dim: int) -> int:
        lam = super().resolved_popsize(dim)  # type: ignore[misc]
        if self.mirrored and lam % 2:
            raise InvalidArgumentError(f"popsize must be even with mirrored sampling, got {lam}")
        return lam
