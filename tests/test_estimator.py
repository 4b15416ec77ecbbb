"""The ``ES`` estimator: scikit-learn's parameter protocol, fitted attributes,
termination reasons, evaluator selection and the stateful ask/tell path."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from conftest import LIBRARY_CASES, BackendCase, to_numpy
from evostrat import ES
from evostrat.run.asktell import AskTell
from evostrat.errors import InvalidArgumentError, PerCandidateWarning
from evostrat.problems import sphere
from evostrat.strategies.openai_es import OpenAIES
from evostrat.strategies.snes import SNES

X0 = np.full(4, 2.0)


class Recorder:
    """A sphere objective that records the shapes it is called with."""

    def __init__(self, vectorised: bool) -> None:
        self.vectorised = vectorised
        self.ndims: list[int] = []

    def __call__(self, x):
        x = np.asarray(x)
        self.ndims.append(x.ndim)
        if self.vectorised:
            return np.sum(x**2, axis=1)  # refuses one candidate: a population objective
        if x.ndim != 1:
            raise ValueError("one candidate at a time")
        return float(np.sum(x**2))


# -- parameters ----------------------------------------------------------------------------


def test_clone_string_strategy() -> None:
    es = ES("snes", sigma0=0.5, popsize=12, strategy_options=dict(lr_mean=0.7), random_state=3)
    twin = clone(es)
    assert twin is not es
    assert twin.get_params() == es.get_params()
    assert twin.strategy_options == {"lr_mean": 0.7}
    assert twin.strategy_options is not es.strategy_options  # deep-copied, not shared
    es.fit(sphere, X0)
    assert not hasattr(clone(es), "x_")  # clone is unfitted


def test_clone_strategy_instance() -> None:
    es = ES(SNES(lr_mean=0.3, popsize=10), random_state=1)
    twin = clone(es)
    assert isinstance(twin.strategy, SNES) and twin.strategy is not es.strategy
    assert twin.strategy.get_params() == es.strategy.get_params()
    assert twin.get_params()["strategy__lr_mean"] == 0.3


def test_set_params_nested_on_string_strategy() -> None:
    es = ES("snes", max_generations=3, random_state=0)
    options = {"lr_sigma": 0.1}
    es.set_params(strategy_options=options)
    assert es.set_params(strategy__lr_mean=0.5) is es
    assert es.strategy_options == {"lr_sigma": 0.1, "lr_mean": 0.5}
    assert options == {"lr_sigma": 0.1}  # the user's dict is not mutated
    assert es.get_params()["strategy__lr_mean"] == 0.5
    es.fit(sphere, X0)
    used = es.strategy_.strategy
    assert (used.lr_mean, used.lr_sigma) == (0.5, 0.1)


def test_set_params_nested_on_strategy_instance() -> None:
    inst = SNES(lr_mean=0.3)
    es = ES(inst, max_generations=3, random_state=0).set_params(strategy__lr_mean=0.5)
    assert inst.lr_mean == 0.5
    assert es.get_params()["strategy__lr_mean"] == 0.5
    es.fit(sphere, X0)
    assert es.strategy_.strategy is not inst  # the run uses a copy
    assert es.strategy_.strategy.lr_mean == 0.5


def test_set_params_of_estimator_overrides_strategy_defaults() -> None:
    es = ES("openai_es", sigma0=0.25, popsize=6, max_generations=2, random_state=0).fit(sphere, X0)
    assert es.strategy_.popsize == 6
    assert es.strategy_.sigma == 0.25
    es = ES("openai_es", max_generations=2, random_state=0).fit(sphere, X0)
    assert es.strategy_.sigma == OpenAIES().sigma0  # sigma0=None keeps the strategy's default


@pytest.mark.parametrize("strategy", ["snes", SNES()], ids=["name", "instance"])
def test_unknown_nested_param(strategy) -> None:
    with pytest.raises(InvalidArgumentError, match=r"SNES has no parameter 'nope'; valid: \["):
        ES(strategy).set_params(strategy__nope=1)


def test_unknown_param() -> None:
    with pytest.raises(InvalidArgumentError, match=r"ES has no parameter 'sigma'"):
        ES("snes").set_params(sigma=1.0)


# -- fitted attributes ---------------------------------------------------------------------


def test_fitted_attributes() -> None:
    es = ES("snes", max_generations=25, random_state=0, evaluator="serial").fit(Recorder(False), X0)
    assert isinstance(es.x_, np.ndarray) and es.x_.shape == (4,)
    assert es.fun_ == float(np.sum(es.x_**2))  # fun_ is the objective at x_, exactly
    assert es.n_generations_ == 25 and es.stop_reason_ == "maxiter"
    assert es.n_evals_ == 25 * es.strategy_.popsize
    assert isinstance(es.strategy_, AskTell) and es.strategy_.generation == 25
    assert len(es.history_) == 25
    first, last = es.history_[0], es.history_[-1]
    assert {"generation", "n_evals", "best", "generation_best", "median", "sigma", "time"} <= set(first)
    assert (first["generation"], last["generation"]) == (1, 25)
    assert last["n_evals"] == es.n_evals_
    assert last["best"] == es.fun_ == min(h["generation_best"] for h in es.history_)
    best = [h["best"] for h in es.history_]
    assert best == sorted(best, reverse=True)
    assert es.fun_ < float(np.sum(X0**2)) / 10  # it made progress


@pytest.mark.parametrize("name", ["x_", "fun_", "n_evals_", "n_generations_", "history_", "restarts_",
                                  "stop_reason_", "strategy_", "fast_path_"])
def test_fitted_attributes_before_fit_raise_not_fitted_error(name) -> None:
    """An evostrat error (a StateError) naming the attribute; an AttributeError too, so
    hasattr() and scikit-learn's check_is_fitted read an unfitted ES as unfitted."""
    from evostrat import NotFittedError, StateError

    es = ES("snes")
    with pytest.raises(NotFittedError, match=rf"^{name} is not available: this ES has no run") as err:
        getattr(es, name)
    assert isinstance(err.value, StateError) and isinstance(err.value, AttributeError)
    assert not hasattr(es, name)
    for call, args in (("ask", ()), ("tell", (X0[None], [0.0])), ("inject", (X0,)), ("stop", ())):
        with pytest.raises(NotFittedError, match=rf"^{call}\(\) is not available"):
            getattr(es, call)(*args)


