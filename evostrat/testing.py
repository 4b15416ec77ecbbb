"""Conformance checks for strategy authors, as scikit-learn's ``check_estimator``.

A plugin's own test suite calls `check_strategy` on its strategy class (or an
instance): it runs the contract of `evostrat.strategies.base.Strategy` on every
installed backend (numpy always, torch and JAX when importable) and raises
`ConformanceError` naming the first failed check and what the contract requires.
`CHECKS` lists the checks. torch and JAX are imported only when checked. A search
distribution's author calls `check_distribution` (its checks: `DISTRIBUTION_CHECKS`).

Examples
--------
>>> from evostrat.strategies.snes import SNES
>>> from evostrat.testing import check_strategy
>>> check_strategy(SNES, backends=["numpy"], budget=60)
['params', 'capabilities', 'contract', 'ask', 'pure', 'seed', 'state_dict', 'progress']
"""

from __future__ import annotations

import functools
import importlib.util
import io
import json
from typing import Any, Sequence

import numpy as np
from array_api_compat import array_namespace

from evostrat.backends import Backend, get_backend
from evostrat.backends.trees import field_names
from evostrat.distributions.conformance import DISTRIBUTION_CHECKS, check_distribution, require
from evostrat.errors import ConformanceError, EvostratError
from evostrat.run.state_arrays import state_from_numpy, state_to_numpy
from evostrat.run.termination_defaults import strategy_history_criteria
from evostrat.strategies.checked import checked_state

__all__ = ["CHECKS", "DISTRIBUTION_CHECKS", "ConformanceError", "check_distribution", "check_strategy",
           "roundtrip_state_dict", "sphere_values"]

#: Check name -> what the contract requires (the second half of every failure message).
CHECKS: dict[str, str] = {
    "params": "hyper-parameters are the __init__ arguments stored under their names: get_params() "
              "lists them, the defaults pass validate_params(), set_params() rejects unknown names, "
              "and a clone type(s)(**s.get_params()) behaves like the original",
    "capabilities": "needs_behaviours is a bool, min_popsize <= the resolved popsize, "
                    "termination_defaults holds only valid tolfunhist/tolstagnation/tolflatfitness "
                    "values, stop(state) maps names to bools, evolvability(state) is 0-d, "
                    "population_seed(state) is None or rebuilds exactly the population ask returns, "
                    "and ask, tell, stop and sigma of a clone with other values of initial_only_params "
                    "give the same results on the same state",
    "contract": "init(x0, random_state=...) returns a NamedTuple state with the fields mean and key "
                "(and sigma unless sigma(state) is overridden); mean(state) is a (dim,) array and "
                "sigma(state) a positive finite 0-d array, on x0's backend, dtype and device; tell returns "
                "a state of the type it was given",
    "ask": "ask(state) returns (X, state) with X a finite (popsize, dim) array of distinct rows "
           "on the state's backend, dtype and device",
    "pure": "init, ask and tell are pure: the same inputs give the same outputs, and neither "
            "their inputs nor the strategy's hyper-parameters are mutated",
    "seed": "a run is reproducible from its seed: the same random_state gives the same "
            "populations bit for bit, another seed other populations, and ask returns the split key "
            "(a state whose key differs from the one it was given)",
    "state_dict": "the state survives state_to_numpy -> .npz + JSON (no pickle) -> state_from_numpy, "
                  "and the resumed run continues bit for bit",
    "cross_backend": "tell with the same population and values gives the same update on every "
                     "backend within float tolerance (tell reads no randomness)",
    "progress": "on the sphere sum(x**2) the mean's value falls below `fraction` times its value "
                "at x0 within `budget` generations (strategies that need behaviours are exempt)",
}


#: :func:`~evostrat.distributions.conformance.require` with this module's requirements.
_require = functools.partial(require, checks=CHECKS)


def sphere_values(X: Any, behaviours: bool = False) -> Any:
    """What the checks tell for ``X``: sphere values ``(popsize,)``, or with ``behaviours``
    (a strategy's ``needs_behaviours``) descriptors ``(popsize, 2)``: ``x0 * x1`` and the sphere.

    Examples
    --------
    >>> import numpy as np
    >>> sphere_values(np.ones((3, 2))).tolist(), sphere_values(np.ones((3, 2)), behaviours=True).shape
    ([2.0, 2.0, 2.0], (3, 2))
    """
    xp = array_namespace(X)
    f = xp.sum(X * X, axis=1)
    return xp.stack([X[:, 0] * X[:, 1], f], axis=1) if behaviours else f


