"""Warm starts (``ES(warm_start=...)``, :mod:`evostrat.run.warm_start`).

Checked: WS-CMA-ES's estimate against its formula; the warm-started state holds it
(CMA-ES: ``sigma^2 C == Sigma``, sep-CMA-ES the diagonal, SNES the coordinate
deviations); a warm start from solutions of a similar task reaches the target in fewer
evaluations than a cold start; a fitted ES or its checkpoint hands over its whole state
(the new run continues where the old one stopped); bad sources get errors naming
``warm_start``.
"""

from __future__ import annotations

import numpy as np
import pytest

from evostrat import ES
from evostrat.checkpoint import save_checkpoint
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.problems import sphere
from evostrat.run.warm_start import WarmStart, promising_distribution


def shifted(offset):
    def f(X):
        return ((X - offset) ** 2).sum(axis=1)

    return f


def test_promising_distribution_formula():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    v = rng.random(40)
    mean, sigma, C = promising_distribution(X, v, gamma=0.25, alpha=0.3)
    top = X[np.argsort(v)[:10]]
    Sigma = 0.09 * np.eye(3) + np.cov(top.T, bias=True)
    assert np.allclose(mean, top.mean(axis=0))
    assert np.allclose(sigma ** 2 * C, Sigma)
    assert np.linalg.det(C) == pytest.approx(1.0)
    m_max, _, _ = promising_distribution(X, v, gamma=0.25, alpha=0.3, maximize=True)
    assert np.allclose(m_max, X[np.argsort(-v)[:10]].mean(axis=0))


def source_solutions(dim=6, seed=0):
    """Every candidate a CMA-ES run evaluated on the source task (optimum at 0.4)."""
    seen_X, seen_f = [], []
    f = shifted(0.4)

    def record(X):
        seen_X.append(np.array(X))
        values = f(X)
        seen_f.append(values)
        return values

    ES("cma_es", sigma0=2.0, max_evals=1500, random_state=seed, evaluator="vectorized").fit(record, np.full(dim, 3.0))
    return np.concatenate(seen_X), np.concatenate(seen_f)


@pytest.mark.parametrize("strategy", ["cma_es", "sep_cma_es", "xnes", "snes"])
def test_state_holds_the_estimate(strategy):
    X, v = source_solutions()
    mean, sigma, C = promising_distribution(X, v)
    es = ES(strategy, warm_start=WarmStart(X, v), random_state=0).initialize(np.zeros(6))
    state = es.run_.runner.state
    assert np.allclose(state.mean, mean)
    if strategy == "cma_es":
        assert np.allclose(state.sigma ** 2 * es.run_.runner.strategy.current_cov(state), sigma ** 2 * C)
    elif strategy == "sep_cma_es":
        assert np.allclose(state.sigma ** 2 * state.C, sigma ** 2 * np.diag(C))
    elif strategy == "xnes":
        assert np.allclose(state.sigma ** 2 * state.B @ state.B.T, sigma ** 2 * C)
    else:
        assert np.allclose(state.sigma, sigma * np.sqrt(np.diag(C)))


def test_warm_start_from_a_similar_task_is_faster():
    X, v = source_solutions()
    target = shifted(0.5)
    cold, warm = [], []
    for seed in range(3):
        options = dict(ftarget=1e-8, max_evals=5000, random_state=seed, evaluator="vectorized")
        cold.append(ES("cma_es", sigma0=2.0, **options).fit(target, np.full(6, 3.0)).n_evals_)
        es = ES("cma_es", warm_start=(X, v), **options).fit(target, np.full(6, 3.0))
        assert es.fun_ <= 1e-8
        warm.append(es.n_evals_)
    assert np.median(warm) < 0.8 * np.median(cold), (warm, cold)


