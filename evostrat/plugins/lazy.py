"""Names a package exports without importing their modules (PEP 562).

A package whose public names need torch, JAX or gymnasium (or are simply rarely used)
lists them with the submodule that defines each; ``from package import Name`` and
``package.Name`` then import that submodule on first access, and ``dir(package)``
lists them, while ``import package`` stays light.

Examples
--------
>>> import sys
>>> import evostrat.problems as problems
>>> "GymProblem" in dir(problems) and "GymProblem" in problems.__all__
True
>>> problems.GymProblem.__module__
'evostrat.problems.gym'
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, homes: Mapping[str, str],
                 namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of a package exporting ``homes`` lazily.

    Parameters
    ----------
    package : str
        The package's ``__name__`` (for the ``AttributeError`` message).
    homes : mapping of str to str
        Each lazily exported name and the module that defines it.
    namespace : dict
        The package's ``globals()``: a name is cached there once loaded.

    Returns
    -------
    getattr, dir : callable
        Assign them to the package's ``__getattr__`` and ``__dir__``.

    Examples
    --------
    >>> ns = {"__all__": ["sqrt"]}
    >>> getattr_, dir_ = lazy_exports("pkg", {"sqrt": "math"}, ns)
    >>> getattr_("sqrt")(4.0), "sqrt" in ns, dir_()
    (2.0, True, ['__all__', 'sqrt'])
    """

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(homes[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(homes))

    return __getattr__, __dir__
