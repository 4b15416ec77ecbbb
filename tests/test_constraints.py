"""Constraints g(x) <= 0 (issue 20 item 1): the augmented Lagrangian for the CMA family,
Deb's feasibility rules for the others, from fit and from ask/tell; errors naming the argument.

The comparison with pycma's fmin_con2 in evaluations is benchmarks/constraints_vs_pycma.py
(BENCHMARKS.md); here: the same coefficient updates as pycma's AugmentedLagrangian on the
same data, and the optimum reached on pycma's own test problem.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest

from evostrat import ES, vectorized
from evostrat.constraints import (
    AugmentedLagrangian, ConstraintHandler, Penalty, check_constraints, feasible, make_constraint_handler,
    violation,
)
from evostrat.errors import CheckpointError, InvalidArgumentError, InvalidTypeError


def sphere(x):
    return float(np.dot(x, x))


def linear(x):  # pycma's test: x_0 <= -0.1, optimum (-0.1, 0, 0), f* = 0.01
    return [x[0] + 0.1]


def fit_linear(seed: int, **kw) -> ES:
    return ES("cma_es", sigma0=1.0, evaluator="serial", random_state=seed, **kw).fit(
        sphere, np.ones(3), constraints=linear)


@pytest.mark.parametrize("seed", [0, 1])
def test_augmented_lagrangian_reaches_the_constrained_optimum_feasibly(seed: int) -> None:
    es = fit_linear(seed)
    assert linear(es.x_)[0] <= 0  # x_ is the best feasible candidate
    assert abs(es.fun_ - 0.01) < 1e-6
    np.testing.assert_allclose(es.x_, [-0.1, 0.0, 0.0], atol=1e-3)
    assert es.n_evals_ < 2000  # pycma's fmin_con2 needs about 900 here (BENCHMARKS.md)
    h = es.history_[-1]
    assert {"violation", "feasible"} <= set(h) and h["violation"] >= 0 and 0 <= h["feasible"] <= 1
    assert all(r["best"] == math.inf or linear(es.x_)[0] <= 0 for r in es.history_)


def test_tolstagnation_auto_is_off_with_constraints_as_in_fmin_con2() -> None:
    es = fit_linear(0, max_evals=100)
    assert es._termination.tolstagnation is None
    es = ES("cma_es", tolstagnation=50, max_evals=100, evaluator="serial").fit(sphere, np.ones(3), constraints=linear)
    assert es._termination.tolstagnation == 50


def test_ask_tell_with_constraints_equals_fit() -> None:
    ref = fit_linear(3, max_evals=700)
    es = ES("cma_es", sigma0=1.0, max_evals=700, random_state=3).initialize(np.ones(3))
    while not es.stop():
        X = es.ask()
        es.tell(X, [sphere(x) for x in X], constraints=[linear(x) for x in X])
    assert es.n_evals_ == ref.n_evals_ and es.fun_ == ref.fun_
    np.testing.assert_array_equal(es.x_, ref.x_)


@pytest.mark.parametrize("evaluator", ["serial", "vectorized", "auto"])
def test_constraints_from_the_objective_equal_a_separate_callable(evaluator: str) -> None:
    ref = fit_linear(0, max_evals=500)

    def fg(x):
        return sphere(x), linear(x)

    def FG(X):
        return (X ** 2).sum(axis=1), X[:, :1] + 0.1

    es = ES("cma_es", sigma0=1.0, evaluator=evaluator, max_evals=500, random_state=0).fit(
        fg if evaluator == "serial" else FG, np.ones(3), constraints="objective")
    assert es.fun_ == ref.fun_ and es.n_evals_ == ref.n_evals_
    with pytest.raises(InvalidArgumentError, match="must return \\(f, g\\)"):
        ES("cma_es", evaluator="serial").fit(sphere, np.ones(3), constraints="objective")


def test_penalty_for_other_strategies_and_maximize() -> None:
    es = ES("snes", sigma0=0.5, evaluator="serial", max_evals=6000, random_state=0).fit(
        sphere, np.ones(3), constraints=lambda x: [1.0 - x[0]])
    assert es.x_[0] >= 1.0 and abs(es.fun_ - 1.0) < 1e-4
    es = ES("cma_es", sigma0=0.5, evaluator="serial", maximize=True, random_state=0).fit(
        lambda x: -sphere(x), np.ones(3), constraints=lambda x: [1.0 - x[0]])
    assert es.x_[0] >= 1.0 and abs(es.fun_ + 1.0) < 1e-6


def test_quadratic_penalty_and_handler_choice() -> None:
    assert isinstance(make_constraint_handler("auto", "cma_es", 3), AugmentedLagrangian)
    assert isinstance(make_constraint_handler("auto", "snes", 3), Penalty)
    es = ES("xnes", sigma0=0.5, evaluator="serial", max_evals=3000, random_state=0).fit(
        sphere, np.ones(2), constraints=lambda x: [1.0 - x[0]], constraint_handler=Penalty(weight=1e4))
    assert es.x_[0] >= 1.0 and es.fun_ < 1.01


def test_the_quadratic_penalty_adds_the_weighted_squares_of_the_violations() -> None:
    F, G = np.array([1.0, 1.0, 1.0, 2.0]), np.array([[-1.0, 0.0], [0.5, -2.0], [3.0, 0.25], [np.inf, -1.0]])
    assert Penalty(weight=0.5).values(F, G).tolist() == [1.0, 1.0 + 0.5 * 0.25, 1.0 + 0.5 * (9.0 + 0.0625), math.inf]
    for weight in (0.0, -1.0, math.inf, math.nan, "1"):
        with pytest.raises(InvalidArgumentError, match=r"Penalty: weight must be None or a positive finite number"):
            Penalty(weight=weight)
    restored = Penalty()
    restored.load_state_values({"weight": 0.5})
    assert restored.weight == 0.5
    for weight in (0.0, -1.0, math.inf):  # a forged checkpoint
        with pytest.raises(CheckpointError, match=r"penalty field 'weight' must be a positive finite number"):
            Penalty().load_state_values({"weight": weight})


def test_a_constraint_value_of_exactly_zero_is_satisfied() -> None:
    # g(x) <= 0 holds at g = 0: a candidate on the constraint's boundary is feasible, with no violation
    G = np.array([[0.0, -1.0], [5e-324, 0.0], [-0.0, -0.0]])
    assert feasible(G).tolist() == [True, False, True] and violation(G).tolist() == [0.0, 5e-324, 0.0]
    es = ES("cma_es", evaluator="serial", max_generations=5, random_state=0).fit(sphere, np.ones(3),
                                                                              constraints=lambda x: [0.0])
    assert math.isfinite(es.fun_) and all(row["feasible"] == 1.0 for row in es.history_)


def test_no_feasible_candidate_leaves_fun_inf_and_restarts_reset_the_handler() -> None:
    es = ES("cma_es", sigma0=0.3, evaluator="serial", max_evals=300, random_state=0).fit(
        sphere, np.ones(2), constraints=lambda x: [1.0])  # never feasible
    assert es.fun_ == math.inf and es.history_[-1]["feasible"] == 0.0
    es = ES("cma_es", sigma0=1.0, evaluator="serial", restarts=dict(kind="ipop", max_restarts=1),
            tolfun=1e-6, random_state=0).fit(sphere, np.ones(3), constraints=linear)
    assert len(es.restarts_) == 2 and linear(es.x_)[0] <= 0 and abs(es.fun_ - 0.01) < 1e-4


def test_a_handler_instance_starts_each_fit_afresh() -> None:
    """An AugmentedLagrangian passed as constraint_handler kept the coefficients it learnt in
    one fit for the next: a refit ran another run (as restarts do, each fit now resets it)."""
    handler = AugmentedLagrangian(dim=3)
    es = ES("cma_es", sigma0=1.0, evaluator="serial", max_evals=800, random_state=0)
    runs = [es.fit(sphere, np.ones(3), constraints=linear, constraint_handler=handler).history_ for _ in range(2)]
    assert [r["sigma"] for r in runs[1]] == [r["sigma"] for r in runs[0]]
    assert [r["sigma"] for r in fit_linear(0, max_evals=800).history_] == [r["sigma"] for r in runs[0]]


def _follow_pycma(n: int, populations: Any, mus: list | None = None) -> AugmentedLagrangian:
    """Our handler and pycma's ``AugmentedLagrangian`` fed the same ``(F, G)`` populations: the
    same ``h`` for every candidate and the same ``lam`` and ``mu`` after every generation (pycma
    learns from the candidate with the best ``h``, as ours). Returns ours; ``mus`` gets a copy of
    ``mu`` after each generation."""
    from cma.constraints_handler import AugmentedLagrangian as PycmaAL

    ours, theirs = AugmentedLagrangian(n), PycmaAL(n)
    theirs.logging = 0
    for F, G in populations:
        h_ours = ours.values(F, G)
        h_theirs = np.array([f + sum(theirs(g)) for f, g in zip(F, G)])
        np.testing.assert_allclose(h_ours, h_theirs, rtol=1e-12, atol=1e-12)
        ours.update(F, G, h_ours)
        if not theirs.is_initialized:
            theirs.set_coefficients(list(F), list(G))
        best = int(np.argmin(h_theirs))
        theirs.update(F[best], G[best])
        np.testing.assert_allclose(ours.lam, theirs.lam, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(ours.mu, theirs.mu, rtol=1e-12, atol=1e-15)
        if mus is not None:
            mus.append(ours.mu.copy())
    return ours


def test_same_coefficients_as_pycma_on_the_same_data(tmp_path, monkeypatch) -> None:
    pytest.importorskip("cma")
    monkeypatch.chdir(tmp_path)  # pycma's handler makes its log folder (outcmaes/) where it runs

    rng = np.random.default_rng(0)
    n = 4
    shift = np.array([0.5, -0.2])

    def populations() -> Any:
        for gen in range(60):
            X = rng.standard_normal((8, n)) * 0.9 ** gen + 0.2
            F = (X ** 2).sum(axis=1)
            yield F, np.stack([X[:, 0] - shift[0], X[:, 1] + X[:, 0] - shift[1]], axis=1)

    ours = _follow_pycma(n, populations())
    assert np.all(ours.mu > 0)


@pytest.mark.parametrize("path", ["violated, then satisfied", "always satisfied", "drifting across"])
def test_same_coefficients_as_pycma_through_long_runs_of_one_sign(tmp_path, monkeypatch, path: str) -> None:
    # the populations above never change mu the same way more than 2 + m times in a row, so the
    # ramp of its step (``_ramp``) and the "mostly feasible" reset of set_coefficients went untested:
    # here the best candidate violates both constraints for 45 generations and then satisfies them,
    # satisfies one from the start, or moves across both
    pytest.importorskip("cma")
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    n, m = 3, 2
    A = rng.standard_normal((m, n))
    centre = {"violated, then satisfied": lambda g: 2.0 if g < 45 else -2.0,
              "always satisfied": lambda g: -1.0, "drifting across": lambda g: 2.0 - g / 20}[path]

    def populations() -> Any:
        for gen in range(90):
            X = rng.standard_normal((8, n)) * 0.3 + centre(gen)
            yield (X ** 2).sum(axis=1), X @ A.T - 0.3

    ours = _follow_pycma(n, populations())
    assert np.abs(ours.same_changes).max() > 2 + m  # the ramp takes part


@pytest.mark.filterwarnings("ignore:iqr:UserWarning")  # pycma's, when a constraint's values have no spread
def test_same_coefficients_as_pycma_with_constraint_values_on_the_boundary(tmp_path, monkeypatch) -> None:
    # constraint values in steps of 0.5, so that many are exactly 0: pycma counts g = 0 as half
    # feasible in the rate of feasible best candidates, and compares penalised domains strictly; and a
    # first population with exactly 10 % infeasible, which does not set the coefficients (> 10 % does)
    pytest.importorskip("cma")
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    n, m = 3, 2
    A = rng.standard_normal((m, n))

    def populations() -> Any:
        for gen in range(120):
            X = rng.standard_normal((10, n)) * 0.3 + (1.0 if gen < 40 else -0.5 if gen < 80 else 0.0)
            G = np.round((X @ A.T - 0.3) * 2.0) / 2.0
            if gen == 0:
                G[:, :] = -1.0
                G[0, :] = 1.0
            yield (X ** 2).sum(axis=1), G

    ours = _follow_pycma(n, populations())
    assert (ours.n_updates, np.abs(ours.same_changes).max() > 2 + m) == (120, True)


def test_same_coefficients_as_pycma_when_a_mostly_infeasible_start_turns_mostly_feasible(tmp_path,
                                                                                          monkeypatch) -> None:
    # set_coefficients sets mu again while a constraint is not yet initialised (the first 2 + n
    # updates, over 90 % infeasible); when the population turns mostly feasible (at most 60 %
    # infeasible) with a smaller mu, lam is scaled down with it. No other stream took that branch.
    pytest.importorskip("cma")
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    n = 3
    a = np.abs(rng.standard_normal(n))

    def populations() -> Any:
        for gen in range(40):
            centre = 3.0 if gen < 3 else 0.3 / a.sum()  # all infeasible, then on the boundary
            X = rng.standard_normal((10, n)) * (1.0 if gen < 3 else 0.1) + centre
            yield (X ** 2).sum(axis=1), (X @ a - 0.3)[:, None]

    mus: list = []
    _follow_pycma(n, populations(), mus)
    assert mus[3][0] < mus[2][0] / 5  # set again, lower, in the first mostly feasible generation


@pytest.mark.parametrize("field, value, message", [
    ("dgamma", 0.0, "'dgamma' must be a positive finite number"),
    ("dgamma", -5.0, "'dgamma' must be a positive finite number"),
    ("dgamma", math.inf, "'dgamma' must be a positive finite number"),
    ("initialized", None, "'lam', 'mu' and 'initialized' must be set together"),
    ("mu", None, "'lam', 'mu' and 'initialized' must be set together"),
    ("dim", 4, "has dim 4, the run 3"),
])
def test_a_forged_augmented_lagrangian_state_is_refused_naming_the_field(field: str, value: Any, message: str) -> None:
    learnt = AugmentedLagrangian(dim=3)
    F, G = np.array([1.0, 2.0, 3.0, 4.0]), np.array([[1.0], [-1.0], [2.0], [-2.0]])
    learnt.update(F, G, learnt.values(F, G))
    state = dict(learnt.state_values(), **{field: value})
    fresh = AugmentedLagrangian(dim=3)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        fresh.load_state_values(state)
    assert fresh.lam is None and fresh.dgamma == 5.0  # nothing set
    fresh.load_state_values(learnt.state_values())
    assert np.array_equal(fresh.lam, learnt.lam) and np.array_equal(fresh.mu, learnt.mu)


def test_an_augmented_lagrangian_state_with_an_inactive_constraint_and_a_full_history_loads() -> None:
    # an inactive constraint's multiplier is exactly 0 (coefficients must be >= 0, not > 0); the
    # history keeps dim + 20 vectors, and a forged one with more is refused
    al = AugmentedLagrangian(dim=2)
    rng = np.random.default_rng(0)
    for _ in range(30):
        F = rng.standard_normal(6) ** 2
        G = np.stack([rng.standard_normal(6), -1.0 - rng.random(6)], axis=1)  # the second never violated
        al.update(F, G, al.values(F, G))
    state = al.state_values()
    assert len(state["g_history"]) == 2 + 20 and state["lam"][1] == 0.0 and state["mu"][0] > 0
    fresh = AugmentedLagrangian(dim=2)
    fresh.load_state_values(state)
    assert np.array_equal(fresh.lam, al.lam) and len(fresh.g_history) == 22
    with pytest.raises(CheckpointError, match=r"field 'g_history' holds 23 vectors, at most 22"):
        AugmentedLagrangian(dim=2).load_state_values(dict(state, g_history=state["g_history"] + [np.zeros(2)]))


def test_no_coefficients_are_set_from_a_generation_with_a_non_finite_value() -> None:
    al = AugmentedLagrangian(dim=2)
    F, G = np.array([1.0, np.inf, 3.0, 4.0]), np.array([[1.0], [-1.0], [2.0], [-2.0]])
    al.update(F, G, al.values(F, G))
    assert al.lam is None and al.mu is None  # its spread would be that of the finite values alone
    F[1] = 2.0
    al.update(F, G, al.values(F, G))
    assert al.lam[0] > 0 and al.mu[0] > 0


def test_the_handler_drives_a_bare_strategy_object() -> None:
    from evostrat.strategies.cma_es import CMAES

    al, s = AugmentedLagrangian(dim=3), CMAES(sigma0=1.0).initialize(np.ones(3), random_state=0)
    best = np.inf
    for _ in range(150):
        X = s.ask()
        F, G = (X ** 2).sum(axis=1), X[:, :1] + 0.1
        h = al.values(F, G)
        s.tell(X, h)
        al.update(F, G, h)
        best = min(best, F[G[:, 0] <= 0].min(initial=np.inf))
    assert abs(best - 0.01) < 1e-8 and al.lam[0] > 0


def test_bad_constraint_inputs_name_the_argument() -> None:
    es = ES("cma_es", random_state=0).initialize(np.ones(3))
    X = es.ask()
    with pytest.raises(InvalidArgumentError, match=r"constraints must have shape \(7, m\)"):
        es.tell(X, [sphere(x) for x in X], constraints=np.zeros((3, 2)))
    with pytest.raises(InvalidTypeError, match="constraints must be real numbers"):
        es.tell(X, [sphere(x) for x in X], constraints=[["a"]] * 7)
    es.tell(X, [sphere(x) for x in X], constraints=np.zeros((7, 2)))
    X = es.ask()
    with pytest.raises(InvalidArgumentError, match="must have 2 values per candidate"):
        es.tell(X, [sphere(x) for x in X], constraints=np.zeros((7, 3)))
    with pytest.raises(InvalidArgumentError, match=r"constraints\(x\) must return shape"):
        ES("cma_es", evaluator="serial").fit(sphere, np.ones(2), constraints=lambda x: [] if x[0] > 1 else [0.0])
    with pytest.raises(InvalidTypeError, match="constraints must be callable"):
        ES("cma_es").fit(sphere, np.ones(2), constraints=[1.0])
    with pytest.raises(InvalidTypeError, match="or 'objective'"):
        ES("cma_es").fit(sphere, np.ones(2), constraints="objectiv")
    with pytest.raises(InvalidArgumentError, match="constraint_handler must be one of"):
        ES("cma_es").fit(sphere, np.ones(2), constraints=linear, constraint_handler="lagrange")
    with pytest.raises(InvalidArgumentError, match="checkpoint needs a constraint_handler whose state"):
        ES("cma_es").fit(sphere, np.ones(2), constraints=linear, checkpoint="x.zip",
                         constraint_handler=type("Mine", (ConstraintHandler,), {})())
    es = ES("maxvar_es", random_state=0).initialize(np.ones(2))
    X = es.ask()
    with pytest.raises(InvalidArgumentError, match="not supported for behaviour strategies"):
        es.tell(X, np.asarray(X), constraints=np.zeros(len(X)))
    with pytest.raises(InvalidArgumentError, match="weight must be"):
        Penalty(weight=-1.0)
    assert check_constraints([1.0, -1.0], 2).shape == (2, 1)
    assert check_constraints([[np.nan]], 1)[0, 0] == math.inf  # NaN counts as violated


@pytest.mark.slow
def test_evaluations_within_20_percent_of_pycma_fmin_con2() -> None:
    """benchmarks/constraints_vs_pycma.py's comparison on 5 seeds: every final point feasible
    and within 1e-6 of f*, and the median evaluations to reach it within 20 % of pycma's."""
    pytest.importorskip("cma")
    pytest.importorskip("scipy")
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "constraints_vs_pycma.py"
    spec = importlib.util.spec_from_file_location("constraints_vs_pycma", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for name, p in bench.PROBLEMS.items():
        fstar = bench.reference(p)
        ours, theirs, finals = [], [], []
        for seed in range(5):
            hit, _, x, fx = bench.run_evostrat(p, fstar, seed, 30000)
            ours.append(hit)
            finals.append(max(p["g"](x)) <= 0 and fx - fstar <= 1e-6)
            theirs.append(bench.run_pycma(p, fstar, seed, 30000)[0])
        solved = [h for h in ours if h is not None]
        assert len(solved) >= 4 and sum(finals) >= 4, (name, ours, finals)  # Rosenbrock's local optimum
        ratio = np.median(solved) / np.median([h for h in theirs if h is not None])
        assert ratio <= 1.2, (name, ratio, ours, theirs)


def test_nan_constraint_values_neither_inflate_the_coefficients_nor_give_nan() -> None:
    """A NaN constraint value (a failed evaluation, counted as violated) in the generation that sets
    the coefficients was left in the spread of g: the interquartile range became 0, and lam and mu
    about 1e11 (instead of about 1, as without it); the penalty of a constraint whose coefficients
    are still 0 was 0 * inf = NaN, with numpy's RuntimeWarning."""
    import warnings

    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 3)) + 1.0
    F, G = (X ** 2).sum(axis=1), 1.0 - X[:, :1]
    clean = AugmentedLagrangian(3)
    clean.set_coefficients(F, G)
    G_nan = check_constraints(np.where(np.arange(10)[:, None] == 3, np.nan, G), 10)
    al = AugmentedLagrangian(3)
    al.set_coefficients(F, G_nan)  # as update does first
    q25, q75 = np.percentile(G[np.arange(10) != 3, 0], [25, 75])  # the spread of the nine finite values
    q25f, q75f = np.percentile(F, [25, 75])
    assert al.lam[0] == pytest.approx((q75f - q25f) / (3 * (q75 - q25)), rel=1e-6)  # lam = iqr(f) / (n iqr(g))
    assert 0.5 < al.mu[0] / clean.mu[0] < 2 and 0.5 < al.lam[0] / clean.lam[0] < 2  # was about 1e11 times

    al = AugmentedLagrangian(2)
    al.lam, al.mu, al.initialized = np.array([1.0, 0.0]), np.array([1.0, 0.0]), np.array([True, False])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = al.values(np.array([1.0, 2.0, 3.0]),
                      check_constraints([[0.5, -np.inf], [0.5, np.nan], [-np.inf, 0.3]], 3))
    assert h.tolist() == [1.625, math.inf, 2.5]  # -inf: feasible, no penalty where lam = mu = 0 (was NaN)


