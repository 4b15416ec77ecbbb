"""The ``Distribution`` base: parameters on one backend, sampling, pytrees.

Search distributions follow ``torch.distributions``' vocabulary
(``sample``, ``rsample``, ``log_prob``, ``entropy``, ``batch_shape``,
``event_shape``) and are written once over the Array API namespace of their
parameters, so the same class serves numpy, torch and JAX:

- parameters may be numpy arrays, torch tensors (``requires_grad=True`` ones
  stay in the autograd graph) or JAX arrays and tracers (a function that builds
  a distribution can be differentiated with ``jax.grad`` and jitted, and a
  distribution is itself a JAX pytree of its parameters);
- Python numbers and lists take the backend, dtype and device of the array
  parameters (numpy float64 when every parameter is a number).

Random numbers come from the backend's functional keys (see
:mod:`evostrat.backends.base`): ``sample(n, key=...)`` takes an ``int`` seed or
a backend key (a JAX PRNG key on JAX). Without ``key``, numpy and torch draw a
fresh key from operating-system entropy; JAX has no hidden random state, so it
requires ``key``. On numpy and torch, ``generator=`` takes a stateful
``numpy.random.Generator`` / ``torch.Generator`` instead (the fastest choice in
a torch loop: no key derivation per call).

``sample`` never carries gradients (like ``torch.distributions``' ``sample``);
``rsample`` is the reparameterised draw ``mu + scale * eps``. With
``mirrored=True`` draws come in antithetic pairs: the second half of the
sample axis is the first half reflected through the mean.

Examples
--------
>>> import numpy as np
>>> from evostrat.distributions import Normal
>>> p = Normal(np.zeros(3), 0.5, mirrored=True)
>>> x = p.sample(4, key=0)
>>> x.shape
(4, 3)
>>> bool(np.allclose(x[:2], -x[2:]))
True
"""

from __future__ import annotations

import math
import numbers
from typing import Any, ClassVar

import numpy as np

from evostrat.backends import Backend, array_backend, get_backend
from evostrat.distributions._util import (
    LOG_2PI,
    concrete_bool,
    is_number_like,
    sum_to_shape,
)
from evostrat.errors import InvalidArgumentError, InvalidTypeError

Array = Any

__all__ = ["Distribution", "LOG_2PI", "sum_to_shape"]


