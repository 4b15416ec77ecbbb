"""Fixed variables (pycma's ``fixed_variables``): coordinates the strategy does not search.

``ES(fixed_variables={i: v, ...})`` keeps coordinate ``i`` of every candidate at ``v``: the
strategy searches the other (free) coordinates only, its dimension is their count, and
every candidate handed to the objective or returned (``ask``, ``x_``, ``mean_``, the best
so far, checkpoints) is a full vector with ``v`` at ``i``. As pycma's, indices refer to the
full vector and so do ``x0`` (its entries at fixed indices are ignored), ``inject``'s
solutions (theirs too), per-coordinate ``sigma0``, ``bounds`` and the ``integer``
indices; a fixed value must lie inside ``bounds``. :class:`FixedSpace` is the run's
``bounds`` (as :class:`~evostrat.run.integers.MixedSpace` is with integers): it maps the
strategy's candidates through the box and integer encoding of the free coordinates, then
places them among the fixed values.

The compiled JAX loop runs such a run as the host loop does (its chunk maps each population
through this space before evaluating it); structured ``x0`` do not take them (refused).

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> es = ES("cma_es", fixed_variables={1: 0.5}, random_state=0).initialize(np.zeros(3))
>>> X = np.asarray(es.ask())
>>> X.shape, bool((X[:, 1] == 0.5).all()), es.strategy_.dim
((6, 3), True, 2)
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np

from evostrat.backends import get_backend, to_host
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.run.bounds import BoxBounds
from evostrat.run.integers import IntegerSpace, integer_mask
from evostrat.strategies.base import as_search_point, resolve_backend

__all__ = ["FixedSpace", "check_fixed_variables", "free_sigma", "setup_fixed"]


def check_fixed_variables(fixed: Any, dim: int) -> dict[int, float]:
    """``fixed_variables`` checked against the dimension ``dim`` of ``x0``: ``{index: value}``.

    Raises
    ------
    InvalidTypeError
        For no dict, an index that is not an int or a value that is not a real number.
    InvalidArgumentError
        For an index outside ``[0, dim)``, a non-finite value, or every coordinate fixed.
    """
    if not isinstance(fixed, dict):
        raise InvalidTypeError(f"fixed_variables must be a dict {{index: value}}, got {type(fixed).__name__}")
    out: dict[int, float] = {}
    for key, value in fixed.items():
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (Integral, np.integer)):
            raise InvalidTypeError(f"fixed_variables indices must be ints, got {key!r} ({type(key).__name__})")
        if not 0 <= int(key) < dim:
            raise InvalidArgumentError(f"fixed_variables index {int(key)} is out of range for x0 of dimension {dim} "
                                       f"(indices in [0, {dim}))")
        if int(key) in out:
            raise InvalidArgumentError(f"fixed_variables has the index {int(key)} twice")
        value = to_host(value) if hasattr(value, "shape") else value
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Real, np.number, np.ndarray)) or np.ndim(value):
            raise InvalidTypeError(f"fixed_variables value of index {int(key)} must be a real number, got {value!r}")
        if not math.isfinite(float(value)):
            raise InvalidArgumentError(f"fixed_variables value of index {int(key)} must be finite, got {float(value)}")
        out[int(key)] = float(value)
    if len(out) >= dim:
        raise InvalidArgumentError(f"fixed_variables fixes all {dim} coordinates of x0; at least one must be free")
    return out


class FixedSpace:
    """The run's ``bounds`` with fixed variables: ``inner`` (``None``, a box or a mixed space) on the
    free coordinates, then the fixed values placed among them.

    Attributes
    ----------
    free : numpy int array
        The free coordinates' indices, increasing (the strategy's coordinates, in order).
    values : dict
        ``{index: value}``, the fixed coordinates.
    full_dim : int
        The candidates' dimension (``x0``'s).
    lower, upper : numpy arrays, shape (full_dim,)
        The box of the free coordinates (``-inf``/``inf`` elsewhere and where open).
    """

    def __init__(self, inner: Any, values: dict[int, float], full_dim: int) -> None:
        self.inner, self.values, self.full_dim = inner, dict(sorted(values.items())), full_dim
        self.free = np.array([i for i in range(full_dim) if i not in self.values], dtype=np.int64)
        fixed = np.array(list(self.values), dtype=np.int64)
        self.order = np.argsort(np.concatenate([self.free, fixed]), kind="stable")  # [free, fixed] -> full
        self.fill = np.array(list(self.values.values()), dtype=np.float64)
        self.lower, self.upper = np.full(full_dim, -np.inf), np.full(full_dim, np.inf)
        if inner is not None:
            self.lower[self.free], self.upper[self.free] = inner.lower, inner.upper
        self._cache: dict[Any, tuple[Any, Any, Any]] = {}

    @property
    def box(self) -> "FixedSpace":
        """The space without the integer coordinates' rounding (a checkpoint's initial point)."""
        return FixedSpace(getattr(self.inner, "box", self.inner), self.values, self.full_dim)

    def _arrays(self, X: Any) -> tuple[Any, Any, Any]:
        be = get_backend(X)
        key = (be.name, X.dtype, be.device(X))
        if key in self._cache and not be.traceable:
            return self._cache[key]
        arrays = (be.asarray(self.fill, dtype=X.dtype, device=be.device(X)),
                  be.asarray(self.order, device=be.device(X)), be.asarray(self.free, device=be.device(X)))
        if not be.traceable:
            self._cache[key] = arrays
        return arrays

    def embed(self, X: Any) -> Any:
        """Points of the free coordinates ``(..., free)`` as full vectors ``(..., full_dim)``."""
        be = get_backend(X)
        xp = be.xp
        fill, order, _ = self._arrays(X)
        if be.traceable:  # static slices and columns: XLA fuses a concatenation, not a gather (~3x a generation)
            return xp.concat(self._pieces(xp, X, fill), axis=X.ndim - 1)
        both = xp.concat([X, xp.broadcast_to(fill, (*X.shape[:-1], fill.shape[0]))], axis=X.ndim - 1)
        return xp.take(both, order, axis=X.ndim - 1)

    def _pieces(self, xp: Any, X: Any, fill: Any) -> list[Any]:
        """The full vectors' columns in order: runs of free coordinates (slices of ``X``) and fixed values."""
        pieces, j, fixed = [], 0, list(self.values)
        for i in range(self.full_dim):
            if i in self.values:
                k = fixed.index(i)
                pieces.append(xp.broadcast_to(fill[k:k + 1], (*X.shape[:-1], 1)))
            elif not pieces or i - 1 in self.values:  # a run of free coordinates starts
                n = next((m for m in range(i, self.full_dim) if m in self.values), self.full_dim) - i
                pieces.append(X[..., j:j + n])
                j += n
        return pieces

    def reduce(self, X: Any) -> Any:
        """Full vectors ``(..., full_dim)`` as their free coordinates."""
        return get_backend(X).xp.take(X, self._arrays(X)[2], axis=X.ndim - 1)

    def transform(self, Y: Any) -> Any:
        """Candidates of the strategy's space as the objective sees them (full vectors)."""
        return self.embed(Y if self.inner is None else self.inner.transform(Y))

    def inverse(self, x: Any) -> Any:
        """A point of the strategy's space for the full vector ``x`` (its fixed entries ignored)."""
        x = self.reduce(x)
        return x if self.inner is None else self.inner.inverse(x)

    def inverse_candidates(self, X: Any) -> Any:
        """Rows of the strategy's space for candidates ``X`` (repaired, told)."""
        X = self.reduce(X)
        return X if self.inner is None else self.inner.inverse_candidates(X)

    def full_stds(self, stds: np.ndarray) -> np.ndarray:
        """Per-coordinate standard deviations of the free coordinates as a full vector (0 where fixed)."""
        out = np.zeros(self.full_dim)
        out[self.free] = stds
        return out

    def __repr__(self) -> str:
        return f"FixedSpace(fixed={self.values}, inner={self.inner!r})"


