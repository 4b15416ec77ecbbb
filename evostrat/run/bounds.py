"""Box bounds by a smooth periodic transformation (pycma's ``BoundTransform``).

``ES(..., bounds=(lower, upper))`` keeps every candidate the objective sees
inside ``[lower, upper]``. The strategy searches an unbounded space; each
candidate ``y`` it asks for is mapped into the box by ``x = T(y)`` before it is
evaluated and returned, and ``tell`` receives the values of ``T(y)`` for ``y``.
The method is the linear-quadratic periodic transformation of pycma
(``BoxConstraintsLinQuadTransformation``; Hansen, pycma documentation of
``BoundTransform``): per coordinate, with ``a_l = min((u - l) / 2, max(1, |l|) / 20)``
and ``a_u = min((u - l) / 2, max(1, |u|) / 20)`` (pycma 4's ``margin_width2``, its
``linquad_margin_width``; pycma 3 and evostrat before 2026-12-07 used ``(1 + |b|) / 20``),

1. ``y`` is folded into ``[l - a_l, u + a_u]``: periodically with period
   ``2 (u - l + a_l + a_u)`` and reflection (mirroring at ``l - a_l`` alone when
   only ``l`` is finite, at ``u + a_u`` alone when only ``u`` is);
2. ``x = l + (y - l + a_l)^2 / (4 a_l)`` for ``y < l + a_l``,
   ``x = u - (y - u - a_u)^2 / (4 a_u)`` for ``y > u - a_u``, ``x = y`` between.

``T`` is the identity in the interior (far enough from the bounds), continuous
with a continuous first derivative, and maps onto the closed box, so the
optimum may lie on a bound. Infinite bounds leave their side unbounded.

On JAX the compiled driver (:mod:`evostrat.run.compiled`) applies ``T`` inside its
program, so a bounded run keeps the compiled loop.

Examples
--------
>>> import numpy as np
>>> from evostrat.run.bounds import BoxBounds
>>> b = BoxBounds.from_spec((0.0, 1.0), np.array([0.5, 0.5]))
>>> b.transform(np.array([[0.5, 3.7], [-2.0, 1.02]])).round(4).tolist()
[[0.5, 0.6], [0.2, 0.9955]]
>>> y = b.inverse(np.array([0.5, 0.99]))      # a preimage outside the box
>>> y.round(4).tolist(), b.transform(y).round(12).tolist()
([0.5, 1.0053], [0.5, 0.99])
"""

from __future__ import annotations

import contextvars
from typing import Any

import numpy as np

from evostrat.backends import Backend, get_backend, to_host
from evostrat.errors import InvalidArgumentError, InvalidTypeError

Array = Any

__all__ = ["BoxBounds", "MARGINS", "MARGIN_RULES", "margin_width", "margins_of"]

#: The margin rules: pycma 4's ``max(1, |b|) / 20`` and pycma 3's ``(1 + |b|) / 20``.
MARGIN_RULES = ("pycma4", "pycma3")

#: The rule of the boxes made in this context: ``"pycma4"``, except while a checkpoint written before
#: 2026-12-07 (which used pycma 3's) rebuilds its run (:func:`evostrat.checkpoint.state.restore`), so
#: that the run resumes exactly.
MARGINS: contextvars.ContextVar[str] = contextvars.ContextVar("evostrat_bound_margins", default="pycma4")


