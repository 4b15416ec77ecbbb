"""The consumer of the ``evostrat_distributions`` registry: a distribution class by name.

Built-in families and those of installed plugins (:func:`evostrat.hookspecs.evostrat_distributions`)
are found the same way; case, ``-``, ``_`` and spaces are ignored when that leaves one name, and
an unknown name raises :class:`~evostrat.errors.UnknownNameError` listing the installed names and
the closest one.

Examples
--------
>>> from evostrat.distributions.registry import distribution_class
>>> distribution_class("diag_normal").__name__, distribution_class("Student-T").__name__
('DiagNormal', 'StudentT')
>>> try:
...     distribution_class("diag_normel")
... except LookupError as err:  # UnknownNameError: "must be one of [<installed names>], got ..."
...     print(str(err).split(", got ")[1])
'diag_normel' (did you mean 'diag_normal'?)
"""

from __future__ import annotations

from typing import Any

from evostrat.distributions.base import Distribution
from evostrat.errors import InvalidTypeError
from evostrat.plugins import lookup, registry

__all__ = ["distribution_class"]


def distribution_class(name: Any) -> type[Distribution]:
    """The distribution class registered under ``name`` (a class is passed through).

    Raises
    ------
    UnknownNameError
        For a name no installed plugin provides, listing those that are.
    InvalidTypeError
        For anything but a name or a :class:`~evostrat.distributions.base.Distribution` subclass,
        and when the registered factory is not such a subclass.
    """
    if isinstance(name, type) and issubclass(name, Distribution):
        return name
    if not isinstance(name, str):
        raise InvalidTypeError(
            f"distribution must be a registered name or a Distribution subclass, got {type(name).__name__}")
    cls = registry("distributions")[lookup("distributions", name, "distribution")]
    if not (isinstance(cls, type) and issubclass(cls, Distribution)):
        raise InvalidTypeError(
            f"distribution {name!r} is registered as {cls!r}, which is not a subclass of "
            "evostrat.distributions.Distribution (required to be searched with)")
    return cls