@pytest.mark.parametrize("strategy", ["lm_ma_es", "vkd_cma"])
def test_auto_gives_the_cma_variants_the_augmented_lagrangian(strategy: str) -> None:
    """LM-MA-ES with "auto" got Deb's rules: on the 5-D sphere with x_0 >= 1 (f* = 1) its step size
    ran away (seed 0: sigma 4e10, mean 4e13, fun_ 2.9995 after 8000 evaluations; seeds 1, 2: fun_
    1.02 and 3.6); with the augmented Lagrangian it reaches 1 + 1e-8 in about 2000."""
    assert make_constraint_handler("auto", strategy, 5).name == "augmented_lagrangian"
    for seed in range(3):
        es = ES(strategy, evaluator="serial", random_state=seed, max_evals=4000).fit(
            sphere, np.full(5, 3.0), constraints=lambda x: [1.0 - x[0]])
        assert es.x_[0] >= 1.0 and es.fun_ - 1.0 < 1e-6 and es.stop_reason_ == "tolfun"


def test_a_checkpointed_auto_run_keeps_the_handler_it_was_given() -> None:
    """A checkpoint of an LM-MA-ES run whose "auto" handler was Deb's rules (an earlier version's
    choice) resumes with Deb's rules, not with an error that the handlers differ."""
    from evostrat.constraints.tracker import ConstrainedRun

    old = ConstrainedRun("penalty", "lm_ma_es", 3)
    old.apply(np.array([1.0, 2.0]), [[0.5], [-1.0]], maximize=False)
    run = ConstrainedRun("auto", "lm_ma_es", 3)
    run.load_state_values(old.state_values())
    assert isinstance(run.handler, Penalty) and run.m == 1
    with pytest.raises(CheckpointError, match="is not the run.s"):  # a handler asked for by name stays checked
        ConstrainedRun("augmented_lagrangian", "lm_ma_es", 3).load_state_values(old.state_values())