@pytest.mark.parametrize("via", ["estimator", "checkpoint"])
def test_warm_start_from_a_fitted_run_continues_it(via, tmp_path):
    f = shifted(0.3)
    first = ES("cma_es", sigma0=2.0, max_generations=40, random_state=0).fit(f, np.full(5, 3.0))
    source = first
    if via == "checkpoint":
        source = str(tmp_path / "run.ckpt")
        save_checkpoint(first, source)
    second = ES("cma_es", sigma0=2.0, max_generations=5, warm_start=source, random_state=1)
    second.initialize(np.zeros(5))
    old, new = first.run_.runner.state, second.run_.runner.state
    for name in old._fields:
        if name != "key":
            assert np.array_equal(np.asarray(getattr(old, name)), np.asarray(getattr(new, name))), name
    assert np.array_equal(second.x_, first.run_.runner.mean)
    second.fit(f, np.zeros(5))
    # it went on from the first run's distribution (best 0.02 after 40 generations); a cold start
    # from x0 = 0 with sigma0 = 2 is above 0.8 after 5 generations
    assert second.fun_ < first.fun_


def test_clone_keeps_a_fitted_warm_start_and_self_reference_works():
    """A fitted ES as warm_start is data: clone keeps it (a cloned, unfitted source could not be
    started from), get_params(deep=True) lists none of its parameters, and an ES continuing its
    own run (set_params(warm_start=es)) has a repr, get_params and clone without recursing."""
    from sklearn.base import clone

    f = shifted(0.3)
    first = ES("cma_es", sigma0=2.0, max_generations=20, random_state=0).fit(f, np.full(3, 3.0))
    second = ES("cma_es", max_generations=5, warm_start=first, random_state=1)
    assert not any(k.startswith("warm_start__") for k in second.get_params(deep=True))
    twin = clone(second)
    assert twin.warm_start is first
    assert twin.fit(f, np.zeros(3)).fun_ == second.fit(f, np.zeros(3)).fun_
    first.set_params(warm_start=first, max_generations=5)
    assert repr(first).endswith("warm_start=...)")
    assert first.get_params(deep=True)["warm_start"] is first
    again = clone(first)
    assert again.warm_start is first and again.get_params(deep=False).keys() == first.get_params(deep=False).keys()
    before = first.fun_
    assert again.fit(f, np.zeros(3)).fun_ <= before and first.fit(f, np.zeros(3)).fun_ <= before


def test_xnes_from_a_cma_es_run():
    first = ES("cma_es", sigma0=2.0, max_generations=40, random_state=0).fit(shifted(0.3), np.full(5, 3.0))
    x = ES("xnes", warm_start=first, random_state=1).initialize(np.zeros(5)).run_.runner.state
    a = first.run_.runner
    assert np.allclose(x.sigma ** 2 * x.B @ x.B.T, a.state.sigma ** 2 * a.strategy.current_cov(a.state))


def test_warm_start_across_population_sizes_takes_the_distribution():
    first = ES("cma_es", sigma0=2.0, max_generations=40, random_state=0).fit(shifted(0.3), np.full(5, 3.0))
    second = ES("cma_es", popsize=20, warm_start=first, random_state=1).initialize(np.zeros(5))
    a, b = first.run_.runner, second.run_.runner
    assert np.allclose(b.state.mean, a.state.mean)
    assert np.allclose(b.state.sigma ** 2 * b.strategy.current_cov(b.state),
                       a.state.sigma ** 2 * a.strategy.current_cov(a.state))


def test_warm_start_from_a_vkd_cma_run_takes_its_covariance():
    from evostrat.problems import ellipsoid

    first = ES("vkd_cma", max_generations=80, random_state=0).fit(ellipsoid, np.full(5, 2.0))
    a = first.run_.runner
    S = a.strategy.covariance(a.state) * float(a.state.sigma) ** 2  # VkD-CMA's N(m, sigma^2 C)
    assert np.sqrt(np.diag(S)).max() > 10 * np.sqrt(np.diag(S)).min()  # far from isotropic
    for target in ("cma_es", "xnes"):
        second = ES(target, popsize=30, warm_start=first, random_state=1).initialize(np.zeros(5))
        b = second.run_.runner
        C = b.strategy.current_cov(b.state) if target == "cma_es" else b.state.B @ b.state.B.T
        np.testing.assert_allclose(b.state.mean, a.state.mean)
        np.testing.assert_allclose(float(b.state.sigma) ** 2 * C, S, rtol=1e-8, atol=1e-15)


