"""Integer variables inside the compiled JAX chunk (:mod:`evostrat.run.compiled`).

The host loop encodes the integer coordinates of each population with
:meth:`~evostrat.run.integers.IntegerSpace.encode` and, for the CMA family, corrects the mean and
the margin's scaling ``A`` before each ``ask`` (:meth:`~evostrat.run.integers.IntegerSpace.correct`).
The compiled chunk does both inside its program:

- :class:`ChunkSpace` is the chunk's ``bounds``: the box of the continuous coordinates, the
  encoding ``round(m + A (x - m))`` clipped to the integer ranges, then the fixed values
  (``fixed_variables``) placed among them, as the host's space maps a population;
- :class:`MarginStrategy` is the chunk's strategy with margin: its state
  (:class:`MarginState`) carries ``A`` and whether the last update's correction is due, and
  its ``ask`` applies the correction (:func:`margin_correction`) first, as the host's
  ``before_ask`` does.

The correction is computed in JAX's widest float (float64 with ``jax_enable_x64``, else
float32), where the host computes in float64: a float32 run's mean and ``A`` agree with the
host loop's to float32 rounding. :func:`chunk_setup`, :func:`device_state` and
:func:`host_state` move the margin state between the driver and the chunk.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from evostrat.backends.programs import frozen, program_key
from evostrat.backends.trees import replace
from evostrat.run.integers import rounding_limits

__all__ = ["ChunkSpace", "MarginState", "MarginStrategy", "chunk_setup", "device_state", "host_state",
           "margin_correction"]


class MarginState(NamedTuple):
    """A CMA-family state with the margin's state, as the compiled chunk carries it."""

    inner: Any  # the strategy's own state
    A: Any  # (dim,) the margin's diagonal scaling, in JAX's widest float
    due: Any  # () bool: the correction of the last update has yet to run (before the next ask)


def margin_correction(inner: Any, A: Any, lower: Any, upper: Any, index: np.ndarray, alpha: float) -> tuple[Any, Any]:
    """``(state, A)`` after the margin correction of the CMA-family ``inner`` state (traced).

    The host's :meth:`~evostrat.run.integers.IntegerSpace.correct`, on the integer coordinates
    ``index`` with integer ranges ``lower``/``upper`` (of those coordinates) and margin ``alpha``;
    the tails are computed as ``Phi(-z)`` and ``-Phi^-1(p)`` (the host's ``1 - Phi(z)`` and
    ``Phi^-1(1 - p)``, exact in float64 but not in float32).
    """
    import jax.numpy as jnp
    from jax.scipy.special import ndtr, ndtri

    wide = A.dtype
    diag = getattr(inner, "diag_C", None)
    diag = inner.C if diag is None else diag
    mean = jnp.asarray(inner.mean, wide)
    m, a, root_c = mean[index], A[index], jnp.sqrt(jnp.asarray(diag, wide)[index])
    sigma = jnp.asarray(inner.sigma, wide)
    low, up = rounding_limits(jnp, m, lower, upper)
    scale = sigma * a * root_c
    p_low, p_up = ndtr((low - m) / scale), ndtr((m - up) / scale)
    p_mid = 1.0 - p_low - p_up
    edge = jnp.maximum(p_low, p_up) > 0.5
    fix = edge & (jnp.minimum(p_low, p_up) < alpha)
    m = jnp.where(fix, up + jnp.sign(m - up) * scale * -ndtri(jnp.asarray(alpha, wide)), m)
    lo2, up2 = jnp.maximum(p_low, alpha / 2), jnp.maximum(p_up, alpha / 2)
    excess, rest = 1.0 - lo2 - up2 - p_mid, lo2 + p_mid + up2 - 1.5 * alpha
    lo2 = jnp.clip(lo2 + excess * (lo2 - alpha / 2) / rest, 1e-10, 0.5 - 1e-10)
    up2 = jnp.clip(up2 + excess * (up2 - alpha / 2) / rest, 1e-10, 0.5 - 1e-10)
    q_low, q_up = -ndtri(lo2), -ndtri(up2)
    a_side = (up - low) / ((q_low + q_up) * sigma * root_c)
    m_side = low + (up - low) * q_low / (q_low + q_up)  # the host's (low q_up + up q_low) / (q_low + q_up)
    # without a lift (both probabilities at least alpha / 2) the host's solve gives back m and A up to
    # float64 rounding; a float32 solve would move them by its own rounding, generation after generation
    lifted = (p_low < alpha / 2) | (p_up < alpha / 2)
    ok = ~edge & lifted & jnp.isfinite(a_side) & jnp.isfinite(m_side) & (a_side > 0)
    A = A.at[index].set(jnp.where(ok, a_side, a))
    new = mean.at[index].set(jnp.where(ok, m_side, m))
    new = jnp.where(jnp.all(jnp.isfinite(new)), new, mean).astype(inner.mean.dtype)  # the host keeps a non-finite one out
    return replace(inner, mean=new), A