def test_deb_rules_offset_infeasible_values_by_the_worst_feasible_value() -> None:
    """Deb (2000, eq. 2) adds the violation to the worst *feasible* value. The worst of all values
    was used: one far-off infeasible candidate (f = 1e20) made every infeasible value 1e20 + v ==
    1e20, a tie that lost the ranking by violation."""
    F = np.array([1.0, 1e20, 2.0, 3.0])
    G = np.array([[-1.0], [5.0], [1.0], [2.0]])
    values = Penalty().values(F, G)
    assert values.tolist() == [1.0, 6.0, 2.0, 3.0]
    assert np.argsort(values, kind="stable").tolist() == [0, 2, 3, 1]  # feasible first, then by violation
    assert Penalty().values(np.array([7.0, -3.0]), np.array([[1.0], [0.5]])).tolist() == [1.0, 0.5]  # none feasible


@pytest.mark.parametrize("worst", [1e9, -1e9, 3.0e16])
def test_deb_rules_rank_a_violation_below_the_float_spacing_after_every_feasible_candidate(worst: float) -> None:
    # f_worst + v rounded to f_worst when v was below the spacing of floats there (1.2e-7 at 1e9):
    # the infeasible candidate tied with the worst feasible one, and a stable sort put it first
    F = np.array([5.0, worst, worst - 1e3 * abs(worst) * 2.0 ** -52])
    G = np.array([[1e-8], [-1.0], [-1.0]])
    values = Penalty().values(F, G)
    assert values[0] > worst and values[0] == np.nextafter(worst, np.inf)
    assert np.argsort(values, kind="stable").tolist() == [2, 1, 0]
    # a violation the spacing can hold is added as it is
    assert Penalty().values(F, np.array([[1e3 * abs(worst)], [-1.0], [-1.0]]))[0] == worst + 1e3 * abs(worst)


