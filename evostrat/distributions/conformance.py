"""Conformance checks for authors of search distributions (``evostrat.testing.check_distribution``).

The contract is the ``evostrat_distributions`` hook specification (:mod:`evostrat.hookspecs`):
parameters as pytree leaves built by ``search_init``, addressable draws from ``noise_dim``
standard normals, ``log_prob``/``entropy``/``marginal_scale``, closed-form scores on numpy
that agree with autodiff, an optional ``natural_gradient``. :func:`check_distribution` runs
it on every installed backend and a short NES search on numpy, and raises
:class:`~evostrat.errors.ConformanceError` naming the first failed check and what it requires.

Examples
--------
>>> from evostrat.distributions.normal import DiagNormal
>>> check_distribution(DiagNormal, backends=["numpy"], budget=100)
['search_init', 'pytree', 'sample', 'densities', 'score', 'natural_gradient', 'search']
"""

from __future__ import annotations

import importlib.util
import math
from typing import Any, Mapping, Sequence

import numpy as np

from evostrat.backends import Backend, get_backend
from evostrat.distributions.base import Distribution
from evostrat.errors import ConformanceError
from evostrat.strategies.nes import NES

__all__ = ["DISTRIBUTION_CHECKS", "check_distribution", "require"]

#: Check name -> what the contract requires (the second half of every failure message).
DISTRIBUTION_CHECKS: dict[str, str] = {
    "search_init": "search_init(mean, sigma, **options) returns an instance of the class whose parameters "
                   "(param_names, the location first, of shape (d,) and equal to mean) are arrays of mean's "
                   "backend, dtype and device, with batch_shape + event_shape == (d,) and marginal_scale() "
                   "a positive finite (d,) array",
    "pytree": "tree_flatten() gives the parameters in param_names order and tree_unflatten rebuilds an "
              "equal distribution; retract({}) leaves it unchanged",
    "sample": "sample_rows(key, rows) returns finite, distinct draws of shape (len(rows), d) on the "
              "parameters' backend, dtype and device, row r a function of key and r alone (transform_noise "
              "reads noise_dim standard normals per draw), the same when compiled (JAX), and "
              "rsample(n, key=...) has shape (n, d)",
    "densities": "log_prob(x) is a finite array of shape (n,) for draws x of shape (n, d), the same when "
                 "compiled (JAX), and entropy() a finite 0-d array",
    "score": "score(x) (numpy) maps every name of param_names to the gradient of log_prob of each draw, "
             "of shape (n,) + the parameter's shape, equal to central finite differences of log_prob "
             "(along a random direction, symmetric for a symmetric matrix), "
             "and weighted_score(x, w) to what autodiff of sum_i w_i log_prob(x_i) gives on torch and JAX",
    "natural_gradient": "natural_gradient(grads) is None (no Fisher information) or maps every parameter "
                        "to a finite array of its shape that is an ascent direction: the sum of "
                        "<natural_gradient(g), local_gradient(g)> is positive (F^-1 is positive definite)",
    "search": "NES(distribution=...) on the sphere sum(x**2) brings the mean's value below `fraction` "
              "times its value at x0 within `budget` generations (numpy)",
}


def require(ok: Any, check: str, label: str, detail: str, checks: Mapping[str, str] = DISTRIBUTION_CHECKS) -> None:
    """Raise :class:`~evostrat.errors.ConformanceError` unless ``ok``: ``label`` fails ``check``
    (``detail``: what was found), with the requirement ``checks[check]``.

    Examples
    --------
    >>> require(False, "pytree", "'normal'", "2 leaves for 3 parameters")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    evostrat.errors.ConformanceError: 'normal' fails check 'pytree': 2 leaves for 3 parameters. Required: ...
    """
    if not ok:
        raise ConformanceError(f"{label} fails check {check!r}: {detail}. Required: {checks[check]}")


def _cases(backends: Sequence[str] | None) -> list[Backend]:
    names = backends or [n for n in ("numpy", "torch", "jax") if importlib.util.find_spec(n)]
    return [get_backend(n) for n in names]


def _host(x: Any, be: Backend) -> np.ndarray:
    return np.array(be.to_numpy(x), copy=True)


