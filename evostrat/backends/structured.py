"""Structured parameters: ``x0`` as a dict of arrays, a JAX pytree or a torch ``nn.Module``.

A strategy searches over one flat vector; :func:`as_structure` flattens a
structured ``x0`` once, with the libraries' own tools where they have one
(``jax.flatten_util.ravel_pytree`` for JAX pytrees, including flax parameter
trees; ``torch.nn.utils.parameters_to_vector`` for modules; one concatenation
of the leaves of a dict of numpy arrays or torch tensors), and maps candidates
back: the objective receives each candidate in ``x0``'s structure (``jax.vmap``
of the unravel function on JAX; views, no copies, on numpy and torch), and
``x_`` comes back in it. Per generation the cost is one reshape per leaf.

- dict / list / tuple (nested) of numpy arrays or torch tensors, or any JAX
  pytree: candidates are the same tree. Dict keys are ordered as JAX orders
  them (sorted).
- ``torch.nn.Module``: candidates are ``{name: tensor}`` dicts of its
  parameters (``named_parameters`` order), ready for
  ``torch.func.functional_call(module, params, args)``; ``x_`` is a copy of
  the module holding the best parameters. *Every* parameter is searched,
  ``requires_grad=False`` ones too (a gradient flag says nothing about evolution;
  EvoTorch's ``NEProblem`` evolves them all as well): keep a tensor fixed by
  registering it as a buffer (``module.register_buffer``), which is never searched.

An objective marked :func:`evostrat.vectorized` receives the whole population
as one structure whose leaves have a leading population axis; an unmarked one
receives one candidate per call (on JAX it is ``jax.vmap``-ed, so the run stays
compiled). ``sigma0``, ``bounds``, ``integer`` and injected candidates may be given
in the structure too (:mod:`evostrat.backends.structure_args`).

Examples
--------
>>> import numpy as np
>>> s = as_structure({"w": np.ones((2, 3)), "b": np.zeros(3)})
>>> s.dim, s.flat.tolist()[:4]
(9, [0.0, 0.0, 0.0, 1.0])
>>> s.unflatten(np.arange(9.0))["w"].tolist()
[[3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]
"""

from __future__ import annotations

import copy
import math
import sys
from typing import Any, Callable

import numpy as np

from evostrat.backends.structured_objective import structured_objective
from evostrat.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["ModuleParameters", "Structure", "as_structure", "build_tree", "holds_arrays", "is_named_tuple",
           "jax_leaves", "path_name", "walk_tree"]

Path = tuple[tuple[str, Any], ...]  # ("d", key) | ("l", index) | ("t", index) steps


def is_named_tuple(node: Any) -> bool:
    """Whether ``node`` is a NamedTuple (a tuple with ``_fields``)."""
    return isinstance(node, tuple) and hasattr(type(node), "_fields")


def walk_tree(node: Any, path: Path = ()) -> list[tuple[Path, Any]]:
    """``(path, leaf)`` pairs of a tree of dicts (sorted keys), lists and tuples (NamedTuples too:
    their steps are a tuple's, ``("t", index)``)."""
    if isinstance(node, dict):
        out = []
        for key in sorted(node):
            out += walk_tree(node[key], path + (("d", key),))
        return out
    if type(node) in (list, tuple) or is_named_tuple(node):
        out = []
        for i, value in enumerate(node):
            out += walk_tree(value, path + (("l" if type(node) is list else "t", i),))
        return out
    return [(path, node)]


def build_tree(paths: list[Path], leaves: list[Any]) -> Any:
    """The tree of dicts, lists and tuples with ``leaves`` at ``paths`` (inverse of :func:`walk_tree`)."""
    if len(paths) == 1 and paths[0] == ():
        return leaves[0]
    kind = paths[0][0][0]
    groups: dict[Any, tuple[list[Path], list[Any]]] = {}
    for path, leaf in zip(paths, leaves):
        sub = groups.setdefault(path[0][1], ([], []))
        sub[0].append(path[1:])
        sub[1].append(leaf)
    children = {k: build_tree(p, v) for k, (p, v) in groups.items()}
    if kind == "d":
        return children
    values = [children[i] for i in sorted(children)]
    return values if kind == "l" else tuple(values)


def path_name(path: Path) -> str:
    """A leaf's name in messages: ``"['w'][0]"``, ``"(root)"`` for a lone leaf."""
    return "".join(f"[{k!r}]" if kind == "d" else f"[{k}]" for kind, k in path) or "(root)"


