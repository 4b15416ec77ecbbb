"""The run-level criteria fire where pycma's fire: the same trace of values stops both at
the same generation for the same reason (``tolfun``'s history length and its first
generations), and the estimator's paths (numpy, compiled JAX) agree."""

from __future__ import annotations

import numpy as np
import pytest

from evostrat import ES, vectorized
from evostrat.run.termination import Termination

cma = pytest.importorskip("cma")


def _pycma_trace(f, dim: int, popsize: int, opts: dict) -> tuple[list, tuple[list[str], int]]:
    """pycma's run of ``f``: ``(generation, evaluations, best, sorted values)`` rows and its stop."""
    es = cma.CMAEvolutionStrategy(np.ones(dim), 1.0, dict(seed=1, verbose=-9, popsize=popsize, tolx=0,
                                                         tolstagnation=0, tolxstagnation=[0, 1e9, 0], **opts))
    rows = []
    while not es.stop():
        X = es.ask()
        F = [f(x) for x in X]
        es.tell(X, F)
        rows.append((es.countiter, es.countevals, es.best.f, sorted(F)))
    return rows, (list(es.stop()), es.countiter)


def _sphere(x) -> float:
    return float(np.sum(np.asarray(x) ** 2))


@pytest.mark.parametrize("dim, popsize", [(5, 8), (3, 7), (4, 12)])  # 30 d / popsize: 18.75, 12.86, 10
@pytest.mark.parametrize("criterion, opts, ours", [
    ("tolfun", {"tolflatfitness": 1e9, "tolfunhist": 0}, {}),
    ("tolfunhist", {"tolflatfitness": 1e9, "tolfun": 0}, {"tolfun": None, "tolfunhist": 1e-12}),
])
def test_tolfun_and_tolfunhist_fire_at_pycmas_generation(dim: int, popsize: int, criterion: str, opts: dict,
                                                          ours: dict) -> None:
    rows, (reasons, stopped) = _pycma_trace(_sphere, dim, popsize, opts)
    assert reasons == [criterion]
    # pycma keeps floor(10 + 30 d / popsize) generation bests (it pops beyond that length)
    t = Termination(tolx=None, dim=dim, popsize=popsize, history_length=10 + 30 * dim // popsize, **ours)
    got = next((g, r) for g, n, best, F in rows if (r := t.check(g, n, best, F, 1.0)) is not None)
    assert got == (stopped, criterion)


def test_flat_objective_stops_on_tolfun_after_one_generation_as_pycma() -> None:
    rows, (reasons, stopped) = _pycma_trace(lambda x: 1.0, 4, 8, {})
    assert (reasons, stopped) == (["tolfun"], 1)
    for name in ("cma_es", "snes"):
        es = ES(name, random_state=0).fit(vectorized(lambda X: np.ones(len(X))), np.ones(4))
        assert (es.stop_reason_, es.n_generations_, es.stop()) == ("tolfun", 1, {"tolfun": 1e-11})


def test_estimator_stops_at_pycmas_tolfun_generation_on_a_window_of_floor_length() -> None:
    # a run whose generation bests are flat after its third generation: tolfun holds once the window
    # of floor(10 + 30 * 5 / 8) = 28 generations holds only flat ones, at generation 3 + 28 - 1
    def plateau(X):
        X = np.asarray(X)
        return np.full(len(X), 1.0) if plateau.calls >= 3 else np.arange(len(X), dtype=float) + plateau.calls

    def objective(X):
        out = plateau(X)
        plateau.calls += 1
        return out

    plateau.calls = 0
    es = ES("snes", popsize=8, tolx=None, random_state=0).fit(vectorized(objective), np.ones(5))
    assert (es.stop_reason_, es.n_generations_) == ("tolfun", 3 + 28)


def test_compiled_jax_path_stops_where_the_host_loop_stops_on_flat_objectives() -> None:
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    cases = [(vectorized(lambda X: jnp.ones(X.shape[0])), {}),
             (vectorized(lambda X: jnp.floor(jnp.sum((X - 0.5) ** 2, axis=-1) * 0.1)), {"tolflatfitness": None})]
    for objective, params in cases:
        runs = [ES("snes", random_state=3, compiled_loop=c, max_generations=500, **params).fit(objective, jnp.ones(3))
                for c in ("auto", False)]
        assert [es.fast_path_ for es in runs] == ["compiled_loop", None]
        assert runs[0].stop_reason_ == runs[1].stop_reason_ == "tolfun"
        assert runs[0].n_generations_ == runs[1].n_generations_ == 1


def test_stop_reports_the_strategy_criterions_setting_as_pycma() -> None:
    # pycma's stop() maps a criterion to its option's value: {'tolfacupx': 1000.0} on a linear slope
    es = cma.CMAEvolutionStrategy(np.ones(4), 1.0, dict(seed=1, verbose=-9))
    es.optimize(lambda x: float(x[0]))
    assert es.stop() == {"tolfacupx": 1000.0}
    slope = vectorized(lambda X: np.asarray(X)[:, 0])
    assert ES("cma_es", random_state=1).fit(slope, np.ones(4)).stop() == {"tolfacupx": 1000.0}
    ours = ES("cma_es", random_state=1, strategy_options={"tolfacupx": 10.0}).fit(slope, np.ones(4))
    assert (ours.stop_reason_, ours.stop()) == ("tolfacupx", {"tolfacupx": 10.0})
    # criteria without a numeric setting stay True
    flat = ES("cma_es", random_state=1, tolfun=None, tolfunhist=None, tolflatfitness=None, tolstagnation=None,
              tolx=None, max_generations=400).fit(vectorized(lambda X: np.zeros(len(X))), np.ones(4))
    assert flat.stop() == {flat.stop_reason_: True} and flat.stop_reason_ in ("noeffectaxis", "noeffectcoord")