def _start(cls: type, be: Backend, dim: int, options: dict[str, Any]) -> tuple[Any, Any, Any]:
    """``(p, mean, sigma)``: ``cls.search_init`` on ``be`` (float64 on the host, else float32)."""
    dtype = be.dtype_from_name("float64" if be.host_arrays else "float32")
    mean = be.asarray(np.linspace(0.5, 1.5, dim), dtype=dtype)
    sigma = be.asarray(np.linspace(0.5, 1.0, dim), dtype=dtype)
    return cls.search_init(mean, sigma, **options), mean, sigma


def _check_search_init(cls: type, p: Any, mean: Any, be: Backend, label: str) -> None:
    check, dim = "search_init", int(mean.shape[0])
    require(isinstance(p, cls), check, label, f"search_init returned {type(p).__name__}")
    names = tuple(p.param_names)
    require(len(names) > 0 and all(isinstance(n, str) for n in names), check, label, f"param_names is {names!r}")
    for name, value in p.params().items():
        require(be.owns(value) and value.dtype == mean.dtype and be.device(value) == be.device(mean), check, label,
                 f"parameter {name!r} is {type(value).__name__} of dtype {getattr(value, 'dtype', None)}, "
                 f"mean is {type(mean).__name__} of dtype {mean.dtype}")
    loc = getattr(p, names[0])
    require(tuple(loc.shape) == (dim,) and np.array_equal(_host(loc, be), _host(mean, be)), check, label,
             f"the location {names[0]!r} is {_host(loc, be)}, mean {_host(mean, be)}")
    shape = tuple(p.batch_shape) + tuple(p.event_shape)
    require(shape == (dim,), check, label, f"batch_shape + event_shape is {shape}")
    scale = p.marginal_scale()
    host = _host(scale, be) if be.owns(scale) else np.asarray(scale)
    require(be.owns(scale) and host.shape == (dim,) and np.all(np.isfinite(host) & (host > 0)), check, label,
             f"marginal_scale() is {type(scale).__name__} {host!r}")


def _check_pytree(p: Any, be: Backend, label: str) -> None:
    leaves, aux = p.tree_flatten()
    require(len(leaves) == len(p.param_names), "pytree", label,
             f"tree_flatten() gave {len(leaves)} leaves for param_names {p.param_names}")
    for rebuilt in (type(p).tree_unflatten(aux, tuple(leaves)), p.retract({})):
        same = type(rebuilt) is type(p) and all(
            np.array_equal(_host(a, be), _host(b, be)) for a, b in zip(rebuilt.params().values(), p.params().values()))
        require(same, "pytree", label, f"the rebuilt distribution {rebuilt!r} differs from {p!r}")


def _check_sample(p: Any, be: Backend, n: int, seed: int, label: str) -> Any:
    check, dim = "sample", int(p.event_shape[0])
    key = be.key(seed)
    X = p.sample_rows(key, range(n))
    require(be.owns(X) and tuple(X.shape) == (n, dim) and X.dtype == p.dtype and be.device(X) == p.device, check,
             label, f"sample_rows(key, range({n})) gave {type(X).__name__} of shape {tuple(getattr(X, 'shape', ()))} "
             f"and dtype {getattr(X, 'dtype', None)} (noise_dim is {p.noise_dim})")
    host = _host(X, be)
    require(np.all(np.isfinite(host)) and len(np.unique(host, axis=0)) == n, check, label,
             f"sample_rows(key, range({n})) has non-finite or repeated rows: {host}")
    alone = _host(p.sample_rows(key, [n - 2]), be)
    require(np.allclose(alone[0], host[n - 2], rtol=1e-6, atol=1e-6), check, label,
             f"row {n - 2} drawn alone is {alone[0]}, among rows 0..{n - 1} {host[n - 2]}")
    require(tuple(p.rsample(3, key=seed).shape) == (3, dim), check, label, "rsample(3) has another shape")
    if be.traceable:
        leaves, aux = p.tree_flatten()
        program = be.compile(lambda k, *ls: type(p).tree_unflatten(aux, ls).sample_rows(k, range(n)))
        require(np.allclose(_host(program(key, *leaves), be), host, rtol=1e-5, atol=1e-5), check, label,
                 "sample_rows compiled gives other draws than eagerly")
    return X