def _library(leaf: Any, name: str) -> str:
    module = type(leaf).__module__.split(".")[0]
    if module == "torch":
        return "torch"
    if module in ("jax", "jaxlib"):
        return "jax"
    if isinstance(leaf, (np.ndarray, np.generic, float)):
        return "numpy"
    if isinstance(leaf, int):  # a number, but not a floating-point one (a float is taken)
        raise InvalidTypeError(f"x0 leaf {name} must be floating point (a float or a float array), got "
                               f"{type(leaf).__name__} {leaf!r}")
    raise InvalidTypeError(f"x0 leaves must be numpy arrays, torch tensors or JAX arrays, got {type(leaf).__name__} "
                           f"at {name}")


class ModuleParameters(dict):
    """A torch module's parameters by name, in the module's order (a resumed run's ``x0``).

    Searched in that order, as the module was (a plain dict's leaves are searched in sorted-key
    order): candidates and ``x_`` are dicts of these names.
    """


class Structure:
    """A structured ``x0`` flattened once; maps flat candidates back to the structure.

    Attributes
    ----------
    kind : {"tree", "jax", "module"}
    flat : array, shape (dim,)
        ``x0`` as one vector of its backend (numpy, torch or JAX).
    dim : int
    names : tuple of str
        The leaves in layout order (``"['w']"`` for trees, parameter names for modules).
    shapes : tuple of tuple
    dtypes : tuple or None
        The leaves' dtypes where they differ (``flat`` has their promoted dtype, candidates' leaves
        their own, as ``ravel_pytree``'s on JAX); ``None`` where they agree.
    template : tree or None
        ``x0`` where it holds NamedTuples: candidates are rebuilt in its classes (JAX's unravel
        does it on JAX), checkpoints store their names and fields.
    """

    def __init__(self, kind: str, flat: Any, names: tuple[str, ...], shapes: tuple[tuple[int, ...], ...],
                 paths: list[Path] | None, module: Any = None, unravel: Callable | None = None,
                 dtypes: tuple[Any, ...] | None = None, template: Any = None) -> None:
        self.kind, self.flat, self.names, self.shapes, self.template = kind, flat, names, shapes, template
        self.paths, self.module, self._unravel = paths, module, unravel
        self.dtypes = dtypes if dtypes is not None and len(set(dtypes)) > 1 else None
        self.sizes = tuple(math.prod(s) for s in shapes)
        self.dim = int(sum(self.sizes))
        if self.dim == 0:  # leaves, all empty: nothing to search
            raise InvalidArgumentError(f"x0 must hold at least one number to search; its leaves {list(names)} have "
                                       f"shapes {list(shapes)}")
        self.key = (kind, names, shapes, str(flat.dtype), None if self.dtypes is None else tuple(map(str, self.dtypes)))

    # -- flat <-> structure --------------------------------------------------------------
    def unflatten(self, x: Any) -> Any:
        """One candidate (shape ``(dim,)``) in the structure (views of ``x``)."""
        if self.kind == "jax":
            return self._unravel(x)
        return self._pack([x[a:b].reshape(shape) for a, b, shape in self._slices()])

    def unflatten_batch(self, X: Any) -> Any:
        """A population ``(n, dim)`` as one structure whose leaves have a leading axis ``n``."""
        if self.kind == "jax":
            import jax

            return jax.vmap(self._unravel)(X)
        n = X.shape[0]
        return self._pack([X[:, a:b].reshape((n,) + shape) for a, b, shape in self._slices()])

    def flatten_batch(self, tree: Any, asked: Any = None) -> Any:
        """Inverse of :meth:`unflatten_batch` (a batched structure back to ``(n, dim)``); ``asked``,
        the population ``ask`` unflattened (leaves of several dtypes round it), when ``tree`` is it."""
        if self.dtypes is not None and asked is not None:
            flat, rounded = self.flatten_batch(tree), self.flatten_batch(self.unflatten_batch(asked))
            return asked if flat.shape == rounded.shape and bool((flat == rounded).all()) else flat
        if self.kind == "jax":
            import jax
            from jax.flatten_util import ravel_pytree

            return jax.vmap(lambda t: ravel_pytree(t)[0])(tree)
        leaves = list(tree.values()) if self.kind == "module" else [leaf for _, leaf in walk_tree(tree)]
        n = leaves[0].shape[0]
        rows = [leaf.reshape(n, -1) for leaf in leaves]
        if type(self.flat).__module__.startswith("torch"):
            import torch

            return torch.cat(rows, dim=1)
        return np.concatenate(rows, axis=1)

    def restore(self, x: Any) -> Any:
        """``x_`` in the structure: a copy (of the module, for ``nn.Module``), not views."""
        if x is None:
            return None
        if self.kind == "module" and self.module is not None:  # else ModuleParameters: a dict
            import torch

            module = copy.deepcopy(self.module)
            with torch.no_grad():  # each parameter keeps its dtype and device
                for param, leaf in zip(module.parameters(), self.unflatten(x.detach()).values()):
                    param.copy_(leaf)
            return module
        if hasattr(x, "clone"):
            x = x.clone()
        elif isinstance(x, np.ndarray):
            x = x.copy()
        return self.unflatten(x)

    def _slices(self) -> list[tuple[int, int, tuple[int, ...]]]:
        ends = np.cumsum((0,) + self.sizes).tolist()
        return list(zip(ends[:-1], ends[1:], self.shapes))

    def _pack(self, leaves: list[Any]) -> Any:
        if self.dtypes is not None:  # leaves of several dtypes: each in its own, not the promoted one
            leaves = [leaf if leaf.dtype == dtype else leaf.to(dtype) if hasattr(leaf, "detach") else
                      leaf.astype(dtype) for leaf, dtype in zip(leaves, self.dtypes)]
        if self.kind == "module":
            return dict(zip(self.names, leaves))
        return build_tree(self.paths, leaves) if self.template is None else _refill(self.template, iter(leaves))

    # -- the objective ----------------------------------------------------------------------
    def objective(self, fn: Callable) -> Callable:
        """``fn`` over structured candidates as an objective over flat ones
        (:func:`~evostrat.backends.structured_objective.structured_objective`)."""
        return structured_objective(self, fn)

    def __repr__(self) -> str:
        return f"Structure({self.kind}, dim={self.dim}, leaves={len(self.names)})"


