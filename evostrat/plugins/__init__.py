"""The plugin manager (pluggy) and the merged registries it serves.

The manager is built on first use and cached: evostrat's built-in plugins are registered
under their entry-point names, then every installed ``evostrat`` entry point is loaded
(unless ``EVOSTRAT_DISABLE_PLUGIN_AUTOLOAD`` is set: the way out while a broken plugin is
installed) and ``check_pending()`` verifies every hook implementation against its
specification. A third-party plugin that fails to import, raises inside a hook or
registers a name another plugin provides raises :class:`~evostrat.errors.PluginError`
naming the plugin and its distribution; ``import evostrat`` never builds the manager.

Examples
--------
>>> from evostrat.plugins import registry
>>> "snes" in registry("strategies")
True
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Callable

import pluggy

from evostrat import hookspecs
from evostrat.errors import PluginError, UnknownNameError, did_you_mean

__all__ = [
    "get_plugin_manager", "registry", "lookup", "registered_name", "list_plugins", "reset_plugins", "on_reset",
    "answering_plugin", "ENTRY_POINT_GROUP", "RegisteredName",
]

ENTRY_POINT_GROUP = "evostrat"
DISABLE_ENV = "EVOSTRAT_DISABLE_PLUGIN_AUTOLOAD"
BUILTIN_PLUGINS = {
    "evostrat.backends": "evostrat.plugins.backends",
    "evostrat.strategies": "evostrat.plugins.strategies",
    "evostrat.evaluators": "evostrat.plugins.evaluators",
    "evostrat.distributions": "evostrat.plugins.distributions",
    "evostrat.kernels": "evostrat.plugins.kernels",
}
REGISTRY_HOOKS = {
    "strategies": "evostrat_strategies",
    "backends": "evostrat_backends",
    "evaluators": "evostrat_evaluators",
    "distributions": "evostrat_distributions",
}

_SKIP = f"{DISABLE_ENV}=1 to skip third-party plugins."
_UNKNOWN = ("unknown distribution", "?")
_FOLD = {ord(c): None for c in "-_ "}  # what lookup() ignores, with case

_manager: pluggy.PluginManager | None = None
_origins: dict[str, tuple[str, str]] = {}  # plugin name -> (distribution, version)
_registries: dict[str, dict[str, Any]] = {}
_provided: dict[str, dict[str, list[str]]] = {}  # plugin name -> kind -> names
_class_names: dict[str, dict[type, str]] = {}  # kind -> {class: name}, for registered_name
_reset_callbacks: list[Callable[[], None]] = []


class _Manager(pluggy.PluginManager):
    """The plugin manager: registering or unregistering a plugin drops the registries merged
    so far, so a plugin registered in-process (``get_plugin_manager().register(obj, name=...)``)
    is found from then on, as one installed before first use."""

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        registered = super().register(plugin, name)
        _forget_registries()
        return registered

    def unregister(self, plugin: Any = None, name: str | None = None) -> Any:
        removed = super().unregister(plugin, name)
        _forget_registries()
        return removed


def _forget_registries() -> None:
    for cache in (_registries, _provided, _class_names):
        cache.clear()


def _describe(plugin_name: str) -> str:
    if plugin_name not in _origins:  # get_plugin_manager().register(...)
        return f"plugin {plugin_name!r} (registered in-process)"
    dist, version = _origins[plugin_name]
    return f"plugin {plugin_name!r} (distribution {dist} {version})"


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    import importlib.metadata  # with email, zipfile and csv: ~10 ms that only a lookup pays

    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue  # our built-ins, already registered under these names
        dist = getattr(ep, "dist", None)
        _origins[ep.name] = (dist.name, dist.version) if dist is not None else _UNKNOWN
        try:
            plugin = ep.load()
        except Exception as err:
            raise PluginError(
                f"{_describe(ep.name)} failed to import ({ep.value}): "
                f"{type(err).__name__}: {err}. Uninstall or fix it, or set {_SKIP}"
            ) from err
        try:
            pm.register(plugin, name=ep.name)
        except Exception as err:
            raise PluginError(f"{_describe(ep.name)} could not be registered: {err}. Set {_SKIP}") from err


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide ``pluggy.PluginManager``, built on first call.

    A plugin registered on it in-process (``register(obj, name=...)``, an object or module
    with :data:`~evostrat.hookimpl` functions) takes part in the registries from then on.
    Raises :class:`~evostrat.errors.PluginError` when a third-party plugin
    cannot be imported or registered.
    """
    global _manager
    if _manager is not None:
        return _manager
    from evostrat import __version__

    pm = _Manager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    for name, module in BUILTIN_PLUGINS.items():
        pm.register(importlib.import_module(module), name=name)
        _origins[name] = ("evostrat", __version__)
    if not os.environ.get(DISABLE_ENV):
        _load_entry_points(pm)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as err:
        name = pm.get_name(err.plugin) or "?"
        raise PluginError(f"{_describe(name)}: {err}. Set {_SKIP}") from err
    _manager = pm
    return pm


