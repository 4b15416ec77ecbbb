"""Errors that help (issue 18 item 4): suggestions, aliases, the scalar-x0 hint, override warnings."""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import pytest
from plugin_fixtures import registered
from sklearn.base import clone

from evostrat import ES, hookimpl
from evostrat.errors import (
    EvostratError, InvalidArgumentError, InvalidTypeError, NotFittedError, ParameterOverrideWarning,
    UnknownNameError,
)
from evostrat.plugins import lookup
from evostrat.plugins.factories import make_strategy
from evostrat.strategies.cma_es import CMAES
from evostrat.strategies.openai_es import OpenAIES
from evostrat.strategies.sep_cma_es import SepCMAES
from evostrat.strategies.snes import SNES
from evostrat.strategies.xnes import XNES


def sphere(X: np.ndarray) -> np.ndarray:
    return (X ** 2).sum(axis=1)


@pytest.mark.parametrize(
    "alias, cls",
    [("cma-es", CMAES), ("cmaes", CMAES), ("CMA_ES", CMAES), ("CMAES", CMAES), ("CMA-ES", CMAES),
     ("sep-cma-es", SepCMAES), ("SepCMAES", SepCMAES), ("openai-es", OpenAIES), ("OpenAI_ES", OpenAIES),
     ("x-nes", XNES), ("xNES", XNES), ("SNES", SNES)],
)
def test_strategy_aliases_are_accepted(alias: str, cls: type) -> None:
    assert type(make_strategy(alias)) is cls


def test_an_alias_runs_and_keeps_the_users_spelling() -> None:
    es = ES("CMA-ES", max_generations=3, random_state=0).fit(sphere, np.ones(3))
    assert type(es.strategy_.strategy) is CMAES
    assert es.get_params()["strategy"] == "CMA-ES" and clone(es).strategy == "CMA-ES"


def test_backend_and_evaluator_names_ignore_case() -> None:
    es = ES("snes", backend="NumPy", evaluator="Serial", max_generations=2).fit(
        lambda x: float((x ** 2).sum()), [1.0, 2.0])
    assert es.strategy_.backend.name == "numpy" and es.n_generations_ == 2


@pytest.mark.parametrize(
    "kwargs, error, expected",
    [
        (dict(strategy="cma"), UnknownNameError, r"strategy must be one of \[.*\], got 'cma' \(did you mean 'cma_es'\?\)"),
        (dict(strategy="snse"), UnknownNameError, r"got 'snse' \(did you mean 'snes'\?\)"),
        (dict(backend="nump"), UnknownNameError, r"backend must be one of .* or 'auto', got 'nump' \(did you mean 'numpy'\?\)"),
        (dict(evaluator="vectorised"), UnknownNameError, r"got 'vectorised' \(did you mean 'vectorized'\?\)"),
        (dict(restarts="ipopp"), InvalidArgumentError, r"kind must be one of \('bipop', 'ipop'\), got 'ipopp' \(did you mean 'ipop'\?\)"),
        (dict(restarts=dict(kind="BIPOP")), InvalidArgumentError, r"got 'BIPOP' \(did you mean 'bipop'\?\)"),
        (dict(strategy_options=dict(lr_mena=0.1)), InvalidArgumentError,
         r"SNES has no parameter 'lr_mena' \(did you mean 'lr_mean'\?\); valid: \["),
        (dict(evaluator="serial", evaluator_options=dict(tiemout=1.0)), InvalidArgumentError, r"has no option 'tiemout'"),
    ],
    ids=["strategy", "strategy-typo", "backend", "evaluator", "restarts", "restarts-dict", "strategy-option",
         "evaluator-option"],
)
def test_unknown_names_suggest_the_closest(kwargs: dict, error: type, expected: str) -> None:
    with pytest.raises(error, match=expected):
        ES(**kwargs).fit(sphere, np.ones(2))


def test_no_suggestion_when_nothing_is_close() -> None:
    with pytest.raises(UnknownNameError) as info:
        ES("zzzz").fit(sphere, np.ones(2))
    assert "did you mean" not in str(info.value)


def test_an_ambiguous_alias_is_suggested_not_guessed() -> None:
    class Twin:
        @hookimpl
        def evostrat_strategies(self) -> dict:
            return {"cma-es": SNES}  # folds to the same name as the built-in "cma_es"

    with registered(Twin(), "twin-plugin"):
        assert lookup("strategies", "cma-es", "strategy") == "cma-es"  # exact names win
        with pytest.raises(UnknownNameError, match=r"got 'CMAES' \(did you mean 'cma"):
            lookup("strategies", "CMAES", "strategy")


