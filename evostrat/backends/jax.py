"""The JAX backend: CPU, GPU or TPU arrays; ``ask``/``tell`` are jitted.

Keys are raw ``uint32[2]`` JAX PRNG keys, split with ``jax.random.split``.
Search points are float32 unless ``jax_enable_x64`` is on and ``x0`` is float64 (as
JAX itself would, without x64 a float64 ``x0`` from numpy or torch becomes float32;
``dtype="float64"`` then raises instead of truncating).

Examples
--------
>>> import jax.numpy as jnp                          # doctest: +SKIP
>>> from evostrat.backends import get_backend        # doctest: +SKIP
>>> be = get_backend(jnp.zeros(3))                   # doctest: +SKIP
>>> be.normal(be.key(0), (2, 3), jnp.float32).shape  # doctest: +SKIP
(2, 3)
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import jax.scipy.linalg
import numpy as np

from evostrat.backends.base import Array, Backend, Key, seed_to_uint64
from evostrat.errors import InvalidArgumentError, InvalidTypeError


_PYTREE_CLASSES: set[type] = set()

#: From this dimension on, xNES's matrix exponential on an accelerator uses Pade, not eigh.
_PADE_MIN_DIM = 64


def expm_pade(a: Array) -> Array:
    """``expm(a)`` by Pade approximation with scaling and squaring (Higham, SIAM J.
    Matrix Anal. Appl. 26(4), 2005; ``jax.scipy.linalg.expm``), products in full float32
    precision (not TF32): matrix products only, no eigendecomposition.
    """
    with jax.default_matmul_precision("highest"):
        return jax.scipy.linalg.expm(a)


class JaxBackend(Backend):
    """JAX arrays; pure functions are compiled with ``jax.jit``."""

    name = "jax"
    xp = jnp
    default_float = jnp.float32

    def owns(self, x: Any) -> bool:
        return isinstance(x, jax.Array)

    def asarray(self, x: Any, dtype: Any = None, device: Any = None) -> Array:
        if hasattr(x, "detach"):  # torch tensor
            x = x.detach().cpu().numpy()
        elif (isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer) and x.committed
              and (dtype is None or x.dtype == dtype) and (device is None or device in x.devices())):
            return x  # already what this returns (immutable: no copy needed)
        out = jnp.asarray(x, dtype=dtype)
        if device is None and not isinstance(out, jax.core.Tracer):
            device = self.device(out)
        # Commit to a device: jit specialises on committed vs uncommitted inputs, and
        # ask/tell outputs are committed, so an uncommitted initial state would make
        # the second generation compile ask again.
        return out if device is None else jax.device_put(out, device)

    def device(self, x: Array) -> Any:
        try:
            return next(iter(x.devices()))
        except (AttributeError, StopIteration, jax.errors.ConcretizationTypeError):
            return None  # tracers have no device (jax >= 0.5 raises on .devices())

    def float_dtype(self, x: Array) -> Any:
        dtype = super().float_dtype(x)
        # Without x64 JAX silently turns float64 into float32: be explicit about it.
        return jnp.dtype(dtype) if jax.config.jax_enable_x64 else jnp.float32

    def dtype_from_name(self, name: str) -> Any:
        if name == "float64" and not jax.config.jax_enable_x64:  # JAX would truncate it to float32
            raise InvalidTypeError("dtype 'float64' on JAX needs jax.config.update('jax_enable_x64', True)")
        return jnp.dtype(name)

    def require_dtype(self, name: str) -> Any:
        if name == "float64" and not jax.config.jax_enable_x64:
            jax.config.update("jax_enable_x64", True)  # a worker of a float64 JAX run
        return jnp.dtype(name)

    def key(self, seed: int | None) -> Key:
        words = seed_to_uint64(seed) & np.uint64(0xFFFF_FFFF)
        return jax.device_put(words.astype(np.uint32), jax.devices()[0])  # a raw threefry key, committed

    def split(self, key: Key, num: int = 2) -> tuple[Key, ...]:
        keys = jax.random.split(key, num)
        return tuple(keys[i] for i in range(num))

    def normal(self, key: Key, shape: tuple[int, ...], dtype: Any, device: Any = None) -> Array:
        return jax.random.normal(key, shape, dtype=dtype)

    def uniform(self, key: Key, shape: tuple[int, ...], dtype: Any, device: Any = None) -> Array:
        return jax.random.uniform(key, shape, dtype=dtype)

    def normal_rows(self, key: Key, rows: Any, dim: int, dtype: Any, device: Any = None) -> Array:
        # Row r: jax.random.normal(fold_in(key, r), (dim,)), vectorised with vmap;
        # traceable (rows is static: a range or a host integer array).
        index = jnp.asarray(np.asarray(rows, dtype=np.uint32).reshape(-1))
        return jax.vmap(lambda r: jax.random.normal(jax.random.fold_in(key, r), (dim,), dtype=dtype))(index)

    def key_from_numpy(self, data: np.ndarray) -> Key:
        return self.asarray(np.asarray(data, dtype=np.uint32))

    def is_key(self, x: Any) -> bool:
        return isinstance(x, jax.Array) and x.dtype == jnp.uint32 and x.shape == (2,)

    has_autodiff = True

    def stop_gradient(self, x: Array) -> Array:
        return jax.lax.stop_gradient(x)

    def grad(self, fn: Callable[..., Array], params: Sequence[Array]) -> tuple:
        def scalar(*args: Array) -> Array:
            out = fn(*args)
            if getattr(out, "size", 1) != 1:
                raise InvalidArgumentError(
                    f"the function must return a scalar, got shape {tuple(out.shape)}"
                )
            return out.reshape(())

        return tuple(jax.grad(scalar, argnums=tuple(range(len(params))))(*params))

    def register_pytree_class(self, cls: type) -> type:
        if cls not in _PYTREE_CLASSES:
            jax.tree_util.register_pytree_node_class(cls)
            _PYTREE_CLASSES.add(cls)
        return cls

    def _compile(self, fn: Callable) -> Callable:
        return jax.jit(fn)

    @property
    def traceable(self) -> bool:
        return True

    def cond(self, pred: Any, true_fn: Callable, false_fn: Callable, *operands: Any) -> Any:
        return jax.lax.cond(pred, true_fn, false_fn, *operands)

    def expm_symmetric(self, s: Array) -> Array:
        # eigh on the CPU and for small matrices; Pade with scaling and squaring on
        # accelerators from d = 64 (on an H100: eigh 0.39 / 1.16 / 11.1 ms at d = 10 / 100 /
        # 1000, Pade 0.87 / 0.81 / 3.5 ms).
        if s.shape[0] < _PADE_MIN_DIM:
            return super().expm_symmetric(s)
        return jax.lax.platform_dependent(s, cpu=super().expm_symmetric, default=expm_pade)