def roundtrip_state_dict(state_dict: dict[str, Any]) -> dict[str, Any]:
    """``state_dict`` sent through ``np.savez`` and JSON (its arrays under ``"arrays"``),
    refusing pickles on the way back, as a checkpoint file does.

    Examples
    --------
    >>> import numpy as np
    >>> roundtrip_state_dict({"generation": 3, "arrays": {"mean": np.zeros(2)}})["arrays"]["mean"]
    array([0., 0.])
    """
    arrays = state_dict.get("arrays", {})
    meta = {k: v for k, v in state_dict.items() if k != "arrays"}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as data:
        loaded = {k: data[k] for k in data.files}
    return {**json.loads(json.dumps(meta)), "arrays": loaded}


def _cases(backends: Sequence[str] | None) -> list[tuple[Backend, Any]]:
    """(backend, float dtype) to check: numpy float64, torch and JAX float32 where installed."""
    names = backends or [n for n in ("numpy", "torch", "jax") if importlib.util.find_spec(n)]
    return [(be, be.dtype_from_name("float64" if be.host_arrays else "float32"))
            for be in map(get_backend, names)]


def _host(x: Any, be: Backend) -> np.ndarray:
    return np.array(be.to_numpy(x), copy=True)


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)


def _init(s: Any, x0: Any, seed: int, label: str) -> Any:
    """``s.init(x0, random_state=seed)``; its contract errors (``strategies.base.check_strategy``,
    run once by ``Strategy.init``) as a failed ``contract`` check."""
    try:
        return s.init(x0, random_state=seed)
    except EvostratError as err:
        _require(False, "contract", label, f"init raised {type(err).__name__}: {err}")


def _run(s: Any, state: Any, be: Backend, generations: int) -> tuple[Any, list[np.ndarray]]:
    """``generations`` ask/tell steps on the sphere: the final state and each population."""
    Xs = []
    for _ in range(generations):
        X, state = s.ask(state)
        state = s.tell(state, X, sphere_values(X, s.needs_behaviours))
        Xs.append(_host(X, be))
    return state, Xs


def _transfer(ref: Any, template: Any, be: Backend) -> Any:
    """The numpy state ``ref`` on ``be``, each leaf cast like ``template``'s (whose keys stay)."""
    if field_names(template):
        return type(template)(*(t if f == "key" else _transfer(r, t, be)
                                for f, r, t in zip(field_names(template), ref, template)))
    if isinstance(template, (tuple, list)):
        return type(template)(_transfer(r, t, be) for r, t in zip(ref, template))
    if be.owns(template) and hasattr(template, "dtype"):
        return be.asarray(np.asarray(ref), dtype=template.dtype, device=be.device(template))
    return ref


def _check_params(s: Any, x0: np.ndarray, seed: int, label: str) -> None:
    try:
        params = s.get_params(deep=False)
        s.validate_params()
        clone = type(s)(**params)
    except (AttributeError, TypeError, EvostratError) as err:
        _require(False, "params", label, f"{type(err).__name__}: {err}")
    _require(repr(clone.get_params(deep=False)) == repr(params), "params", label,
             "a clone's get_params() differs from the original's")
    try:
        s.set_params(not_a_parameter_of_any_strategy=1)
        rejected = False
    except ValueError:  # evostrat's InvalidArgumentError
        rejected = True
    _require(rejected, "params", label, "set_params(not_a_parameter_of_any_strategy=1) was accepted")
    X1, X2 = (o.ask(_init(o, x0, seed, label))[0] for o in (s, clone))
    _require(np.array_equal(X1, X2), "params", label, "a clone asks a different first population")


def _check_capabilities(s: Any, state: Any, X: Any, be: Backend, label: str) -> None:
    popsize = s.resolved_popsize(int(X.shape[1]))
    _require(isinstance(s.needs_behaviours, bool), "capabilities", label, "needs_behaviours is not a bool")
    _require(s.min_popsize <= popsize, "capabilities", label, f"min_popsize {s.min_popsize} > popsize {popsize}")
    try:
        strategy_history_criteria(s, int(X.shape[1]), popsize)
    except EvostratError as err:
        _require(False, "capabilities", label, str(err))
    stops = s.stop(state)
    _require(isinstance(stops, dict) and all(isinstance(k, str) and bool(v) in (True, False)
                                              for k, v in stops.items()),
             "capabilities", label, f"stop(state) returned {stops!r}")
    _require(getattr(s.evolvability(state), "ndim", None) == 0, "capabilities", label,
             "evolvability(state) is not a 0-d array")
    seed = s.population_seed(state)
    if seed is not None:
        rows = seed.rows(0, popsize)
        _require(np.allclose(rows, _host(X, be), rtol=1e-6, atol=1e-12), "capabilities", label,
                 "population_seed(state).rows(0, popsize) differs from ask(state)'s population")
    _check_initial_only(s, state, be, label)