@pytest.mark.parametrize(
    "name, expected",
    [
        ("maxiter", r"'maxiter' \(pycma's maxiter is max_generations\)"),  # was: did you mean 'maximize'?
        ("maxfevals", r"'maxfevals' \(pycma's maxfevals is max_evals\)"),
        ("seed", r"'seed' \(pycma's seed is random_state\)"),
        ("integer_variables", r"'integer_variables' \(pycma's integer_variables is integer\)"),
        ("CMA_stds", r"sigma0 \* CMA_stds is sigma0 as an array of shape \(dim,\)"),
        ("verb_disp", r"fit\(progress=True\) or a callback"),
        ("tolconditioncov", r"strategy_options=\{'tolconditioncov': \.\.\.\}"),
        # other tuners' names: max_evaluations suggested reevaluations, n_jobs nothing
        ("n_jobs", r"'n_jobs' \(scikit-learn's n_jobs=N is evaluator='executor', evaluator_options="
                   r"\{'max_workers': N\}\)"),
        ("max_evaluations", r"'max_evaluations' \(the budget of objective calls is max_evals; "
                            r"noise_handling=dict\(max_evaluations=\.\.\.\) caps the evaluations per candidate\)"),
        ("budget", r"'budget' \(nevergrad's budget is max_evals\)"),
        ("n_trials", r"'n_trials' \(Optuna's n_trials is max_evals\)"),
        ("maxfev", r"'maxfev' \(scipy's maxfev is max_evals\)"),
    ],
)
def test_pycma_option_names_are_mapped_to_evostrats(name: str, expected: str) -> None:
    with pytest.raises(InvalidTypeError, match=expected) as info:
        ES("cma_es", **{name: 1})
    assert "did you mean" not in str(info.value)
    with pytest.raises(InvalidArgumentError, match=expected):
        ES().set_params(**{name: 1})


def test_every_pycma_hint_names_a_setting_that_works() -> None:
    """The settings the pycma hints name run (checked once each, 1 generation)."""
    from evostrat.params import PYCMA_NAMES

    options = {"tolconditioncov": 1e10, "tolupsigma": 1e10, "tolfacupx": 1e5, "noeffectaxis": False,
               "noeffectcoord": False, "active": False, "lr_mean": 0.5}
    for name, value in options.items():
        assert f"strategy_options={{{name!r}" in " ".join(PYCMA_NAMES.values())
        ES("cma_es", strategy_options={name: value}, max_generations=1).fit(sphere, np.ones(2))
    es = ES("cma_es", restarts=dict(kind="ipop", incpopsize=3, max_restarts=1), tolfun=1e-2).fit(sphere, np.ones(2))
    assert es.restarts_[1]["popsize"] == int(3 * (4 + 3 * np.log(2)))


@pytest.mark.parametrize(
    "name, expected",
    [  # before: a near spelling meaning something else ('CMA_elitist': did you mean 'max_evals'?), or nothing
        ("bipop", r"'bipop' \(pycma's restarts=9, bipop=True is restarts=dict\(kind='bipop', max_restarts=9\)\)"),
        ("CMA_mu", r"CMA_mu=mu is strategy_options=\{'elite_ratio': mu / popsize\}"),
        ("popsize_factor", r"popsize_factor=k is popsize=k \* \(4 \+ int\(3 \* log\(dim\)\)\)"),
        ("options", r"'options' \(pycma's options are ES's keywords"),  # was: did you mean 'strategy_options'?
        ("callback", r"fit\(callbacks=\[cb\]\)"),
        ("timeout", r"'timeout' \(pycma's timeout is a callback"),
        ("is_feasible", r"fit\(constraints=g\)"),
        ("parallel_objective", r"@evostrat.vectorized"),
        ("x0", r"ES\(\.\.\.\)\.fit\(objective, x0\)"),
        ("constraints", r"fit\(objective, x0, constraints=g\)"),
        ("CMA_elitist", r"'CMA_elitist' \(a pycma option with no evostrat equivalent"),
        ("AdaptSigma", r"'AdaptSigma' \(a pycma option with no evostrat equivalent"),  # was: 'sigma0'?
        ("tolfunrel", r"'tolfunrel' \(a pycma option with no evostrat equivalent"),  # was: 'tolfun'?
        ("CSA_dampfac", r"'CSA_dampfac' \(a pycma option with no evostrat equivalent"),  # any CMA_/CSA_/verb_ name
        ("verb_plot", r"'verb_plot' \(a pycma option with no evostrat equivalent"),
    ],
)
def test_more_pycma_names_get_evostrats_way_not_a_near_spelling(name: str, expected: str) -> None:
    with pytest.raises(InvalidTypeError, match=expected) as info:
        ES("cma_es", **{name: 1})
    assert "did you mean" not in str(info.value)


