"""Nested containers of arrays (strategy states, objective outputs), leaf by leaf,
and their transfers to and from the host (:meth:`Backend.to_host`, :meth:`Backend.from_host`).

>>> from evostrat.backends import get_backend
>>> be = get_backend("numpy")
>>> host = {"mean": np.zeros(2)}
>>> back = tree_from_host(be, host, dtype=np.float32)
>>> back["mean"].dtype.name, back["mean"] is host["mean"]
('float32', False)
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

__all__ = ["field_names", "iter_leaves", "map_tree", "merge_leaves", "named_leaves", "replace", "tree_from_host", "tree_leaves",
           "tree_to_host", "tree_with_leaves"]


def field_names(state: Any) -> tuple[str, ...]:
    """The field names of a NamedTuple state (``()`` for anything else)."""
    return getattr(state, "_fields", ())


def replace(state: Any, **changes: Any) -> Any:
    """A copy of the NamedTuple ``state`` with ``changes``: the one place that knows
    how a state is rebuilt, so a strategy's steps stay pure functions of named fields.

    >>> from collections import namedtuple
    >>> replace(namedtuple("S", "mean sigma")(0.0, 1.0), sigma=2.0)
    S(mean=0.0, sigma=2.0)
    """
    return state._replace(**changes)


def map_tree(fn: Callable[[Any, bool], Any], tree: Any, is_key: bool = False) -> Any:
    """``tree`` with ``fn(leaf, is_key)`` applied to every leaf of its NamedTuples
    (a field named ``key`` holds a backend key), tuples, lists and dicts."""
    if isinstance(tree, tuple) and field_names(tree):
        return type(tree)(*(map_tree(fn, v, f == "key") for f, v in zip(field_names(tree), tree)))
    if isinstance(tree, (tuple, list)):
        return type(tree)(map_tree(fn, v) for v in tree)
    if isinstance(tree, dict):
        return {k: map_tree(fn, v) for k, v in tree.items()}
    return fn(tree, is_key)


def merge_leaves(fn: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    """``a`` with each leaf ``x`` replaced by ``fn(x, y)``, ``y`` the leaf of ``b`` (a tree of the
    same structure) at its place; a leaf both trees hold as the same object is kept as it is
    (the selects of both branches of a condition: nothing to select there).

    >>> from collections import namedtuple
    >>> S = namedtuple("S", "mean sigma")
    >>> shared = [0.0]
    >>> merge_leaves(lambda x, y: x + y, S(1.0, shared), S(2.0, shared))
    S(mean=3.0, sigma=[0.0])
    """
    other = iter(tree_leaves(b))

    def pick(x: Any, _: bool) -> Any:
        y = next(other)
        return x if x is y else fn(x, y)

    return map_tree(pick, a)


def tree_leaves(tree: Any) -> list[Any]:
    """The leaves of ``tree`` in :func:`map_tree`'s order.

    >>> from collections import namedtuple
    >>> tree_leaves(namedtuple("S", "mean parts")(1.0, (2.0, 3.0)))
    [1.0, 2.0, 3.0]
    """
    leaves: list[Any] = []
    map_tree(lambda leaf, _: leaves.append(leaf), tree)
    return leaves


def iter_leaves(tree: Any) -> Iterator[Any]:
    """The leaves of ``tree`` in :func:`tree_leaves` order, one at a time (a search that stops
    at the first it wants does not walk the rest).

    >>> from collections import namedtuple
    >>> next(iter_leaves(namedtuple("S", "mean parts")([1.0], {"a": 2.0})))
    1.0
    """
    if isinstance(tree, (tuple, list)):  # NamedTuples too: their fields in order
        for v in tree:
            yield from iter_leaves(v)
    elif isinstance(tree, dict):
        for v in tree.values():
            yield from iter_leaves(v)
    else:
        yield tree


def tree_with_leaves(tree: Any, leaves: Any) -> Any:
    """``tree`` with its leaves replaced, in :func:`tree_leaves` order, by ``leaves``."""
    new = iter(leaves)
    return map_tree(lambda _leaf, _: next(new), tree)


def tree_to_host(backend: Any, tree: Any) -> Any:
    """``tree`` with ``backend``'s arrays as numpy arrays and its keys as numpy words."""

    def leaf(x: Any, is_key: bool) -> Any:
        if is_key:
            return np.asarray(backend.key_to_numpy(x))
        if isinstance(x, np.generic) or not backend.owns(x):
            return x
        return np.asarray(backend.to_numpy(x))

    return map_tree(leaf, tree)


def tree_from_host(backend: Any, tree: Any, dtype: Any = None) -> Any:
    """Inverse of :func:`tree_to_host`: copies of the numpy leaves on ``backend``.

    numpy scalars stay scalars on numpy; other leaves (numbers, strings) are kept.
    """

    def leaf(x: Any, is_key: bool) -> Any:
        if is_key:
            return backend.key_from_numpy(np.array(x, copy=True))
        if not isinstance(x, (np.ndarray, np.generic)) or (isinstance(x, np.generic) and backend.owns(x)):
            return x
        return backend.asarray(np.array(x, copy=True), dtype=dtype, device=backend.host_device)

    return map_tree(leaf, tree)


def named_leaves(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted field name, leaf)`` of nested NamedTuples, in field order.

    Examples
    --------
    >>> from collections import namedtuple
    >>> Inner, Outer = namedtuple("Inner", "b"), namedtuple("Outer", "a inner")
    >>> list(named_leaves(Outer(1, Inner(2))))
    [('a', 1), ('inner.b', 2)]
    """
    for field, value in zip(field_names(tree), tree):
        if isinstance(value, tuple) and field_names(value):
            yield from named_leaves(value, f"{prefix}{field}.")
        else:
            yield f"{prefix}{field}", value