class MarginStrategy:
    """``strategy`` (the CMA family) with the margin's state in its state (:class:`MarginState`).

    ``ask`` corrects the state when the correction is due, then asks; ``tell`` tells and makes
    the next correction due. The read-outs (``sigma``, ``stop``, ``tolx_parts``, ...) are the
    strategy's, of the inner state.
    """

    def __init__(self, strategy: Any, space: "ChunkSpace") -> None:
        self.strategy, self.space = strategy, space

    def __getattr__(self, name: str) -> Any:  # name, tolx_path, resolved_popsize, ...
        return getattr(self.strategy, name)

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """The program key's hyper-parameters: the strategy's (its class and hyper-parameters)."""
        return {"strategy": program_key(self.strategy.tell)}

    def ask(self, state: MarginState) -> tuple[Any, MarginState]:
        """Correct (when due) and sample."""
        import jax.numpy as jnp

        space = self.space
        corrected, A = margin_correction(state.inner, state.A, space.int_lower, space.int_upper, space.index,
                                         space.alpha)
        inner = _select(state.due, corrected, state.inner)
        A = jnp.where(state.due, A, state.A)
        X, inner = self.strategy.ask(inner)
        return X, MarginState(inner, A, jnp.zeros((), bool))

    def tell(self, state: MarginState, X: Any, fitness: Any) -> MarginState:
        """Tell the strategy; its correction is due before the next ask."""
        import jax.numpy as jnp

        return MarginState(self.strategy.tell(state.inner, X, fitness), state.A, jnp.ones((), bool))

    def mean(self, state: MarginState) -> Any:
        """The strategy's mean of the inner state."""
        return self.strategy.mean(state.inner)

    def sigma(self, state: MarginState) -> Any:
        """The strategy's sigma of the inner state."""
        return self.strategy.sigma(state.inner)

    def stop(self, state: MarginState) -> dict[str, Any]:
        """The strategy's own stop criteria of the inner state."""
        return self.strategy.stop(state.inner)

    def tolx_parts(self, state: MarginState) -> Any:
        """The strategy's ``tolx`` parts of the inner state."""
        return self.strategy.tolx_parts(state.inner)


def _select(flag: Any, a: Any, b: Any) -> Any:
    """The tree ``a`` where ``flag`` holds, else ``b`` (traced)."""
    import jax

    return jax.tree_util.tree_map(lambda x, y: jax.numpy.where(flag, x, y), a, b)


class ChunkSpace:
    """The compiled chunk's ``bounds`` for a run with integer variables (the host's space: a
    :class:`~evostrat.run.integers.MixedSpace`, or a :class:`~evostrat.run.fixed.FixedSpace` around one).

    :meth:`encode` maps a population of the strategy's space as the host's ``transform``, the
    margin's mean and ``A`` read from the chunk's state. ``key`` holds what the program depends on
    beyond the box: the integer mask and ranges, whether with margin, and the margin.
    """

    def __init__(self, bounds: Any, integers: Any) -> None:
        self.fixed = bounds if hasattr(bounds, "free") else None
        mixed = bounds.inner if self.fixed is not None else bounds
        self.lower, self.upper, self.values = bounds.lower, bounds.upper, getattr(bounds, "values", 0)
        if self.fixed is not None:
            self.free = self.fixed.free
        self.box, self.mask, self.with_margin = mixed.box, integers.mask, integers.with_margin
        self.index, self.alpha = integers.index, float(integers.alpha)
        self.ranges = integers.lower, integers.upper  # -inf and inf off the integer coordinates
        self.int_lower, self.int_upper = integers.lower[self.index], integers.upper[self.index]
        self.key = ("integers", frozen(self.mask), frozen(integers.lower), frozen(integers.upper), self.with_margin,
                    self.alpha if self.with_margin else None)

    def encode(self, X: Any, state: Any) -> Any:
        """The candidates ``X`` (the strategy's, traced) as the objective sees them."""
        import jax.numpy as jnp

        X = X if self.box is None else self.box.transform(X)
        Z = X
        if self.with_margin:
            m, A = state.inner.mean, jnp.asarray(state.A, X.dtype)
            Z = m + A * (X - m)
        R = jnp.ceil(Z - 0.5)  # nearest integer, ties to the lower one
        R = jnp.where(R == 0, jnp.zeros_like(R), R)  # no -0.0 (XLA drops the host's + 0.0)
        R = jnp.minimum(jnp.maximum(R, jnp.asarray(self.ranges[0], X.dtype)), jnp.asarray(self.ranges[1], X.dtype))
        out = jnp.where(jnp.asarray(self.mask), R, X)
        return out if self.fixed is None else self.fixed.embed(out)


def chunk_setup(driver: Any) -> tuple[Any, Any]:
    """``(strategy, bounds)`` of the chunk of ``driver``'s current run: the runner's strategy and
    ``driver.bounds``, or with integer variables a :class:`ChunkSpace` (and with margin a
    :class:`MarginStrategy`). The margin state is started for the run, as the host's first ask does."""
    runner, integers = driver.runner, driver.integers
    if integers is None:
        return runner.strategy, driver.bounds
    if integers.runner is not runner:
        integers.start(runner)
    space = ChunkSpace(driver.bounds, integers)
    return (MarginStrategy(runner.strategy, space) if integers.with_margin else runner.strategy), space


def device_state(driver: Any, run: Any) -> Any:
    """The packed run ``run`` with the margin state of ``driver``'s integers in its state (with margin)."""
    integers = driver.integers
    if integers is None or not integers.with_margin:
        return run
    import jax

    wide = jax.dtypes.canonicalize_dtype(np.float64)
    due = driver.runner.generation > integers.corrected
    margin = jax.device_put((np.asarray(integers.A, wide), np.asarray(due)), driver.runner.device)
    return type(run)(MarginState(run.state, *margin), *run[1:])  # the packed run with its state wrapped


def host_state(driver: Any, state: Any, done: int) -> Any:
    """The strategy state of a chunk's output ``state`` (which ran ``done`` generations); with margin
    the driver's integers take its ``A`` and the generation of its last correction."""
    if not isinstance(state, MarginState):
        return state
    integers = driver.integers
    if done:
        integers.A = np.array(state.A, dtype=np.float64)
        integers.corrected = driver.runner.generation + done - 1  # the chunk's last ask corrected its update
    return state.inner
