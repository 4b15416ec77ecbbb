"""Integer and mixed-integer variables: rounding, and CMA-ES with margin.

``ES(integer=mask)`` makes the coordinates where ``mask`` holds integers: every
candidate the objective sees, every candidate ``ask`` returns, and ``x_`` hold
integral values there (as floats of the run's dtype). ``bounds`` on an integer
coordinate restrict it to the integers in ``[ceil(lower), floor(upper)]`` (by
clipping after rounding; the smooth box transformation of
:mod:`evostrat.run.bounds` applies to the continuous coordinates only).

The strategy keeps searching a continuous space; it is told its own (continuous)
candidates with the values of their encoded (integral) versions, as cmaes'
``CMAwM`` does (``x_for_tell`` and ``x_for_eval``).

- **Other strategies**: integer coordinates are rounded to the nearest integer
  (ties to the lower one).
- **The CMA family** (``"cma_es"``, ``"sep_cma_es"``): CMA-ES with margin
  (Hamano, Saito, Nomura, Shirakawa, "CMA-ES with Margin: Lower-Bounding Marginal
  Probability for Mixed-Integer Black-Box Optimization", GECCO 2022,
  arXiv 2205.13482). A plain CMA-ES on a rounded objective stalls once its
  step size along an integer coordinate falls far below 1 (every candidate
  rounds to the same value, the plateau gives no signal). With margin, a
  candidate ``x`` is encoded as ``round(m + A (x - m))`` and after each update
  the mean ``m`` and the diagonal scaling ``A`` of the integer coordinates are
  corrected so that the marginal probability of rounding to a neighbouring
  integer stays at least ``margin / 2`` on each side (paper, sec. 4): with
  ``l``, ``u`` the rounding boundaries around ``m_j`` (``l = u`` at an end of a
  bounded range), ``s_j = sigma A_j sqrt(C_jj)``, ``p_l = Phi((l - m_j) / s_j)``
  and ``p_u = 1 - Phi((u - m_j) / s_j)``:

  * at an end of a bounded range (``max(p_l, p_u) > 1/2``) with
    ``min(p_l, p_u) < margin``: ``m_j <- u + sign(m_j - u) s_j Phi^-1(1 - margin)``;
  * otherwise both probabilities are lifted to ``margin / 2``, the excess taken
    from the larger ones in proportion, and ``A_j`` and ``m_j`` solve
    ``Phi((l - m_j) / s_j) = p_l'``, ``1 - Phi((u - m_j) / s_j) = p_u'``
    (``sigma`` and ``C`` unchanged).

  The default margin is ``1 / (n lambda)`` (paper, sec. 5).

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> def f(X):  # sphere with integer optimum shifted by 0.3: x = 0 on coordinates 0-2
...     return ((X - 0.3) ** 2).sum(axis=1)
>>> es = ES("cma_es", sigma0=2.0, integer=[True, True, True, False], max_evals=3000,
...         random_state=0).fit(f, np.full(4, 3.0))
>>> es.x_[:3].tolist(), bool(abs(es.x_[3] - 0.3) < 1e-3)
([0.0, 0.0, 0.0], True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evostrat.backends import to_host
from evostrat.backends.trees import replace
from evostrat.errors import CheckpointError, InvalidArgumentError, InvalidTypeError
from evostrat.run.bounds import BoxBounds
from evostrat.run.state import check_schema, is_int, is_real
from evostrat.run.weak import BackRef

__all__ = ["IntegerSpace", "MixedSpace", "integer_mask", "rounding_limits"]


def integer_mask(integer: Any, dim: int) -> np.ndarray:
    """``integer`` as a boolean mask of shape ``(dim,)``.

    Parameters
    ----------
    integer : array-like
        A boolean mask of shape ``(dim,)`` or a sequence of coordinate indices
        (ints in ``[-dim, dim)``).
    dim : int
        The number of coordinates.

    Raises
    ------
    InvalidTypeError, InvalidArgumentError
        Naming ``integer`` and what was expected.

    Examples
    --------
    >>> integer_mask([0, 2], 4).tolist(), integer_mask([True, False], 2).tolist()
    ([True, False, True, False], [True, False])
    """
    expected = f"a boolean mask of shape ({dim},) or a sequence of coordinate indices"
    try:
        arr = np.asarray(to_host(integer))
    except (TypeError, ValueError) as err:
        raise InvalidTypeError(f"integer must be {expected}, got {type(integer).__name__}") from err
    if arr.size and arr.dtype != bool and not np.issubdtype(arr.dtype, np.integer):
        raise InvalidTypeError(f"integer must be {expected}, got values of dtype {arr.dtype} "
                               f"(a mask must be boolean, indices must be ints)")
    if arr.ndim != 1:
        raise InvalidArgumentError(f"integer must be {expected}, got shape {arr.shape}")
    if arr.dtype == bool:
        if arr.shape != (dim,):
            raise InvalidArgumentError(f"integer must be {expected}; the mask has shape {arr.shape}, x0 has "
                                       f"dimension {dim}")
        return arr.copy()
    if arr.size and (arr.min() < -dim or arr.max() >= dim):
        raise InvalidArgumentError(f"integer indices must lie in [-{dim}, {dim}), got {arr.tolist()}")
    index = np.where(arr < 0, arr + dim, arr).astype(np.intp)
    if np.unique(index).size != index.size:
        raise InvalidArgumentError(f"integer indices must be distinct, got {arr.tolist()} (a mask must be "
                                   f"boolean: [True, False, ...])")
    mask = np.zeros(dim, dtype=bool)
    mask[index] = True
    return mask


def rounding_limits(xp: Any, m: Any, lo: Any, hi: Any) -> tuple[Any, Any]:
    """The rounding boundaries ``(l, u)`` below and above the integer nearest ``m`` (integer
    coordinates), each a boundary between two integers of ``[lo, hi]``: at an end of the range
    both are the one boundary inside it (array namespace ``xp``: numpy on the host, ``jax.numpy``
    in the compiled chunk).

    >>> rounding_limits(np, np.array([2.3, 0.0]), np.array([0.0, 0.0]), np.array([5.0, 5.0]))
    (array([1.5, 0.5]), array([2.5, 0.5]))
    """
    p = xp.clip(xp.ceil(m - 0.5), lo, hi)
    return xp.minimum(xp.maximum(p - 1, lo), hi - 1) + 0.5, xp.maximum(xp.minimum(p, hi - 1), lo) + 0.5


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return ndtr(x)


def _norm_quantile(p: np.ndarray) -> np.ndarray:
    from scipy.special import ndtri

    return ndtri(p)


class IntegerSpace:
    """The integer coordinates of a run, their ranges and the margin state.

    Parameters
    ----------
    mask : numpy array of bool, shape (dim,)
    lower, upper : numpy arrays, shape (dim,)
        Integer ranges (``-inf``/``inf`` when unbounded; ignored where ``mask`` is false).
    margin : float or None
        The margin ``alpha``; ``None``: ``1 / (dim * popsize)`` per run.

    Attributes
    ----------
    A : numpy array, shape (dim,)
        The margin's diagonal scaling (1 on continuous coordinates, and for strategies
        outside the CMA family).
    """

    def __init__(self, mask: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                 margin: float | None = None) -> None:
        self.mask = mask
        self.index = np.flatnonzero(mask)
        self.lower = np.where(mask, lower, -np.inf)
        self.upper = np.where(mask, upper, np.inf)
        self.margin = margin
        self.alpha = 0.0
        self.A = np.ones(mask.shape[0])
        self.with_margin = False
        self._arrays: dict[Any, tuple[Any, ...]] = {}
        self.runner: Any = None
        self.corrected = 0

    @classmethod
    def from_spec(cls, integer: Any, x0: Any, box: Any = None,
                  coordinates: np.ndarray | None = None) -> "IntegerSpace | None":
        """The integer space of ``ES(integer=...)`` for ``x0``; ``None`` for no integer coordinate.

        ``box`` is the run's validated :class:`~evostrat.run.bounds.BoxBounds` or ``None``;
        ``coordinates`` the user's index of each coordinate of ``x0`` (with ``fixed_variables``,
        ``x0`` holds the free ones), for the error messages.
        """
        if integer is None:
            return None
        x = np.asarray(to_host(x0), dtype=np.float64)
        dim = int(x.shape[0]) if x.ndim == 1 else 1
        mask = integer_mask(integer, dim)
        if not mask.any():
            return None
        lower, upper = np.full(dim, -np.inf), np.full(dim, np.inf)
        if box is not None:
            lower = np.where(np.isfinite(box.lower), np.ceil(box.lower), box.lower)
            upper = np.where(np.isfinite(box.upper), np.floor(box.upper), box.upper)
        few = np.flatnonzero(mask & ~(upper - lower >= 1))
        if few.size:
            i = int(few[0])
            name = i if coordinates is None else int(coordinates[i])
            held = "no integer value" if upper[i] < lower[i] else f"only the integer value {int(lower[i])}"
            hint = "" if upper[i] < lower[i] else f"; fix it with fixed_variables={{{name}: {int(lower[i])}}}"
            raise InvalidArgumentError(f"integer coordinate {name} must have at least two integer values inside "
                                       f"bounds, but [{box.lower[i]}, {box.upper[i]}] holds {held}{hint}")
        return cls(mask, lower, upper)

    @classmethod
    def for_run(cls, driver: Any, x0: Any, integer: Any,
                coordinates: np.ndarray | None = None) -> "IntegerSpace | None":
        """The integer space of ``driver``'s ``integer`` setting (flat: ``x0``'s structure's already
        flattened); makes ``driver.bounds`` a :class:`MixedSpace`. ``coordinates``: as :meth:`from_spec`."""
        space = cls.from_spec(integer, x0, driver.bounds, coordinates)
        if space is not None:
            driver.bounds = MixedSpace(driver.bounds, space, driver)
        return space

    # -- one run --------------------------------------------------------------------------
    def start(self, runner: Any) -> None:
        """Reset the margin state for a new (restart) run of ``runner``."""
        from evostrat.strategies.cma_base import CMABase

        self.runner, self.corrected = runner, runner.generation
        self.with_margin = isinstance(runner.strategy, CMABase)
        self.A = np.ones(self.mask.shape[0])
        self.alpha = (self.margin if self.margin is not None
                      else 1.0 / (runner.dim * runner.popsize))
        self._arrays = {}

    def continue_from(self, other: "IntegerSpace", source: Any, runner: Any) -> None:
        """Start the run of ``runner``, which took over the whole strategy state of ``source`` (a run
        of ``other``, the same box and integer mask: a warm start), with ``other``'s margin state:
        ``A``, and the correction of ``source``'s last update when it is still due (at the first ask)."""
        self.start(runner)
        if self.with_margin and other.with_margin and other.runner is source:
            self.A = np.array(other.A, dtype=np.float64, copy=True)
            self.corrected = -1 if other.corrected < source.generation else 0

    def encode(self, X: Any, runner: Any) -> Any:
        """Candidates ``X`` (rows, or one point) with integer coordinates encoded.

        ``round(m + A (x - m))`` clipped to the integer range, ``m`` the runner's mean.
        """
        if runner is not self.runner:
            self.start(runner)
        be = runner.backend
        xp = be.xp
        key = (be.name, X.dtype, be.device(X), self.A.tobytes())
        if key not in self._arrays:
            self._arrays = {key: tuple(be.asarray(a, dtype=X.dtype if a.dtype != bool else None,
                                                  device=be.device(X))
                                       for a in (self.mask, self.A, self.lower, self.upper))}
        mask, A, lower, upper = self._arrays[key]
        if self.with_margin:
            m = runner.mean
            Z = m + A * (X - m)
        else:
            Z = X
        R = xp.ceil(Z - 0.5) + 0.0  # nearest integer, ties to the lower one (and no -0.0)
        R = xp.minimum(xp.maximum(R, lower), upper)
        return xp.where(mask, R, X)

    def decode(self, X: Any, runner: Any) -> Any:
        """Rows of the search space that :meth:`encode` maps to the rows ``X`` (rounded): for
        candidates given by the user (injected or repaired), with margin ``m + (x - m) / A`` on
        the integer coordinates; without margin ``X`` as it is."""
        if not self.with_margin or (self.A == 1.0).all():
            return X
        be = runner.backend
        mask, A = (be.asarray(a, dtype=X.dtype if a.dtype != bool else None, device=be.device(X))
                   for a in (self.mask, self.A))
        m = runner.mean
        return be.xp.where(mask, m + (X - m) / A, X)

    def limits(self, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rounding boundaries ``(l, u)`` around the integer coordinates ``m`` (clipped ranges)."""
        return rounding_limits(np, m, self.lower[self.index], self.upper[self.index])

    def before_ask(self, runner: Any) -> None:
        """Before sampling: the margin correction of the last update, once per generation; then the
        candidates queued by ``inject`` that this ``ask`` places are decoded (:meth:`decode`)."""
        if runner is not self.runner:
            self.start(runner)
        if self.with_margin and runner.generation > self.corrected:
            self.corrected = runner.generation
            self.correct(runner)
        if runner.injections and self.with_margin:
            k = min(len(runner.injections), runner.popsize)
            rows = runner.backend.asarray(np.stack(runner.injections[:k]), dtype=runner.dtype, device=runner.device)
            runner.injections[:k] = list(np.array(runner.backend.to_numpy(self.decode(rows, runner)),
                                                  dtype=np.float64))

    def correct(self, runner: Any) -> None:
        """The margin correction of ``m`` and ``A`` after a CMA-family update."""
        state, be = runner.state, runner.backend
        idx, alpha = self.index, self.alpha
        mean = np.array(be.to_numpy(state.mean), dtype=np.float64)
        sigma = float(be.to_numpy(state.sigma))
        diag = getattr(state, "diag_C", None)
        diag = np.asarray(be.to_numpy(state.C if diag is None else diag), dtype=np.float64)
        m, A, root_c = mean[idx], self.A[idx], np.sqrt(diag[idx])
        low, up = self.limits(m)
        scale = sigma * A * root_c
        p_low = _norm_cdf((low - m) / scale)
        p_up = 1.0 - _norm_cdf((up - m) / scale)
        p_mid = 1.0 - p_low - p_up
        edge = np.maximum(p_low, p_up) > 0.5
        if edge.any():
            fix = edge & (np.minimum(p_low, p_up) < alpha)
            target = up + np.sign(m - up) * scale * _norm_quantile(1.0 - alpha)
            m = np.where(fix, target, m)
        side = ~edge
        lo2, up2 = np.maximum(p_low, alpha / 2), np.maximum(p_up, alpha / 2)
        excess, rest = 1.0 - lo2 - up2 - p_mid, lo2 + p_mid + up2 - 1.5 * alpha
        lo2 = np.clip(lo2 + excess * (lo2 - alpha / 2) / rest, 1e-10, 0.5 - 1e-10)
        up2 = np.clip(up2 + excess * (up2 - alpha / 2) / rest, 1e-10, 0.5 - 1e-10)
        q_low, q_up = _norm_quantile(1.0 - lo2), _norm_quantile(1.0 - up2)
        A_side = (up - low) / ((q_low + q_up) * sigma * root_c)
        m_side = (low * q_up + up * q_low) / (q_low + q_up)
        ok = side & np.isfinite(A_side) & np.isfinite(m_side) & (A_side > 0)
        self.A[idx] = np.where(ok, A_side, A)
        mean[idx] = np.where(ok, m_side, m)
        if not np.all(np.isfinite(mean)):
            return
        runner.state = replace(state, mean=be.asarray(mean, dtype=state.mean.dtype, device=runner.device))

    # -- checkpoints --------------------------------------------------------------------------
    def state_values(self, runner: Any) -> dict[str, Any]:
        """The margin state of the run of ``runner`` (the driver's current one), for a checkpoint.

        ``current`` is false when a restart has just begun (the state is then the last
        run's and the next ``ask`` starts afresh).
        """
        return {"current": self.runner is runner, "A": self.A.copy(), "alpha": float(self.alpha),
                "corrected": int(self.corrected)}

    def load_state_values(self, values: Any, runner: Any) -> None:
        """Continue the run of ``runner`` with the margin state :meth:`state_values` returned.

        Raises
        ------
        CheckpointError
            Naming the first field of the wrong type or value.
        """
        values = check_schema(values, _STATE_SCHEMA, "integer margin")
        A, dim = values["A"], self.mask.shape[0]
        if not (isinstance(A, np.ndarray) and A.dtype == np.float64 and A.shape == (dim,) and np.isfinite(A).all()
                and (A > 0).all() and (A[~self.mask] == 1).all()):
            shown = f"{A.dtype} {A.shape}" if isinstance(A, np.ndarray) else type(A).__name__
            raise CheckpointError(f"checkpoint integer margin field 'A' must be positive finite float64 of shape "
                                  f"({dim},), 1 on continuous coordinates; got {shown}")
        if not (is_real(values["alpha"]) and 0 <= values["alpha"] < 1):
            raise CheckpointError(f"checkpoint integer margin field 'alpha' must be in [0, 1), got {values['alpha']!r}")
        if not (is_int(values["corrected"]) and -1 <= values["corrected"] <= (  # -1: a warm start's, due
                runner.generation if values["current"] else 2**62)):
            raise CheckpointError(f"checkpoint integer margin field 'corrected' must be an int in "
                                  f"[-1, {runner.generation}], got {values['corrected']!r}")
        self.start(runner)
        if values["current"]:
            self.A, self.alpha, self.corrected = np.array(A, copy=True), float(values["alpha"]), values["corrected"]


_STATE_SCHEMA: dict[str, tuple[Any, str]] = {
    "current": (lambda v: isinstance(v, bool), "a bool"),
    **dict.fromkeys(("A", "alpha", "corrected"), (lambda v: True, "")),  # checked in load_state_values
}



class MixedSpace:
    """The run's ``bounds`` when it has integer coordinates: the box, then the encoding.

    :meth:`transform` maps the strategy's candidates into the box (continuous
    coordinates, :class:`~evostrat.run.bounds.BoxBounds`) and encodes the integer
    coordinates (:meth:`IntegerSpace.encode`); :meth:`inverse` maps a point of the
    box back (integer coordinates unchanged). ``lower``/``upper`` are the whole box.
    """

    def __init__(self, box: Any, integers: IntegerSpace, driver: Any) -> None:
        self.integers, self.driver = integers, BackRef(driver)  # weakly: the driver holds this space
        dim = integers.mask.shape[0]
        self.lower = np.full(dim, -np.inf) if box is None else box.lower
        self.upper = np.full(dim, np.inf) if box is None else box.upper
        self.box = None
        if box is not None:
            lower = np.where(integers.mask, -np.inf, box.lower)
            upper = np.where(integers.mask, np.inf, box.upper)
            if np.isfinite(lower).any() or np.isfinite(upper).any():
                self.box = BoxBounds(lower, upper)

    def transform(self, Y: Any) -> Any:
        """Candidates of the strategy's space as the objective sees them."""
        X = Y if self.box is None else self.box.transform(Y)
        return self.integers.encode(X, self.driver().runner)

    def inverse(self, x: Any) -> Any:
        """A point of the strategy's space for ``x`` (integer coordinates as given)."""
        return x if self.box is None else self.box.inverse(x)

    def inverse_candidates(self, X: Any) -> Any:
        """Rows of the strategy's space that the last ``ask`` mapped to the rows ``X`` (repaired
        candidates, told): :meth:`inverse`, then :meth:`IntegerSpace.decode`."""
        return self.integers.decode(self.inverse(X), self.driver().runner)

    def __repr__(self) -> str:
        return f"MixedSpace(integer={np.flatnonzero(self.integers.mask).tolist()}, box={self.box!r})"