def registry(kind: str) -> dict[str, Any]:
    """The merged registry of ``kind`` (``"strategies"``, ``"backends"``, ...).

    Parameters
    ----------
    kind : str
        One of ``"strategies"``, ``"backends"``, ``"evaluators"``, ``"distributions"``.

    Returns
    -------
    dict
        Name -> factory, merged over all plugins, cached.

    Raises
    ------
    PluginError
        When a plugin's hook raises, returns something that is not a dict (or a name that
        is not a string), or provides a name another plugin already provides.
    """
    if kind in _registries:
        return _registries[kind]
    pm = get_plugin_manager()
    hook_name = REGISTRY_HOOKS[kind]
    merged: dict[str, Any] = {}
    owner: dict[str, str] = {}
    impls = getattr(pm.hook, hook_name).get_hookimpls()
    # pluggy lists implementations last-registered first: walk built-ins first.
    for impl in reversed(impls):
        try:
            provided = impl.function()
        except Exception as err:
            raise PluginError(
                f"{_describe(impl.plugin_name)} raised in {hook_name}(): "
                f"{type(err).__name__}: {err}. Uninstall or fix it, or set {_SKIP}"
            ) from err
        if provided is None:
            continue
        if not isinstance(provided, dict):
            raise PluginError(
                f"{_describe(impl.plugin_name)}: {hook_name}() must return a dict of "
                f"name -> factory, got {type(provided).__name__}. Set {_SKIP}"
            )
        for name, factory in provided.items():
            if not isinstance(name, str) or not name:
                raise PluginError(f"{_describe(impl.plugin_name)}: {hook_name}() must return a dict of "
                                  f"name -> factory with non-empty str names, got the name {name!r}. Set {_SKIP}")
            if name in merged:
                raise PluginError(
                    f"duplicate {kind[:-1] if kind != 'strategies' else 'strategy'} name "
                    f"{name!r}: provided by {_describe(owner[name])} and by "
                    f"{_describe(impl.plugin_name)}. Uninstall one of them, or set {_SKIP}"
                )
            merged[name] = factory
            owner[name] = impl.plugin_name
            _provided.setdefault(impl.plugin_name, {}).setdefault(kind, []).append(name)
    _registries[kind] = merged
    return merged


def lookup(kind: str, name: str, what: str, also: str = "") -> str:
    """The name registered in ``registry(kind)`` that ``name`` stands for.

    ``name`` itself, or else the one registered name equal to it when case, ``-``,
    ``_`` and spaces are ignored (``"CMA-ES"``, ``"cmaes"`` and ``"CMA_ES"`` stand
    for ``"cma_es"``).

    Raises
    ------
    UnknownNameError
        Naming ``what``, the registered names (and ``also``) and the closest one.

    Examples
    --------
    >>> lookup("strategies", "sep-CMA-ES", "strategy"), lookup("evaluators", "Serial", "evaluator")
    ('sep_cma_es', 'serial')
    """
    names = registry(kind)
    if name in names:
        return name
    same = [n for n in names if n.lower().translate(_FOLD) == name.lower().translate(_FOLD)]
    if len(same) == 1:
        return same[0]
    raise UnknownNameError(
        f"{what} must be one of {sorted(names)}{also}, got {name!r}{did_you_mean(name, same or names)}"
    )


