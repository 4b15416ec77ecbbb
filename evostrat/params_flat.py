"""Flat search vectors <-> neural-network parameters (torch modules, JAX pytrees).

Evolution strategies search over one flat vector ``theta`` of length ``dim``; a network
keeps its parameters in tensors of many shapes. :class:`TorchParams` maps between the two
for a ``torch.nn.Module`` (views, no copies; a whole population at once with
``torch.func.vmap``), :class:`JaxParams` for a JAX/flax pytree (traceable, fused by XLA
under ``jit``/``vmap``). A vector of the wrong length raises
:class:`~evostrat.errors.InvalidArgumentError` naming the expected length; torch and JAX
are imported only when these classes are used.

``ES.fit``, ``ask``/``tell`` and :func:`evostrat.fit_batch` take such structures as
``x0`` directly (:mod:`evostrat.backends.structured`: the objective then receives
candidates in the structure); these classes are the lower-level views that problem
code (policies, :mod:`evostrat.problems`) uses on flat vectors.

Examples
--------
>>> import torch
>>> from evostrat.params_flat import TorchParams
>>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
>>> spec = TorchParams(net)
>>> spec.dim
58
>>> theta = spec.flatten()
>>> X = theta + 0.1 * torch.randn(5, spec.dim)
>>> spec.batched_call(X, torch.zeros(3, 4)).shape      # 5 candidates x 3 inputs x 2 outputs
torch.Size([5, 3, 2])
>>> _ = spec.load(X[0]); bool(torch.equal(spec.flatten(), X[0]))
True

>>> import jax.numpy as jnp
>>> from evostrat.params_flat import JaxParams
>>> tree = {"w": jnp.zeros((3, 48)), "b": jnp.zeros(48), "out": jnp.zeros((48, 1))}
>>> jspec = JaxParams(tree)
>>> jspec.dim
240
>>> jspec.unflatten(jnp.arange(240.0))["w"].shape
(3, 48)
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from evostrat.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["TorchParams", "JaxParams", "check_vector"]


def check_vector(vector: Any, dim: int, name: str = "vector", batched: bool = False) -> None:
    """Raise :class:`InvalidArgumentError` unless ``vector`` has shape ``(dim,)`` (or ``(n, dim)``)."""
    shape = tuple(getattr(vector, "shape", ()))
    if len(shape) != (2 if batched else 1) or shape[-1] != dim:
        want = f"(n, {dim})" if batched else f"({dim},)"
        raise InvalidArgumentError(
            f"{name} must have shape {want}: the network has {dim} parameters, got shape {shape}"
        )


class TorchParams:
    """Flat-vector view of a ``torch.nn.Module``'s parameters.

    Parameters
    ----------
    module : torch.nn.Module
        The network; its parameters (in ``named_parameters`` order, ``requires_grad=False``
        ones included: every parameter is searched) define the layout of the flat vector.
        Buffers are left untouched: register a tensor to keep fixed as a buffer.

    Attributes
    ----------
    dim : int
        Number of parameters (length of the flat vector).
    names, shapes : tuple
        Parameter names and shapes in layout order.
    """

    def __init__(self, module: Any) -> None:
        import torch

        if not isinstance(module, torch.nn.Module):
            raise InvalidTypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        self.module = module
        named = list(module.named_parameters())
        self.names = tuple(n for n, _ in named)
        self.shapes = tuple(tuple(p.shape) for _, p in named)
        self.sizes = tuple(p.numel() for _, p in named)
        self.dim = int(sum(self.sizes))

    def flatten(self) -> Any:
        """The module's current parameters as one detached vector (a copy)."""
        import torch

        return torch.nn.utils.parameters_to_vector(self.module.parameters()).detach().clone()

    def load(self, vector: Any) -> Any:
        """Copy ``vector`` (shape ``(dim,)``, tensor or array) into the module's parameters; returns the module."""
        import torch

        with torch.no_grad():
            for param, view in zip(self.module.parameters(), self.unflatten(vector).values()):
                param.copy_(view)
        return self.module

    def unflatten(self, vector: Any) -> dict[str, Any]:
        """``{name: tensor}`` views of ``vector`` (no copies), for ``functional_call``."""
        vector = self._as_tensor(vector)
        check_vector(vector, self.dim)
        out, start = {}, 0
        for name, shape, size in zip(self.names, self.shapes, self.sizes):
            out[name] = vector[start : start + size].view(shape)
            start += size
        return out

    def policy(self, vector: Any) -> Callable[[Any], np.ndarray]:
        """Load ``vector`` into the module; returns ``obs -> numpy output``, run without gradients."""
        import torch

        self.load(vector)
        dtype = next(self.module.parameters()).dtype

        def act(obs: Any) -> np.ndarray:
            with torch.no_grad():
                return self.module(torch.as_tensor(obs, dtype=dtype)).numpy()

        return act

    def call(self, vector: Any, *args: Any) -> Any:
        """``module(*args)`` with the parameters ``vector``, leaving the module unchanged."""
        from torch.func import functional_call

        return functional_call(self.module, self.unflatten(vector), args)

    def batched_call(self, X: Any, *args: Any) -> Any:
        """Evaluate every candidate row of ``X`` (shape ``(n, dim)``) on the same inputs.

        Returns outputs stacked along a new first axis of length ``n``.
        """
        from torch.func import vmap

        X = self._as_tensor(X)
        check_vector(X, self.dim, name="X", batched=True)
        return vmap(lambda theta: self.call(theta, *args))(X)

    def _as_tensor(self, vector: Any) -> Any:
        import torch

        if isinstance(vector, torch.Tensor):
            return vector
        ref = next(self.module.parameters(), None)
        dtype = ref.dtype if ref is not None else torch.float32
        try:
            return torch.as_tensor(vector, dtype=dtype)
        except (TypeError, ValueError, RuntimeError) as err:
            raise InvalidTypeError(
                f"vector must be a tensor or array of shape ({self.dim},), got {type(vector).__name__}"
            ) from err

    def __repr__(self) -> str:
        return f"TorchParams({type(self.module).__name__}, dim={self.dim})"