class Distribution:
    """Base class of evostrat's search distributions.

    Subclasses set ``param_names`` (the order of :meth:`params`, of the pytree
    leaves and of :meth:`score`'s keys), ``event_ndim`` and implement
    ``_transform`` (standard normal noise -> sample), ``log_prob``,
    ``entropy`` and ``score``.

    Parameters
    ----------
    mirrored : bool
        Draw antithetic pairs: the first axis of every sample has even length
        and its second half mirrors the first half through the mean.
    """

    param_names: ClassVar[tuple[str, ...]] = ()
    event_ndim: ClassVar[int] = 0

    _backend: Backend
    mirrored: bool

    # -- construction ----------------------------------------------------------------
    def _convert(self, mirrored: bool, **values: Any) -> list[Array]:
        """Put every parameter on one backend and one floating dtype.

        The first parameter that is an array picks the backend; numbers and
        lists follow it (numpy when all are numbers).
        """
        if not isinstance(mirrored, bool):
            raise InvalidTypeError(f"mirrored must be a bool, got {mirrored!r}")
        self.mirrored = mirrored
        backend: Backend | None = None
        arrays: dict[str, Array] = {}
        for name, value in values.items():
            if value is None or is_number_like(value):
                continue
            be = array_backend(value)
            if be is None:
                raise InvalidTypeError(
                    f"{name} must be a number or an array (numpy, torch or JAX), got "
                    f"{type(value).__name__}"
                )
            if backend is not None and be is not backend:
                raise InvalidTypeError(
                    f"{name} is a {be.name} array but {next(iter(arrays))} is a {backend.name} "
                    "array; pass every parameter on one backend"
                )
            if not be.xp.isdtype(value.dtype, ("real floating", "integral")):
                raise InvalidTypeError(f"{name} must have a real dtype, got {value.dtype}")
            backend, arrays[name] = be, value
        self._backend = backend = backend or get_backend("numpy")
        xp = backend.xp
        device = next((d for d in map(backend.device, arrays.values()) if d is not None), None)
        floats = [a.dtype for a in arrays.values() if xp.isdtype(a.dtype, "real floating")]
        dtype = xp.result_type(*floats) if len(floats) > 1 else floats[0] if floats else backend.default_float
        out = []
        for name, value in values.items():
            if value is None:
                out.append(None)
                continue
            try:
                if name in arrays:
                    arr = value if value.dtype == dtype else xp.astype(value, dtype)
                else:
                    arr = backend.asarray(value, dtype=dtype, device=device)
            except (TypeError, ValueError) as err:
                raise InvalidTypeError(
                    f"{name} must be a number or an array of real numbers, got {value!r}"
                ) from err
            out.append(arr)
        backend.register_pytree_class(type(self))
        return out

    def _finite(self, raw: Any, value: Array) -> Any:
        """Condition "finite everywhere": a Python bool for numbers, a boolean array otherwise."""
        if is_number_like(raw):
            return bool(np.all(np.isfinite(np.asarray(raw, dtype=np.float64))))
        return self.xp.isfinite(value)

    def _positive(self, raw: Any, value: Array) -> Any:
        """Condition "positive and finite everywhere" (NaN fails it)."""
        if is_number_like(raw):
            a = np.asarray(raw, dtype=np.float64)
            return bool(np.all((a > 0) & (a < np.inf)))
        return (value > 0) & (value < math.inf)

    def _validate(self, *checks: tuple[str, Any]) -> None:
        """Raise ``InvalidArgumentError(message)`` for the first condition that fails.

        Array conditions are reduced together and synchronised once; under
        ``jax.jit`` (tracers) they are skipped.
        """
        xp = self.xp
        pending = []
        for message, condition in checks:
            if isinstance(condition, bool):
                if not condition:
                    raise InvalidArgumentError(message)
            else:
                pending.append((message, condition))
        if not pending:
            return
        total = xp.all(pending[0][1])
        for _, condition in pending[1:]:
            total = total & xp.all(condition)
        if concrete_bool(self._backend, total) is False:
            for message, condition in pending:
                if not bool(xp.all(condition)):
                    raise InvalidArgumentError(message)

    # -- read-outs -----------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        """The backend of the parameters."""
        return self._backend

    @property
    def xp(self) -> Any:
        """The Array API namespace of the parameters."""
        return self._backend.xp

    @property
    def dtype(self) -> Any:
        """Floating dtype of the parameters and of the samples."""
        return getattr(self, self.param_names[0]).dtype

    @property
    def device(self) -> Any:
        """Device of the parameters (``None`` where the notion does not apply)."""
        return self._backend.device(getattr(self, self.param_names[0]))

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Shape of a batch of independent distributions (``()`` for one)."""
        raise NotImplementedError

    @property
    def event_shape(self) -> tuple[int, ...]:
        """Shape of one draw of one distribution of the batch."""
        raise NotImplementedError

    def params(self) -> dict[str, Array]:
        """The parameters by name, in :attr:`param_names` order."""
        return {name: getattr(self, name) for name in self.param_names}

    # -- sampling --------------------------------------------------------------------------
    def _sample_shape(self, n: Any) -> tuple[int, ...]:
        shape = (n,) if isinstance(n, (int, numbers.Integral)) and not isinstance(n, bool) else n
        if not isinstance(shape, tuple) or not shape or not all(
            isinstance(s, (int, numbers.Integral)) and not isinstance(s, bool) and s >= 1
            for s in shape
        ):
            raise InvalidArgumentError(
                f"n must be a positive int or a non-empty tuple of positive ints, got {n!r}"
            )
        if self.mirrored and shape[0] % 2:
            raise InvalidArgumentError(
                f"n must be even with mirrored=True (samples come in +/- pairs), got {shape[0]}"
            )
        return tuple(int(s) for s in shape)

    def _key(self, key: Any) -> Any:
        be = self._backend
        if key is None:
            if be.traceable:
                raise InvalidArgumentError(
                    "key is required on JAX (e.g. key=jax.random.PRNGKey(0) or key=0): "
                    "JAX has no hidden random state"
                )
            return be.key(None)
        if isinstance(key, (int, numbers.Integral)) and not isinstance(key, bool):
            return be.key(int(key))
        if not be.traceable and not be.is_key(key):
            raise InvalidTypeError(
                f"key must be an int seed or a {be.name} backend key "
                f"(evostrat.backends.get_backend({be.name!r}).key(seed)), got {type(key).__name__}"
            )
        return key

    def _noise(self, sample_shape: tuple[int, ...], key: Any, generator: Any = None) -> Array:
        """Standard normal noise of shape ``sample_shape + batch_shape + event_shape``."""
        be = self._backend
        rest = tuple(self.batch_shape) + tuple(self.event_shape)
        shape = (sample_shape[0] // 2,) + sample_shape[1:] if self.mirrored else sample_shape
        if generator is not None:
            if key is not None:
                raise InvalidArgumentError("pass either key or generator, not both")
            eps = be.generator_normal(generator, shape + rest, self.dtype, self.device)
        else:
            eps = be.normal(self._key(key), shape + rest, self.dtype, self.device)
        return self.xp.concat([eps, -eps], axis=0) if self.mirrored else eps

    def _transform(self, eps: Array) -> Array:
        raise NotImplementedError

    def rsample(
        self, n: int | tuple[int, ...] = 1, key: Any = None, generator: Any = None
    ) -> Array:
        """Reparameterised draws ``mu + scale * eps`` (differentiable in the parameters).

        Parameters
        ----------
        n : int or tuple of int
            Sample shape; the result has shape ``sample_shape + batch_shape + event_shape``.
        key : int or backend key, optional
            Seed or functional key (required on JAX; see the module docstring).
            The same key gives the same draws.
        generator : numpy.random.Generator or torch.Generator, optional
            A stateful generator to draw from instead of ``key`` (numpy and
            torch only); it advances with every call.
        """
        return self._transform(self._noise(self._sample_shape(n), key, generator))

    def sample(
        self, n: int | tuple[int, ...] = 1, key: Any = None, generator: Any = None
    ) -> Array:
        """Draws with gradients stopped (see :meth:`rsample` for the arguments)."""
        return self._backend.stop_gradient(self.rsample(n, key, generator))

    def asarray(self, x: Any) -> Array:
        """``x`` as an array of the parameters' backend, dtype and device."""
        be = self._backend
        if not be.owns(x):
            x = be.asarray(x, device=self.device)
        if x.dtype != self.dtype:
            x = self.xp.astype(x, self.dtype)
        return x

    def sample_ndim(self, x: Array, what: str = "x") -> int:
        """How many leading sample axes ``x`` has before ``batch_shape + event_shape``.

        Raises :class:`~evostrat.errors.InvalidArgumentError` (naming ``what``)
        when ``x`` does not end with those shapes.
        """
        k = len(self.batch_shape) + len(self.event_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k :]) != tuple(self.batch_shape) + tuple(self.event_shape):
            raise InvalidArgumentError(
                f"{what} must have shape sample_shape + {tuple(self.batch_shape) + tuple(self.event_shape)}, "
                f"got {tuple(x.shape)}"
            )
        return x.ndim - k

    # -- densities -----------------------------------------------------------------------
    def log_prob(self, x: Any) -> Array:
        """Log density of ``x`` (one value per draw and batch member)."""
        raise NotImplementedError

    def entropy(self) -> Array:
        """Differential entropy, of shape ``batch_shape``."""
        raise NotImplementedError

    def score(self, x: Any) -> dict[str, Array]:
        """Closed-form gradient of the log density of each draw w.r.t. each parameter.

        Parameters
        ----------
        x : array, shape ``sample_shape + batch_shape + event_shape``

        Returns
        -------
        dict
            ``name -> array of shape sample_shape + param.shape``: the gradient
            of the joint log density of each draw (summed over the batch) with
            respect to that parameter.
        """
        raise NotImplementedError

    # -- pytree protocol (Backend.register_pytree_class) ----------------------------------------
    def _aux(self) -> tuple:
        return (self.mirrored,)

    def tree_flatten(self) -> tuple[tuple, tuple]:
        """The parameters (leaves) and the static rest (the backend, flags)."""
        return tuple(getattr(self, name) for name in self.param_names), (self._backend, self._aux())

    @classmethod
    def tree_unflatten(cls, aux: tuple, leaves: tuple) -> "Distribution":
        """Inverse of :meth:`tree_flatten`."""
        obj = object.__new__(cls)
        cls._restore(obj, aux, leaves)
        return obj

    def _restore(self, aux: tuple, leaves: tuple) -> None:
        self._backend, static = aux
        self._restore_aux(static)
        for name, leaf in zip(self._leaf_names(static), leaves):
            setattr(self, name, leaf)

    @classmethod
    def _leaf_names(cls, aux: tuple) -> tuple[str, ...]:
        return cls.param_names

    def _restore_aux(self, aux: tuple) -> None:
        (self.mirrored,) = aux

    def __repr__(self) -> str:
        shapes = ", ".join(
            f"{name}: {tuple(getattr(getattr(self, name), 'shape', ()))}" for name in self.param_names
        )
        extra = ", mirrored=True" if self.mirrored else ""
        return f"{type(self).__name__}({shapes}, backend={self._backend.name!r}{extra})"
