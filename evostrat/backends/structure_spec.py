"""A structured ``x0``'s layout as JSON data, for checkpoints, and the structure rebuilt from it.

The description holds the layout only, no values: the kind (``"tree"``, ``"jax"`` or
``"module"``: an ``nn.Module``'s parameters, rebuilt as a
:class:`~evostrat.backends.structured.ModuleParameters` dict that keeps the module's order),
each leaf's path and shape, when the leaves' dtypes differ each leaf's dtype name, so a
resumed run rounds its candidates' leaves as the saved run did, and each NamedTuple's path,
class name and fields (it comes back as a ``collections.namedtuple`` of that name and those
fields, not the class itself). Reading refuses anything malformed with an
:class:`~evostrat.errors.InvalidArgumentError` (the checkpoint loader reports it as a
:class:`~evostrat.errors.CheckpointError`).

Examples
--------
>>> import numpy as np
>>> from evostrat.backends.structured import as_structure
>>> from evostrat.backends.structure_spec import structure_from_spec, structure_spec
>>> s = as_structure({"w": np.zeros((2, 2), np.float32), "b": np.ones(2)})
>>> spec = structure_spec(s)
>>> spec["dtypes"]
['float64', 'float32']
>>> tree = structure_from_spec(spec, np.arange(6.0))
>>> tree["w"].dtype, tree["b"].tolist()
(dtype('float32'), [0.0, 1.0])
"""

from __future__ import annotations

import collections
import math
from typing import Any

import numpy as np

from evostrat.backends.structured import ModuleParameters, Structure, build_tree, is_named_tuple
from evostrat.backends.trees import field_names
from evostrat.errors import InvalidArgumentError

__all__ = ["structure_spec", "structure_from_spec"]

#: The leaf dtypes a description may name (a structured x0's leaves are floating point).
LEAF_DTYPES = ("float16", "bfloat16", "float32", "float64")


def structure_spec(structure: Structure) -> dict[str, Any]:
    """``structure``'s layout as JSON data; a JAX pytree of containers other than dicts, lists
    and tuples is refused (:class:`~evostrat.errors.InvalidArgumentError`)."""
    if structure.paths is None and structure.kind != "module":
        raise InvalidArgumentError("x0's pytree has containers other than dicts, lists and tuples: its "
                                   "structure cannot be stored in a checkpoint")
    paths = structure.paths if structure.kind != "module" else [(("d", n),) for n in structure.names]
    spec: dict[str, Any] = {"kind": structure.kind,
                            "paths": [[list(step) for step in p] for p in paths],
                            "shapes": [list(s) for s in structure.shapes]}
    if structure.dtypes is not None:  # "torch.float32" -> "float32"
        spec["dtypes"] = [str(dtype).rsplit(".", 1)[-1] for dtype in structure.dtypes]
    if structure.template is not None:
        spec["named"] = _named_tuples(structure.template, ())
    return spec


def _named_tuples(node: Any, path: tuple[tuple[str, Any], ...]) -> list[dict[str, Any]]:
    """``{"path", "name", "fields"}`` of each NamedTuple in ``node`` (dicts, lists and tuples)."""
    if isinstance(node, dict):
        return [n for key in sorted(node) for n in _named_tuples(node[key], path + (("d", key),))]
    if not isinstance(node, (list, tuple)):
        return []
    steps = [_named_tuples(v, path + (("l" if type(node) is list else "t", i),)) for i, v in enumerate(node)]
    own = [{"path": [list(step) for step in path], "name": type(node).__name__, "fields": list(field_names(node))}]
    return (own if is_named_tuple(node) else []) + [n for step in steps for n in step]


def _with_named_tuples(node: Any, path: tuple[tuple[str, Any], ...], named: dict[Any, Any]) -> Any:
    """``node`` with the tuples at the paths of ``named`` as namedtuples of their name and fields."""
    if isinstance(node, dict):
        return {key: _with_named_tuples(v, path + (("d", key),), named) for key, v in node.items()}
    if not isinstance(node, (list, tuple)):
        return node
    values = [_with_named_tuples(v, path + (("l" if type(node) is list else "t", i),), named)
              for i, v in enumerate(node)]
    return values if type(node) is list else named[path](*values) if path in named else tuple(values)


def structure_from_spec(spec: Any, flat: Any) -> Any:
    """The structured ``x0`` described by :func:`structure_spec`, holding the values of ``flat``
    (a backend vector), each leaf in its described dtype; refuses a malformed description
    (:class:`~evostrat.errors.InvalidArgumentError`)."""
    try:
        paths = [tuple((str(kind), key if kind == "d" else int(key)) for kind, key in p) for p in spec["paths"]]
        shapes = [tuple(int(n) for n in s) for s in spec["shapes"]]
        dtypes = spec.get("dtypes")
        if spec["kind"] not in ("tree", "jax", "module") or len(paths) != len(shapes) or not paths or any(
                kind not in ("d", "l", "t") for p in paths for kind, _ in p):
            raise ValueError
        if dtypes is not None and (not isinstance(dtypes, list) or len(dtypes) != len(paths)
                                   or any(d not in LEAF_DTYPES for d in dtypes)):
            raise ValueError
        named = {tuple((str(kind), key if kind == "d" else int(key)) for kind, key in n["path"]):
                 collections.namedtuple(str(n["name"]), [str(f) for f in n["fields"]]) for n in spec.get("named", [])}
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise InvalidArgumentError(f"structure description is malformed: {spec!r}") from err
    sizes = [math.prod(s) for s in shapes]
    if sum(sizes) != flat.shape[0]:
        raise InvalidArgumentError(f"structure description holds {sum(sizes)} values, the point {flat.shape[0]}")
    ends = np.cumsum([0] + sizes).tolist()
    leaves = [flat[a:b].reshape(s) for a, b, s in zip(ends[:-1], ends[1:], shapes)]
    if dtypes is not None:
        leaves = [_cast(leaf, name) for leaf, name in zip(leaves, dtypes)]
    names = [p[0][1] for p in paths if len(p) == 1 and p[0][0] == "d"]
    # a module's parameters, in its order: "module", or "tree" in an order no dict walk gives (the
    # evostrat that wrote those files rebuilt them sorted, so resumed runs searched shuffled leaves)
    if not named and len(names) == len(paths) and (
            spec["kind"] == "module" or spec["kind"] == "tree" and names != sorted(names)):
        return ModuleParameters(zip(names, leaves))
    tree = build_tree(paths, leaves)
    try:
        return _with_named_tuples(tree, (), named) if named else tree
    except TypeError as err:  # fields that do not match the tuple's length
        raise InvalidArgumentError(f"structure description is malformed: {spec!r}") from err


def _cast(leaf: Any, name: str) -> Any:
    """``leaf`` (numpy, JAX or torch) in the dtype called ``name``."""
    if hasattr(leaf, "astype"):  # numpy, JAX
        return leaf.astype(name)
    import torch

    return leaf.to(getattr(torch, name))
