"""Ask/tell as pycma's (issue 20 item 4): stop(), best so far, inject and repaired candidates
with Mahalanobis length clipping (Hansen 2011), restarts ending on ftarget, the run's stop reason."""

from __future__ import annotations

import numpy as np
import pytest

from evostrat import ES
from evostrat.errors import InvalidArgumentError, InvalidTypeError, PopulationMismatchError
from evostrat.problems import sphere
from evostrat.run.inject import clip_length, clip_steps, mahalanobis_lengths
from evostrat.strategies.cma_es import CMAES
from evostrat.strategies.snes import SNES


def values(X):
    return (np.asarray(X) ** 2).sum(axis=1)


def test_manual_loop_with_stop_ends_at_max_evals() -> None:
    es = ES("cma_es", max_evals=400, random_state=0).initialize(np.ones(5))
    assert es.stop() == {}
    generations = 0
    while not es.stop():
        X = es.ask()
        es.tell(X, values(X))
        generations += 1
        assert generations < 1000
    assert 400 <= es.n_evals_ < 400 + 8 and es.stop() == {"maxfevals": 400}
    es = ES("cma_es", ftarget=1e-8, random_state=0).initialize(np.ones(3))
    while not es.stop():
        X = es.ask()
        es.tell(X, values(X))
    assert es.stop() == {"ftarget": 1e-8} and es.fun_ <= 1e-8


def test_strategy_objects_have_stop_and_best_so_far() -> None:
    s = CMAES(sigma0=1.0).initialize(np.ones(3), random_state=0)
    assert s.best_x is None and s.best_f == np.inf and s.stop() == {}
    seen = []
    for _ in range(40):
        X = s.ask()
        f = values(X)
        seen.append(f.min())
        s.tell(X, f)
    assert s.best_f == min(seen) and sphere(s.best_x[None, :])[0] == s.best_f
    s = CMAES(sigma0=1.0, tolconditioncov=10.0).initialize(np.ones(3), random_state=0)
    for _ in range(200):
        if s.stop():
            break
        X = s.ask()
        s.tell(X, X[:, 0] ** 2 + 1e4 * X[:, 1] ** 2)
    assert s.stop() == {"tolconditioncov": True}


@pytest.mark.parametrize("strategy", ["cma_es", "sep_cma_es", "snes", "xnes"])
def test_far_off_injections_keep_the_state_finite_and_the_run_converging(strategy: str) -> None:
    es = ES(strategy, sigma0=1.0, max_evals=20000, ftarget=1e-10, random_state=1).initialize(np.ones(4))
    while not es.stop():
        if es.n_generations_ % 5 == 0:
            es.inject([np.full(4, 1e8), np.full(4, -1e6)])
        X = es.ask()
        es.tell(X, values(X))
        assert np.isfinite(es.strategy_.sigma) and np.all(np.isfinite(np.asarray(es.strategy_.mean)))
    assert es.stop_reason_ == "ftarget", (strategy, es.stop_reason_, es.fun_)


def test_injected_good_point_is_used_and_asked_first() -> None:
    es = ES("cma_es", sigma0=1.0, random_state=0).initialize(np.full(3, 5.0))
    es.inject(np.zeros(3))
    X = es.ask()
    np.testing.assert_array_equal(X[0], np.zeros(3))
    es.tell(X, values(X))
    assert es.fun_ == 0.0
    before = np.linalg.norm(es.strategy_.mean)
    assert before < np.linalg.norm(np.full(3, 5.0))  # the mean moved towards it


def test_repaired_candidates_are_accepted_and_clipped() -> None:
    lo, hi = -0.5, 2.0  # the user's own repair: clip into a box; optimum of the sphere inside
    es = ES("cma_es", sigma0=2.0, ftarget=1e-10, max_evals=20000, random_state=0).initialize(np.full(4, 1.5))
    X = es.ask()
    with pytest.raises(PopulationMismatchError, match="repaired=True"):
        es.tell(np.clip(X + 10, lo, hi), values(X))
    while not es.stop():
        X = np.clip(es.ask(), lo, hi)
        es.tell(X, values(X), repaired=True)
    assert es.stop_reason_ == "ftarget"
    with pytest.raises(PopulationMismatchError, match="shape"):
        es.ask()
        es.tell(np.zeros((2, 4)), np.zeros(2), repaired=True)


def test_clipping_bound_is_hansens() -> None:
    s = CMAES(sigma0=0.5).initialize(np.zeros(6), random_state=0)
    far = clip_steps(s.strategy, s.state, np.full((2, 6), 50.0), s.backend, rows=[1])
    assert np.all(far[0] == 50.0)  # rows not named are kept
    length = mahalanobis_lengths(s.strategy, s.state, far[1:], s.backend)[0]
    assert np.isclose(length, clip_length(6)) and np.isclose(clip_length(6), 6 ** 0.5 + 12 / 8)
    snes = SNES(sigma0=np.array([1.0, 4.0])).initialize(np.zeros(2), random_state=0)
    y = clip_steps(snes.strategy, snes.state, np.array([[0.0, 400.0]]), snes.backend)
    assert np.isclose(y[0, 1] / 4.0, 2 ** 0.5)  # per-coordinate scale; sqrt(n) outside the CMA family