@pytest.mark.parametrize("out, got", [(None, "NoneType"), ("a", "str"), ([1j], "list"), ({"g": 1.0}, "dict")],
                         ids=["None", "str", "complex", "dict"])
def test_a_constraint_function_returning_no_real_numbers_is_refused_naming_the_candidate(out, got: str) -> None:
    # None became NaN, counted as violated: every candidate infeasible, silently (a function that
    # forgot its return); a complex number lost its imaginary part, and a string raised numpy's ValueError
    with pytest.raises(InvalidTypeError,
                       match=rf"^constraints\(x\) must return real numbers; got {got} for candidate 0"):
        ES("cma_es", evaluator="serial", max_generations=3).fit(sphere, np.ones(3), constraints=lambda x: out)
    population = vectorized(lambda X: None if out is None else np.full(len(X), out[0] if isinstance(out, list) else 1j))
    with pytest.raises(InvalidTypeError, match=r"^constraints\(X\) \(marked vectorized.*\) must be real numbers"):
        ES("cma_es", evaluator="serial", max_generations=3).fit(sphere, np.ones(3), constraints=population)
    es = ES("cma_es", random_state=0).initialize(np.ones(3))
    X = es.ask()
    with pytest.raises(InvalidTypeError, match=r"^constraints must be real numbers"):
        es.tell(X, [sphere(x) for x in X], constraints=[out] * len(X))


