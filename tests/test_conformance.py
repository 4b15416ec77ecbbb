"""Conformance suite: every registered strategy x every installed backend.

The strategy list is read from the plugin registry at collection time, so a
strategy added later (by us or by a plugin) is covered without editing this
file. For each pair one reference run is computed once and shared by the
tests (JAX compiles ask/tell per run, so runs are the expensive part):

- run A: ``initialize(x0, random_state=SEED)``, ``K`` generations on the
  sphere, ``state_dict()``, then ``N`` more generations;
- run B: the same from scratch (determinism, bit for bit);
- run C: a fresh object with another seed, ``load_state_dict`` of A's dict
  (passed through ``np.savez``/``json`` with pickling disabled), then ``N``
  generations: must equal A's last ``N`` generations bit for bit.

Strategies with ``needs_behaviours = True`` are told behaviour descriptors of
shape (popsize, 2) instead of one fitness value per candidate
(:func:`evostrat.testing.sphere_values`, shared with the plugin-author kit);
``ES.fit`` gets a behaviour objective for them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from conftest import BackendCase, strategy_class, strategy_names, to_numpy

from evostrat import ES
from evostrat.run.asktell import AskTell
from evostrat.backends import get_backend
from evostrat.problems import sphere
from evostrat.testing import roundtrip_state_dict, sphere_values

DIM = 5
SEED = 7
K = 3  # generations before the state_dict is taken
N = 3  # generations compared after it
X0 = np.linspace(-1.0, 2.0, DIM)

STRATEGIES = strategy_names()


@dataclass
class Run:
    """What one reference run of a (strategy, backend case) pair produced."""

    first_X: Any  # native array of the first ask
    first_state: Any  # state after the first ask
    Xs: list[np.ndarray] = field(default_factory=list)
    means: list[np.ndarray] = field(default_factory=list)
    final_state: Any = None
    final_sigma: float = math.nan
    stops: dict = field(default_factory=dict)
    popsize: int = 0
    generation: int = 0  # the runner's generation counter at the end


def _values(X: Any, name: str) -> Any:
    return sphere_values(X, strategy_class(name).needs_behaviours)


def _behaviours(X: Any) -> Any:
    """Two behaviour dimensions per candidate, (popsize, 2), on X's backend."""
    return sphere_values(X, behaviours=True)


def _run(
    name: str, case: BackendCase, seed: int, gens: int, start: AskTell | None = None
) -> tuple[Run, AskTell, dict | None]:
    runner = start if start is not None else strategy_class(name)().initialize(case.array(X0), random_state=seed)
    saved = None
    run: Run | None = None
    for g in range(gens):
        X = runner.ask()
        if run is None:
            run = Run(first_X=X, first_state=runner.state, popsize=runner.popsize)
        run.Xs.append(to_numpy(X))
        runner.tell(X, _values(X, name))
        run.means.append(to_numpy(runner.mean))
        if start is None and g == K - 1:
            saved = runner.state_dict()
    assert run is not None
    run.final_state = runner.state
    run.final_sigma = runner.sigma
    run.stops = runner.strategy.stop(runner.state)
    run.generation = runner.generation
    return run, runner, saved


_CACHE: dict[tuple[str, str], dict[str, Any]] = {}


def reference(name: str, case: BackendCase) -> dict[str, Any]:
    """Runs A, B and C for ``(name, case)``, computed once per session."""
    key = (name, case.id)
    if key not in _CACHE:
        a, _, saved = _run(name, case, SEED, K + N)
        b, _, _ = _run(name, case, SEED, K + N)
        c = None
        if saved is not None:
            fresh = strategy_class(name)().initialize(case.array(X0), random_state=SEED + 1000)
            fresh.load_state_dict(roundtrip_state_dict(saved))
            c, _, _ = _run(name, case, SEED + 1000, N, start=fresh)
        _CACHE[key] = {"a": a, "b": b, "c": c, "saved": saved}
    return _CACHE[key]


