"""Test helpers: plugins registered in-process (as an installed package's entry point would
register them) for a ``with`` block or a whole test module, the registries reset around them."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import pytest

from evostrat.plugins import get_plugin_manager, reset_plugins


@contextlib.contextmanager
def fresh_plugins() -> Iterator[None]:
    """The registries reset before and after the block: it starts from the built-ins and the
    installed plugins, and what it registers is gone afterwards."""
    reset_plugins()
    try:
        yield
    finally:
        reset_plugins()


@contextlib.contextmanager
def registered(plugin: Any, name: str, *, fresh: bool = True) -> Iterator[Any]:
    """``plugin`` registered under ``name`` for the block. ``fresh`` (default): within
    :func:`fresh_plugins`; ``False``: the registries are kept and ``plugin`` alone is unregistered
    afterwards."""
    if fresh:
        with fresh_plugins():
            get_plugin_manager().register(plugin, name=name)
            yield plugin
        return
    get_plugin_manager().register(plugin, name=name)
    try:
        yield plugin
    finally:
        get_plugin_manager().unregister(plugin)


def module_plugin(make: Callable[[], Any], name: str) -> Any:
    """An autouse module-scoped fixture registering ``make()`` under ``name`` for the module's tests
    (:func:`registered`); assign it to a module-level name, e.g. ``plugin = module_plugin(P, "p")``."""
    @pytest.fixture(scope="module", autouse=True)
    def plugin() -> Iterator[Any]:
        with registered(make(), name) as registered_plugin:
            yield registered_plugin

    return plugin