def test_fit_is_deterministic() -> None:
    a = ES("snes", max_generations=20, random_state=5).fit(sphere, X0)
    b = ES("snes", max_generations=20, random_state=5).fit(sphere, X0)
    c = ES("snes", max_generations=20, random_state=6).fit(sphere, X0)
    np.testing.assert_array_equal(a.x_, b.x_)
    assert [h["best"] for h in a.history_] == [h["best"] for h in b.history_]
    assert not np.array_equal(a.x_, c.x_)


def test_x0_as_python_list() -> None:
    es = ES("snes", max_generations=5, random_state=0).fit(sphere, [2.0, 2.0, 2.0, 2.0])
    assert isinstance(es.x_, np.ndarray) and es.x_.dtype == np.float64
    np.testing.assert_array_equal(es.x_, ES("snes", max_generations=5, random_state=0).fit(sphere, X0).x_)


# -- termination ---------------------------------------------------------------------------


def test_stop_maxiter() -> None:
    es = ES("snes", max_generations=7, random_state=0).fit(sphere, X0)
    assert (es.stop_reason_, es.n_generations_) == ("maxiter", 7)


def test_stop_maxfevals_counts_whole_generations() -> None:
    es = ES("snes", popsize=8, max_evals=50, random_state=0).fit(sphere, X0)
    assert (es.stop_reason_, es.n_evals_, es.n_generations_) == ("maxfevals", 56, 7)


def test_stop_ftarget() -> None:
    es = ES("snes", ftarget=1e-3, random_state=0).fit(sphere, X0)
    assert es.stop_reason_ == "ftarget"
    assert es.fun_ <= 1e-3
    assert es.history_[-2]["best"] > 1e-3  # it stopped at the first generation that reached it


def test_stop_callback() -> None:
    seen = []

    def callback(est: ES) -> bool:
        seen.append(est.n_generations_)
        return est.n_generations_ == 4

    es = ES("snes", max_generations=50, random_state=0).fit(sphere, X0, callbacks=[callback])
    assert (es.stop_reason_, es.n_generations_) == ("callback", 4)
    assert seen == [1, 2, 3, 4]


def test_stop_tolx() -> None:
    es = ES("snes", tolx=1e-3, tolfun=None, max_generations=1000, random_state=0).fit(sphere, X0)
    assert es.stop_reason_ == "tolx"
    assert es.strategy_.sigma < 1e-3 <= es.history_[-2]["sigma"]


def test_stop_tolfun() -> None:
    es = ES("snes", tolfun=1e-6, tolx=None, max_generations=1000, random_state=0).fit(sphere, X0)
    assert es.stop_reason_ == "tolfun"
    assert es.fun_ < 1e-5


# -- evaluators ----------------------------------------------------------------------------


def test_auto_picks_vectorized_for_vectorised_objective() -> None:
    f = Recorder(vectorised=True)
    es = ES("snes", max_generations=3, random_state=0).fit(f, X0)
    assert f.ndims == [1, 2, 2, 2]  # the refused one-candidate probe, then one call per generation
    assert es.n_evals_ == 3 * es.strategy_.popsize


