"""CMA-ES's mean learning rate ``lr_mean`` (c_m) and parent share ``elite_ratio`` (mu).

pycma's ``CMA_cmean`` and ``CMA_mu``, evosax's ``c_m`` and ``elite_ratio``; the JAX seed
article sweeps both. ``m <- m + c_m sigma <y>_w`` (Hansen's tutorial, eq. 9) with the
paths taking ``<y>_w`` whatever ``c_m``; ``mu`` parents get pycma's weights for its
``CMA_mu`` (``RecombinationWeights(2 mu)`` with zeros between the positive and the
negative ones).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from evostrat import ES
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.problems import ellipsoid, sphere
from evostrat.strategies.cma_es import CMAES
from evostrat.strategies.cma_params import cma_parameters
from evostrat.strategies.sep_cma_es import SepCMAES


@pytest.mark.parametrize("n, lam, mu", [(10, 10, 3), (10, 10, 5), (5, 12, 2), (20, 13, 6), (3, 7, 1), (40, 200, 50)])
def test_weights_and_rates_for_mu_parents_equal_pycmas(n: int, lam: int, mu: int) -> None:
    cma = pytest.importorskip("cma")
    es = cma.CMAEvolutionStrategy(np.zeros(n), 1.0, {"CMA_mu": mu, "popsize": lam, "verbose": -9})
    p = cma_parameters(n, lam, mu=mu)
    assert p.mu == es.sp.weights.mu == mu
    np.testing.assert_allclose(p.weights, np.asarray(es.sp.weights), rtol=1e-12, atol=1e-15)
    for ours, theirs in [(p.mueff, es.sp.weights.mueff), (p.c1, es.sp.c1), (p.cmu, es.sp.cmu), (p.cc, es.sp.cc),
                         (p.cs, es.adapt_sigma.cs), (p.damps, es.adapt_sigma.damps)]:
        assert ours == pytest.approx(theirs, rel=1e-12)


def test_elite_ratio_sets_mu_and_none_keeps_the_default() -> None:
    assert CMAES(popsize=10, elite_ratio=0.3).parameters(4).mu == 3
    assert CMAES(popsize=10, elite_ratio=0.01).parameters(4).mu == 1  # at least one parent
    assert CMAES(popsize=11).parameters(4).weights.tolist() == cma_parameters(4, 11).weights.tolist()
    even = CMAES(popsize=10, elite_ratio=0.5).parameters(4)  # even popsize: pycma's CMA_mu = 5 is the default
    np.testing.assert_allclose(even.weights, cma_parameters(4, 10).weights, rtol=1e-14)


@pytest.mark.parametrize("kwargs, words", [
    ({"elite_ratio": 0.6}, "elite_ratio"), ({"elite_ratio": 0.0}, "elite_ratio"),
    ({"lr_mean": 0.0}, "lr_mean"), ({"lr_mean": float("nan")}, "lr_mean"), ({"lr_mean": "1"}, "lr_mean"),
])
def test_bad_values_are_refused_naming_the_parameter(kwargs: dict, words: str) -> None:
    with pytest.raises((InvalidArgumentError, InvalidTypeError), match=words):
        ES("cma_es", strategy_options=kwargs).fit(sphere, np.ones(3))


def _one_generation(strategy: Any, x0: Any, fitness: Any) -> tuple[Any, Any, Any]:
    state = strategy.init(x0, random_state=3)
    X, asked = strategy.ask(state)
    return state, X, strategy.tell(asked, X, fitness(X))


CASES = [("numpy", CMAES, {}), ("numpy", CMAES, {"covariance": "factor"}), ("numpy", SepCMAES, {}),
         ("torch", CMAES, {}), ("torch", SepCMAES, {}), ("jax", CMAES, {}), ("jax", SepCMAES, {})]


@pytest.mark.parametrize("backend, cls, options", CASES)
def test_lr_mean_scales_the_mean_step_and_leaves_the_paths(backend: str, cls: type, options: dict) -> None:
    if backend == "torch":
        torch = pytest.importorskip("torch")
        x0 = torch.linspace(-1.0, 1.0, 6, dtype=torch.float64)
    elif backend == "jax":
        jnp = pytest.importorskip("jax.numpy")
        x0 = jnp.linspace(-1.0, 1.0, 6)
    else:
        x0 = np.linspace(-1.0, 1.0, 6)

    def fitness(X: Any) -> Any:
        return ((X - 0.3) ** 2).sum(-1)

    start, X, full = _one_generation(cls(sigma0=0.5, **options), x0, fitness)
    _, X_half, half = _one_generation(cls(sigma0=0.5, lr_mean=0.5, **options), x0, fitness)
    np.testing.assert_array_equal(np.asarray(X_half), np.asarray(X))  # the same population
    m0 = np.asarray(start.mean, dtype=np.float64)
    np.testing.assert_allclose(np.asarray(half.mean) - m0, 0.5 * (np.asarray(full.mean) - m0), rtol=1e-6, atol=1e-12)
    assert not np.allclose(np.asarray(half.mean), np.asarray(full.mean))
    for name in ("ps", "pc", "sigma"):  # the paths and the step size take <y>_w whatever c_m
        np.testing.assert_allclose(np.asarray(getattr(half, name)), np.asarray(getattr(full, name)), rtol=1e-6)


def test_one_generation_equals_pycmas_with_cmean_and_mu() -> None:
    cma = pytest.importorskip("cma")
    n, lam, mu, cmean = 6, 10, 3, 0.5
    theirs = cma.CMAEvolutionStrategy(np.linspace(-1, 1, n), 0.5, {
        "CMA_mu": mu, "CMA_cmean": cmean, "popsize": lam, "seed": 1, "verbose": -9, "CMA_mirrors": 0})
    X = np.asarray(theirs.ask())
    f = ((X - 0.3) ** 2).sum(1)
    theirs.tell(list(X), f.tolist())
    s = CMAES(popsize=lam, sigma0=0.5, lr_mean=cmean, elite_ratio=mu / lam)
    ours = s.tell(s.init(np.linspace(-1, 1, n), random_state=0), X, f)
    np.testing.assert_allclose(ours.mean, theirs.mean, rtol=1e-12)
    np.testing.assert_allclose(ours.pc, theirs.pc, rtol=1e-10, atol=1e-14)  # (pycma's p_sigma differs
    # by about 6e-5 relative after a first generation with its defaults too: not c_m's doing)


def test_a_smaller_mean_rate_and_fewer_parents_still_converge() -> None:
    es = ES("cma_es", sigma0=0.5, ftarget=1e-8, max_evals=20000, random_state=0,
            strategy_options={"lr_mean": 0.7, "elite_ratio": 0.25}).fit(ellipsoid, np.ones(6))
    assert es.stop_reason_ == "ftarget", (es.stop_reason_, es.fun_)


def test_a_jax_grid_over_lr_mean_traces_it_per_run_and_splits_by_elite_ratio() -> None:
    # lr_mean is traced per run; elite_ratio sets the weights on the host: one program per value
    # (before, a grid over both fell back to one program per combination)
    jnp = pytest.importorskip("jax.numpy")
    from evostrat.run.batch import fit_batch

    grid = {"strategy__lr_mean": [0.5, 1.0], "strategy__elite_ratio": [0.25, 0.5]}
    res = fit_batch(ES("cma_es", max_generations=30), sphere, jnp.ones(5), seeds=2, grid=grid)
    assert res.fast_path == "batched" and res.n_programs == 2
    for p, fun in zip(res.params, res.fun):
        options = {"lr_mean": p["strategy__lr_mean"], "elite_ratio": p["strategy__elite_ratio"]}
        alone = ES("cma_es", max_generations=30, random_state=p["random_state"],
                   strategy_options=options).fit(sphere, jnp.ones(5))
        assert float(alone.fun_) == pytest.approx(fun, rel=1e-2)  # float32: the batch may round otherwise
    assert len(set(res.fun.tolist())) == 8