@pytest.mark.parametrize("evaluator, objective, message", [
    ("serial", lambda x: (sphere(x), None),
     r"objective must return constraint values g of shape \(m,\) for candidate 0"),
    ("serial", lambda x: (sphere(x), [1.0] * (1 + int(x[0] > 0.0))),
     r"constraint vectors g must all have the same length m, got lengths \[1, 2\]"),
    ("vectorized", lambda X: ((X ** 2).sum(axis=1), np.ones((3, 2))),
     r"a vectorised objective must return constraint values g with 7 rows"),
], ids=["None", "lengths", "rows"])
def test_the_g_of_an_objective_with_constraints_is_checked_in_its_own_words(evaluator: str, objective,
                                                                           message: str) -> None:
    # (f, g) is read as (fitness, behaviours): the errors spoke of "a behaviour vector"
    with pytest.raises((InvalidTypeError, InvalidArgumentError),
                       match=r"^with constraints='objective' the objective returns \(f, g\), g the constraint "
                             rf"values: {message}") as info:
        ES("cma_es", evaluator=evaluator, max_generations=3, random_state=0).fit(objective, np.zeros(3),
                                                                                 constraints="objective")
    assert "behaviour" not in str(info.value)


def test_a_constraint_function_that_raises_gets_an_objective_error_naming_the_candidate() -> None:
    # written for the population, it gets one candidate: the user's IndexError is chained, not leaked
    from evostrat.errors import ObjectiveError

    es = ES("cma_es", random_state=0, max_generations=30)
    with pytest.raises(ObjectiveError, match=r"constraints\(x\) raised on candidate 0 \(one candidate, shape "
                                             r"\(3,\)\): IndexError") as info:
        es.fit(lambda X: (X ** 2).sum(axis=-1), np.ones(3), constraints=lambda X: 1.0 - X[:, :1])
    assert isinstance(info.value.__cause__, IndexError) and info.value.index == 0
    assert es.n_generations_ == 0  # the generation that raised is undone, as for the objective
    es.fit(lambda X: (X ** 2).sum(axis=-1), np.ones(3), constraints=lambda x: 1.0 - x[:1])  # a per-candidate g
    assert es.n_generations_ == 30 and es.x_[0] >= 1.0 - 1e-6