def _check_initial_only(s: Any, state: Any, be: Backend, label: str) -> None:
    """Each of ``initial_only_params`` (numbers: doubled) changes nothing but ``initial_state``."""
    def outputs(strategy: Any) -> dict[str, np.ndarray]:  # a generation's population, state and read-outs
        X, asked = strategy.ask(state)
        told = strategy.tell(asked, X, sphere_values(X, strategy.needs_behaviours))
        stops = {f"stop {k}": np.asarray(bool(v)) for k, v in strategy.stop(told).items()}
        return {"X": _host(X, be), "sigma": _host(strategy.sigma(told), be), **state_to_numpy(told, be), **stops}

    params = s.get_params(deep=False)
    for name in sorted(s.initial_only_params):
        _require(name in params, "capabilities", label, f"initial_only_params names {name!r}, not a hyper-parameter")
        try:
            other = type(s)(**{**params, name: np.asarray(params[name], dtype=np.float64) * 2.0})
        except (TypeError, ValueError, EvostratError):  # not a number: nothing to compare
            continue
        _require(_same(outputs(s), outputs(other)), "capabilities", label,
                 f"ask/tell/stop/sigma read the initial-only {name!r}")


def _check_backend(s: Any, be: Backend, dtype: Any, host_x0: np.ndarray, seed: int,
                   generations: int, label: str) -> tuple[Any, Any]:
    """The per-backend checks; returns the state after the first ask and its population."""
    label, snap = f"{label} on {be.name}", (lambda tree: state_to_numpy(tree, be))
    x0 = be.asarray(host_x0, dtype=dtype)
    state = _init(s, x0, seed, label)
    for what, value in (("mean(state)", s.mean(state)), ("sigma(state)", s.sigma(state))):
        _require(be.owns(value) and value.dtype == dtype and be.device(value) == be.device(x0), "contract",
                 label, f"{what} is a {type(value).__name__} of dtype {getattr(value, 'dtype', None)}")
    sigma = float(_host(s.sigma(state), be))
    _require(np.isfinite(sigma) and sigma > 0, "contract", label, f"sigma(state) is {sigma}")
    before, params = snap(state), repr(s.get_params(deep=False))
    (X, asked), (X2, asked2) = s.ask(state), s.ask(state)
    n, dim = s.resolved_popsize(host_x0.shape[0]), host_x0.shape[0]
    shape = tuple(getattr(X, "shape", ()))
    _require(shape == (n, dim), "ask", label, f"X has shape {shape}, expected {(n, dim)}")
    _require(be.owns(X) and X.dtype == dtype and be.device(X) == be.device(x0), "ask", label,
             f"X is a {type(X).__name__} of dtype {X.dtype}, expected {dtype} on {be.device(x0)}")
    hX = _host(X, be)
    _require(np.all(np.isfinite(hX)) and len({r.tobytes() for r in hX}) == n, "ask", label,
             "X has non-finite values or repeated rows")
    _require(_same(before, snap(state)), "pure", label, "ask mutated its state")
    _require(np.array_equal(hX, _host(X2, be)) and _same(snap(asked), snap(asked2)), "pure", label,
             "ask(state) twice gave different results")
    f = sphere_values(X, s.needs_behaviours)
    inputs = (snap(asked), _host(f, be))
    told, told2 = s.tell(asked, X, f), s.tell(asked, X, f)
    try:
        checked_state(s, told, "tell", asked)
    except EvostratError as err:
        _require(False, "contract", label, str(err))
    _require(_same(snap(told), snap(told2)), "pure", label, "tell(state, X, values) twice gave different states")
    _require(_same(inputs[0], snap(asked)) and np.array_equal(hX, _host(X, be))
             and np.array_equal(inputs[1], _host(f, be)), "pure", label, "tell mutated its inputs")
    _require(repr(s.get_params(deep=False)) == params, "pure", label, "ask or tell changed a hyper-parameter")
    again, Xs = _run(s, _init(s, x0, seed, label), be, generations)
    # the population a run asks: compiled where the backend compiles (as ES and the workers that
    # rebuild rows from population_seed run it; eager JAX may round a last bit differently)
    _check_capabilities(s, again, be.compile(s.ask)(again)[0], be, label)
    _require(all(np.array_equal(a, b) for a, b in zip(Xs, _run(s, _init(s, x0, seed, label), be, generations)[1])),
             "seed", label, "two runs with the same random_state differ")
    _require(not np.array_equal(hX, _host(s.ask(_init(s, x0, seed + 1, label))[0], be)), "seed", label,
             f"random_state={seed} and {seed + 1} ask the same population")
    keys = [snap(st).get("key") for st in (state, asked)]
    _require(keys[0] is None or not np.array_equal(*keys), "seed", label,
             "ask returned the key it was given: every generation would draw the same noise")
    try:
        arrays = roundtrip_state_dict({"arrays": snap(again)})["arrays"]
        restored = state_from_numpy(_init(s, x0, seed + 1, label), arrays, be, be.device(x0))
    except (EvostratError, TypeError, ValueError) as err:
        _require(False, "state_dict", label, f"{type(err).__name__}: {err}")
    resumed = [_run(s, st, be, generations)[1] for st in (again, restored)]
    _require(all(np.array_equal(a, b) for a, b in zip(*resumed)), "state_dict", label,
             "the restored state continues differently")
    return asked, X


