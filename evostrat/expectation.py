"""Differentiable Monte Carlo expectations (score function / NES / DiCE).

``expectation(values, sample, p)`` is the sample mean of ``values`` whose derivatives
with respect to the parameters of ``p`` (torch tensors with ``requires_grad``, JAX
arrays under ``jax.grad``) are the score-function estimators of the derivatives of
``E_p[values]`` (Williams 1992; Wierstra et al., JMLR 2014), to any order, because it is
written with the DiCE magic box (Foerster et al., ICML 2018;
:mod:`evostrat.distributions.magic_box`)::

    expectation(v, x, p) = mean_i( v_i * box(log p(stop_gradient(x_i))) )
    d/dtheta   -> mean_i( dv_i + v_i * dlog p(x_i) )
    d2/dtheta2 -> mean_i( d2v_i + dv_i dlog p_i^T + dlog p_i dv_i^T
                          + v_i (dlog p_i dlog p_i^T + d2 log p_i) )

``values`` may depend on parameters themselves, so nested expectations compose (a
non-linear ``g`` of an inner mean over ``M`` draws is a plug-in estimate with an
``O(1/M)`` bias; ``tests/test_expectation.py`` derives it). A ``baseline`` ``b`` (Mao
et al., ICML 2019) adds ``mean_i (1 - box_i) stop_gradient(b_i)``, 0 in value, so every
derivative becomes ``mean_i (v_i - b_i) D^k box_i``: still unbiased whenever ``b_i``
does not depend on ``x_i`` (a constant, or ``"mean"``, the leave-one-out mean of Kool
et al., ICLR 2019 workshop; for a
mirrored ``p`` the leave-one-pair-out mean, as the mirror image of ``x_i`` is a function
of ``x_i``). numpy
has no autodiff: there :func:`expectation` is the sample mean and
:func:`expectation_grad` gives the closed-form first derivative
``mean_i (v_i - b_i) score(x_i)``; on torch and JAX the two agree on the same samples.

Examples
--------
>>> import numpy as np
>>> from evostrat.distributions import Normal
>>> from evostrat.expectation import expectation, expectation_grad
>>> p = Normal(np.array([1.0]), 0.05)
>>> x = p.sample(100000, key=0)
>>> f = -(x[:, 0] - 5.0) ** 2
>>> round(float(expectation(f, x, p)), 2)
-16.0
>>> g = expectation_grad(f, x, p, baseline="mean")
>>> abs(float(g["mu"][0]) - 8.0) < 0.1
True
"""

from __future__ import annotations

import math
import sys
import types
from typing import Any, Callable, Sequence

import numpy as np

from evostrat.backends import Backend
from evostrat.distributions.base import Distribution
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.distributions.magic_box import magic_box

Array = Any

__all__ = ["expectation", "expectation_grad", "gradient", "magic_box", "require_autodiff", "scalar_statistic"]


# -- argument handling ----------------------------------------------------------------------
def _check_p(p: Any) -> Distribution:
    if not isinstance(p, Distribution):
        raise InvalidTypeError(
            "p must be an evostrat distribution (evostrat.distributions.Distribution: Normal, DiagNormal, "
            f"MultivariateNormal, LowRankNormal, StudentT or a plugin's), got {type(p).__name__}"
        )
    return p


def _as_values(values: Any, p: Distribution) -> Array:
    be = p.backend
    v = values if be.owns(values) else be.asarray(values, device=p.device)
    if not be.xp.isdtype(v.dtype, "real floating"):
        if not be.xp.isdtype(v.dtype, ("integral", "bool")):
            raise InvalidTypeError(f"values must be real numbers, got dtype {v.dtype}")
        v = be.xp.astype(v, p.dtype)
    if v.ndim == 0:
        raise InvalidArgumentError(
            "values must have a sample axis (one value per draw), got a 0-d array"
        )
    return v