def test_warm_start_from_and_into_cma_es_factor_model_takes_the_distribution():
    from evostrat.problems import ellipsoid

    factor = {"covariance": "factor"}  # the model covariance="auto" picks from 256 dimensions on numpy

    def cov(es):
        a = es.run_.runner
        if "A" in a.state._fields:
            s = float(a.state.sigma * a.state.scale)
            return s * s * a.state.A @ a.state.A.T
        return float(a.state.sigma) ** 2 * a.strategy.current_cov(a.state)

    for source_options, target_options in ((factor, None), (None, factor), (factor, factor)):
        first = ES("cma_es", strategy_options=source_options, max_generations=80, random_state=0).fit(
            ellipsoid, np.full(5, 2.0))
        second = ES("cma_es", popsize=30, strategy_options=target_options, warm_start=first, ftarget=1e-12,
                    random_state=1).initialize(np.zeros(5))
        np.testing.assert_allclose(second.strategy_.mean, first.strategy_.mean)
        np.testing.assert_allclose(cov(second), cov(first), rtol=1e-8, atol=1e-18)
        second.fit(ellipsoid, np.zeros(5))
        assert second.fun_ <= 1e-12 and second.n_evals_ < 3000


def test_bad_warm_starts_name_the_argument():
    x0 = np.zeros(3)
    with pytest.raises(InvalidArgumentError, match=r"warm_start solutions must be X of shape \(N, 3\)"):
        ES("cma_es", warm_start=(np.zeros((10, 2)), np.zeros(10))).initialize(x0)
    with pytest.raises(InvalidArgumentError, match="warm_start solutions must be X"):
        ES("cma_es", warm_start=(np.zeros((10, 3)), np.zeros(9))).initialize(x0)
    with pytest.raises(InvalidArgumentError, match="selects no solution"):
        ES("cma_es", warm_start=(np.zeros((5, 3)), np.zeros(5))).initialize(x0)
    with pytest.raises(InvalidArgumentError, match="gamma must be"):
        ES("cma_es", warm_start=WarmStart(np.zeros((50, 3)), np.zeros(50), gamma=0)).initialize(x0)
    with pytest.raises(InvalidArgumentError, match="this ES has no run"):
        ES("cma_es", warm_start=ES("cma_es")).initialize(x0)
    with pytest.raises(InvalidTypeError, match="warm_start must be"):
        ES("cma_es", warm_start=3.0).initialize(x0)
    fitted = ES("cma_es", max_generations=2).fit(shifted(0), np.zeros(4))
    with pytest.raises(InvalidArgumentError, match="warm_start run has dimension 4"):
        ES("cma_es", warm_start=fitted).initialize(x0)


def test_warm_start_inside_bounds():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (1000, 2))
    v = ((X - 0.4) ** 2).sum(axis=1)
    es = ES("cma_es", warm_start=(X, v), bounds=(0, 1), random_state=0).initialize(np.full(2, 0.9))
    mean, _, _ = promising_distribution(X, v)
    assert np.allclose(es.x_, mean)  # the box image of the strategy's mean is the estimate
    es.fit(shifted(0.6), np.full(2, 0.9))
    assert np.allclose(es.x_, 0.6, atol=1e-4)


