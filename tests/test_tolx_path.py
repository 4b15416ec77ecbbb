"""``tolx`` as pycma tests it: ``all(sigma sqrt(diag C) < tolx)`` and ``all(sigma p_c < tolx)``.

On a linear slope p_c grows with the steps the mean keeps taking while the standard
deviations stay near sigma0: after the first generation every ``sigma sqrt(C_jj)`` can be below
a ``tolx`` and the largest ``sigma p_c_j`` above it (about 1.2e-3 and 2.6e-3 at sigma0 = 1e-3,
popsize 20, seed 0), so pycma goes on and so does every path of the estimator (numpy kernel and
generic steps, fit and ask/tell, torch, the compiled JAX chunk, fit_batch on JAX and torch),
where the criterion on the standard deviations alone stopped the run.
"""

from __future__ import annotations

import numpy as np
import pytest

from evostrat import ES, vectorized
from evostrat.run.asktell import AskTell
from evostrat.run.termination import Termination
from evostrat.strategies.cma_es import CMAES

DIM, POPSIZE, SIGMA0, TOLX = 5, 20, 1e-3, 1.6e-3


def _slope(X):
    return -X[:, 0]  # minimised: the mean climbs x_0, p_c_0 > 0


def _settings(**more) -> dict:
    return dict(sigma0=SIGMA0, popsize=POPSIZE, tolfun=None, **more)


def _first_generation(strategy: str, seed: int, **more) -> tuple[float, float]:
    """``(max_j sigma sqrt(C_jj), max_j sigma p_c_j)`` after a run's first generation."""
    es = ES(strategy, tolx=None, max_generations=1, random_state=seed, **_settings(**more))
    runner = es.fit(vectorized(_slope), np.zeros(DIM)).run_.runner
    return runner.sigma, float(CMAES.tolx_path(CMAES.tolx_parts(runner.state)))


def _separating(strategy: str, runs: int = 1, **more) -> tuple[list[int], float]:
    """Seeds whose first generations have every standard deviation below a ``tolx`` and some
    ``sigma p_c_j`` above it (h_sigma, random, stalls p_c in some), and that ``tolx``."""
    firsts = {seed: _first_generation(strategy, seed, **more) for seed in range(12)}
    for seeds in ([s] if runs == 1 else [s, t] for s in firsts for t in firsts if s < t):
        std, path = max(firsts[s][0] for s in seeds), min(firsts[s][1] for s in seeds)
        if path > 1.05 * std:
            return seeds, (std * path) ** 0.5
    raise AssertionError(f"no seeds separate the tests: {firsts}")


def test_the_slope_separates_the_two_tests() -> None:
    runner = AskTell(CMAES(sigma0=SIGMA0, popsize=POPSIZE), np.zeros(DIM), random_state=0)
    X = runner.ask()
    runner.tell(X, _slope(X))
    s = runner.state
    assert float(s.sigma * np.sqrt(s.diag_C.max())) < TOLX < float(np.max(s.sigma * s.pc))


def _goes_on(strategy: str, **more) -> ES:
    """The first generation (where the standard deviations alone stopped the run) does not stop
    it: the second does, on ``maxiter`` (checked before ``tolx``)."""
    [seed], tolx = _separating(strategy, **more)
    es = ES(strategy, tolx=tolx, max_generations=2, random_state=seed, **_settings(**more))
    assert es.fit(vectorized(_slope), np.zeros(DIM)).stop_reason_ == "maxiter"
    assert es.n_generations_ == 2
    return es