def _check_densities(p: Any, X: Any, be: Backend, label: str) -> None:
    check, n = "densities", int(X.shape[0])
    lp = p.log_prob(X)
    host = _host(lp, be)
    require(be.owns(lp) and host.shape == (n,) and np.all(np.isfinite(host)), check, label,
             f"log_prob of {n} draws gave {type(lp).__name__} {host!r}")
    h = p.entropy()
    require(be.owns(h) and tuple(h.shape) == () and math.isfinite(float(_host(h, be))), check, label,
             f"entropy() gave {type(h).__name__} {h!r}")
    if be.traceable:
        leaves, aux = p.tree_flatten()
        program = be.compile(lambda x, *ls: type(p).tree_unflatten(aux, ls).log_prob(x))
        require(np.allclose(_host(program(X, *leaves), be), host, rtol=1e-4, atol=1e-4), check, label,
                 "log_prob compiled gives other values than eagerly")


def _moved(p: Any, name: str, direction: np.ndarray, step: float) -> Any:
    leaves, aux = p.tree_flatten()
    i = p.param_names.index(name)
    value = np.asarray(leaves[i], dtype=np.float64) + step * direction
    return type(p).tree_unflatten(aux, tuple(value if j == i else leaf for j, leaf in enumerate(leaves)))


def _check_score(p: Any, X: np.ndarray, seed: int, label: str) -> dict[str, np.ndarray]:
    """Closed-form scores (numpy, float64) against central finite differences of ``log_prob``
    along a random direction of each parameter (symmetric for a symmetric matrix)."""
    check, n = "score", X.shape[0]
    score, rng = p.score(X), np.random.default_rng(seed)
    require(isinstance(score, dict) and set(score) == set(p.param_names), check, label,
             f"score(x) has the keys {sorted(score) if isinstance(score, dict) else type(score).__name__}, "
             f"param_names are {list(p.param_names)}")
    for name, value in p.params().items():
        got, value = np.asarray(score[name]), np.asarray(value)
        require(got.shape == (n,) + value.shape, check, label,
                 f"score(x)[{name!r}] has shape {got.shape} for {n} draws of a parameter of shape {value.shape}")
        v = rng.standard_normal(value.shape)
        if value.ndim == 2 and value.shape[0] == value.shape[1] and np.allclose(value, value.T):
            v = (v + v.T) / 2
        h = 1e-6 * max(1.0, float(np.max(np.abs(value))))
        fd = (np.asarray(_moved(p, name, v, h).log_prob(X)) - np.asarray(_moved(p, name, v, -h).log_prob(X))) / (2 * h)
        closed = np.sum(got.reshape(n, -1) * v.reshape(-1), axis=1)
        require(np.allclose(closed, fd, rtol=1e-4, atol=1e-5 * max(1.0, float(np.max(np.abs(fd))))), check, label,
                 f"the derivative of log_prob along a direction of {name!r} is {closed} by score(x), "
                 f"{fd} by finite differences")
    return score


def _check_autodiff(p_host: Any, p: Any, X: np.ndarray, w: np.ndarray, be: Backend, label: str) -> None:
    """``weighted_score`` on numpy against autodiff of ``sum_i w_i log_prob(x_i)`` on ``be``."""
    leaves, aux = p.tree_flatten()
    xs, ws = be.asarray(X, dtype=p.dtype, device=p.device), be.asarray(w, dtype=p.dtype, device=p.device)
    grads = be.grad(lambda *ls: be.xp.sum(ws * type(p).tree_unflatten(aux, ls).log_prob(xs)), list(leaves))
    closed = p_host.weighted_score(X, w)
    for name, g in zip(p.param_names, grads):
        a, b = _host(g, be), np.asarray(closed[name])
        tol = 1e-6 if be.dtype_name(p.dtype) == "float64" else 1e-3
        require(a.shape == b.shape and np.allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.max(np.abs(b))))),
                 "score", label, f"on {be.name} autodiff gives {a} for {name!r}, weighted_score on numpy {b}")


def _check_natural(p: Any, be: Backend, seed: int, label: str) -> None:
    check = "natural_gradient"
    rng = np.random.default_rng(seed)
    g = {k: be.asarray(rng.standard_normal(tuple(v.shape)), dtype=v.dtype, device=be.device(v))
         for k, v in p.params().items()}
    ng = p.natural_gradient(g)
    if ng is None:
        return
    require(isinstance(ng, dict) and set(ng) == set(p.param_names), check, label,
             f"natural_gradient returned {type(ng).__name__} with keys {sorted(ng) if isinstance(ng, dict) else None}")
    local = p.local_gradient(g)
    inner = 0.0
    for name, value in p.params().items():
        a = _host(ng[name], be)
        require(a.shape == tuple(value.shape) and np.all(np.isfinite(a)), check, label,
                 f"natural_gradient(g)[{name!r}] is {a!r} for a parameter of shape {tuple(value.shape)}")
        inner += float(np.sum(a * _host(local[name], be)))
    require(inner > 0, check, label, f"sum <natural_gradient(g), local_gradient(g)> = {inner:.3g}")