def _check_cross_backend(s: Any, ref: tuple[Backend, Any, Any], be: Backend, dtype: Any,
                         host_x0: np.ndarray, rtol: float, label: str) -> None:
    """``tell`` on ``be`` from the reference backend's state and population (cast to ``dtype``)."""
    ref_be, ref_state, ref_X = ref
    X = be.asarray(_host(ref_X, ref_be), dtype=dtype)
    template = s.ask(s.init(be.asarray(host_x0, dtype=dtype)))[1]
    new = s.tell(_transfer(ref_be.to_host(ref_state), template, be), X, sphere_values(X, s.needs_behaviours))
    X_ref = ref_be.asarray(_host(X, be))  # the same numbers on the reference backend
    ref_new = s.tell(ref_state, X_ref, sphere_values(X_ref, s.needs_behaviours))
    for read in (s.mean, s.sigma):
        a, b = _host(read(new), be), _host(read(ref_new), ref_be)
        _require(np.allclose(a, b, rtol=rtol, atol=rtol * 1e-2), "cross_backend", f"{label} on {be.name}",
                 f"{read.__name__}(state) after tell is {a}, on {ref_be.name} {b}")


def _check_progress(s: Any, host_x0: np.ndarray, seed: int, budget: int, fraction: float, label: str) -> None:
    state, be = s.init(host_x0, random_state=seed), get_backend("numpy")
    start, best = float(np.sum(host_x0**2)), np.inf
    for _ in range(budget):
        X, state = s.ask(state)
        state = s.tell(state, X, sphere_values(X, s.needs_behaviours))
        best = min(best, float(np.sum(_host(s.mean(state), be) ** 2)))
        if best <= fraction * start:
            return
    _require(False, "progress", label,
             f"the best mean's value after {budget} generations is {best:.3g} (from {start:.3g})")


def check_strategy(strategy: Any, *, backends: Sequence[str] | None = None, dim: int = 4, seed: int = 0,
                   generations: int = 3, budget: int = 300, fraction: float = 1e-2,
                   rtol: float = 1e-3) -> list[str]:
    """Run the conformance checks of `CHECKS` on ``strategy``; raise on the first failure.

    Parameters
    ----------
    strategy : Strategy subclass or instance
        A class is instantiated with its defaults.
    backends : list of str, optional
        Backend names; default numpy, then torch and JAX where importable (float32 there).
    dim : int
        Dimension of the runs, from ``x0 = linspace(0.5, 1.5, dim)``.
    seed : int
        ``random_state`` of the runs (``seed + 1`` must give other populations).
    generations : int
        Generations run before the seed and ``state_dict`` comparisons.
    budget : int
        The ``progress`` check (numpy): generations allowed on the sphere.
    fraction : float
        The ``progress`` check: the mean's sphere value must fall to ``fraction`` of
        its value at ``x0``.
    rtol : float
        Relative tolerance of ``cross_backend`` (absolute: ``rtol / 100``).

    Returns
    -------
    list of str
        The names of the checks that ran, in the order of `CHECKS`.

    Raises
    ------
    ConformanceError
        An ``AssertionError`` naming the failed check and what the contract requires.

    Examples
    --------
    >>> from evostrat.strategies.xnes import XNES
    >>> "progress" in check_strategy(XNES(popsize=8), backends=["numpy"], budget=100)
    True
    """
    s = strategy() if isinstance(strategy, type) else strategy
    label, host_x0, stage = f"strategy {type(s).__name__}", np.linspace(0.5, 1.5, dim), "params"
    cases, ref = _cases(backends), None
    try:
        _check_params(s, host_x0, seed, label)
        for be, dtype in cases:
            stage = f"the checks on {be.name}"
            asked, X = _check_backend(s, be, dtype, host_x0, seed, generations, label)
            if ref is None:
                ref = (be, asked, X)
            else:
                stage = f"cross_backend on {be.name}"
                _check_cross_backend(s, ref, be, dtype, host_x0, rtol, label)
        stage = "progress"
        if not s.needs_behaviours:
            _check_progress(s, host_x0, seed, budget, fraction, label)
    except ConformanceError:
        raise
    except Exception as err:  # noqa: BLE001 - a strategy that crashes fails the check it was in
        raise ConformanceError(f"{label} raised {type(err).__name__} during {stage}: {err}") from err
    skipped = {"cross_backend"} if len(cases) < 2 else set()
    return [c for c in CHECKS if c not in skipped | ({"progress"} if s.needs_behaviours else set())]
