"""The ``Distribution`` base: parameters on one backend, sampling, pytrees.

Search distributions use ``torch.distributions``' vocabulary (``sample``,
``rsample``, ``log_prob``, ``entropy``, ``batch_shape``, ``event_shape``) over the
Array API namespace of their parameters, so one class serves numpy, torch (tensors
that require grad stay in the graph) and JAX (arrays or tracers; a distribution is a
pytree of its parameters). Numbers and lists follow the array parameters (numpy
float64 when all are numbers). ``sample`` stops gradients; ``rsample`` is the
reparameterised ``mu + scale * eps``. With ``mirrored=True`` the second half of
the sample axis is the first half reflected through the mean.

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

import functools
import math
import operator
from typing import Any, ClassVar

import numpy as np

from evostrat.backends import Backend
from evostrat.distributions.arrays import is_int, is_number_like, sum_to_shape, to_one_backend
from evostrat.distributions.keys import sampling_key
from evostrat.distributions.legacy import sync_legacy_names
from evostrat.errors import InvalidArgumentError, InvalidTypeError

Array = Any

__all__ = ["Distribution", "LOG_2PI", "sum_to_shape"]

LOG_2PI = math.log(2 * math.pi)


class Distribution:
    """Base class of evostrat's search distributions.

    Subclasses set ``param_names`` (the order of :meth:`params`, of the pytree
    leaves and of :meth:`score`'s keys), ``event_ndim`` and implement
    :meth:`transform_noise` (standard normal noise -> sample), ``log_prob``,
    ``entropy`` and ``score``; their ``__init__`` builds the parameters with
    :meth:`convert_params`, :meth:`validate` and :meth:`finite_condition`.
    The underscore names of earlier releases (``_transform``, ``_convert``,
    ``_validate``, ``_finite``, ``_static_attrs``, ``_leaf_attrs``) keep
    working: a subclass defining either name of a pair gets both
    (:mod:`evostrat.distributions.legacy`).

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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        sync_legacy_names(cls)

    # -- construction (helpers a family's __init__ calls) ------------------------------
    def convert_params(self, mirrored: bool, **values: Any) -> list[Array]:
        """Put every parameter on one backend and one floating dtype; set ``mirrored``.

        The first parameter that is an array picks the backend; numbers and
        lists follow it (numpy when all are numbers).

        Parameters
        ----------
        mirrored : bool
            The ``mirrored`` flag of the distribution (checked to be a bool).
        **values : number, list or array
            The parameters by name (``None`` passes through).

        Returns
        -------
        list
            The parameters in the order given, as arrays of one backend, dtype and device.
        """
        if not isinstance(mirrored, bool):
            raise InvalidTypeError(f"mirrored must be a bool, got {mirrored!r}")
        self.mirrored = mirrored
        self._backend, out = to_one_backend(values)
        self._backend.register_pytree_class(type(self))
        return out

    def finite_condition(self, raw: Any, value: Array, positive: bool = False) -> Any:
        """Condition "finite (and positive) everywhere", NaN failing it, for :meth:`validate`.

        A Python bool when ``raw`` (the user's argument) is a number, else a
        boolean array of ``value`` (its converted array).
        """
        number = is_number_like(raw)
        xp, a = (np, np.asarray(raw, dtype=np.float64)) if number else (self.xp, value)
        ok = xp.isfinite(a) & (a > 0) if positive else xp.isfinite(a)
        return bool(np.all(ok)) if number else ok

    def validate(self, *checks: tuple[str, Any]) -> None:
        """Raise ``InvalidArgumentError(message)`` for the first condition that fails.

        ``checks`` are ``(message, condition)`` pairs, a condition a bool or a
        boolean array (:meth:`finite_condition`). Array conditions are reduced
        together and synchronised once; under ``jax.jit`` (tracers) they are skipped.
        """
        for message, condition in checks:
            if isinstance(condition, bool) and not condition:
                raise InvalidArgumentError(message)
        pending = [(message, self.xp.all(c)) for message, c in checks if not isinstance(c, bool)]
        if not pending:
            return
        try:
            ok = bool(functools.reduce(operator.and_, (c for _, c in pending)))
        except TypeError:  # a JAX tracer (ConcretizationTypeError): no value to check yet
            if self._backend.traceable:
                return
            raise
        if not ok:
            raise InvalidArgumentError(next(message for message, c in pending if not bool(c)))

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
        raise self._missing("batch_shape", "the shape of a batch of distributions, () for one")

    @property
    def event_shape(self) -> tuple[int, ...]:
        """Shape of one draw of one distribution of the batch."""
        raise self._missing("event_shape", "the shape of one draw")

    def _missing(self, member: str, what: str) -> NotImplementedError:
        """The error of a required member a family does not define, naming it and its use."""
        return NotImplementedError(f"{type(self).__name__} does not define {member}: {what} "
                                   "(the evostrat_distributions contract, evostrat.hookspecs)")

    def params(self) -> dict[str, Array]:
        """The parameters by name, in :attr:`param_names` order."""
        return {name: getattr(self, name) for name in self.param_names}

    # -- sampling --------------------------------------------------------------------------
    def _sample_shape(self, n: Any) -> tuple[int, ...]:
        shape = (n,) if is_int(n) else n
        if not isinstance(shape, tuple) or not shape or not all(is_int(s) and s >= 1 for s in shape):
            raise InvalidArgumentError(
                f"n must be a positive int or a non-empty tuple of positive ints, got {n!r}"
            )
        if self.mirrored and shape[0] % 2:
            raise InvalidArgumentError(
                f"n must be even with mirrored=True (samples come in +/- pairs), got {shape[0]}"
            )
        return tuple(int(s) for s in shape)

    def _key(self, key: Any) -> Any:
        return sampling_key(self._backend, key)

    def _noise(self, sample_shape: tuple[int, ...], key: Any, generator: Any = None) -> Array:
        """Standard normal noise of shape ``sample_shape + batch_shape + event_shape``."""
        be = self._backend
        rest = self.batch_shape + self.event_shape
        rest = rest if self.noise_dim == math.prod(rest) else self.batch_shape + (self.noise_dim,)
        shape = (sample_shape[0] // 2,) + sample_shape[1:] if self.mirrored else sample_shape
        if generator is not None:
            if key is not None:
                raise InvalidArgumentError("pass either key or generator, not both")
            eps = be.generator_normal(generator, shape + rest, self.dtype, self.device)
        else:
            eps = be.normal(self._key(key), shape + rest, self.dtype, self.device)
        return self.xp.concat([eps, -eps], axis=0) if self.mirrored else eps

    def transform_noise(self, eps: Array) -> Array:
        """Draws from standard normal noise: ``eps`` of shape ``sample_shape + (noise_dim,)``
        (or ``+ batch_shape + event_shape``) to ``sample_shape + batch_shape + event_shape``.
        Required; :meth:`rsample`, :meth:`sample` and :meth:`sample_rows` use it."""
        return self._transform(eps)  # a family that assigned the earlier name after its class

    def _transform(self, eps: Array) -> Array:
        """The earlier name of :meth:`transform_noise` (a family defining either defines both)."""
        raise self._missing("transform_noise(eps)", "the map from noise_dim standard normals to a draw, "
                                                    "which sampling uses")

    _convert = convert_params
    _finite = finite_condition
    _validate = validate

    def rsample(
        self, n: int | tuple[int, ...] = 1, key: Any = None, generator: Any = None
    ) -> Array:
        """Reparameterised draws ``mu + scale * eps`` (differentiable in the parameters).

        Parameters
        ----------
        n : int or tuple of int
            Sample shape; the result has shape ``sample_shape + batch_shape + event_shape``.
        key : int or backend key, optional
            Seed or functional key (a JAX PRNG key on JAX); the same key gives the
            same draws. Without it, numpy and torch draw a fresh key from operating
            system entropy; JAX, which has no hidden random state, requires it.
        generator : numpy.random.Generator or torch.Generator, optional
            A stateful generator to draw from instead of ``key`` (numpy and
            torch only); it advances with every call.
        """
        return self.transform_noise(self._noise(self._sample_shape(n), key, generator))

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
        shape = self.batch_shape + self.event_shape
        k = len(shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k :]) != shape:
            raise InvalidArgumentError(f"{what} must have shape sample_shape + {shape}, got {tuple(x.shape)}")
        return x.ndim - k

    # -- densities -----------------------------------------------------------------------
    def log_prob(self, x: Any) -> Array:
        """Log density of ``x`` (one value per draw and batch member)."""
        raise self._missing("log_prob(x)", "the log density, which autodiff (torch, JAX) differentiates")

    def entropy(self) -> Array:
        """Differential entropy, of shape ``batch_shape``."""
        raise self._missing("entropy()", "the differential entropy")

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
        raise self._missing("score(x)", "the closed-form gradients of log_prob that numpy, without "
                                        "autodiff, searches with (on torch and JAX autodiff needs log_prob alone)")

    # -- searching with the distribution (the NES family, evostrat.strategies.nes) ------------
    #: Parameters that must stay positive: :meth:`retract` moves them in log units.
    positive: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def search_init(cls, mean: Array, sigma: Array, **options: Any) -> "Distribution":
        """The distribution a search starts from: centred at ``mean`` (``(d,)``) with
        per-coordinate scale ``sigma`` (``(d,)``); ``options`` are the user's
        ``distribution_options``. Required to be searched with."""
        raise NotImplementedError(f"{cls.__name__} does not define search_init(mean, sigma, **options): the "
                                  "distribution a search starts from (the evostrat_distributions contract, evostrat.hookspecs)")

    @property
    def noise_dim(self) -> int:
        """Standard normal values one draw consumes (``batch_shape + event_shape``'s size by default)."""
        return math.prod(self.batch_shape + self.event_shape)

    def sample_rows(self, key: Any, rows: Any) -> Array:
        """Draws ``rows`` of an addressable sample: row ``r`` depends only on ``key`` and ``r``
        (:meth:`~evostrat.backends.base.Backend.normal_rows` noise through :meth:`transform_noise`), so a
        worker rebuilds its own rows alone (seed compression). Shape ``(len(rows),) + event_shape``."""
        be = self._backend
        eps = be.normal_rows(key, rows, self.noise_dim, self.dtype, self.device)
        return be.stop_gradient(self.transform_noise(eps))

    def marginal_scale(self) -> Array:
        """Per-coordinate scale of a draw, shape ``event_shape`` (a search's sigma read-out)."""
        raise self._missing("marginal_scale()", "the per-coordinate scale of a draw, shape event_shape, which a "
                                                 "search reports as sigma")

    def weighted_score(self, x: Any, weights: Array) -> dict[str, Array]:
        """``sum_i weights_i * score(x_i)`` per parameter (one sample axis); a family
        overrides it where the per-draw scores would not fit in memory."""
        s = self.score(x)
        return {name: self.xp.tensordot(weights, g, axes=([0], [0])) for name, g in s.items()}

    def local_gradient(self, grads: dict[str, Array]) -> dict[str, Array]:
        """``grads`` in :meth:`retract`'s coordinates: positive parameters in log units."""
        return {k: g * getattr(self, k) if k in self.positive else g for k, g in grads.items()}

    def natural_gradient(self, grads: dict[str, Array]) -> dict[str, Array] | None:
        """``F^{-1} g`` (the inverse Fisher information applied to the gradient ``grads`` of
        the parameters) expressed in :meth:`retract`'s coordinates, or ``None`` (default)
        when the family does not know its Fisher information (searches then take plain
        or Adam steps)."""
        return None

    def retract(self, steps: dict[str, Array]) -> "Distribution":
        """The distribution moved by ``steps`` (local coordinates, one per parameter):
        ``theta + s``, and ``theta * exp(s)`` for the :attr:`positive` parameters."""
        (leaves, aux), xp = self.tree_flatten(), self.xp
        moved = [(v * xp.exp(steps[k]) if k in self.positive else v + steps[k]) if k in steps else v
                 for k, v in zip(self.param_names, leaves)]
        return type(self).tree_unflatten(aux, tuple(moved))

    # -- pytree protocol (Backend.register_pytree_class) ----------------------------------------
    #: Attributes holding the pytree leaves (empty: the :attr:`param_names`).
    leaf_attrs: ClassVar[tuple[str, ...]] = ()
    #: Attributes rebuilt as static data (flags, integer options), not traced.
    static_attrs: ClassVar[tuple[str, ...]] = ("mirrored",)
    _leaf_attrs = leaf_attrs
    _static_attrs = static_attrs

    def tree_flatten(self) -> tuple[tuple, tuple]:
        """The parameters (leaves) and the static rest (the backend, flags)."""
        leaves = tuple(getattr(self, name) for name in self.leaf_attrs or self.param_names)
        return leaves, (self._backend, tuple(getattr(self, name) for name in self.static_attrs))

    @classmethod
    def tree_unflatten(cls, aux: tuple, leaves: tuple) -> "Distribution":
        """Inverse of :meth:`tree_flatten`."""
        obj = object.__new__(cls)
        backend, static = aux
        names = ("_backend", *cls.static_attrs, *(cls.leaf_attrs or cls.param_names))
        for name, value in zip(names, (backend, *static, *leaves)):
            setattr(obj, name, value)
        return obj

    def __repr__(self) -> str:
        shapes = ", ".join(
            f"{name}: {tuple(getattr(getattr(self, name), 'shape', ()))}" for name in self.param_names
        )
        extra = ", mirrored=True" if self.mirrored else ""
        return f"{type(self).__name__}({shapes}, backend={self._backend.name!r}{extra})"