@pytest.fixture(scope="module")
def jax_compile_cache(tmp_path_factory: pytest.TempPathFactory):
    """Let JAX compile each identical program once while this module runs.

    Runs A, B and C of a strategy jit the same ask/tell programs; a persistent
    compilation cache in a temporary folder turns the second and third XLA
    compilations into cache hits (tracing still happens). Restored afterwards.
    """
    jax = pytest.importorskip("jax")
    from jax.experimental.compilation_cache import compilation_cache

    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    old = {n: getattr(jax.config, n) for n in names}
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax_cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    yield
    for n, value in old.items():
        jax.config.update(n, value)
    compilation_cache.reset_cache()


@pytest.fixture
def ref(name: str, case: BackendCase, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The shared reference runs of ``(name, case)``."""
    if case.backend == "jax":
        request.getfixturevalue("jax_compile_cache")
    return reference(name, case)


def _leaves(state: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for fname, value in zip(state._fields, state):
        if hasattr(value, "_fields"):
            out.extend(_leaves(value, f"{prefix}{fname}."))
        else:
            out.append((f"{prefix}{fname}", value))
    return out


@pytest.mark.parametrize("name", STRATEGIES)
def test_ask_shape_dtype_device(name: str, case: BackendCase, ref: dict) -> None:
    run = ref["a"]
    X = run.first_X
    s = strategy_class(name)()
    assert case.is_native(X), f"ask returned {type(X).__name__}, not a {case.backend} array"
    assert tuple(X.shape) == (s.resolved_popsize(DIM), DIM)
    assert case.dtype_of(X) == case.dtype
    assert case.device_of(X) == case.device_of(case.array(X0))
    assert np.all(np.isfinite(to_numpy(X)))
    # a population is spread out: no two candidates coincide
    assert len({tuple(row) for row in to_numpy(X)}) == X.shape[0]


@pytest.mark.parametrize("name", STRATEGIES)
def test_state_is_a_namedtuple_of_backend_arrays(name: str, case: BackendCase, ref: dict) -> None:
    state = ref["a"].first_state
    be = get_backend(case.backend)
    assert {"mean", "key"} <= set(state._fields)
    for path, leaf in _leaves(state):
        if path.rsplit(".", 1)[-1] == "key" or be.is_key(leaf):
            continue
        assert be.owns(leaf), f"state leaf {path} is a {type(leaf).__name__}, not a {case.backend} array"
        assert case.device_of(leaf) == case.device_of(case.array(X0)), path
    assert case.dtype_of(state.mean) == case.dtype
    sigma = strategy_class(name)().sigma(state)
    assert tuple(sigma.shape) == ()
    assert float(to_numpy(sigma)) > 0


@pytest.mark.parametrize("name", STRATEGIES)
def test_same_seed_same_run_bit_for_bit(name: str, case: BackendCase, ref: dict) -> None:
    a, b = ref["a"], ref["b"]
    assert len(a.Xs) == len(b.Xs) >= 1
    for g, (xa, xb) in enumerate(zip(a.Xs, b.Xs)):
        np.testing.assert_array_equal(xa, xb, err_msg=f"generation {g}")
    for g, (ma, mb) in enumerate(zip(a.means, b.means)):
        np.testing.assert_array_equal(ma, mb, err_msg=f"mean after generation {g}")


@pytest.mark.parametrize("name", STRATEGIES)
def test_different_seeds_differ(name: str, case: BackendCase) -> None:
    s = strategy_class(name)()
    X1, _ = s.ask(s.init(case.array(X0), random_state=1))
    X2, _ = s.ask(s.init(case.array(X0), random_state=2))
    assert not np.array_equal(to_numpy(X1), to_numpy(X2))


@pytest.mark.parametrize("name", STRATEGIES)
def test_state_dict_resume_is_bit_identical(name: str, case: BackendCase, ref: dict) -> None:
    a, c, saved = ref["a"], ref["c"], ref["saved"]
    assert saved["generation"] == K
    assert saved["n_evals"] == K * a.popsize
    assert c.generation == K + N  # the generation counter continued from the saved one
    assert len(c.Xs) == N
    for g in range(N):
        np.testing.assert_array_equal(c.Xs[g], a.Xs[K + g], err_msg=f"X, generation {K + g}")
        np.testing.assert_array_equal(c.means[g], a.means[K + g], err_msg=f"mean, generation {K + g}")


@pytest.mark.parametrize("name", STRATEGIES)
def test_state_dict_holds_plain_arrays(name: str, case: BackendCase, ref: dict) -> None:
    saved = ref["saved"]
    assert saved["strategy"] == name
    assert saved["backend"] == case.backend
    json.dumps({k: v for k, v in saved.items() if k != "arrays"})  # plain metadata
    for key, arr in saved["arrays"].items():
        assert isinstance(arr, np.ndarray), key
        assert arr.dtype != object, key


@pytest.mark.parametrize("name", STRATEGIES)
def test_tell_on_sphere_keeps_state_finite(name: str, case: BackendCase, ref: dict) -> None:
    a = ref["a"]
    be = get_backend(case.backend)
    for path, leaf in _leaves(a.final_state):
        if path.rsplit(".", 1)[-1] == "key" or be.is_key(leaf):
            continue
        values = to_numpy(leaf)
        if np.issubdtype(values.dtype, np.floating):
            assert np.all(np.isfinite(values)), f"state leaf {path} is not finite"
    assert case.dtype_of(a.final_state.mean) == case.dtype
    assert math.isfinite(a.final_sigma) and a.final_sigma > 0
    # K + N generations from x0 must not move the mean off to infinity on a sphere
    assert float(np.sum(a.means[-1] ** 2)) < 10 * float(np.sum(X0**2)) + 10
    assert all(isinstance(k, str) for k in a.stops)
    assert all(bool(v) in (True, False) for v in a.stops.values())


@pytest.mark.parametrize("name", STRATEGIES)
def test_explicit_popsize_and_params_roundtrip(name: str) -> None:
    cls = strategy_class(name)
    default = cls().resolved_popsize(DIM)
    popsize = max(2 * default, cls.min_popsize)
    s = cls(popsize=popsize)
    X, _ = s.ask(s.init(X0, random_state=0))
    assert X.shape == (popsize, DIM)
    clone = cls(**s.get_params(deep=False))
    assert clone.get_params(deep=False).keys() == s.get_params(deep=False).keys()
    assert clone.popsize == popsize
    assert cls.name == name, "the registry name and the class's `name` must agree"


@pytest.mark.parametrize("name", STRATEGIES)
def test_estimator_fit_on_every_backend(name: str, case: BackendCase, request: pytest.FixtureRequest) -> None:
    """The user's path, ``ES(name).fit``, keeps x0's kind, dtype and device."""
    behaviours = strategy_class(name).needs_behaviours
    if case.backend == "jax":
        request.getfixturevalue("jax_compile_cache")
    x0 = case.array(X0)
    es = ES(name, max_generations=4, random_state=SEED).fit(_behaviours if behaviours else sphere, x0)
    assert es.n_generations_ == 4 and es.stop_reason_ == "maxiter"
    assert case.is_native(es.x_) and tuple(es.x_.shape) == (DIM,)
    assert case.dtype_of(es.x_) == case.dtype
    assert case.device_of(es.x_) == case.device_of(x0)
    if behaviours:  # no fitness: x_ is the search distribution's mean (evostrat.run.behaviours)
        assert es.fun_ == es.history_[-1]["behaviour_var"] > 0
        return
    assert es.fun_ == min(h["generation_best"] for h in es.history_)
    assert float(to_numpy(sphere(es.x_))) == pytest.approx(es.fun_, rel=1e-5)