class JaxParams:
    """Flat-vector view of a JAX (or flax) parameter pytree.

    Parameters
    ----------
    tree : pytree of arrays
        A template: its structure, shapes and dtypes define the layout
        (``jax.flatten_util.ravel_pytree`` order).

    Attributes
    ----------
    dim : int
    """

    def __init__(self, tree: Any) -> None:
        import jax
        from jax.flatten_util import ravel_pytree

        leaves = jax.tree_util.tree_leaves(tree)
        if not leaves:
            raise InvalidArgumentError("tree must contain at least one array leaf, got an empty pytree")
        flat, self._unravel = ravel_pytree(tree)
        self.template = tree
        self.dim = int(flat.shape[0])
        self._flat0 = flat

    def flatten(self, tree: Any = None) -> Any:
        """``tree`` (default: the template) as one vector of length ``dim``."""
        from jax.flatten_util import ravel_pytree

        if tree is None:
            return self._flat0
        flat, _ = ravel_pytree(tree)
        check_vector(flat, self.dim, name="tree (flattened)")
        return flat

    def unflatten(self, vector: Any) -> Any:
        """The pytree for ``vector`` (shape ``(dim,)``), or for a population ``(n, dim)`` the
        pytree whose leaves have a leading axis of ``n`` (evosax's ``ParameterReshaper.reshape``);
        traceable under ``jit``/``vmap``."""
        import jax

        check_vector(vector, self.dim, batched=len(getattr(vector, "shape", ())) == 2)
        return self._unravel(vector) if vector.ndim == 1 else jax.vmap(self._unravel)(vector)

    def __repr__(self) -> str:
        return f"JaxParams(dim={self.dim})"