def setup_fixed(driver: Any, settings: Any, x0: Any, bounds: Any, integer: Any) -> Any:
    """Set ``driver.bounds``, ``driver.integers`` and ``driver.fixed`` for ``settings.fixed_variables``; returns
    ``x0`` (as the backend's point, its fixed entries set when some are fixed).

    Without fixed variables this is the plain box and integer set-up. With them, the box and the
    integer coordinates are those of the free coordinates, and ``driver.bounds`` a :class:`FixedSpace`.

    Raises
    ------
    InvalidArgumentError
        Naming ``fixed_variables``: a structured ``x0``, or a fixed value outside ``bounds``
        (and :func:`check_fixed_variables`'s errors).
    """
    driver.fixed, driver.bounds = None, None
    spec = getattr(settings, "fixed_variables", None)
    if bounds is not None or spec is not None:  # validate x0 first, then the box against it
        x0 = as_search_point(x0, resolve_backend(x0, settings.backend), settings.dtype, settings.device)
    if spec is None:
        driver.bounds = None if bounds is None else BoxBounds.from_spec(bounds, x0)
        driver.integers = IntegerSpace.for_run(driver, x0, integer)  # integer=: bounds become box + encoding
        return x0
    if driver.structure is not None:
        raise InvalidArgumentError("fixed_variables takes a flat x0 (an array of shape (dim,)); for a structured "
                                   "x0, keep the leaves' fixed values out of the searched structure")
    be = get_backend(x0)
    full_dim = int(x0.shape[0])
    values = check_fixed_variables(spec, full_dim)
    host = np.array(be.to_numpy(x0), dtype=np.float64)
    host[list(values)] = list(values.values())  # pycma: x0's entries at fixed indices are ignored
    x0 = be.asarray(host, dtype=x0.dtype, device=be.device(x0))
    space = FixedSpace(None, values, full_dim)
    box = None
    if bounds is not None:
        box = BoxBounds.parse(bounds, full_dim)
        for i, v in values.items():
            if not box.lower[i] <= v <= box.upper[i]:
                raise InvalidArgumentError(f"fixed_variables value {v} of index {i} is outside bounds "
                                           f"[{box.lower[i]}, {box.upper[i]}]")
        BoxBounds.from_spec(bounds, host)  # x0's free entries inside the box
        box = BoxBounds(box.lower[space.free], box.upper[space.free])
    free_x0 = space.reduce(x0)
    driver.bounds = box
    mask = None if integer is None else integer_mask(integer, full_dim)
    for i, v in values.items():
        if mask is not None and mask[i] and v != round(v):
            raise InvalidArgumentError(f"fixed_variables value {v} of index {i} must be an integer: coordinate {i} "
                                       f"is an integer coordinate (integer={integer!r})")
    free_integer = None if mask is None else mask[space.free]
    driver.integers = IntegerSpace.for_run(driver, free_x0, free_integer, space.free)
    driver.fixed = driver.bounds = FixedSpace(driver.bounds, values, full_dim)
    return x0


def free_sigma(fixed: FixedSpace | None, sigma0: Any) -> Any:
    """``sigma0`` for the strategy: a per-coordinate array of the full dimension reduced to the free
    coordinates (a number, ``None`` or an array of the free dimension as it is)."""
    if fixed is None or sigma0 is None or np.ndim(to_host(sigma0)) == 0:
        return sigma0
    host = np.asarray(to_host(sigma0), dtype=np.float64)
    return host[fixed.free] if host.shape == (fixed.full_dim,) else sigma0