@pytest.mark.parametrize("strategy", ["cma_es", "sep_cma_es"])
@pytest.mark.parametrize("kernel", [True, False])
def test_numpy_fit_and_ask_tell_go_on(strategy: str, kernel: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not kernel:
        monkeypatch.setattr(CMAES, "numpy_kernel", False)
    es = ES(strategy, tolx=TOLX, max_generations=3, random_state=0, **_settings()).fit(vectorized(_slope),
                                                                                      np.zeros(DIM))
    assert (es.stop_reason_, es.n_generations_) == ("maxiter", 3)
    es = ES(strategy, tolx=TOLX, max_generations=3, random_state=0, **_settings())  # ask/tell: deferred criteria
    es.initialize(np.zeros(DIM))
    for _ in range(3):
        X = es.ask()
        es.tell(X, _slope(np.asarray(X)))
    assert (es.stop_reason_, es.n_generations_) == ("maxiter", 3)
    _goes_on(strategy)


def test_torch_fit_goes_on() -> None:
    pytest.importorskip("torch")
    _goes_on("cma_es", backend="torch")


@pytest.mark.parametrize("strategy", ["cma_es", "sep_cma_es"])
def test_compiled_jax_chunk_goes_on(strategy: str) -> None:
    pytest.importorskip("jax")
    assert _goes_on(strategy, backend="jax").fast_path_ == "compiled_loop"


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_fit_batch_goes_on(backend: str) -> None:
    pytest.importorskip(backend)
    from evostrat import fit_batch

    seeds, tolx = _separating("cma_es", runs=2, backend=backend)
    template = ES("cma_es", tolx=tolx, max_generations=2, **_settings(backend=backend))
    result = fit_batch(template, vectorized(_slope), np.zeros(DIM), seeds=seeds)
    assert list(result.stop_reason) == ["maxiter"] * 2 and list(result.n_generations) == [2] * 2


def test_tolx_still_stops_once_both_hold() -> None:
    t = Termination(tolx=1e-3, tolfun=None)
    t.paths = CMAES()
    small, large = (np.float64(1.0), np.array([1e-4, -5.0])), (np.float64(1.0), np.array([1e-4, 2e-3]))
    assert t.check(1, 10, 1.0, [1.0, 2.0], 5e-4, path=small) == "tolx"  # a negative entry passes (signed)
    assert t.check(2, 20, 1.0, [1.0, 2.0], 5e-4, path=large) is None
    assert t.check(3, 30, 1.0, [1.0, 2.0], 5e-4, path=(np.float64(1.0), np.array([np.nan, 0.0]))) is None


def test_the_stop_generation_is_pycmas_on_its_trace() -> None:
    """pycma asks; both are told its candidates (a sphere whose centre is 20 sigma0 away: a slope
    at first); ``tolx`` first holds in the same generation for both, long after the standard
    deviations alone are below it."""
    pytest.importorskip("cma")
    from benchmarks.bbob.trace_compare import pycma_chi, pycma_es

    centre = np.r_[20 * SIGMA0, np.zeros(DIM - 1)]
    strategy = CMAES(sigma0=SIGMA0, popsize=POPSIZE)
    state = strategy.init(np.zeros(DIM), random_state=0)
    t = Termination(tolx=TOLX, tolfun=None)
    t.paths = strategy
    ours = theirs = None
    alone = []
    with pycma_chi(DIM, strategy.parameters(DIM).chi_n):
        es = pycma_es(np.zeros(DIM), SIGMA0, 1, options={"popsize": POPSIZE, "tolx": TOLX})
        for g in range(1, 200):
            X = np.array(es.ask())
            F = ((X - centre) ** 2).sum(axis=1)
            es.tell(list(X), list(F))
            state = strategy.tell(state, X, F)
            std = float(strategy.sigma(state))
            if std < TOLX:
                alone.append(g)
            if t.check(g, g * POPSIZE, float(F.min()), list(F), std, path=t.path_of(state)) == "tolx":
                ours = ours or g
            if "tolx" in es.stop():
                theirs = theirs or g
            if ours and theirs:
                break
    assert ours == theirs == 17 and alone[0] == 1


def test_a_jax_grid_with_per_run_hyper_parameters_keeps_the_path() -> None:
    """Per-run traced hyper-parameters (``strategy__lr_mean``) wrap the strategy for the batch
    (``PerRunHyperParameters``); the wrapper must pass on ``tolx_parts``/``tolx_path``, or the
    runs stop on the standard deviations alone (or fall back to a program per value)."""
    pytest.importorskip("jax")
    from evostrat import fit_batch

    [seed], tolx = _separating("cma_es", backend="jax")  # c_m leaves the first generation's C and p_c as they are
    template = ES("cma_es", tolx=tolx, max_generations=2, **_settings(backend="jax"))
    result = fit_batch(template, vectorized(_slope), np.zeros(DIM), seeds=[seed],
                       grid={"strategy__lr_mean": [1.0, 0.5]})
    assert result.n_programs == 1  # lr_mean traced per run: one program
    assert list(result.stop_reason) == ["maxiter"] * 2 and list(result.n_generations) == [2] * 2
