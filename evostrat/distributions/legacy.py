"""The underscore names of the distribution contract's members, kept as aliases.

Earlier releases named members a family implements or calls with a leading
underscore. :data:`LEGACY_NAMES` maps each to its public name;
:func:`sync_legacy_names` (run for every subclass of
:class:`~evostrat.distributions.base.Distribution`) gives a class that defines
either name of a pair the other one too, so a family written with the old names
keeps working, silently, and one written with the new names still answers the old.

Examples
--------
>>> from evostrat.distributions import Distribution
>>> class Old(Distribution):
...     _static_attrs = ("mirrored", "df")
>>> Old.static_attrs
('mirrored', 'df')
"""

from __future__ import annotations

__all__ = ["LEGACY_NAMES", "sync_legacy_names"]

#: Old (underscore) name -> public name of a member of the distribution contract.
LEGACY_NAMES: dict[str, str] = {
    "_transform": "transform_noise",
    "_convert": "convert_params",
    "_validate": "validate",
    "_finite": "finite_condition",
    "_static_attrs": "static_attrs",
    "_leaf_attrs": "leaf_attrs",
}


def sync_legacy_names(cls: type) -> None:
    """Give ``cls`` both names of each pair of :data:`LEGACY_NAMES` it defines one of.

    Only members defined in ``cls``'s own body count; where it defines both,
    both stay as written.

    Parameters
    ----------
    cls : type
        A subclass of :class:`~evostrat.distributions.base.Distribution`, just created.
    """
    own = vars(cls)
    for old, new in LEGACY_NAMES.items():
        if old in own and new not in own:
            setattr(cls, new, own[old])
        elif new in own and old not in own:
            setattr(cls, old, own[new])