def _linear_population(calls: list) -> object:
    from evostrat import vectorized

    @vectorized
    def g(X):  # linear's constraint for the whole population: the same arithmetic per row
        calls.append(X.shape)
        return X[:, 0] + 0.1

    return g


def test_a_vectorized_constraint_function_is_called_once_a_generation_and_gives_the_same_run() -> None:
    calls: list = []
    alone = fit_linear(0)
    es = ES("cma_es", sigma0=1.0, evaluator="serial", random_state=0).fit(sphere, np.ones(3),
                                                                          constraints=_linear_population(calls))
    assert calls == [(es.strategy_.popsize, 3)] * es.n_generations_ and len(calls) > 10
    assert es.x_.tolist() == alone.x_.tolist() and es.fun_ == alone.fun_ and es.n_evals_ == alone.n_evals_
    assert [r["violation"] for r in es.history_] == [r["violation"] for r in alone.history_]


def test_a_vectorized_constraint_function_gets_numpy_rows_on_torch_and_gives_the_same_run() -> None:
    torch = pytest.importorskip("torch")
    calls: list = []
    x0 = torch.ones(3, dtype=torch.float64)
    objective = lambda x: float((x * x).sum())  # noqa: E731
    runs = [ES("cma_es", sigma0=1.0, evaluator="serial", random_state=0, max_generations=40).fit(
        objective, x0, constraints=g) for g in (linear, _linear_population(calls))]
    assert calls == [(runs[1].strategy_.popsize, 3)] * 40
    assert torch.equal(runs[0].x_, runs[1].x_) and runs[0].fun_ == runs[1].fun_ and runs[1].x_[0] <= -0.1 + 1e-2