def registered_name(cls: type, kind: str = "strategies", exact: bool = False) -> str:
    """The key under which ``cls``, or its nearest registered base class, is registered.

    ``""`` for a class with no registered base (with ``exact``: a class not registered
    itself), or when the registry cannot be built (a broken plugin: the error comes where
    the registry is used).

    Examples
    --------
    >>> from evostrat.strategies.snes import SNES
    >>> registered_name(SNES), registered_name(type("MySNES", (SNES,), {})), registered_name(int)
    ('snes', 'snes', '')
    """
    try:
        names = registry(kind)
    except PluginError:
        return ""
    if kind not in _class_names:
        _class_names[kind] = {factory: key for key, factory in names.items() if isinstance(factory, type)}
    by_class = _class_names[kind]
    return by_class.get(cls, "") if exact else next((by_class[k] for k in cls.__mro__ if k in by_class), "")


def answering_plugin(hook_name: str, **kwargs: Any) -> str:
    """Which plugin gives the answer of the first-result hook ``hook_name`` for ``kwargs``.

    Calls the implementations again, in pluggy's order, until one answers (so only for an
    error message about that answer).

    Returns
    -------
    str
        The plugin described as in :class:`~evostrat.errors.PluginError` messages (name and
        distribution), or ``"a plugin"`` when none answers on the second call.
    """
    for impl in reversed(getattr(get_plugin_manager().hook, hook_name).get_hookimpls()):
        try:
            answer = impl.function(*[kwargs[arg] for arg in impl.argnames])
        except Exception:  # noqa: BLE001 - an error message is being written
            continue
        if answer is not None:
            return _describe(impl.plugin_name)
    return "a plugin"


def list_plugins() -> list[dict[str, Any]]:
    """Installed plugins, with their distribution, version and what they provide.

    Returns
    -------
    list of dict
        One entry per plugin with keys ``name``, ``distribution``, ``version``
        and ``provides`` (kind -> list of names; ``"hooks"``: the dispatch hooks it implements,
        such as ``evostrat_kernel``, which answer per call rather than register names).

    Examples
    --------
    >>> import evostrat
    >>> [p["name"] for p in evostrat.list_plugins()][:1]
    ['evostrat.backends']
    """
    pm = get_plugin_manager()
    for kind in REGISTRY_HOOKS:
        registry(kind)
    out = []
    for name, plugin in pm.list_name_plugin():
        dist, version = _origins.get(name, _UNKNOWN)
        provides = {k: sorted(v) for k, v in _provided.get(name, {}).items()}
        dispatch = sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()
                          if caller.name not in REGISTRY_HOOKS.values())
        if dispatch:  # hooks answering per call (evostrat_kernel, ...) rather than a registry of names
            provides["hooks"] = dispatch
        out.append({"name": name, "distribution": dist, "version": version, "provides": provides})
    return out


def on_reset(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback()`` from every :func:`reset_plugins` (for caches built from registries).

    Returns ``callback``, so it can decorate a function.
    """
    _reset_callbacks.append(callback)
    return callback


def reset_plugins() -> None:
    """Forget the cached manager and registries (tests, or after installing a plugin)."""
    global _manager
    _manager = None
    _origins.clear()
    _forget_registries()
    for callback in _reset_callbacks:
        callback()


class RegisteredName:
    """``Strategy.name``: the registry key (:func:`evostrat.plugins.registered_name`) of the
    class or its nearest registered base, ``""`` if none; a subclass may set ``name`` itself."""

    def __get__(self, obj: Any, cls: type) -> str:
        return registered_name(cls)