def _bound_array(value: Any, dim: int, which: str) -> np.ndarray:
    if isinstance(value, (bool, np.bool_)):
        raise InvalidTypeError(f"bounds {which} must be a number or an array of shape ({dim},), got {value!r}")
    unbounded = -np.inf if which == "lower" else np.inf
    if value is None:
        value = unbounded
    elif isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype == object):
        value = [unbounded if v is None else v for v in value]  # pycma's and scipy's None: no bound there
    try:
        arr = np.asarray(to_host(value), dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InvalidTypeError(
            f"bounds {which} must be a number or an array of shape ({dim},), got "
            f"{type(value).__name__}: {value!r}"
        ) from err
    if arr.ndim == 0:
        arr = np.full(dim, float(arr))
    if arr.shape != (dim,):
        short = arr.ndim == 1 and 0 < len(arr) < dim  # pycma repeats a shorter list's last entry
        raise InvalidArgumentError(
            f"bounds {which} must be a number or an array of shape ({dim},) like x0, "
            f"got shape {arr.shape}" + (f" (pycma repeats the last entry of a shorter list; write all {dim} "
                                        "entries)" if short else "")
        )
    if np.any(np.isnan(arr)):
        raise InvalidArgumentError(f"bounds {which} must not contain NaN")
    return arr


def margin_width(bound: np.ndarray, rule: str = "pycma4") -> np.ndarray:
    """The width of the quadratic region beside a finite ``bound``, before the cap at half the box's
    width: ``max(1, |bound|) / 20`` (pycma 4's ``linquad_margin_width``), or with ``rule="pycma3"``
    ``(1 + |bound|) / 20`` (:data:`MARGIN_RULES`).

    >>> margin_width(np.array([0.0, -1.0, 3.0, 100.0])).tolist()
    [0.05, 0.05, 0.15, 5.0]
    >>> margin_width(np.array([0.0, -1.0]), "pycma3").tolist()
    [0.05, 0.1]
    """
    if rule == "pycma3":
        return (1.0 + np.abs(bound)) / 20
    return np.maximum(1.0, np.abs(bound)) / 20


def margins_of(space: Any) -> str | None:
    """The margin rule of the :class:`BoxBounds` in a run's ``bounds`` (a box, or a space of fixed
    variables or integers around one); ``None`` without a box."""
    while space is not None and not isinstance(space, BoxBounds):
        space = getattr(space, "inner", None) if hasattr(space, "inner") else getattr(space, "box", None)
    return None if space is None else space.margins


def _inward(lower: np.ndarray, upper: np.ndarray, dtype_name: str) -> dict[str, np.ndarray]:
    """``lower``/``upper`` in ``dtype_name`` rounded toward the inside of the box, so that the
    clipped candidates lie inside the float64 box (float32 rounds ``0.1`` up to ``0.1000000015``)."""
    if dtype_name != "float32":
        return {}
    with np.errstate(over="ignore"):  # a bound past float32's range becomes its largest value
        lo, hi = lower.astype(np.float32), upper.astype(np.float32)
    lo = np.where(lo < lower, np.nextafter(lo, np.float32(np.inf)), lo)
    hi = np.where(hi > upper, np.nextafter(hi, np.float32(-np.inf)), hi)
    return {"lower": lo.astype(np.float64), "upper": hi.astype(np.float64)}


class BoxBounds:
    """Per-coordinate box ``[lower, upper]`` and the transformation into it.

    Build it with :meth:`from_spec`, which validates. Bound arrays live on the
    backend and dtype of ``x0``, so :meth:`transform` runs unchanged on numpy,
    torch and JAX (and inside ``jax.jit``).

    Attributes
    ----------
    lower, upper : numpy arrays, shape (dim,)
        The box (``-inf``/``inf`` where a side is open), as float64 on the host.
    margins : str
        The rule of the quadratic regions' widths (:func:`margin_width`), :data:`MARGINS` when made.
    """

    def __init__(self, lower: np.ndarray, upper: np.ndarray) -> None:
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        self.margins = MARGINS.get()
        lo_ok, hi_ok = np.isfinite(self.lower), np.isfinite(self.upper)
        width = np.where(lo_ok & hi_ok, self.upper - self.lower, np.inf)
        lo, hi = np.where(lo_ok, self.lower, 0.0), np.where(hi_ok, self.upper, 0.0)
        self._host = dict(lo_ok=lo_ok, hi_ok=hi_ok, both=lo_ok & hi_ok, lo=lo, hi=hi, lower=self.lower,
                          upper=self.upper, al=np.minimum(width / 2, margin_width(lo, self.margins)),
                          au=np.minimum(width / 2, margin_width(hi, self.margins)))
        self._cache: dict[Any, dict[str, Any]] = {}

    @classmethod
    def from_spec(cls, bounds: Any, x0: Any) -> "BoxBounds":
        """Validate ``bounds = (lower, upper)`` against ``x0``.

        Parameters
        ----------
        bounds : tuple (lower, upper)
            Each a number, ``None`` (unbounded) or an array of shape ``(dim,)``, whose
            ``None`` entries (a list's, as pycma's ``[[-1, None], [1, 2]]``) are unbounded
            too; ``lower < upper`` everywhere.
        x0 : array, shape (dim,)
            Must lie inside the box (bounds included).

        Raises
        ------
        InvalidTypeError, InvalidArgumentError
            Naming ``bounds`` and the expected form.
        """
        x = np.asarray(to_host(x0), dtype=np.float64)
        box = cls.parse(bounds, int(x.shape[0]) if x.ndim == 1 else 1)
        outside = np.nonzero((x < box.lower) | (x > box.upper))[0]
        if outside.size:
            i = int(outside[0])
            raise InvalidArgumentError(
                f"x0 must lie inside bounds; x0[{i}]={float(x[i])} is outside "
                f"[{float(box.lower[i])}, {float(box.upper[i])}]"
            )
        return box

    @classmethod
    def parse(cls, bounds: Any, dim: int) -> "BoxBounds":
        """The box of ``bounds = (lower, upper)`` for points of dimension ``dim``, checked
        (:meth:`from_spec` without its check of ``x0``)."""
        if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise InvalidTypeError(
                "bounds must be a pair (lower, upper) of numbers or arrays of shape (dim,), "
                f"got {type(bounds).__name__}: {bounds!r}"
            )
        lower = _bound_array(bounds[0], dim, "lower")
        upper = _bound_array(bounds[1], dim, "upper")
        bad = np.nonzero(~(lower < upper))[0]
        if bad.size:
            i = int(bad[0])
            hint = (f" (a coordinate held at one value is a fixed variable: pass fixed_variables={{{i}: "
                    f"{float(lower[i])}}}, and bounds with lower < upper there, -inf and inf for example)"
                    if lower[i] == upper[i] else "")
            raise InvalidArgumentError(
                f"bounds must have lower < upper in every coordinate; coordinate {i} has "
                f"lower={float(lower[i])} >= upper={float(upper[i])}{hint}"
            )
        return cls(lower, upper)

    def _arrays(self, backend: Backend, dtype: Any, device: Any) -> dict[str, Any]:
        key = (backend.name, dtype, device)
        if key in self._cache and not backend.traceable:
            return self._cache[key]
        host = dict(self._host, **_inward(self.lower, self.upper, backend.dtype_name(dtype)))
        out = {name: backend.asarray(value, dtype=None if value.dtype == bool else dtype, device=device)
               for name, value in host.items()}
        if not backend.traceable:
            self._cache[key] = out
        return out

    def transform(self, Y: Array) -> Array:
        """Map points of the search space (shape ``(..., dim)``) into the box."""
        be = get_backend(Y)
        xp = be.xp
        a = self._arrays(be, Y.dtype, be.device(Y))
        lo, hi, al, au = a["lo"], a["hi"], a["al"], a["au"]
        bottom, top = lo - al, hi + au
        # 1. fold into [lo - al, hi + au]; a point inside stays as it is (pycma's shift applies
        # only outside: Y - bottom would round Y to the precision of the bounds' magnitude)
        period = 2.0 * (top - bottom)
        periodic = bottom + xp.remainder(Y - bottom, xp.where(a["both"], period, 1.0))
        periodic = xp.where(periodic > top, 2.0 * top - periodic, periodic)
        periodic = xp.where((Y < bottom) | (Y > top), periodic, Y)
        below = xp.where(Y < bottom, 2.0 * bottom - Y, Y)
        above = xp.where(Y > top, 2.0 * top - Y, Y)
        y = xp.where(a["both"], periodic, xp.where(a["lo_ok"], below, xp.where(a["hi_ok"], above, Y)))
        # 2. quadratic near the bounds, identity between
        x = xp.where(a["lo_ok"] & (y < lo + al), lo + (y - bottom) ** 2 / (4.0 * al), y)
        x = xp.where(a["hi_ok"] & (y > hi - au), hi - (y - top) ** 2 / (4.0 * au), x)
        return xp.minimum(xp.maximum(x, a["lower"]), a["upper"])

    def inverse(self, x: Array) -> Array:
        """A point ``y`` with ``transform(y) == x`` for ``x`` in the box (up to rounding)."""
        be = get_backend(x)
        xp = be.xp
        a = self._arrays(be, x.dtype, be.device(x))
        lo, hi, al, au = a["lo"], a["hi"], a["al"], a["au"]
        y = xp.where(
            a["lo_ok"] & (x < lo + al), lo - al + 2.0 * xp.sqrt(al * xp.maximum(x - lo, 0.0)), x
        )
        return xp.where(
            a["hi_ok"] & (x > hi - au), hi + au - 2.0 * xp.sqrt(au * xp.maximum(hi - x, 0.0)), y
        )

    inverse_candidates = inverse  # candidates map as points (run.integers.MixedSpace's differ)

    def __repr__(self) -> str:
        return f"BoxBounds(lower={self.lower.tolist()}, upper={self.upper.tolist()})"