def test_pycma_restarts_count_and_true_name_the_restarts_dict() -> None:
    with pytest.raises(InvalidTypeError, match=r"got 9 \(pycma's restarts=9 is restarts=dict\(kind='ipop', "
                                               r"max_restarts=9\), or kind='bipop'\)"):
        ES("cma_es", restarts=9).fit(sphere, np.ones(2))
    with pytest.raises(InvalidTypeError, match=r"got True \(pycma's bipop=True is restarts='bipop'"):
        ES("cma_es", restarts=True).initialize(np.ones(2))
    with pytest.raises(InvalidTypeError, match=r"got 2.5$"):  # no pycma spelling: no hint
        ES("cma_es", restarts=2.5).initialize(np.ones(2))
    es = ES("cma_es", restarts=dict(kind="ipop", max_restarts=1), tolfun=1e-2).fit(sphere, np.ones(2))
    assert len(es.restarts_) == 2  # the spelling the hint names runs


def test_unknown_constructor_keyword_names_it_and_suggests() -> None:
    with pytest.raises(InvalidTypeError, match=r"ES has no parameter 'sigma' \(did you mean 'sigma0'\?\); valid: \[") as info:
        ES(sigma=0.5)
    assert isinstance(info.value, TypeError) and isinstance(info.value, EvostratError)
    with pytest.raises(InvalidTypeError, match=r"'max_eval' \(did you mean 'max_evals'\?\)"):
        ES("snes", max_eval=100)
    with pytest.raises(InvalidArgumentError, match=r"'popsie' \(did you mean 'popsize'\?\)"):
        ES().set_params(popsie=8)


def test_a_strategy_keyword_in_the_constructor_points_to_strategy_options() -> None:
    """The error used to suggest 'strategy_options' and list strategy__<name> among the valid keywords,
    which the constructor refuses; it now says how to pass the option."""
    with pytest.raises(InvalidTypeError, match=r"^ES\(\) takes a strategy's hyper-parameters as "
                       r"strategy_options=\{'lr_sigma': \.\.\.\}, not as the keyword 'strategy__lr_sigma' "
                       r"\(set_params and fit_batch grids take strategy__<name>\)$"):
        ES("snes", strategy__lr_sigma=0.1)
    assert ES("snes").set_params(strategy__lr_sigma=0.1).strategy_options == {"lr_sigma": 0.1}


def test_keyword_check_keeps_the_parameter_protocol() -> None:
    es = ES("snes", sigma0=0.5, max_evals=100)
    assert "sigma0" in es.get_params() and es.get_params()["max_evals"] == 100
    twin = clone(es)
    assert twin is not es and twin.get_params() == es.get_params()
    assert repr(es) == "ES(max_evals=100, sigma0=0.5)"


def test_scalar_x0_gets_a_hint() -> None:
    with pytest.raises(InvalidArgumentError, match=r"x0 must have shape \(dim,\).*for a 1-D problem pass \[3\.0\]"):
        ES("snes").fit(sphere, 3.0)
    with pytest.raises(InvalidArgumentError, match=r"for a 1-D problem pass \[2\.5\]"):
        ES("snes").fit(sphere, np.float64(2.5))
    with pytest.raises(InvalidArgumentError) as info:  # no scalar hint for a matrix
        ES("snes").fit(sphere, np.ones((2, 2)))
    assert "1-D problem" not in str(info.value)


def test_sigma0_overriding_a_strategy_instance_warns_and_the_run_shows_it() -> None:
    es = ES(SNES(sigma0=0.2), sigma0=0.5, max_generations=2, random_state=0)
    with pytest.warns(ParameterOverrideWarning, match=r"ES\(sigma0=0.5\) overrides the sigma0=0.2 given to the strategy SNES"):
        es.fit(sphere, np.ones(3))
    assert repr(es) == "ES(max_generations=2, random_state=0, sigma0=0.5, strategy=SNES(sigma0=0.2))"
    assert es.strategy_.strategy.sigma0 == 0.5 and "SNES(sigma0=0.5)" in repr(es.strategy_)
    assert issubclass(ParameterOverrideWarning, UserWarning)


