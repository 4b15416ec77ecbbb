"""Built-in backend plugin: numpy, torch and JAX.

torch and JAX are imported only when their backend is first used.
"""

from __future__ import annotations

from typing import Any, Callable

from evostrat.hookspecs import hookimpl


def _numpy() -> Any:
    from evostrat.backends.numpy import NumpyBackend

    return NumpyBackend()


def _torch() -> Any:
    from evostrat.backends.torch import TorchBackend

    return TorchBackend()


def _jax() -> Any:
    from evostrat.backends.jax import JaxBackend

    return JaxBackend()


@hookimpl
def evostrat_backends() -> dict[str, Callable[[], Any]]:
    return {"numpy": _numpy, "torch": _torch, "jax": _jax}


_MODULE_PREFIXES = (("numpy", "numpy"), ("torch", "torch"), ("jax", "jax"), ("jaxlib", "jax"))


@hookimpl(trylast=True)
def evostrat_backend(x: Any) -> str | None:
    module = type(x).__module__ or ""
    root = module.split(".", 1)[0]
    for prefix, name in _MODULE_PREFIXES:
        if root == prefix:
            return name
    return None
