"""Arguments given in a structured ``x0``'s structure, as the flat ones the run takes.

With ``x0`` a dict, list/tuple, NamedTuple or JAX pytree of arrays, or a torch
``nn.Module`` (:mod:`evostrat.backends.structured`), these arguments may match its
structure, leaf for leaf (for a module: a dict keyed by its parameter names):

- ``sigma0``: per leaf a number or an array of the leaf's shape, or one that broadcasts to it
  by numpy's rules (a ``(3,)`` array on a ``(2, 3)`` leaf: the same values in each row);
- ``bounds=(lower, upper)``: each of ``lower`` and ``upper`` a number, ``None``, a flat
  array of shape ``(dim,)`` or a structure with per leaf a number (``-inf``/``inf``:
  unbounded) or an array of (or broadcasting to) the leaf's shape;
- ``integer``: a flat mask or index list, or a structure with per leaf a bool (the whole
  leaf) or a boolean array of (or broadcasting to) the leaf's shape;
- ``ES.inject(solutions)``: one candidate in the structure, or several as a structure whose
  leaves have a leading axis (as ``ask`` returns them).

A structure whose leaves differ from ``x0``'s is refused with an
:class:`~evostrat.errors.InvalidArgumentError` naming the argument and the leaves.

Examples
--------
>>> import numpy as np
>>> from evostrat.backends.structured import as_structure
>>> s = as_structure({"w": np.ones((2, 3)), "b": np.zeros(3)})
>>> flat_sigma(s, {"w": 0.5, "b": 2.0}).tolist()
[2.0, 2.0, 2.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
>>> lower, upper = flat_bounds(s, ({"w": 0.0, "b": -1.0}, 1.0))
>>> lower.tolist(), upper
([-1.0, -1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 1.0)
>>> flat_integer(s, {"w": False, "b": np.array([True, False, True])}).tolist()
[True, False, True, False, False, False, False, False, False]
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np

from evostrat.backends.structured import Structure, holds_arrays, jax_leaves, path_name, walk_tree
from evostrat.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["flat_arguments", "flat_bounds", "flat_integer", "flat_sigma", "flat_solutions", "matched_leaves"]


def matched_leaves(structure: Structure, tree: Any, argument: str) -> list[tuple[str, Any]]:
    """``(leaf name, value)`` of ``tree``, a structure matching ``x0``'s, in the layout's order.

    Raises
    ------
    InvalidTypeError
        For a module's ``x0`` and a ``tree`` that is not a dict.
    InvalidArgumentError
        For other leaves than ``x0``'s, naming ``argument``, the missing and the unexpected leaves.
    """
    names = list(structure.names)
    if structure.kind == "module":
        if not isinstance(tree, dict):
            raise InvalidTypeError(f"{argument} must be a dict keyed by the module's parameter names {names}, "
                                   f"got {type(tree).__name__}")
        pairs, given = [(name, tree[name]) for name in names if name in tree], [str(key) for key in tree]
    else:
        pairs = [(path_name(p), leaf) for p, leaf in walk_tree(tree)] if structure.kind == "tree" else jax_leaves(tree)
        given = [name for name, _ in pairs]
    if [name for name, _ in pairs] != names or len(given) != len(names):
        missing, unexpected = [n for n in names if n not in given], [n for n in given if n not in names]
        detail = (f"; missing {missing}" if missing else "") + (f"; unexpected {unexpected}" if unexpected else "")
        raise InvalidArgumentError(f"{argument} must have the structure of x0: leaves {names}, got {given}{detail}")
    return pairs


def _host(value: Any) -> np.ndarray:
    return np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)


def _flat_values(structure: Structure, tree: Any, argument: str, fill: float = np.nan) -> np.ndarray:
    """``tree``'s leaves (numbers or arrays of the leaf's shape; ``None``: ``fill``) as one float64 vector."""
    parts = []
    for (name, value), shape in zip(matched_leaves(structure, tree, argument), structure.shapes):
        try:
            value = np.asarray(fill if value is None else _host(value), dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise InvalidTypeError(f"{argument} leaf {name} must be a number or an array of the leaf's shape "
                                   f"{shape}, got {type(value).__name__}") from err
        parts.append(_leaf_part(value, shape, f"{argument} leaf {name}", "a number"))
    return np.concatenate(parts)


def _leaf_part(value: np.ndarray, shape: tuple[int, ...], leaf: str, expected: str) -> np.ndarray:
    """``value`` broadcast to its leaf's ``shape``, flat; another shape is refused naming ``leaf``."""
    try:
        return np.broadcast_to(value, shape).ravel()
    except ValueError:
        raise InvalidArgumentError(f"{leaf} has shape {value.shape}; expected {expected} or an array of the "
                                   f"leaf's shape {shape} (or broadcasting to it)") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (Real, np.number, np.bool_))


def flat_sigma(structure: Structure | None, sigma0: Any) -> Any:
    """``sigma0`` for the flat search space: a number or flat vector as it is; a structure
    matching ``x0``'s (per-leaf numbers or arrays of the leaf's shape) as one float64 vector."""
    if structure is None or sigma0 is None or _is_number(sigma0) or hasattr(sigma0, "shape"):
        return sigma0
    return _flat_values(structure, sigma0, "sigma0")