def as_structure(x0: Any) -> Structure | None:
    """``x0`` flattened when it is structured (dict, list/tuple of arrays, JAX pytree, ``nn.Module``);
    ``None`` for a flat point (an array, or a list/tuple of numbers).

    Raises
    ------
    InvalidArgumentError
        For an empty structure.
    InvalidTypeError
        For leaves that are not floating-point arrays of one library.
    """
    if _is_module(x0):
        return _module(x0)
    if isinstance(x0, ModuleParameters):
        import torch

        leaves = list(x0.values())
        flat = torch.cat([leaf.detach().reshape(-1) for leaf in leaves])
        return Structure("module", flat, tuple(x0), tuple(tuple(leaf.shape) for leaf in leaves), None,
                         dtypes=tuple(leaf.dtype for leaf in leaves))
    if isinstance(x0, dict) or is_named_tuple(x0):  # of numpy or torch leaves: those backends, not JAX
        pass
    elif type(x0) in (list, tuple):  # a NamedTuple is a structure even of numbers, as JAX's
        if all(isinstance(v, (int, float, np.number)) for v in x0):
            return None  # a flat point given as a list
    elif _is_jax_tree(x0):
        return _jax_tree(x0, None)
    else:
        return None
    pairs = walk_tree(x0)
    if not pairs:
        raise InvalidArgumentError(f"x0 must hold at least one parameter array, got an empty {type(x0).__name__}")
    libraries = {_library(leaf, path_name(path)) for path, leaf in pairs}
    if len(libraries) > 1:
        raise InvalidTypeError(f"x0's leaves must come from one library, got {sorted(libraries)}")
    names = tuple(path_name(p) for p, _ in pairs)
    leaf_dtypes = []
    for name, (_, leaf) in zip(names, pairs):
        dtype = leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype  # not a host copy of a tensor
        leaf_dtypes.append(dtype)
        if not (getattr(dtype, "is_floating_point", False) or np.dtype(str(dtype).replace("torch.", "")).kind == "f"):
            raise InvalidTypeError(f"x0 leaf {name} must be floating point, got dtype {dtype}")
    library = libraries.pop()
    if library == "jax":
        return _jax_tree(x0, [p for p, _ in pairs], x0 if _holds_named_tuple(x0) else None)
    shapes = tuple(tuple(getattr(leaf, "shape", ())) for _, leaf in pairs)
    if library == "torch":
        import torch

        flat = torch.cat([leaf.detach().reshape(-1) for _, leaf in pairs])
    else:
        flat = np.concatenate([np.asarray(leaf).reshape(-1) for _, leaf in pairs])
    return Structure("tree", flat, names, shapes, [p for p, _ in pairs], dtypes=tuple(leaf_dtypes),
                     template=x0 if _holds_named_tuple(x0) else None)