def test_auto_picks_serial_for_per_candidate_objective() -> None:
    f = Recorder(vectorised=False)
    with pytest.warns(PerCandidateWarning):  # unmarked: "auto" says it falls back to one call per candidate
        es = ES("snes", max_generations=3, random_state=0).fit(f, X0)
    popsize = es.strategy_.popsize
    # never called with the population: the probe with candidate 0 is candidate 0's evaluation
    assert f.ndims == [1] * (3 * popsize)


def test_auto_popsize_equal_to_dim_per_candidate_reducing_axis_0() -> None:
    """``sum(x**2, axis=0)`` returns shape (popsize,) on the population when popsize == dim."""
    calls = []

    def per_candidate(x):
        calls.append(np.ndim(x))
        return np.sum(np.asarray(x) ** 2, axis=0)

    dim = 6
    es = ES("snes", popsize=dim, max_generations=3, random_state=0, evaluator="auto")
    with pytest.warns(PerCandidateWarning):
        es.fit(per_candidate, np.full(dim, 2.0))
    serial = ES("snes", popsize=dim, max_generations=3, random_state=0, evaluator="serial")
    serial.fit(lambda x: float(np.sum(x**2)), np.full(dim, 2.0))
    assert es.fun_ == serial.fun_
    np.testing.assert_array_equal(es.x_, serial.x_)
    assert calls.count(1) >= 3 * dim


def test_auto_popsize_equal_to_dim_vectorised() -> None:
    f = Recorder(vectorised=True)
    dim = 6
    ES("snes", popsize=dim, max_generations=3, random_state=0).fit(f, np.full(dim, 2.0))
    assert f.ndims.count(2) == 3  # vectorised: one population call per generation
    assert f.ndims.count(1) == 1  # the one-candidate probe, refused


def test_marked_objective_skips_the_probe() -> None:
    f = Recorder(vectorised=False)
    f.vectorized = False  # type: ignore[attr-defined]
    ES("snes", max_generations=2, random_state=0).fit(f, X0)
    assert 2 not in f.ndims


def test_explicit_evaluators_agree() -> None:
    a = ES("snes", max_generations=10, random_state=2, evaluator="vectorized").fit(sphere, X0)
    b = ES("snes", max_generations=10, random_state=2, evaluator="serial").fit(lambda x: float(np.sum(x**2)), X0)
    np.testing.assert_array_equal(a.x_, b.x_)
    assert a.fun_ == b.fun_


# -- stateful ask/tell ---------------------------------------------------------------------


def test_stateful_ask_tell_matches_fit() -> None:
    fitted = ES("snes", max_generations=10, random_state=4).fit(sphere, X0)
    es = ES("snes", max_generations=10, random_state=4)
    assert es.initialize(X0) is es
    for _ in range(10):
        X = es.ask()
        es.tell(X, sphere(X))
    assert es.stop_reason_ == "maxiter"
    np.testing.assert_array_equal(es.x_, fitted.x_)
    assert es.fun_ == fitted.fun_
    assert es.n_evals_ == fitted.n_evals_ and es.n_generations_ == 10


def test_stateful_ask_tell_maximize() -> None:
    es = ES("snes", maximize=True, random_state=0).initialize(X0)
    for _ in range(60):
        X = es.ask()
        es.tell(X, -sphere(X))
    assert es.fun_ <= 0 and es.fun_ > -1e-2  # values are in the user's sense
    assert es.history_[-1]["best"] == es.fun_


@pytest.mark.parametrize("case", LIBRARY_CASES)
def test_pickle_and_deepcopy_continue_the_run(case: BackendCase) -> None:
    """A fitted ES pickles (joblib) and deep-copies on every backend (not the compiled programs,
    torch's locked FusedProgram nor a JAX Device), and a copy taken mid-run with a pending
    population continues it as the original does."""
    import copy
    import pickle

    x0 = case.array(X0)

    def f(X):
        return (X**2).sum(1)

    fitted = ES("cma_es", max_generations=8, random_state=0).fit(f, x0)
    for twin in (pickle.loads(pickle.dumps(fitted)), copy.deepcopy(fitted)):
        np.testing.assert_array_equal(to_numpy(twin.x_), to_numpy(fitted.x_))
        assert twin.history_ == fitted.history_ and twin.stop() == fitted.stop()
    es = ES("cma_es", random_state=1).initialize(x0)
    es.tell(X := es.ask(), f(X))
    es.ask()
    runs = [es, pickle.loads(pickle.dumps(es)), copy.deepcopy(es)]
    for run in runs:
        X = run.strategy_.pending  # the population asked before the copy
        run.tell(X, f(X))
        run.tell(X := run.ask(), f(X))
    asked = [to_numpy(run.ask()) for run in runs]
    np.testing.assert_array_equal(asked[1], asked[0])
    np.testing.assert_array_equal(asked[2], asked[0])
    assert runs[1].n_evals_ == runs[2].n_evals_ == es.n_evals_