@pytest.mark.parametrize("target_bounds", [None, (0.0, 3.0)])
def test_warm_start_from_a_bounded_run_starts_at_its_point_in_the_box(target_bounds):
    """The whole state of a bounded source (its mean in the unbounded search space of its box)
    was copied into a run with other bounds: that run started at 1.0999 (the source's internal
    mean, with pycma 3's margins), outside the source's box [0, 1], instead of at the source's point 1.0."""
    outside = shifted(2.0)  # the optimum is past the upper bound: the internal mean leaves the box
    source = ES("cma_es", sigma0=0.3, bounds=(0, 1), max_generations=60, random_state=0,
                evaluator="vectorized").fit(outside, np.full(3, 0.5))
    internal = np.asarray(source.strategy_.mean)
    assert (internal > 1.02).all()  # the premise: the source's state lies outside its box (near u + a_u = 1.05)
    es = ES("cma_es", bounds=target_bounds, random_state=1, warm_start=source).initialize(np.full(3, 0.5))
    start = np.asarray(es.run_.to_box(es.strategy_.mean))
    assert np.allclose(start, source.run_.to_box(internal), rtol=0, atol=1e-12)
    assert (start <= 1.0).all()
    same_box = ES("cma_es", bounds=(0, 1), random_state=1, warm_start=source).initialize(np.full(3, 0.5))
    assert np.array_equal(np.asarray(same_box.strategy_.mean), internal)  # same box: the whole state


def test_a_run_warm_started_from_a_checkpoint_resumes_without_its_source(tmp_path):
    """Resuming applied the warm start again (its state then replaced by the saved one), so a
    moved or rewritten source file made the resume fail."""
    from evostrat.checkpoint import load_checkpoint

    source, path = tmp_path / "source.ckpt", tmp_path / "run.ckpt"
    ES("cma_es", max_generations=5, random_state=1).fit(sphere, np.ones(3), checkpoint=source)
    make = lambda: ES("cma_es", max_generations=20, warm_start=str(source), random_state=2)  # noqa: E731
    full = make().fit(sphere, np.ones(3))

    def crash(es):
        if es.n_generations_ == 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make().fit(sphere, np.ones(3), checkpoint=path, checkpoint_every=5, callbacks=[crash])
    ES("snes", max_generations=2).fit(sphere, np.ones(7), checkpoint=source)  # another run's, another dim
    assert load_checkpoint(path).warm_start == str(source)
    source.unlink()
    resumed = ES.resume(path, sphere)
    assert (resumed.fun_, resumed.n_evals_) == (full.fun_, full.n_evals_)
    assert np.array_equal(resumed.x_, full.x_)


def test_a_run_warm_started_from_an_estimator_resumes_without_it(tmp_path):
    """An ES as warm start cannot be stored; resuming, which never warm-starts again, no longer
    asks for it (it raised 'pass them again, e.g. resume(..., warm_start=...)')."""
    source = ES("cma_es", max_generations=5, random_state=1).fit(sphere, np.ones(3))
    make = lambda: ES("cma_es", max_generations=20, warm_start=source, random_state=2)  # noqa: E731
    full = make().fit(sphere, np.ones(3))
    path = tmp_path / "run.ckpt"

    def crash(es):
        if es.n_generations_ == 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make().fit(sphere, np.ones(3), checkpoint=path, checkpoint_every=5, callbacks=[crash])
    resumed = ES.resume(path, sphere)
    assert (resumed.fun_, resumed.n_evals_, resumed.warm_start) == (full.fun_, full.n_evals_, None)
    assert np.array_equal(resumed.x_, full.x_)


def test_warm_start_into_integer_coordinates_of_the_same_box_takes_the_distribution():
    """Same box, but integer coordinates in the new run (not mapped by the box transformation):
    the source's internal mean (past the upper bound 3) was copied; now the run starts at its point."""
    lo, hi = np.array([-3.0, -1.0]), np.array([3.0, 2.0])
    source = ES("cma_es", sigma0=0.5, bounds=(lo, hi), max_generations=50, random_state=0,
                evaluator="vectorized").fit(shifted(5.0), np.zeros(2))
    assert np.asarray(source.strategy_.mean)[0] > 3.0  # the premise
    es = ES("cma_es", bounds=(lo, hi), integer=[0], random_state=1, warm_start=source).initialize(np.zeros(2))
    assert np.allclose(np.asarray(es.strategy_.mean)[0], source.run_.to_box(source.strategy_.mean)[0])
    assert np.asarray(es.strategy_.mean)[0] <= 3.0