def _check_search(cls: type, options: dict[str, Any], dim: int, seed: int, budget: int, fraction: float,
                  label: str) -> None:
    s = NES(distribution=cls, distribution_options=options or None)
    x0 = np.linspace(0.5, 1.5, dim)
    state, start, best = s.init(x0, random_state=seed), float(np.sum(x0**2)), math.inf
    for _ in range(budget):
        X, state = s.ask(state)
        state = s.tell(state, X, np.sum(np.asarray(X) ** 2, axis=1))
        best = min(best, float(np.sum(np.asarray(s.mean(state)) ** 2)))
        if best <= fraction * start:
            return
    require(False, "search", label, f"the best mean's value after {budget} generations is {best:.3g} (from {start:.3g})")


def check_distribution(distribution: type, *, options: dict[str, Any] | None = None,
                       backends: Sequence[str] | None = None, dim: int = 3, seed: int = 0, n: int = 8,
                       budget: int = 300, fraction: float = 1e-2) -> list[str]:
    """Run the conformance checks of `DISTRIBUTION_CHECKS` on a family; raise on the first failure.

    Parameters
    ----------
    distribution : Distribution subclass
        The family, as its ``evostrat_distributions`` hook returns it.
    options : dict, optional
        ``distribution_options`` given to ``search_init``.
    backends : list of str, optional
        Backend names; default numpy, then torch and JAX where importable (float32 there).
    dim : int
        Dimension of the distributions, centred at ``linspace(0.5, 1.5, dim)``.
    seed : int
        Key of the draws.
    n : int
        Draws per check (at least 2).
    budget, fraction : int, float
        The ``search`` check: NES on the sphere must bring the mean's value to ``fraction`` of
        its value at the start within ``budget`` generations.

    Returns
    -------
    list of str
        The names of the checks that ran, in the order of `DISTRIBUTION_CHECKS`.

    Raises
    ------
    ConformanceError
        An ``AssertionError`` naming the failed check and what the contract requires.
    """
    if not (isinstance(distribution, type) and issubclass(distribution, Distribution)):
        raise ConformanceError(f"distribution must be a subclass of evostrat.distributions.Distribution, "
                               f"got {distribution!r}")
    label, options, stage = f"distribution {distribution.__name__}", dict(options or {}), "search_init on numpy"
    try:
        numpy = get_backend("numpy")
        host, mean, _ = _start(distribution, numpy, dim, options)
        _check_search_init(distribution, host, mean, numpy, f"{label} on numpy")
        stage = "sample on numpy"
        X_host = _host(_check_sample(host, numpy, max(2, n), seed, f"{label} on numpy"), numpy)
        w = np.random.default_rng(seed).standard_normal(X_host.shape[0])
        stage = "score on numpy"
        _check_score(host, X_host, seed, f"{label} on numpy")
        for be in _cases(backends):
            stage = f"search_init on {be.name}"
            p, mean, _ = _start(distribution, be, dim, options)
            _check_search_init(distribution, p, mean, be, f"{label} on {be.name}")
            stage = f"pytree on {be.name}"
            _check_pytree(p, be, f"{label} on {be.name}")
            stage = f"sample on {be.name}"
            X = _check_sample(p, be, max(2, n), seed, f"{label} on {be.name}")
            stage = f"densities on {be.name}"
            _check_densities(p, X, be, f"{label} on {be.name}")
            if be.has_autodiff:
                stage = f"score on {be.name}"
                _check_autodiff(host, p, X_host, w, be, f"{label} on {be.name}")
            stage = f"natural_gradient on {be.name}"
            _check_natural(p, be, seed, f"{label} on {be.name}")
        stage = "search"
        _check_search(distribution, options, dim, seed, budget, fraction, label)
    except ConformanceError:
        raise
    except Exception as err:  # noqa: BLE001 - a family that crashes fails the check it was in
        hint = " (does transform_noise read noise_dim standard normals per draw?)" if stage.startswith("sample") else ""
        raise ConformanceError(f"{label} raised {type(err).__name__} during {stage}: {err}{hint}. "
                               f"Required: {DISTRIBUTION_CHECKS[stage.split()[0]]}") from err
    return list(DISTRIBUTION_CHECKS)
