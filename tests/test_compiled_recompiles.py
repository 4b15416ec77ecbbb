"""The compiled JAX loop compiles its chunk once per configuration: budgets that are no multiple of
the chunk's length or of the stagnation history's step, another seed, a callback that stops the run
early, a warm start, fixed variables and restarts reuse the program of the first fit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from evostrat import ES  # noqa: E402
from jax_compiles import compiles  # noqa: E402


def _objective(X: Any) -> Any:
    return jnp.sum((X - 0.5) ** 2 * jnp.arange(1.0, 6.0, dtype=X.dtype), axis=1)


def _fit(**kwargs: Any) -> tuple[int, ES]:
    """XLA compilations of a fit of ``_objective`` from ones(5) and the fitted estimator."""
    fit = kwargs.pop("fit", {})
    before = compiles()
    es = ES("snes", tolfun=None, tolx=None, **kwargs).fit(_objective, jnp.ones(5), **fit)
    assert es.fast_path_ == "compiled_loop"
    return compiles() - before, es


def test_a_configuration_compiles_its_chunk_once() -> None:
    first, es = _fit(max_generations=600, random_state=0)  # two chunks of 512 and 88 generations
    assert first >= 1 and es.n_generations_ == 600
    for kwargs in (dict(max_generations=600, random_state=0), dict(max_generations=577, random_state=1),
                   dict(max_generations=611, random_state=2)):  # 577, 611: no multiple of 512 nor of 5
        n, es = _fit(**kwargs)
        assert (n, es.n_generations_) == (0, kwargs["max_generations"]), kwargs
    stop = lambda e: e.n_generations_ >= 37  # noqa: E731 - a callback stops early: chunks of one generation
    n, stopped = _fit(max_generations=600, random_state=0, fit={"callbacks": [stop]})
    assert (n, stopped.n_generations_, stopped.stop_reason_) == (0, 37, "callback")
    _fit(max_generations=20, random_state=0, warm_start=stopped)  # copying a state's key: a program of its own
    n, warm = _fit(max_generations=590, random_state=0, warm_start=es)  # the fitted run's state
    assert n == 0 and warm.n_generations_ == 590


def test_fixed_variables_and_restarts_compile_their_chunks_once() -> None:
    _fit(max_generations=300, random_state=0, fixed_variables={2: 0.25})
    for budget, seed in ((311, 1), (289, 2)):
        n, es = _fit(max_generations=budget, random_state=seed, fixed_variables={2: 0.25})
        assert n == 0 and es.n_generations_ == budget and np.asarray(es.x_)[2] == 0.25
    first, runs = _fit(restarts="ipop", max_evals=3000, random_state=0, tolstagnation=None)
    popsizes = [r["popsize"] for r in runs.restarts_]
    n, again = _fit(restarts="ipop", max_evals=2900, random_state=0, tolstagnation=None)
    assert n == 0 and [r["popsize"] for r in again.restarts_] == popsizes[:len(again.restarts_)]


@pytest.mark.parametrize("strategy", ["snes", "cma_es"])  # cma_es: with margin, its state in the chunk's
def test_an_integer_set_compiles_its_chunk_once_and_another_set_its_own(strategy: str) -> None:
    """The integer mask is part of the chunk's key: a second fit with the same set compiles nothing, a
    fit with another set compiles its own chunk and rounds its own coordinates (not the first set's)."""
    def fit(integer: list[int], **kwargs: Any) -> tuple[int, ES]:
        before = compiles()
        es = ES(strategy, integer=integer, tolfun=None, tolx=None, **kwargs).fit(_objective, jnp.ones(5))
        assert es.fast_path_ == "compiled_loop"
        return compiles() - before, es

    fit([1, 3], max_generations=50, random_state=0)
    n, es = fit([1, 3], max_generations=50, random_state=1)  # (CMA-ES: another budget sizes its stagnation history)
    assert n == 0 and es.n_generations_ == 50
    n, other = fit([0, 2], max_generations=50, random_state=0)
    x = np.asarray(other.x_)
    assert n >= 1 and (x[[0, 2]] == np.round(x[[0, 2]])).all() and (x[[1, 3, 4]] != np.round(x[[1, 3, 4]])).all()


def test_lone_cma_fits_that_differ_only_in_their_budget_share_the_chunk() -> None:
    """The stagnation history is sized for a power of two of generations (``shared_generations``), not
    for each budget: CMA-ES fits with budgets 700 to 1000 generations (``max_generations`` or
    ``max_evals``) run on the first one's chunk, and stop where it stops, with its run bit for bit.

    The objective ranks the candidates in the order asked, whatever they are: the best and the
    median never improve, so tolstagnation fires as soon as it may (generation 505), on every CPU.
    (A rugged landscape, ``|x|^2 + 10 sin(1e4 x_0 x_1)``, stagnated at 505 on an Intel Xeon and ran
    past 700 on an AMD EPYC: the sine amplifies the last bits in which their programs differ.)"""
    def ranks(X: Any) -> Any:  # the candidates' order as their values
        return jnp.arange(X.shape[0], dtype=X.dtype) + 0.0 * X[:, 0]

    def fit(**budget: Any) -> tuple[int, ES]:
        before = compiles()
        es = ES("cma_es", sigma0=1.0, tolfun=None, tolx=None, tolfunhist=None, random_state=4,
                strategy_options=dict(tolconditioncov=None, tolupsigma=None, tolfacupx=None, noeffectaxis=False,
                                      noeffectcoord=False), **budget).fit(ranks, jnp.ones(4))
        assert es.fast_path_ == "compiled_loop"
        return compiles() - before, es

    _, first = fit(max_generations=700)
    assert (first.stop_reason_, first.n_generations_) == ("tolstagnation", 505)
    rows = [{k: v for k, v in row.items() if k != "time"} for row in first.history_]
    fit(max_evals=8 * 700)  # which budget is set is part of the program: max_evals compiles its own
    for budget in ({"max_generations": 900}, {"max_generations": 1000}, {"max_evals": 8 * 900},
                   {"max_evals": 8 * 1000}):
        n, es = fit(**budget)
        assert n == 0, budget
        assert (es.stop_reason_, es.n_generations_, es.n_evals_) == ("tolstagnation", 505, first.n_evals_)
        assert np.array_equal(np.asarray(es.x_), np.asarray(first.x_)) and es.fun_ == first.fun_
        assert [{k: v for k, v in row.items() if k != "time"} for row in es.history_] == rows