def test_inject_bad_input_names_the_argument() -> None:
    es = ES("cma_es").initialize(np.ones(3))
    with pytest.raises(InvalidArgumentError, match=r"solutions must be finite, of shape \(3,\)"):
        es.inject(np.ones(4))
    with pytest.raises(InvalidArgumentError, match="NaN"):
        es.inject([np.nan, 0, 0])
    with pytest.raises(InvalidTypeError, match=r"solutions must be .* got None"):  # not "shape () with NaN"
        es.inject(None)


def test_inject_with_bounds_is_evaluated_as_given() -> None:
    es = ES("cma_es", bounds=(0.0, 1.0), random_state=0).initialize(np.full(3, 0.5))
    es.inject([0.9, 0.1, 0.3])
    X = es.ask()
    np.testing.assert_allclose(X[0], [0.9, 0.1, 0.3], atol=1e-12)
    es.tell(X, values(X))


def test_an_injection_with_bounds_leaves_the_other_sampled_rows_as_sampled() -> None:
    """Injecting the very candidate the run samples first changes nothing: the rows sampled outside
    the box are told as sampled (they were taken for repaired ones and replaced by a preimage)."""
    def make() -> ES:
        return ES("cma_es", bounds=(0, 1), sigma0=0.3, random_state=0).initialize(np.full(3, 0.5))

    a = make()
    Xa = np.asarray(a.ask())
    Y = np.asarray(a.strategy_.pending)
    assert ((Y[0] > 0.1) & (Y[0] < 0.9)).all() and ((Y < 0) | (Y > 1)).any()  # row 0 inside, others not
    a.tell(Xa, values(Xa))
    b = make()
    b.inject(Xa[0])
    Xb = np.asarray(b.ask())
    assert np.array_equal(Xa, Xb)
    b.tell(Xb, values(Xb))
    assert np.array_equal(np.asarray(a.strategy_.mean), np.asarray(b.strategy_.mean))
    assert np.array_equal(np.asarray(a.strategy_.state.C), np.asarray(b.strategy_.state.C))


def test_restarts_end_at_ftarget_and_report_the_whole_run() -> None:
    es = ES("cma_es", sigma0=1.0, restarts="ipop", ftarget=1e-8, random_state=0).fit(sphere, np.ones(4))
    assert es.stop_reason_ == "ftarget" and len(es.restarts_) == 1 and es.stop() == {"ftarget": 1e-8}
    es = ES("cma_es", sigma0=1.0, restarts=dict(kind="ipop", max_restarts=2), tolfun=1e-3,
            random_state=0).fit(sphere, np.ones(4))
    assert len(es.restarts_) == 3 and es.stop_reason_ == "maxrestarts" and es.stop() == {"maxrestarts": 2}
    assert {r["stop_reason"] for r in es.restarts_} == {"tolfun"}


def test_repaired_candidates_with_bounds_are_mapped_into_the_strategy_space() -> None:
    es = ES("cma_es", sigma0=0.5, bounds=(-1.0, 2.0), ftarget=1e-8, max_evals=20000,
            random_state=0).initialize(np.full(3, 0.5))
    target = np.array([1.0, 0.3, -1.0])  # one coordinate on the bound
    while not es.stop():
        X = np.round(es.ask(), 3)  # a grid the user evaluates on
        es.tell(X, ((X - target) ** 2).sum(axis=1), repaired=True)
    assert es.stop_reason_ == "ftarget" and np.allclose(es.x_, target)


def test_mean_is_pycmas_xfavorite_inside_the_bounds_and_a_copy() -> None:
    """``mean_`` is the distribution mean as a candidate (pycma's ``result.xfavorite``): the optimum
    (3, 3, 3) lies outside the box [-2, 2], where the strategy's mean ends beyond the bound (2.15)
    while every candidate, ``x_`` and ``mean_`` are 2."""
    es = ES("cma_es", sigma0=1.0, bounds=(-2.0, 2.0), random_state=1).fit(lambda X: values(X - 3.0), np.zeros(3))
    assert np.all(np.asarray(es.strategy_.mean) > 2.0)  # the strategy's own space
    np.testing.assert_allclose(es.mean_, 2.0, atol=1e-9)
    np.testing.assert_array_equal(es.mean_, es.run_.to_box(np.asarray(es.strategy_.mean)[None])[0])
    plain = ES("cma_es", max_evals=60, random_state=0).fit(values, np.ones(3))
    mean = plain.mean_
    np.testing.assert_array_equal(mean, plain.strategy_.mean)
    mean[:] = 99.0  # a copy: the run's state is untouched
    assert not np.any(np.asarray(plain.strategy_.mean) == 99.0)