def flat_bounds(structure: Structure | None, bounds: Any) -> Any:
    """``bounds`` with a ``lower`` or ``upper`` in ``x0``'s structure as a flat float64 vector
    (other forms as they are: :meth:`~evostrat.run.bounds.BoxBounds.from_spec` checks them)."""
    if structure is None or bounds is None:
        return bounds
    if isinstance(bounds, dict) or (isinstance(bounds, (list, tuple)) and len(bounds) != 2):
        raise InvalidTypeError(f"bounds must be a pair (lower, upper); for a structured x0 each of lower and upper "
                               f"may be a number, None, an array of shape ({structure.dim},) or a structure "
                               f"matching x0's (leaves {list(structure.names)}), got {type(bounds).__name__}")
    if not isinstance(bounds, (list, tuple)):
        return bounds

    def side(value: Any, which: str, fill: float) -> Any:
        flat = value is None or _is_number(value) or hasattr(value, "shape") or (
            type(value) in (list, tuple) and len(value) == structure.dim and all(map(_is_number, value)))
        return value if flat else _flat_values(structure, value, f"bounds {which}", fill)

    return side(bounds[0], "lower", -np.inf), side(bounds[1], "upper", np.inf)


def flat_integer(structure: Structure | None, integer: Any) -> Any:
    """``integer`` in ``x0``'s structure (per leaf a bool or a boolean array of the leaf's shape)
    as a flat boolean mask; a flat mask or index list as it is (:func:`~evostrat.run.integers.integer_mask`
    checks it)."""
    if structure is None or integer is None or hasattr(integer, "shape") or _is_number(integer):
        return integer
    if type(integer) in (list, tuple) and all(isinstance(v, (Integral, np.integer, np.bool_)) for v in integer) and (
            len(integer) == structure.dim or not all(isinstance(v, (bool, np.bool_)) for v in integer)):
        return integer  # a flat mask, or coordinate indices
    parts = []
    for (name, value), shape in zip(matched_leaves(structure, integer, "integer"), structure.shapes):
        mask = _host(value)
        if mask.dtype != bool:
            raise InvalidTypeError(f"integer leaf {name} must be a bool or a boolean array of the leaf's shape "
                                   f"{shape}, got {type(value).__name__} of dtype {mask.dtype}")
        parts.append(_leaf_part(mask, shape, f"integer leaf {name}", "a bool"))
    return np.concatenate(parts)


def flat_solutions(structure: Structure | None, solutions: Any) -> Any:
    """Candidates for ``inject`` in ``x0``'s structure (one, or several with a leading axis on
    every leaf) as host float64 rows ``(k, dim)``; flat ones as they are (``inject`` checks them)."""
    if structure is None or solutions is None or hasattr(solutions, "shape") or (
            type(solutions) in (list, tuple) and not holds_arrays(solutions)):
        return solutions
    if structure.kind == "module" and hasattr(solutions, "named_parameters"):  # a module of the same layout
        solutions = dict(solutions.named_parameters())
    pairs = matched_leaves(structure, solutions, "solutions")
    leaves = [np.asarray(_host(value), dtype=np.float64) for _, value in pairs]
    if all(leaf.shape == shape for leaf, shape in zip(leaves, structure.shapes)):
        return np.concatenate([leaf.ravel() for leaf in leaves])[None, :]
    for (name, _), leaf, shape in zip(pairs, leaves, structure.shapes):  # the leaf that fits neither form
        if leaf.shape != shape and leaf.shape[1:] != shape:
            raise InvalidArgumentError(f"solutions leaf {name} has shape {leaf.shape}; expected the leaf's shape "
                                       f"{shape} (one candidate) or (k,) + {shape} with the same k on every leaf")
    counts = {leaf.shape[0] if leaf.shape[1:] == shape else None for leaf, shape in zip(leaves, structure.shapes)}
    if len(counts) > 1:  # one candidate on some leaves, several (or other counts) on others
        found = {name: leaf.shape for (name, _), leaf in zip(pairs, leaves)}
        raise InvalidArgumentError(f"solutions must be one candidate (every leaf of its shape) or k candidates "
                                   f"(every leaf with the same leading axis k), got leaf shapes {found}")
    k = counts.pop()
    return np.concatenate([leaf.reshape(k, -1) for leaf in leaves], axis=1)


def flat_arguments(structure: Structure | None, x0: Any, settings: Any) -> tuple[Any, Any, Any]:
    """``(x0, bounds, integer)`` of a run: ``x0`` flat (``structure.flat``), ``settings``'
    ``bounds`` and ``integer`` as flat ones (:func:`flat_bounds`, :func:`flat_integer`)."""
    bounds, integer = settings.bounds, getattr(settings, "integer", None)
    if structure is None:
        return x0, bounds, integer
    return structure.flat, flat_bounds(structure, bounds), flat_integer(structure, integer)