@pytest.mark.parametrize(
    "strategy, kwargs",
    [(SNES(), dict(sigma0=0.5)), (SNES(sigma0=0.5), dict(sigma0=0.5)), (SNES(sigma0=0.2), {}),
     (SNES(popsize=8), dict(popsize=8)), ("snes", dict(sigma0=0.5, strategy_options=dict(sigma0=0.5))),
     ("snes", dict(sigma0=0.5, strategy_options=dict(lr_mean=0.5)))],
    ids=["instance-default", "same-value", "no-override", "same-popsize", "same-option", "other-option"],
)
def test_no_override_warning_when_nothing_is_lost(strategy: Any, kwargs: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ParameterOverrideWarning)
        ES(strategy, max_generations=2, **kwargs).fit(sphere, np.ones(3))


def test_popsize_and_strategy_options_overrides_warn() -> None:
    with pytest.warns(ParameterOverrideWarning, match=r"ES\(popsize=12\) overrides the popsize=8"):
        ES(SNES(popsize=8), popsize=12, max_generations=1).fit(sphere, np.ones(3))
    es = ES("snes", sigma0=0.5, max_generations=1).set_params(strategy__sigma0=0.2)
    with pytest.warns(ParameterOverrideWarning, match=r"the sigma0=0.2 given to the strategy 'snes'"):
        es.fit(sphere, np.ones(3))
    assert es.strategy_.strategy.sigma0 == 0.5


def test_a_string_x0_is_refused_as_x0_not_taken_for_a_backend_name() -> None:
    with pytest.raises(InvalidTypeError, match=r"x0 must be a 1-D array of real numbers .* got str 'numpy'"):
        ES("snes", max_generations=2).fit(sphere, "numpy")


def test_complex_objective_values_name_the_objective() -> None:
    with pytest.raises(InvalidTypeError, match=r"values must be real numbers, got dtype complex128: the objective"):
        ES("snes", max_generations=2).fit(lambda X: (X ** 2).sum(axis=1) + 0j, np.ones(3))


def test_a_torch_x0_requiring_grad_runs_without_an_autograd_graph() -> None:
    torch = pytest.importorskip("torch")
    x0 = torch.nn.utils.parameters_to_vector(torch.nn.Linear(2, 2).parameters())  # requires grad, as models' do
    assert x0.requires_grad
    es = ES("snes", max_generations=30, random_state=0).fit(lambda X: (X ** 2).sum(dim=1), x0)
    plain = ES("snes", max_generations=30, random_state=0).fit(lambda X: (X ** 2).sum(dim=1), x0.detach())
    assert not es.x_.requires_grad and es.x_.grad_fn is None  # was SelectBackward0: every generation chained on
    assert torch.equal(es.x_, plain.x_) and es.fun_ == plain.fun_
    assert x0.requires_grad  # the caller's tensor is untouched


def test_compiled_loop_true_says_why_an_objective_does_not_trace() -> None:
    jnp = pytest.importorskip("jax.numpy")

    def per_candidate_floats(X: Any) -> Any:
        return jnp.array([float(x @ x) for x in X])

    with pytest.raises(InvalidArgumentError, match=r"compiled_loop=True, but .*does not trace under JAX.*"
                                                   r"ConcretizationTypeError.*compiled_loop='auto'"):
        ES("snes", max_generations=2, compiled_loop=True, random_state=0).fit(per_candidate_floats, jnp.ones(3))
    auto = ES("snes", max_generations=2, random_state=0).fit(per_candidate_floats, jnp.ones(3))
    assert auto.fast_path_ is None and auto.n_generations_ == 2  # "auto" still falls back to the host loop
    ok = ES("snes", max_generations=2, compiled_loop=True, random_state=0).fit(lambda X: (X ** 2).sum(axis=1),
                                                                              jnp.ones(3))
    assert ok.fast_path_ == "compiled_loop"


def test_compiled_loop_true_on_numpy_names_the_backend() -> None:
    with pytest.raises(InvalidArgumentError, match=r"compiled_loop=True, but .*numpy backend does not compile"):
        ES("snes", max_generations=2, compiled_loop=True).fit(sphere, np.ones(3))


def test_maximize_passed_to_fit_points_to_the_constructor() -> None:
    with pytest.raises(InvalidTypeError, match=r"fit\(\) has no parameter 'maximize': it is a parameter of ES, "
                                               r"ES\(\.\.\., maximize=\.\.\.\)"):
        ES("snes", max_generations=2).fit(sphere, np.ones(3), maximize=True)
    with pytest.raises(InvalidTypeError, match=r"fit\(\) has no parameter 'callback' \(did you mean 'callbacks'\?\)"):
        ES("snes", max_generations=2).fit(sphere, np.ones(3), callback=print)
    import inspect

    assert "constraint_handler" in inspect.signature(ES.fit).parameters  # the signature is fit's own
    es = ES("snes", max_generations=2, random_state=0).fit(objective=sphere, x0=np.ones(3), progress=False)
    assert es.n_generations_ == 2