def _axis(dim: Any, ndim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise InvalidTypeError(f"dim must be an int, got {dim!r}")
    if not -ndim <= dim < ndim:
        raise InvalidArgumentError(f"dim must be in [{-ndim}, {ndim}) for values with {ndim} axes, got {dim}")
    return dim % ndim


def _kept_axes(lp_shape: tuple[int, ...], v_shape: tuple[int, ...]) -> int:
    """How many leading axes of the log-density array line up with ``values``.

    Trailing axes of the log-densities are summed (a vector drawn from an
    elementwise ``Normal`` is one joint draw) until what is left is 1-D (one
    log-density per draw, lined up with ``values``' axis ``dim``) or equals the
    leading shape of ``values`` (independent expectations, elementwise).
    """
    k = len(lp_shape)
    while k > 1 and not (k <= len(v_shape) and lp_shape[:k] == v_shape[:k]):
        k -= 1
    return k


def _check_draws(values: Array, dim: int, n: int) -> int:
    if values.shape[dim] != n:
        raise InvalidArgumentError(f"values has {values.shape[dim]} entries along dim={dim} but sample has {n} draws")
    return n


def _log_weights(values: Array, sample: Any, p: Distribution, dim: int) -> tuple[Array, bool]:
    """``log p(stop_gradient(sample))`` reduced and reshaped to broadcast against ``values``,
    and whether ``values``' axis ``dim`` is the sample's first axis (where a mirrored ``p``
    puts its antithetic pairs)."""
    be, xp = p.backend, p.xp
    x = be.stop_gradient(p.asarray(sample))
    n_sample = p.sample_ndim(x, "sample")
    if n_sample == 0:  # not draws of p: log_prob would broadcast them
        raise InvalidArgumentError(
            f"sample must have a leading sample axis: shape (n,) + {tuple(p.batch_shape) + tuple(p.event_shape)}, "
            f"got {tuple(x.shape)}"
        )
    lp = p.log_prob(x)
    k = _kept_axes(tuple(lp.shape), tuple(values.shape))
    if dim >= n_sample:  # dim is no sample axis: no elementwise pairing (it would average over
        k = 1  # batch members, or pair values with the transposed draws); one joint draw per row
    if k < lp.ndim:
        lp = xp.sum(lp, axis=tuple(range(k, lp.ndim)))
    if k == 1:
        n = _check_draws(values, dim, lp.shape[0])
        shape = [1] * values.ndim
        shape[dim] = n
        return xp.reshape(lp, tuple(shape)), True
    return xp.reshape(lp, tuple(lp.shape) + (1,) * (values.ndim - k)), dim == 0


def _baseline(baseline: Any, values: Array, dim: int, p: Distribution, paired: bool = False) -> Array:
    """The baseline ``b``, gradients stopped, broadcastable against ``values``.

    ``paired``: axis ``dim`` holds the antithetic pairs of a mirrored ``p`` (draw ``i`` and
    its mirror image ``i + n/2``); ``"mean"`` then leaves the pair out, since the mirror
    image is a function of the draw and the leave-one-out mean would bias the estimator.
    """
    be, xp = p.backend, p.xp
    v = be.stop_gradient(values)
    if isinstance(baseline, str):
        if baseline != "mean":
            raise InvalidArgumentError(
                f"baseline must be None, 'mean' (leave-one-out mean) or a number/array, got {baseline!r}"
            )
        n = v.shape[dim]
        total = xp.sum(v, axis=dim, keepdims=True)
        if p.mirrored and paired:
            if n < 4 or n % 2:
                raise InvalidArgumentError(
                    f"baseline='mean' with mirrored draws needs at least 2 antithetic pairs (an even "
                    f"number of draws, 4 or more: the second half mirrors the first), got {n}; use baseline=None"
                )
            return (total - v - xp.roll(v, n // 2, axis=dim)) / (n - 2)
        if n < 2:
            raise InvalidArgumentError("baseline='mean' needs at least 2 draws")
        return (total - v) / (n - 1)
    try:
        b = baseline if be.owns(baseline) else be.asarray(baseline, dtype=v.dtype, device=p.device)
        np.broadcast_shapes(tuple(b.shape), tuple(v.shape))  # a baseline per value or per draw
    except (TypeError, ValueError, RuntimeError) as err:
        raise InvalidArgumentError(f"baseline must be None, 'mean', a number or an array that broadcasts "
                                   f"against the values of shape {tuple(v.shape)}, got {baseline!r}") from err
    return be.stop_gradient(b)


# -- the estimators ---------------------------------------------------------------------------
def expectation(
    values: Any, sample: Any, p: Distribution, dim: int = 0, baseline: Any = None
) -> Array:
    """Sample mean of ``values`` that differentiates as ``E_p[values]``.

    Parameters
    ----------
    values : array
        ``f(sample)``: one value (or a trailing array of values) per draw along
        axis ``dim``. May depend on parameters itself (nested expectations).
    sample : array, shape ``sample_shape + batch_shape + event_shape``
        Draws from ``p`` with gradients stopped: ``p.sample(...)``, not
        ``p.rsample(...)``, whose pathwise gradient in ``values`` would add to
        the score-function one and double the derivative (a torch tensor that
        requires grad is refused; on JAX, draw with ``sample``).
    p : Distribution
        The distribution the draws came from; its parameters (torch tensors
        with ``requires_grad``, or JAX arrays under ``jax.grad``) receive the
        score-function derivatives.
    dim : int
        Axis of ``values`` that indexes the draws (averaged over). When
        ``log_prob(sample)`` has further axes, those that match ``values``'
        leading shape give independent, elementwise expectations (when ``dim``
        is one of the sample axes) and the rest are summed (a vector from an
        elementwise ``Normal`` is one draw).
    baseline : None, "mean", number or array
        Control variate subtracted in the derivatives only (the value stays
        the sample mean): ``"mean"`` is the leave-one-out mean of ``values``
        along ``dim`` (for a mirrored ``p``, along its first sample axis: the mean
        without the draw and its mirror image, which needs 4 draws or more); an
        array or number is used as given (gradients stopped).

    Returns
    -------
    array
        ``mean(values, axis=dim)``, carrying the derivatives.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat.distributions import DiagNormal
    >>> p = DiagNormal(np.zeros(2), 1.0)
    >>> x = p.sample(4, key=0)
    >>> v = np.stack([x.sum(1), (x ** 2).sum(1)], axis=1)   # two statistics per draw
    >>> expectation(v, x, p).shape
    (2,)
    """
    p = _check_p(p)
    if getattr(sample, "requires_grad", False):
        raise InvalidArgumentError(
            "sample must carry no gradient (draw it with p.sample(...), or detach it): values "
            "computed from a differentiable draw (p.rsample) get a pathwise derivative on top of "
            "the score-function one, twice the gradient"
        )
    v = _as_values(values, p)
    d = _axis(dim, v.ndim)
    log_w, paired = _log_weights(v, sample, p, d)
    w = magic_box(log_w)
    xp = p.xp
    out = xp.mean(v * w, axis=d)
    if baseline is not None:
        out = out + xp.mean((1 - w) * _baseline(baseline, v, d, p, paired), axis=d)
    return out


def expectation_grad(
    values: Any, sample: Any, p: Distribution, dim: int = 0, baseline: Any = None
) -> dict[str, Array]:
    """Closed-form score-function gradient of ``E_p[values]`` (works on every backend).

    ``mean_i (v_i - b_i) * score(x_i)`` per parameter of ``p``, with ``values``
    treated as constants. The first derivative of :func:`expectation` with the
    same arguments, without autodiff.

    Parameters
    ----------
    values : array, shape (n, ...) along ``dim``
    sample : array, shape ``(n,) + batch_shape + event_shape``
        One sample axis.
    p : Distribution
    dim : int
        Axis of ``values`` indexing the draws.
    baseline : None, "mean", number or array
        As in :func:`expectation`.

    Returns
    -------
    dict
        ``name -> array of shape values_rest + param.shape`` where
        ``values_rest`` is the shape of ``values`` without ``dim``.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat.distributions import Normal
    >>> p = Normal(0.0, 1.0)
    >>> g = expectation_grad(np.array([1.0, 3.0]), np.array([0.5, -0.5]), p)
    >>> float(g["mu"]), float(g["sigma"])   # mean(v x), mean(v (x^2 - 1))
    (-0.5, -1.5)
    """
    p = _check_p(p)
    v = _as_values(values, p)
    d = _axis(dim, v.ndim)
    x = p.asarray(sample)
    n_sample = p.sample_ndim(x, "sample")
    lp_shape = tuple(x.shape[:n_sample]) + tuple(p.batch_shape)
    if n_sample != 1 or _kept_axes(lp_shape, tuple(v.shape)) != 1:
        raise InvalidArgumentError(
            "expectation_grad needs one sample axis and one joint log-density per draw "
            f"(sample shape (n,) + {tuple(p.batch_shape) + tuple(p.event_shape)}, values with "
            f"n entries along dim); got sample {tuple(x.shape)} and values {tuple(v.shape)}. "
            "Use DiagNormal for vector draws, or autodiff (torch/JAX) with expectation()"
        )
    n = _check_draws(v, d, x.shape[0])
    xp = p.xp
    centred = v - _baseline(baseline, v, d, p, paired=True) if baseline is not None else v
    centred = xp.moveaxis(centred, d, 0)
    return {
        name: xp.tensordot(centred, s, axes=([0], [0])) / n for name, s in p.score(x).items()
    }


def scalar_statistic(value: Any, what: str) -> Array:
    """``value``, what a user's statistic (``what``, e.g. ``"statistic of strategy 'nes'"``) returned,
    if it is an array of one element (the scalar autodiff differentiates), else
    :class:`InvalidArgumentError` naming ``what`` and what it returned.

    Examples
    --------
    >>> import numpy as np
    >>> scalar_statistic(np.ones(1), "statistic").shape   # one element: autodiff reshapes it
    (1,)
    >>> scalar_statistic((np.ones(()), 0), "statistic")
    Traceback (most recent call last):
    ...
    evostrat.errors.InvalidArgumentError: statistic must return a scalar array (to ascend), got tuple
    """
    if not hasattr(value, "shape") or math.prod(tuple(value.shape)) != 1:
        got = f"shape {tuple(value.shape)}" if hasattr(value, "shape") else type(value).__name__
        raise InvalidArgumentError(f"{what} must return a scalar array (to ascend), got {got}")
    return value


def require_autodiff(statistic: Any, backend: Backend) -> None:
    """Refuse a custom ``statistic`` on a backend without autodiff, saying how to get one.

    Examples
    --------
    >>> from evostrat.backends import get_backend
    >>> require_autodiff(None, get_backend("numpy"))   # the default statistic: closed form
    >>> require_autodiff(len, get_backend("numpy"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    evostrat.errors.InvalidArgumentError: statistic: a custom statistic needs autodiff, ...
    """
    if statistic is not None and not backend.has_autodiff:
        raise InvalidArgumentError(
            f"statistic: a custom statistic needs autodiff, which the {backend.name} backend lacks (it "
            "supports only the default statistic, statistic=None); run on torch or JAX: "
            "ES(..., backend='torch') or backend='jax', or an x0 that is a torch tensor or a JAX array")


def gradient(fn: Callable[..., Array], params: Sequence[Array], backend: Backend) -> tuple:
    """Gradient of the scalar ``fn(*params)`` w.r.t. each of ``params``: :meth:`Backend.grad`."""
    return backend.grad(fn, params)


class CallableModule(types.ModuleType):
    """This module, callable as its function :func:`expectation`.

    ``evostrat.expectation`` is this module, so both documented spellings work:
    ``evostrat.expectation(values, sample, p)`` calls :func:`expectation`, and
    ``evostrat.expectation.expectation_grad`` (or ``import evostrat.expectation as E``)
    reaches the module's other names.

    Examples
    --------
    >>> import numpy as np
    >>> import evostrat
    >>> from evostrat.distributions import Normal
    >>> p = Normal(np.zeros(1), 1.0)
    >>> x = np.array([[1.0], [3.0]])
    >>> float(evostrat.expectation(x[:, 0], x, p)), callable(evostrat.expectation.expectation_grad)
    (2.0, True)
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Array:
        """Call :func:`expectation` with the same arguments."""
        return expectation(*args, **kwargs)

    def __reduce__(self) -> tuple[Callable[[str], types.ModuleType], tuple[str]]:
        """Pickled by name, as cloudpickle pickles modules (a function using ``expectation`` as a
        global travels to process pools and Ray), and ``copy.deepcopy`` gives the module itself."""
        import importlib

        return importlib.import_module, (self.__name__,)

    @property
    def __signature__(self) -> Any:
        """The signature of :func:`expectation` (``inspect.signature(evostrat.expectation)``)."""
        import inspect

        return inspect.signature(expectation)


sys.modules[__name__].__class__ = CallableModule
