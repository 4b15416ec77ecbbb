"""Deferred termination on the ask/tell path (issue 15): the criteria are checked when the
stop reason is read, with the same answers as checking every generation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evostrat import ES
from evostrat.problems import rosenbrock, sphere
from evostrat.run.termination import Termination


def _plateau(X: np.ndarray) -> np.ndarray:
    return np.floor(np.sum(X**2, axis=1) * 4.0)


def _reasons(objective, generations: int, read_every: int, limits: tuple[int, int] | None = None, **params):
    """The stop reason after each generation, read every ``read_every`` generations (``limits``:
    at most so many deferred generations and unsigned history rows)."""
    es = ES("cma_es", random_state=3, max_generations=10**6, **params).initialize(np.full(4, 2.0))
    if limits is not None:
        es.run_.termination.defer_limit, es.run_.state.sign_limit = limits
    reasons = {}
    for g in range(1, generations + 1):
        X = es.ask()
        es.tell(X, objective(X))
        if g % read_every == 0 or g == generations:
            reasons[g] = es.stop_reason_
    return es, reasons


@pytest.mark.parametrize("objective,params,generations", [
    (sphere, {}, 400),  # tolfun, then tolfunhist and the CMA criteria while told on
    (rosenbrock, {"tolstagnation": 30, "tolfun": None, "tolx": None, "tolfunhist": None}, 500),  # tolstagnation
    (_plateau, {"tolflatfitness": 3}, 80),  # tolflatfitness on a plateau
    (sphere, {"ftarget": 1e-6}, 200),
])
def test_reading_the_reason_sparsely_gives_the_same_reasons(objective, params, generations):
    eager, every = _reasons(objective, generations, 1, **params)
    assert any(reason is not None for reason in every.values())  # a criterion fires
    for read_every, limits in ((5, None), (63, None), (100, None), (100, (7, 3)), (10**6, (1, 1))):
        sparse_es, sparse = _reasons(objective, generations, read_every, limits, **params)
        assert sparse == {g: every[g] for g in sparse}
        assert [dict(r, time=0) for r in sparse_es.history_] == [dict(r, time=0) for r in eager.history_]
        assert sparse_es.stop() == eager.stop()


def test_the_fit_loop_stops_at_the_generation_of_the_ask_tell_loop():
    fitted = ES("cma_es", random_state=1).fit(sphere, np.full(5, 1.0))
    es = ES("cma_es", random_state=1).initialize(np.full(5, 1.0))
    while not es.stop():
        X = es.ask()
        es.tell(X, sphere(X))
    assert (es.n_generations_, es.stop_reason_) == (fitted.n_generations_, fitted.stop_reason_)
    assert es.fun_ == fitted.fun_


def test_deferred_generations_are_checked_in_order():
    eager, deferred = Termination(tolfun=None, tolx=None, tolflatfitness=2), Termination(
        tolfun=None, tolx=None, tolflatfitness=2)
    rows = [[1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0.5, 0.5, 0.5], [0.5, 1.0, 2.0]]
    answers = [eager.check(g, 3 * g, 0.5, v, 0.1) for g, v in enumerate(rows, 1)]
    assert answers == [None, None, None, "tolflatfitness", None]
    for g, v in enumerate(rows[:4], 1):
        deferred.defer(g, 3 * g, 0.5, v, 0.1)
    assert deferred.progress_values()["flat_generations"] == 3  # reading the progress checks them
    assert deferred.flush() == "tolflatfitness"
    assert deferred.check(5, 15, 0.5, rows[4], 0.1) is None
    assert deferred.progress_values() == eager.progress_values()
    assert math.isinf(Termination().progress_values()["run_best"])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("sign_limit", [None, 5, 1])
def test_history_sigma_read_later_is_the_generation_s_sigma(dtype, sign_limit):
    """The rows' sigmas, read when the rows are signed (the kernel's ``host_sigmas``: many at
    once, or a few one by one), are each generation's ``float(sigma)``, float64 and float32."""
    es = ES("cma_es", random_state=2, max_generations=10**6, dtype=dtype).initialize(np.full(6, 1.5))
    if sign_limit is not None:
        es.run_.state.sign_limit = sign_limit
    assert es.run_.state.sigmas_of is not None  # the CMA-ES numpy kernel defers the read
    sigmas = []
    for _ in range(150):  # all wait until the history is read (at most 4096 rows at d = 6)
        X = es.ask()
        es.tell(X, sphere(X))
        sigmas.append(es.run_.runner.sigma)
    assert [row["sigma"] for row in es.history_] == sigmas
    assert len(set(sigmas)) > 100 and not es.run_.state.unsigned


@pytest.mark.filterwarnings("ignore::evostrat.errors.NonFiniteFitnessWarning")  # a generation with NaN, by design
@pytest.mark.parametrize("maximize", [False, True])
def test_best_so_far_read_later_is_each_generation_s(maximize):
    """The best so far, worked out when the waiting rows are signed (read sparsely, or not until
    the end), is the first best candidate of the first generation that improved on it, as
    reading it after every tell finds it; ties and a generation with NaN (the driver's general
    path, between waiting rows) included."""
    sign = -1.0 if maximize else 1.0

    def run(read_every):
        es = ES("cma_es", random_state=5, max_generations=10**6, maximize=maximize).initialize(np.full(5, 1.0))
        expected, best, seen = [], math.inf, []
        for g in range(1, 121):
            X = es.ask()
            f = sign * np.floor(np.log(sphere(X)) * 4.0) / 4.0  # ties (quarters of log f)
            if g in (30, 31, 90):
                f[[0, 4]] = np.nan  # recorded by the general path: NaN ranks worst
            if g in (50, 51):
                f[:] = sign * best  # as good as the best so far is no improvement
            es.tell(X, f)
            user = np.where(np.isnan(f), np.inf, sign * f)
            if user.min() < best:
                best, i = user.min(), int(np.argmin(user))
                expected.append((g, sign * best, X[i].copy()))
            if g % read_every == 0:
                seen.append((g, es.fun_, es.x_.copy()))
        return es, expected, seen

    eager, expected, seen = run(1)
    assert len(expected) > 10
    for g, fun, x_ in seen:  # after each generation: the latest improvement's
        _, value, x = [e for e in expected if e[0] <= g][-1]
        assert fun == value and np.array_equal(x_, x)
    for read_every in (7, 10**6):
        sparse, _, sparse_seen = run(read_every)
        assert sparse_seen == [] or all(fun == seen[g - 1][1] and np.array_equal(x, seen[g - 1][2])
                                        for g, fun, x in sparse_seen)
        assert sparse.fun_ == eager.fun_ and np.array_equal(sparse.x_, eager.x_)
        assert [dict(r, time=0) for r in sparse.history_] == [dict(r, time=0) for r in eager.history_]