def test_a_strategy_class_instead_of_an_instance_says_so() -> None:
    with pytest.raises(InvalidTypeError, match=r"got the class SNES; pass an instance, SNES\(\)"):
        ES(SNES).fit(sphere, np.ones(3))


def test_an_objective_returning_value_and_constraints_points_to_constraints_objective() -> None:
    with pytest.raises(InvalidTypeError, match=r"candidate 0, got tuple; an objective returning \(value, constraint "
                                               r"values\) needs fit\(\.\.\., constraints='objective'\)"):
        ES("snes", max_generations=2, evaluator="serial").fit(lambda x: (float(x @ x), [0.0]), np.ones(3))


def test_pycma_attribute_names_on_the_estimator_name_evostrats() -> None:
    es = ES("cma_es", max_generations=2, random_state=0).fit(sphere, np.ones(3))
    for name, expected in [("result", r"pycma's es.result is x_, fun_, evals_best_, n_evals_"),
                           ("sigma", r"pycma's es.sigma is strategy_.state.sigma"),
                           ("countevals", r"pycma's es.countevals is n_evals_"),
                           ("countiter", r"pycma's es.countiter is n_generations_"),
                           ("opts", r"pycma.s es.opts is get_params\(\) \(set_params sets the next fit or initialize\)")]:
        with pytest.raises(AttributeError, match=rf"no attribute {name!r} \({expected}"):
            getattr(es, name)  # before: only "'ES' object has no attribute 'result'"
    assert not hasattr(es, "result") and es.strategy_.state.sigma > 0
    with pytest.raises(AttributeError, match=r"^'ES' object has no attribute 'other'$"):
        es.other
    with pytest.raises(NotFittedError, match="x_ is not available"):  # the fitted attributes' own error stays
        ES().x_


def test_a_bounds_list_shorter_than_x0_says_pycma_would_repeat_its_last_entry() -> None:
    with pytest.raises(InvalidArgumentError, match=r"bounds lower must be a number or an array of shape \(5,\) like "
                                                   r"x0, got shape \(2,\) \(pycma repeats the last entry of a shorter "
                                                   r"list; write all 5 entries\)$"):
        ES("cma_es", bounds=([-1, 0], [2, 2, 2, 2, 2])).initialize(np.zeros(5))
    with pytest.raises(InvalidArgumentError, match=r"got shape \(6,\)$"):  # longer: no pycma hint
        ES("cma_es", bounds=(np.zeros(6) - 1, 2)).initialize(np.zeros(5))


@pytest.mark.parametrize(("strategy", "options", "suggested"), [
    ("snes", {"center_learning_rate": 0.5}, "'lr_mean'? 'center_learning_rate' is EvoTorch's name"),
    ("snes", {"stdev_learning_rate": 0.1}, "'lr_sigma'? 'stdev_learning_rate' is EvoTorch's name"),
    ("openai_es", {"center_learning_rate": 0.1}, "'lr'? 'center_learning_rate' is EvoTorch's name"),
    ("cma_es", {"std_init": 0.5}, "'sigma0'? 'std_init' is evosax's name"),
    ("cma_es", {"c_m": 0.5}, "'lr_mean'? 'c_m' is evosax's name"),
    ("openai_es", {"use_antithetic_sampling": False}, "'mirrored'? 'use_antithetic_sampling' is evosax's name"),
    ("pgpe", {"lr_mean": 0.1}, "'center_learning_rate'? 'lr_mean' is other strategies' name"),
])
def test_evosax_and_evotorch_parameter_names_suggest_evostrats(strategy: str, options: dict, suggested: str) -> None:
    # these names got only the list of valid ones: nothing close enough for difflib
    with pytest.raises(InvalidArgumentError, match=re.escape(f"has no parameter {next(iter(options))!r} "
                                                             f"(did you mean {suggested} for it)")):
        ES(strategy, max_generations=2, strategy_options=options).fit(lambda X: (X ** 2).sum(axis=1), np.ones(3))


def test_evotorch_stdev_init_as_an_es_parameter_suggests_sigma0() -> None:
    with pytest.raises(InvalidTypeError, match=re.escape("(did you mean 'sigma0'? 'stdev_init' is EvoTorch's name")):
        ES("snes", stdev_init=0.5)