@pytest.mark.parametrize("marked", [False, True])
def test_a_constraint_function_that_modifies_its_input_does_not_change_the_candidates(marked: bool) -> None:
    from evostrat import vectorized

    def g(x):
        out = x[..., 0] + 0.1 if marked else [x[0] + 0.1]
        x[...] = 1e6  # its own copy
        return out

    es = ES("cma_es", sigma0=1.0, evaluator="serial", random_state=0).fit(
        sphere, np.ones(3), constraints=vectorized(g) if marked else g)
    alone = fit_linear(0)
    assert es.x_.tolist() == alone.x_.tolist() and es.n_evals_ == alone.n_evals_


def test_a_vectorized_constraint_function_of_the_wrong_shape_or_that_raises_gets_a_clear_error() -> None:
    from evostrat import vectorized
    from evostrat.errors import ObjectiveError

    es = ES("cma_es", random_state=0, max_generations=5)
    with pytest.raises(InvalidArgumentError, match=r"constraints\(X\) \(marked vectorized: called with the "
                                                   r"population\) must have shape \(7, m\).*got shape \(3,\)"):
        es.fit(sphere, np.ones(3), constraints=vectorized(lambda X: X[0]))
    with pytest.raises(ObjectiveError, match=r"constraints\(X\) raised on the population \(shape \(7, 3\); the "
                                             r"function is marked vectorized\): ZeroDivisionError") as info:
        es.fit(sphere, np.ones(3), constraints=vectorized(lambda X: 1 / 0))
    assert isinstance(info.value.__cause__, ZeroDivisionError) and info.value.index is None
    assert es.n_generations_ == 0  # the generation that raised is undone


def test_an_unmarked_population_constraint_function_is_told_to_mark_itself() -> None:
    from evostrat.errors import ObjectiveError

    with pytest.raises(ObjectiveError, match=r"must be marked with @evostrat\.vectorized"):
        ES("cma_es", random_state=0, max_generations=5).fit(sphere, np.ones(3), constraints=lambda X: X[:, 0])