@pytest.mark.parametrize("via", ["estimator", "checkpoint"])
def test_full_state_warm_start_between_integer_runs_keeps_the_margin_state(via, tmp_path):
    """CMA-ES with margin: the whole state taken over includes the margin's scaling ``A`` and the
    correction of the source's last update, so the first ask continues the source (before: ``A``
    was reset to 1 and the due correction skipped, sampling another distribution)."""
    lo, hi = np.array([-4.0, -4.0, -4.0]), np.array([4.0, 4.0, 4.0])
    make = lambda **kw: ES("cma_es", sigma0=1.0, bounds=(lo, hi), integer=[0, 1], **kw)  # noqa: E731
    source = make(max_generations=30, random_state=0).fit(shifted(np.array([1.3, -2.2, 0.4])), np.zeros(3))
    assert (source.run_.integers.A[:2] != 1.0).all()  # the premise: the margin has scaled A
    spec = source
    if via == "checkpoint":
        spec = str(tmp_path / "run.ckpt")
        save_checkpoint(source, spec)
    warm = make(random_state=1, warm_start=spec).initialize(np.zeros(3))
    warm.ask()
    source.ask()  # the source's next generation: its due correction of m and A, then sampling
    np.testing.assert_array_equal(warm.run_.integers.A, source.run_.integers.A)
    np.testing.assert_array_equal(np.asarray(warm.strategy_.mean), np.asarray(source.strategy_.mean))
    Y = np.random.default_rng(2).normal(size=(6, 3))  # the same search points encode alike
    np.testing.assert_array_equal(warm.run_.to_box(Y), source.run_.to_box(Y))


@pytest.mark.parametrize("source, options", [("nes", {"distribution": "diag_normal"}), ("expectation_es", {}),
                                             ("nes", {"distribution": "low_rank_normal"})])
def test_warm_start_from_a_strategy_without_a_sigma_field_takes_its_declared_stds(source: str,
                                                                                 options: dict) -> None:
    """Was: a source whose state holds no ``sigma`` field (the generic NES, ExpectationES's
    ``log_sigma``) handed on ``sigma = 1`` in every coordinate ([1, 1, 1] for ``sigma0=[1, 2, 3]``)."""
    src = ES(source, sigma0=np.array([1.0, 2.0, 3.0]), strategy_options=options, random_state=0)
    src.initialize(np.zeros(3))
    for target in ("snes", "cma_es"):
        es = ES(target, warm_start=src, random_state=0).initialize(np.zeros(3))
        np.testing.assert_allclose(es.stds_, src.stds_, rtol=1e-12)
    assert src.stds_[2] / src.stds_[0] == pytest.approx(3.0, rel=1e-3)  # not isotropic


def test_one_selected_solution_is_enough():
    """``floor(gamma * N) = 1`` selects the best solution alone (WS-CMA-ES needs at least one):
    the mean is that solution and ``Sigma = alpha^2 I``, so sigma is ``alpha`` and ``C = I``."""
    X = np.array([[0.0, 1.0], [3.0, -2.0], [5.0, 5.0]])
    mean, sigma, C = promising_distribution(X, np.array([2.0, 1.0, 9.0]), gamma=0.4, alpha=0.25)
    np.testing.assert_array_equal(mean, [3.0, -2.0])
    assert sigma == pytest.approx(0.25, rel=1e-15)
    np.testing.assert_allclose(C, np.eye(2), rtol=1e-15)
    with pytest.raises(InvalidArgumentError, match=r"gamma \* len\(values\) = 0.3 \* 3 selects no solution"):
        promising_distribution(X, np.array([2.0, 1.0, 9.0]), gamma=0.3, alpha=0.25)


