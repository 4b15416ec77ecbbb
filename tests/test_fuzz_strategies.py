"""Property-based fuzzing of every registered strategy on every backend (issue 10).

The strategy list comes from the plugin registry, so a strategy added later is
fuzzed without editing this file; strategies with ``needs_behaviours = True``
are told behaviour matrices of shape ``(popsize, k)`` instead of fitness.

Properties (hypothesis, profile ``evostrat-ci`` of ``tests/hypothesis_profiles.py``:
a fixed seed per test and parametrisation, no deadline, fixed numbers of examples):

1. :func:`test_random_configurations_never_poison_the_state`: random dimension
   (1 to 50), population size (default or explicit), ``sigma0`` from 1e-8 to
   1e8 (scalar or per coordinate), ``x0`` of tiny, huge, constant or mixed
   magnitudes, random ``nonfinite`` policy, then several generations whose
   fitness contains NaN, +inf, -inf, ties, constants, integers, huge and tiny
   values and values of both signs near the dtype's largest finite value
   (behaviours: random, constant, tied, huge, extreme and tiny entries,
   constant columns, ``(popsize,)`` vectors, fitness pairs, non-finite entries). Every call either works as documented (finite
   population of the right shape, dtype and device; a
   :class:`~evostrat.errors.NonFiniteFitnessWarning` exactly when the policy is
   ``"warn"`` and a value is not finite) or raises the documented evostrat error
   (``nonfinite="raise"``, non-finite behaviours), after which the population
   is still pending and the state unchanged. After every ``tell`` every
   floating leaf of the state is finite, ``sigma`` is finite and positive and
   ``stop()`` returns booleans: never a NaN state, a hang or a crash.
2. :func:`test_misuse_raises_clear_errors`: every example makes every call of
   ``OPERATIONS`` once, in a random order, each maybe after a fresh ``ask``:
   correct ``tell`` calls and wrong ones, ``tell`` before ``ask``, twice, with a
   stale or foreign population, reordered rows, wrong shapes, dtypes, devices
   and kinds of ``X`` and ``values``. Each wrong call raises an
   :class:`~evostrat.EvostratError` that is also the matching built-in
   (``ValueError``/``TypeError``/``RuntimeError``), names the argument, and
   leaves the runner exactly as it was; each correct call succeeds.
3. :func:`test_estimator_fit_with_hostile_objectives`: ``ES(...).fit`` with
   objectives returning NaN/inf/ties/constants keeps ``x_``/``fun_`` sane.

JAX compiles ``ask``/``tell`` per shape (about 2 s each), so on JAX each
strategy is compiled once, for one dimension (``JAX_DIMS`` spread over the
registry: 1, 7, 50, 1, ...) and the default population size, and that runner is
reset for each example with ``load_state_dict`` of a freshly initialised state
(random ``x0`` and ``sigma0``); its non-finite policy is the default ``"warn"``
and behaviours have k = 2. numpy and torch build a fresh runner per example.

Cases run by default (CI): property 1 runs ``EXAMPLES[case]`` examples per
strategy and backend case (numpy 10, torch float32 6, torch float64 6, JAX 3;
CUDA 4 where present), property 2 ``MISUSE_EXAMPLES`` (numpy 8, torch 5 per
dtype, JAX 3; CUDA 3), property 3 ``FIT_EXAMPLES`` = 4 per strategy on numpy:
with the 9 built-in strategies and no CUDA, 225 + 189 + 36 = 450 hypothesis
cases, each one to twelve generations long; about 35 s on two cores.
The exact count of a run is printed at its end (``hypothesis cases run:``).
``EVOSTRAT_HYPOTHESIS_PROFILE=evostrat-soak`` runs 20 times as many, randomised.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from conftest import BACKEND_CASES, BackendCase, strategy_class, strategy_names, to_numpy
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_profiles import count_case, fixed_seed, fuzz_settings

from evostrat import ES
from evostrat.run.asktell import AskTell, state_to_numpy
from evostrat.errors import (
    EvostratError,
    InvalidArgumentError,
    InvalidTypeError,
    NonFiniteFitnessWarning,
    PopulationMismatchError,
    StateError,
)

STRATEGIES = strategy_names()
EXAMPLES = {"numpy": 10, "torch-float32": 6, "torch-float64": 6, "jax-float32": 3, "torch-cuda": 4}
MISUSE_EXAMPLES = {"numpy": 8, "torch-float32": 5, "torch-float64": 5, "jax-float32": 3, "torch-cuda": 3}
FIT_EXAMPLES = 4
#: On JAX each strategy is compiled for one dimension, spread over the registry: 1, 7, 50, 1, ...
JAX_DIMS = (1, 7, 50)
MISUSE_DIM = 4
BUILTIN_ERRORS = (ValueError, TypeError, RuntimeError, KeyError)

FITNESS_KINDS = (
    "sphere", "constant", "ties", "huge", "extreme", "tiny", "nan", "posinf", "neginf",
    "mixed_nonfinite", "all_nan", "all_posinf", "all_neginf", "ints",
)
BEHAVIOUR_KINDS = (
    "gaussian", "constant", "ties", "huge", "extreme", "tiny", "constant_column", "one_column",
    "with_fitness", "with_nonfinite_fitness", "nonfinite",
)


# -- helpers ---------------------------------------------------------------------------------


def _leaves(state: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for name, value in zip(state._fields, state):
        if hasattr(value, "_fields"):
            out.extend(_leaves(value, f"{prefix}{name}."))
        else:
            out.append((f"{prefix}{name}", value))
    return out


def assert_state_finite(runner: AskTell, context: str) -> None:
    """Every floating leaf of the state finite, sigma finite and positive, stop() booleans."""
    be = runner.backend
    for path, leaf in _leaves(runner.state):
        if path.rsplit(".", 1)[-1] == "key" or be.is_key(leaf):
            continue
        values = to_numpy(leaf)
        if np.issubdtype(values.dtype, np.floating):
            assert np.all(np.isfinite(values)), f"{context}: state leaf {path} = {values!r}"
    sigma = runner.sigma
    assert math.isfinite(sigma) and sigma > 0, f"{context}: sigma = {sigma!r}"
    stops = runner.strategy.stop(runner.state)
    assert all(isinstance(k, str) for k in stops), context
    assert all(bool(v) in (True, False) for v in stops.values()), context


def snapshot(runner: AskTell) -> dict[str, np.ndarray]:
    return state_to_numpy(runner.state, runner.backend)


def assert_unchanged(runner: AskTell, before: dict[str, np.ndarray], generation: int) -> None:
    after = snapshot(runner)
    assert after.keys() == before.keys()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert runner.generation == generation


def assert_clear_error(err: BaseException, *words: str) -> None:
    """An evostrat error that is also the matching built-in and names what is wrong."""
    assert isinstance(err, EvostratError), f"{type(err).__name__}: {err}"
    assert isinstance(err, BUILTIN_ERRORS), type(err).__mro__
    message = str(err)
    assert message, type(err).__name__
    for word in words:
        assert word in message, (word, message)


def valid_popsize(cls: type, dim: int, requested: int | None) -> int | None:
    """``requested`` if the strategy accepts it for ``dim``, else the next that it does."""
    if requested is None:
        return None
    for p in (requested, requested + 1):
        try:
            cls(popsize=p).resolved_popsize(dim)
            return p
        except InvalidArgumentError as err:  # documented: mirrored strategies need even sizes
            assert_clear_error(err, "popsize")
    raise AssertionError(f"{cls.__name__} accepts neither popsize {requested} nor {requested + 1}")


def _finfo(case: BackendCase) -> np.finfo:
    return np.finfo(np.dtype(case.dtype))


def draw_x0(data: st.DataObject, dim: int, case: BackendCase, rng: np.random.Generator) -> np.ndarray:
    kind = data.draw(st.sampled_from(["gaussian", "constant", "zeros", "mixed"]), label="x0 kind")
    exponent = data.draw(st.floats(-10.0, 8.0), label="x0 log10 scale")
    if kind == "gaussian":
        return rng.standard_normal(dim) * 10.0**exponent
    if kind == "constant":
        return np.full(dim, (-1.0) ** rng.integers(2) * 10.0**exponent)
    if kind == "zeros":
        return np.zeros(dim)
    return rng.standard_normal(dim) * 10.0 ** rng.uniform(-10.0, 8.0, size=dim)


def draw_sigma0(data: st.DataObject, dim: int, rng: np.random.Generator) -> Any:
    exponent = data.draw(st.floats(-8.0, 8.0), label="sigma0 log10")
    if dim > 1 and data.draw(st.booleans(), label="per-coordinate sigma0"):
        return 10.0 ** np.clip(exponent + rng.uniform(-2.0, 2.0, size=dim), -8.0, 8.0)
    return float(10.0**exponent)


def make_fitness(kind: str, X: np.ndarray, case: BackendCase, rng: np.random.Generator) -> np.ndarray:
    """Host float64 fitness of the population ``X`` (host copy) of the given kind."""
    n = X.shape[0]
    info = _finfo(case)
    top = math.log10(float(info.max)) - 1.0
    sphere = np.sum(np.asarray(X, dtype=np.float64) ** 2, axis=1)
    sphere = np.minimum(sphere, float(info.max) / 10)  # huge x0 in float32: keep it finite
    if kind == "sphere":
        return sphere
    if kind == "constant":
        return np.full(n, rng.choice([0.0, 1.0, -3.5, 10.0 ** rng.uniform(-30.0, top)]))
    if kind == "ties":
        return rng.integers(0, 3, size=n).astype(np.float64)
    if kind == "huge":
        return rng.standard_normal(n) * 10.0 ** rng.uniform(10.0, top)
    if kind == "extreme":  # both signs, near the largest finite value: sums overflow
        return rng.choice([-1.0, 1.0], size=n) * float(info.max) * rng.uniform(0.25, 1.0, size=n)
    if kind == "tiny":
        return rng.standard_normal(n) * 10.0 ** rng.uniform(math.log10(float(info.tiny)), -10.0)
    if kind == "ints":
        return rng.integers(-5, 5, size=n).astype(np.float64)
    out = sphere.copy()
    pick = rng.random(n) < 0.3
    pick[rng.integers(n)] = True
    if kind == "nan":
        out[pick] = np.nan
    elif kind == "posinf":
        out[pick] = np.inf
    elif kind == "neginf":
        out[pick] = -np.inf
    elif kind == "mixed_nonfinite":
        out[pick] = rng.choice([np.nan, np.inf, -np.inf], size=int(pick.sum()))
    elif kind == "all_nan":
        out[:] = np.nan
    elif kind == "all_posinf":
        out[:] = np.inf
    elif kind == "all_neginf":
        out[:] = -np.inf
    else:  # pragma: no cover - a kind added above without a branch
        raise AssertionError(kind)
    return out


def make_behaviours(kind: str, X: np.ndarray, k: int, case: BackendCase, rng: np.random.Generator) -> Any:
    """Host values for a behaviour strategy: a (n, k) matrix, or (fitness, behaviours)."""
    n = X.shape[0]
    info = _finfo(case)
    top = math.log10(float(info.max)) - 1.0
    base = np.asarray(X, dtype=np.float64)[:, :1] * rng.standard_normal((1, k)) + rng.standard_normal((n, k))
    if kind == "gaussian":
        return base
    if kind == "constant":
        return np.full((n, k), rng.standard_normal())
    if kind == "ties":
        return rng.integers(0, 2, size=(n, k)).astype(np.float64)
    if kind == "huge":
        return rng.standard_normal((n, k)) * 10.0 ** rng.uniform(10.0, top)
    if kind == "extreme":
        return rng.choice([-1.0, 1.0], size=(n, k)) * float(info.max) * rng.uniform(0.25, 1.0, size=(n, k))
    if kind == "tiny":
        return rng.standard_normal((n, k)) * 10.0 ** rng.uniform(math.log10(float(info.tiny)), -10.0)
    if kind == "constant_column":
        base[:, 0] = 7.0
        return base
    if kind == "one_column":
        return base[:, 0]  # shape (n,): documented as k = 1
    if kind == "with_fitness":
        return (np.sum(base**2, axis=1), base)
    if kind == "with_nonfinite_fitness":
        f = np.sum(base**2, axis=1)
        f[rng.integers(n)] = rng.choice([np.nan, np.inf, -np.inf])
        return (f, base)
    if kind == "nonfinite":
        base[rng.integers(n), rng.integers(k)] = rng.choice([np.nan, np.inf, -np.inf])
        return base
    raise AssertionError(kind)  # pragma: no cover


def _to_case(values: Any, case: BackendCase) -> Any:
    if isinstance(values, tuple):
        return tuple(case.array(v) for v in values)
    return case.array(values)


# -- compiled runners for JAX --------------------------------------------------------------------

_JAX_RUNNERS: dict[tuple, tuple[AskTell, dict]] = {}


def jax_dim(name: str) -> int:
    """The one dimension ``name`` is compiled for on JAX."""
    return JAX_DIMS[STRATEGIES.index(name) % len(JAX_DIMS)]


def jax_runner(name: str, case: BackendCase) -> tuple[AskTell, dict]:
    """One compiled runner per strategy (dimension :func:`jax_dim`, default popsize),
    with the ``state_dict`` of its initial state."""
    key = (name, case.id)
    if key not in _JAX_RUNNERS:
        runner = strategy_class(name)(sigma0=0.5).initialize(
            case.array(np.linspace(-1.0, 1.0, jax_dim(name))), random_state=11
        )
        _JAX_RUNNERS[key] = (runner, runner.state_dict())
    return _JAX_RUNNERS[key]


def start_runner(
    name: str, case: BackendCase, x0: np.ndarray, sigma0: Any, popsize: int | None,
    seed: int, nonfinite: str,
) -> AskTell:
    """A runner in the initial state of ``(x0, sigma0, popsize, seed)``."""
    cls = strategy_class(name)
    if case.backend != "jax":
        return cls(popsize=popsize, sigma0=sigma0).initialize(
            case.array(x0), random_state=seed, nonfinite=nonfinite
        )
    assert popsize is None and x0.shape[0] == jax_dim(name)
    runner, _ = jax_runner(name, case)
    state = cls(popsize=popsize, sigma0=sigma0).init(case.array(x0), random_state=seed)
    saved = runner.state_dict()
    saved["arrays"] = state_to_numpy(state, runner.backend)
    saved["generation"] = saved["n_evals"] = 0
    runner.load_state_dict(saved)
    return runner


# -- property 1: random configurations ------------------------------------------------------------


def _tell_one_generation(
    runner: AskTell, name: str, case: BackendCase, data: st.DataObject,
    rng: np.random.Generator, k: int, context: str,
) -> None:
    X = runner.ask()
    host_X = to_numpy(X)
    assert case.is_native(X), context
    assert tuple(X.shape) == (runner.popsize, runner.dim), context
    assert case.dtype_of(X) == case.dtype, context
    assert case.device_of(X) == case.device_of(runner.mean), context
    assert np.all(np.isfinite(host_X)), f"{context}: ask() returned non-finite candidates"
    behaviours = strategy_class(name).needs_behaviours
    kinds = BEHAVIOUR_KINDS if behaviours else FITNESS_KINDS
    kind = data.draw(st.sampled_from(kinds), label="values kind")
    context = f"{context}, values {kind}"
    raw = make_behaviours(kind, host_X, k, case, rng) if behaviours else make_fitness(kind, host_X, case, rng)
    values = _to_case(raw, case)
    fitness = raw[0] if isinstance(raw, tuple) else (None if behaviours else raw)
    nonfinite_fitness = fitness is not None and not np.all(np.isfinite(fitness))
    before, generation = snapshot(runner), runner.generation

    if behaviours and kind == "nonfinite":
        with pytest.raises(InvalidArgumentError) as info:
            runner.tell(X, values)
        assert_clear_error(info.value, "behaviours must be finite")
        assert_unchanged(runner, before, generation)
        values = _to_case(np.nan_to_num(raw, nan=0.0, posinf=1.0, neginf=-1.0), case)
        nonfinite_fitness = False
    elif nonfinite_fitness and runner.nonfinite == "raise":
        with pytest.raises(InvalidArgumentError) as info:
            runner.tell(X, values)
        assert_clear_error(info.value, "NaN or infinite", "nonfinite=")
        assert_unchanged(runner, before, generation)
        finite = np.nan_to_num(fitness, nan=1.0, posinf=2.0, neginf=-2.0)
        values = _to_case((finite, raw[1]) if isinstance(raw, tuple) else finite, case)
        nonfinite_fitness = False

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner.tell(X, values)
    nonfinite_warnings = [w for w in caught if issubclass(w.category, NonFiniteFitnessWarning)]
    if nonfinite_fitness and runner.nonfinite == "warn":
        assert len(nonfinite_warnings) == 1, f"{context}: expected one NonFiniteFitnessWarning"
        assert "NaN or infinite" in str(nonfinite_warnings[0].message)
    else:
        assert not nonfinite_warnings, f"{context}: unexpected {nonfinite_warnings[0].message}"
    assert runner.generation == generation + 1
    assert_state_finite(runner, context)


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("case", BACKEND_CASES)
def test_random_configurations_never_poison_the_state(name: str, case: BackendCase) -> None:
    cls = strategy_class(name)

    @fixed_seed("random_configurations", name, case.id)
    @fuzz_settings(EXAMPLES[case.id])
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        count_case("fuzz")
        seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
        rng = np.random.default_rng(seed)
        dim = jax_dim(name) if case.backend == "jax" else data.draw(st.integers(1, 50), label="dim")
        requested = None if case.backend == "jax" else data.draw(
            st.one_of(st.none(), st.integers(cls.min_popsize, 64)), label="popsize"
        )
        popsize = valid_popsize(cls, dim, requested)
        x0 = draw_x0(data, dim, case, rng)
        sigma0 = draw_sigma0(data, dim, rng)
        nonfinite = "warn" if case.backend == "jax" else data.draw(
            st.sampled_from(["warn", "ignore", "raise"]), label="nonfinite"
        )
        k = 2 if case.backend == "jax" else data.draw(st.integers(1, 4), label="behaviour dims")
        context = f"{name}/{case.id} dim={dim} popsize={popsize} sigma0={sigma0!r} nonfinite={nonfinite}"
        try:
            runner = start_runner(name, case, x0, sigma0, popsize, seed, nonfinite)
        except InvalidArgumentError as err:
            # documented: openai_es is isotropic and refuses per-coordinate sigma0
            assert_clear_error(err, "sigma0")
            assert np.ndim(sigma0) == 1
            return
        assert_state_finite(runner, context + " (initial)")
        for g in range(data.draw(st.integers(1, 6), label="generations")):
            _tell_one_generation(runner, name, case, data, rng, k, f"{context}, generation {g}")

    run()


# -- property 2: misuse of ask/tell ---------------------------------------------------------------

OPERATIONS = (
    "ask", "tell", "tell", "tell_stale", "tell_foreign", "tell_reordered", "tell_perturbed",
    "tell_X_rows", "tell_X_cols", "tell_X_list", "tell_X_1d", "tell_X_other_dtype",
    "tell_values_short", "tell_values_long", "tell_values_2d", "tell_values_scalar",
    "tell_values_complex", "tell_values_str", "tell_values_none", "tell_values_object",
    "tell_values_bool", "tell_values_int", "tell_values_numpy", "tell_X_device",
    "tell_values_device", "tell_X_host_copy",
)

_MISUSE_RUNNERS: dict[tuple, tuple[AskTell, dict]] = {}


def misuse_runner(name: str, case: BackendCase) -> AskTell:
    """A runner per (strategy, case), reset to its initial state (on JAX: :func:`jax_runner`)."""
    key = (name, case.id)
    if key not in _MISUSE_RUNNERS:
        if case.backend == "jax":
            _MISUSE_RUNNERS[key] = jax_runner(name, case)
        else:
            runner = strategy_class(name)(sigma0=0.5).initialize(
                case.array(np.linspace(-1.0, 1.0, MISUSE_DIM)), random_state=11
            )
            _MISUSE_RUNNERS[key] = (runner, runner.state_dict())
    runner, initial = _MISUSE_RUNNERS[key]
    runner.load_state_dict(initial)
    return runner


def _good_values(runner: AskTell, X: Any) -> Any:
    host = to_numpy(X).astype(np.float64)
    if runner.strategy.needs_behaviours:
        return runner.backend.asarray(
            np.stack([host[:, 0], np.sum(host**2, axis=1)], axis=1), dtype=runner.dtype, device=runner.device
        )
    return runner.backend.asarray(np.sum(host**2, axis=1), dtype=runner.dtype, device=runner.device)


def _meta(x: Any) -> Any:
    import torch

    return torch.empty(tuple(x.shape), dtype=x.dtype, device="meta")


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("case", BACKEND_CASES)
def test_misuse_raises_clear_errors(name: str, case: BackendCase) -> None:
    @fixed_seed("misuse", name, case.id)
    @fuzz_settings(MISUSE_EXAMPLES[case.id])
    @given(
        order=st.permutations(OPERATIONS),
        asks=st.lists(st.booleans(), min_size=len(OPERATIONS), max_size=len(OPERATIONS)),
        seed=st.integers(0, 2**16),
    )
    def run(order: list[str], asks: list[bool], seed: int) -> None:
        count_case("fuzz")
        # every operation once per example, in a random order, each maybe after a fresh ask
        ops = [step for op, ask in zip(order, asks) for step in (["ask", op] if ask else [op])]
        runner = misuse_runner(name, case)
        rng = np.random.default_rng(seed)
        pending: Any = None  # what the runner should consider pending
        previous: Any = None  # an older population (stale)
        rows = runner.popsize
        for op in ops:
            before, generation = snapshot(runner), runner.generation
            if op == "ask":  # asking again discards the pending population (documented)
                previous = pending if pending is not None else previous
                pending = runner.ask()
                continue
            if pending is None:  # tell before any ask, or a second tell for one ask
                X = previous if previous is not None else runner.backend.asarray(
                    rng.standard_normal((rows, runner.dim)), dtype=runner.dtype, device=runner.device
                )
                with pytest.raises(StateError) as info:
                    runner.tell(X, _good_values(runner, X))
                assert_clear_error(info.value, "ask()")
                assert_unchanged(runner, before, generation)
                continue
            X = pending
            good = _good_values(runner, X)
            call_X, call_values, expected, words = X, good, None, ()
            if op == "tell":
                pass
            elif op == "tell_X_host_copy":
                call_X = to_numpy(X)  # an equal copy (on the host) is the same population
            elif op == "tell_stale":
                if previous is None:
                    continue
                call_X, call_values = previous, _good_values(runner, previous)
                same = np.array_equal(to_numpy(previous), to_numpy(pending))
                expected, words = (None if same else PopulationMismatchError), ("X differs",)
            elif op == "tell_foreign":
                call_X = runner.backend.asarray(
                    rng.standard_normal(tuple(X.shape)), dtype=runner.dtype, device=runner.device
                )
                expected, words = PopulationMismatchError, ("X differs",)
            elif op == "tell_reordered":
                call_X = runner.backend.xp.flip(X, axis=0)
                same = np.array_equal(to_numpy(call_X), to_numpy(X))
                expected, words = (None if same else PopulationMismatchError), ("same order",)
            elif op == "tell_perturbed":
                call_X = X * 1.0001 + 1e-3
                expected, words = PopulationMismatchError, ("X differs",)
            elif op == "tell_X_rows":
                call_X, expected, words = X[:-1], PopulationMismatchError, ("X must be", "shape")
            elif op == "tell_X_cols":
                call_X = X[:, :-1] if X.shape[1] > 1 else X[:, :0]
                expected, words = PopulationMismatchError, ("X must be", "shape")
            elif op == "tell_X_list":  # the asked rows as a list (pycma's ask hands one out): the same
                # population; a list of the wrong shape is refused
                listed = to_numpy(X).tolist()
                if seed % 2:
                    call_X, expected, words = listed[:-1], PopulationMismatchError, ("X must be", "shape")
                else:
                    call_X, expected, words = listed, None, ()
            elif op == "tell_X_1d":
                call_X, expected, words = X[0], PopulationMismatchError, ("X must be", "shape")
            elif op == "tell_X_other_dtype":
                other = "float64" if case.dtype == "float32" else "float32"
                host = to_numpy(X).astype(other)
                if case.backend == "numpy" or (case.backend == "jax" and other == "float64"):
                    call_X = host  # (JAX without x64 has no float64: a numpy float64 copy)
                else:
                    call_X = BackendCase(case.id, case.backend, other, case.device).array(host)
                same = np.array_equal(host.astype(np.float64), to_numpy(X).astype(np.float64))
                expected, words = (None if same else PopulationMismatchError), ("X differs",)
            elif op == "tell_values_short":
                call_values, expected, words = good[:-1], InvalidArgumentError, ("shape",)
            elif op == "tell_values_long":
                call_values = runner.backend.xp.concat([good, good[:1]], axis=0)
                expected, words = InvalidArgumentError, ("shape",)
            elif op == "tell_values_2d":
                if runner.strategy.needs_behaviours:
                    call_values = runner.backend.xp.reshape(good, (1, *good.shape))
                else:
                    call_values = runner.backend.xp.reshape(good, (rows, 1))
                expected, words = InvalidArgumentError, ("shape",)
            elif op == "tell_values_scalar":
                call_values, expected, words = 1.0, InvalidArgumentError, ("shape",)
            elif op == "tell_values_complex":
                call_values = to_numpy(good).astype(np.complex128)
                expected, words = InvalidTypeError, ("real numbers",)
            elif op == "tell_values_str":
                call_values = np.array(["a"] * rows)
                expected, words = InvalidTypeError, ()
            elif op == "tell_values_none":
                call_values, expected, words = None, InvalidTypeError, ()
            elif op == "tell_values_object":
                call_values, expected, words = [object()] * rows, InvalidTypeError, ()
            elif op == "tell_values_bool":
                call_values = to_numpy(good) > np.median(to_numpy(good))
                expected = None  # documented: bool and int values are numbers
            elif op == "tell_values_int":
                call_values = np.round(to_numpy(good)).astype(np.int64)
                expected = None
            elif op == "tell_values_numpy":
                call_values, expected = to_numpy(good), None  # host values are accepted
            elif op == "tell_X_device":
                if case.backend != "torch":
                    continue  # numpy has no devices; JAX here has one CPU device
                call_X, expected, words = _meta(X), PopulationMismatchError, ("X differs",)
            elif op == "tell_values_device":
                if case.backend != "torch":
                    continue
                call_values, expected = _meta(good), InvalidTypeError
                words = ("behaviours",) if runner.strategy.needs_behaviours else ("values",)
            else:  # pragma: no cover
                raise AssertionError(op)
            if expected is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("error", NonFiniteFitnessWarning)
                    runner.tell(call_X, call_values)
                assert runner.generation == generation + 1, op
                previous, pending = pending, None
                assert_state_finite(runner, f"{name}/{case.id} after {op}")
                continue
            with pytest.raises(EvostratError) as info:
                runner.tell(call_X, call_values)
            assert isinstance(info.value, expected), (op, type(info.value), str(info.value))
            assert_clear_error(info.value, *words)
            assert_unchanged(runner, before, generation)
        # whatever happened, the runner is still usable
        X = runner.ask()
        runner.tell(X, _good_values(runner, X))
        assert_state_finite(runner, f"{name}/{case.id} after {ops}")

    run()


# -- property 3: the estimator with hostile objectives -------------------------------------------


@pytest.mark.parametrize("name", STRATEGIES)
def test_estimator_fit_with_hostile_objectives(name: str) -> None:
    behaviours = strategy_class(name).needs_behaviours

    @fixed_seed("hostile_objectives", name)
    @fuzz_settings(FIT_EXAMPLES)
    @given(
        seed=st.integers(0, 2**16),
        dim=st.integers(1, 12),
        kinds=st.lists(st.sampled_from(FITNESS_KINDS), min_size=1, max_size=4),
        maximize=st.booleans(),
    )
    def run(seed: int, dim: int, kinds: list[str], maximize: bool) -> None:
        count_case("fuzz")
        rng = np.random.default_rng(seed)
        case = BackendCase("numpy", "numpy", "float64")
        calls = []

        def objective(X: np.ndarray) -> Any:
            kind = kinds[len(calls) % len(kinds)]
            calls.append(kind)
            if behaviours:
                b = make_behaviours("gaussian", X, 2, case, rng)
                return (make_fitness(kind, X, case, rng), b)
            return make_fitness(kind, X, case, rng)

        objective.vectorized = True
        es = ES(name, max_generations=6, maximize=maximize, nonfinite="ignore", random_state=seed)
        es.fit(objective, np.linspace(-1.0, 1.0, dim))
        assert 1 <= es.n_generations_ <= 6
        assert es.stop_reason_ is not None
        assert isinstance(es.x_, np.ndarray) and es.x_.shape == (dim,)
        assert np.all(np.isfinite(es.x_))
        assert not math.isnan(es.fun_)
        seen = [h["generation_best"] for h in es.history_]
        finite_seen = [v for v in seen if not math.isnan(v)]
        if finite_seen:
            assert es.fun_ == (max(finite_seen) if maximize else min(finite_seen))
        assert_state_finite(es.strategy_, f"{name} fit {kinds}")

    run()