def test_mean_decodes_integer_coordinates_and_needs_a_run() -> None:
    es = ES("cma_es", integer=[0], bounds=(-5, 5), max_evals=300, random_state=1).fit(
        lambda X: values(X - 3.3), np.zeros(2))
    assert float(es.mean_[0]) == 3.0  # decoded as the candidates are
    with pytest.raises(AttributeError, match="mean_ is not available"):
        ES("cma_es").mean_


@pytest.mark.parametrize("bounds", [None, (-2.0, 2.0)])
def test_tell_takes_the_asked_rows_as_a_list_as_pycma_hands_them_out(bounds) -> None:
    """``es.tell(list(X), ...)`` (pycma's ``ask`` returns a list of rows) is the same run as
    ``es.tell(X, ...)``; it was refused as "got list of shape None"."""
    runs = []
    for as_list in (False, True):
        es = ES("cma_es", bounds=bounds, max_evals=200, random_state=0).initialize(np.ones(4))
        while not es.stop():
            X = es.ask()
            es.tell(list(X) if as_list else X, values(X))
        runs.append(es)
    assert runs[1].fun_ == runs[0].fun_ and runs[1].n_evals_ == runs[0].n_evals_ == 200
    np.testing.assert_array_equal(runs[1].x_, runs[0].x_)
    es = ES("cma_es", random_state=0).initialize(np.ones(4))
    rows = list(es.ask())
    with pytest.raises(PopulationMismatchError, match=r"of shape \(8, 4\); got .* of shape \(3, 4\)"):
        es.tell(rows[:3], values(np.asarray(rows[:3])))
    rows[0] = rows[0] + 1.0
    with pytest.raises(PopulationMismatchError, match="X differs from the population"):
        es.tell(rows, values(np.asarray(rows)))
    es.tell(rows, values(np.asarray(rows)), repaired=True)  # a repaired list: accepted as an array is
    assert es.n_evals_ == 8


def test_set_params_between_asks_leaves_the_run_and_its_checkpoint_as_started(tmp_path) -> None:
    """pycma's ``es.opts.set`` changes the running loop; ``set_params`` changes the next
    ``fit``/``initialize``. Before, a checkpoint stored the new values next to the old run's
    state: the budget 600 with 306 evaluations made read as stopped on ``{'maxfevals': 600}``."""
    from evostrat.checkpoint import load_checkpoint, save_checkpoint

    es = ES("cma_es", max_evals=300, random_state=1).initialize(np.ones(6))
    while not es.stop():
        X = es.ask()
        es.tell(X, sphere(X))
    es.set_params(max_evals=600, sigma0=5.0)
    assert es.stop() == {"maxfevals": 300} and es.max_evals == 600  # the next fit's
    save_checkpoint(es, tmp_path / "run.ckpt")
    loaded = load_checkpoint(tmp_path / "run.ckpt")
    assert (loaded.max_evals, loaded.sigma0, loaded.stop()) == (300, None, {"maxfevals": 300})
    longer = load_checkpoint(tmp_path / "run.ckpt", max_evals=600)  # the way to extend its budget
    while not longer.stop():
        X = longer.ask()
        longer.tell(X, sphere(X))
    assert longer.stop() == {"maxfevals": 600} and 600 <= longer.n_evals_ < 610


def test_set_params_between_asks_does_not_change_later_restart_runs() -> None:
    def loop(es: ES, change: bool) -> tuple[list, int, float]:
        es.initialize(np.full(3, 2.0))
        while not es.stop():
            if change and es.n_generations_ == 3:
                es.set_params(popsize=50, sigma0=0.1)  # before: the next restart run took these
            X = es.ask()
            es.tell(X, sphere(X) + 10 * np.cos(X).sum(axis=1))
        return es.restarts_, es.n_evals_, es.fun_

    make = lambda: ES("cma_es", restarts=dict(kind="ipop", max_restarts=2), tolfun=1e-3, random_state=0)
    changed, unchanged = loop(make(), True), loop(make(), False)
    assert changed == unchanged  # before: the restart runs started with sigma0=0.1
    assert [r["popsize"] for r in changed[0]] == [7, 14, 29]


def test_set_params_of_the_global_budget_between_asks_waits_for_the_next_run() -> None:
    def loop(change: bool) -> tuple[int, dict]:
        es = ES("cma_es", restarts="ipop", max_generations=120, random_state=0).initialize(np.full(3, 2.0))
        while not es.stop():
            if change and es.n_generations_ == 3:
                es.set_params(max_generations=5)  # before: a restart run's end checked this one
            X = es.ask()
            es.tell(X, sphere(X) + 10 * np.cos(X).sum(axis=1))
        return es.n_generations_, es.stop()

    assert loop(True) == loop(False) == (120, {"maxiter": 120})