def test_a_covariance_is_split_into_det_root_sigma_and_a_unit_determinant_c():
    """A source declaring ``N(m, S)`` (VkD-CMA) starts CMA-ES at ``sigma = det(S)^(1/2n)`` and
    ``C = S / sigma^2`` of determinant 1, as WS-CMA-ES's estimate (the step-size path then adapts
    the scale, ``C`` the shape)."""
    from evostrat.problems import ellipsoid

    first = ES("vkd_cma", max_generations=80, random_state=0).fit(ellipsoid, np.full(5, 2.0))
    a = first.run_.runner
    S = a.strategy.covariance(a.state) * float(a.state.sigma) ** 2
    b = ES("cma_es", popsize=30, warm_start=first, random_state=1).initialize(np.zeros(5)).run_.runner
    C = b.strategy.current_cov(b.state)
    assert float(b.state.sigma) == pytest.approx(np.linalg.det(S) ** (1 / 10), rel=1e-10)
    assert np.linalg.det(C) == pytest.approx(1.0, rel=1e-9)


def test_into_the_factor_model_the_extreme_axes_are_the_covariances():
    """``covariance="factor"`` keeps the inverse of its factor (``A_inv``), the largest and smallest
    eigenvector of ``C`` (``axes``) and the square roots of their eigenvalues, ascending (``D``), for
    its stop criteria: a warm start sets them from the ``C`` it hands over."""
    from evostrat.problems import ellipsoid

    first = ES("cma_es", max_generations=80, random_state=0).fit(ellipsoid, np.full(5, 2.0))
    b = ES("cma_es", popsize=30, strategy_options={"covariance": "factor"}, warm_start=first,
           random_state=1).initialize(np.zeros(5)).run_.runner
    state = b.state
    C = float(state.scale) ** 2 * state.A @ state.A.T
    w, V = np.linalg.eigh(C)
    assert w[-1] > 100 * w[0]  # learned on the ellipsoid
    np.testing.assert_allclose(state.D, np.sqrt(w[[0, -1]]), rtol=1e-9)
    np.testing.assert_allclose(state.A_inv @ state.A, np.eye(5), atol=1e-9)  # the inverse the model keeps
    for axis, column in zip(state.axes, (V[:, -1], V[:, 0])):
        assert abs(float(axis @ column)) == pytest.approx(1.0, rel=1e-9)  # the same unit vector, up to sign


@pytest.mark.parametrize("gamma,alpha,ok", [(1.0, 0.1, True), (1e-9, 0.1, True), (1.0 + 1e-12, 0.1, False),
                                            (0.0, 0.1, False), (0.5, 1e-300, True), (0.5, 0.0, False)])
def test_gamma_and_alpha_ranges(gamma, alpha, ok):
    spec = WarmStart(np.eye(3), np.arange(3.0), gamma=gamma, alpha=alpha)
    if ok:
        spec.validate_params()
    else:
        with pytest.raises(InvalidArgumentError, match="gamma" if alpha else "alpha"):
            spec.validate_params()


def test_a_source_of_another_layout_is_refused_naming_both_layouts():
    """Leaf names and shapes of both ``x0`` in the error, source first (the same dimension, 3)."""
    source = ES("cma_es", random_state=0).initialize({"a": np.ones(2), "b": np.ones(1)})
    expected = ("warm_start run's x0 has leaves [\"['a']\", \"['b']\"] of shapes [(2,), (1,)], this x0 "
                "[\"['a']\", \"['b']\"] of shapes [(1,), (2,)]: the layouts must agree")
    with pytest.raises(InvalidArgumentError) as error:
        ES("cma_es", warm_start=source, random_state=0).initialize({"a": np.ones(1), "b": np.ones(2)})
    assert str(error.value) == expected
