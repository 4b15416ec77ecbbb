"""Built-in backend plugin: numpy, torch and JAX.

torch and JAX are imported only when their backend is first used; an array is
claimed by the library its type comes from (``jaxlib`` types belong to JAX).
"""

from __future__ import annotations

import importlib
from functools import partial
from typing import Any, Callable

from evostrat.hookspecs import hookimpl

#: Backend name -> (module, class); the name is also the library's top-level module.
_CLASSES = {
    "numpy": ("evostrat.backends.numpy", "NumpyBackend"),
    "torch": ("evostrat.backends.torch", "TorchBackend"),
    "jax": ("evostrat.backends.jax", "JaxBackend"),
}


def _load(module: str, cls: str) -> Any:
    return getattr(importlib.import_module(module), cls)()


@hookimpl
def evostrat_backends() -> dict[str, Callable[[], Any]]:
    return {name: partial(_load, *where) for name, where in _CLASSES.items()}


@hookimpl(trylast=True)
def evostrat_backend(x: Any) -> str | None:
    root = (type(x).__module__ or "").split(".", 1)[0]
    root = "jax" if root == "jaxlib" else root
    return root if root in _CLASSES else None