def _holds_named_tuple(node: Any) -> bool:
    """Whether ``node`` is or holds (in dicts, lists and tuples) a NamedTuple."""
    if is_named_tuple(node):
        return True
    children = node.values() if isinstance(node, dict) else node if type(node) in (list, tuple) else ()
    return any(_holds_named_tuple(child) for child in children)


def _refill(template: Any, leaves: Any) -> Any:
    """``template`` (dicts, lists, tuples, NamedTuples) with its leaves replaced by the next of
    ``leaves``, in :func:`walk_tree` order."""
    if isinstance(template, dict):
        return {key: _refill(template[key], leaves) for key in sorted(template)}
    if type(template) in (list, tuple) or is_named_tuple(template):
        values = [_refill(value, leaves) for value in template]
        return values if type(template) is list else tuple(values) if type(template) is tuple else type(template)(*values)
    return next(leaves)


def holds_arrays(x0: Any) -> bool:
    """Whether a leaf of ``x0`` is an array or tensor (a structure), not a number (a flat point)."""
    return any(hasattr(leaf, "shape") and not isinstance(leaf, np.generic) for _, leaf in walk_tree(x0))


def _is_module(x0: Any) -> bool:
    """Whether ``x0`` is a ``torch.nn.Module`` (of a class defined anywhere: torch is then imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x0, torch.nn.Module)


def _is_jax_tree(x0: Any) -> bool:
    if type(x0).__module__.split(".")[0] in ("jax", "jaxlib", "numpy") or isinstance(x0, (str, bytes)):
        return False
    try:
        import jax
    except ImportError:  # pragma: no cover - JAX is optional
        return False
    leaves = jax.tree_util.tree_leaves(x0)
    return bool(leaves) and not (len(leaves) == 1 and leaves[0] is x0)


def jax_leaves(tree: Any) -> list[tuple[str, Any]]:
    """``(name, leaf)`` pairs of a JAX pytree (a NamedTuple, a flax tree...), named as JAX names them."""
    import jax

    return [(jax.tree_util.keystr(p), leaf) for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _jax_tree(tree: Any, paths: list[Path] | None, template: Any = None) -> Structure:
    import jax
    from jax.flatten_util import ravel_pytree

    named = jax_leaves(tree)
    if not named:
        raise InvalidArgumentError("x0 must hold at least one parameter array, got an empty pytree")
    dtypes = tuple(leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype for _, leaf in named)  # no copy
    for (name, _), dtype in zip(named, dtypes):
        if not jax.numpy.issubdtype(dtype, jax.numpy.floating):
            raise InvalidTypeError(f"x0 leaf {name} must be floating point, got dtype {dtype}")
    flat, unravel = ravel_pytree(tree)
    if len(set(dtypes)) > 1:  # ravel_pytree's unravel then takes flat's dtype only, which ES(dtype=) may change
        unravel = (lambda to_leaves: lambda x: to_leaves(x.astype(flat.dtype)))(unravel)
    shapes = tuple(tuple(np.shape(leaf)) for _, leaf in named)
    return Structure("jax", flat, tuple(n for n, _ in named), shapes, paths, unravel=unravel, dtypes=dtypes,
                     template=template)


def _module(module: Any) -> Structure:
    import torch

    named = list(module.named_parameters())
    if not named:
        raise InvalidArgumentError(f"x0 must hold at least one parameter array, got a {type(module).__name__} "
                                   "without parameters")
    for name, p in named:
        if not p.dtype.is_floating_point:
            raise InvalidTypeError(f"x0 parameter {name!r} must be floating point, got dtype {p.dtype}")
    flat = torch.nn.utils.parameters_to_vector(module.parameters()).detach().clone()
    return Structure("module", flat, tuple(n for n, _ in named), tuple(tuple(p.shape) for _, p in named), None,
                     module=module, dtypes=tuple(p.dtype for _, p in named))
