"""An objective that modifies its input in place cannot corrupt the run (issue 16, item 1).

Every evaluator hands the objective copies of the candidates
(:func:`evostrat.evaluators.local.unshared`), so

- the population the strategy is told, ``x_`` and ``fun_`` are those of the
  candidates as asked: ``fun_ == f(x_)`` exactly;
- a run whose objective modifies its input after computing the value is the
  run of the same objective without the modification, bit for bit;

for numpy and torch, per-candidate and vectorised objectives, the local
evaluators and a thread pool (whose workers see the driver's arrays; process
pools and Ray receive pickled copies anyway). A hypothesis test draws the
modifications: in-place arithmetic on random slices, strided assignments,
flattening and growing the array in place (``ndarray.resize``, ``Tensor.resize_``;
a torch row view grown that way would write over the next row).
"""

from __future__ import annotations

import concurrent.futures as cf
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_profiles import count_case, fixed_seed, fuzz_settings

from evostrat import ES
from evostrat.evaluators import ExecutorEvaluator
from evostrat.evaluators.local import unshared

EVALUATORS = ["serial", "vectorized", "auto", "threads", "threads-numpy"]


def x0_of(library: str, dim: int) -> Any:
    x0 = np.linspace(0.5, 2.0, dim)
    return torch.tensor(x0, dtype=torch.float64) if library == "torch" else x0


@contextmanager
def evaluator_for(name: str, population: bool) -> Iterator[Any]:
    """``ES(evaluator=...)``; ``"threads"``: an executor on a thread pool, ``"threads-numpy"``
    with ``arrays="numpy"`` (the objective gets views of the driver's arrays, torch's too)."""
    if not name.startswith("threads"):
        yield name
        return
    with cf.ThreadPoolExecutor(2) as pool:
        yield ExecutorEvaluator(pool, chunksize=2, vectorized=population,
                                arrays="numpy" if name == "threads-numpy" else "backend")


def as_handed(x: Any, evaluator: str) -> Any:
    """``x`` as the objective receives it (numpy rows with ``arrays="numpy"``), a copy."""
    return np.array(x.tolist()) if evaluator == "threads-numpy" else unshared(x)


def fit(strategy: str, objective: Any, x0: Any, evaluator: Any, generations: int = 6) -> ES:
    return ES(strategy, max_generations=generations, random_state=1, evaluator=evaluator).fit(objective, x0)


def same_run(a: ES, b: ES) -> None:
    """Bit-for-bit the same run: best point, best value and every generation's best."""
    assert np.array_equal(np.asarray(a.x_), np.asarray(b.x_))
    assert a.fun_ == b.fun_ and a.n_evals_ == b.n_evals_
    assert [h["best"] for h in a.history_] == [h["best"] for h in b.history_]


# -- the examples -------------------------------------------------------------------
def shift_in_place(x):
    x -= 1.0
    return float(x @ x)


def shift(x):
    y = x - 1.0
    return float(y @ y)


def zero_after(X):
    values = ((X - 1.0) ** 2).sum(-1)
    X[:] = 0
    return values


def no_zero(X):
    return ((X - 1.0) ** 2).sum(-1)


zero_after.vectorized = no_zero.vectorized = True


@pytest.mark.filterwarnings("ignore::evostrat.errors.PerCandidateWarning")  # per-candidate objectives under 'auto', by design
@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("strategy", ["cma_es", "sep_cma_es", "snes", "openai_es"])
@pytest.mark.parametrize("evaluator", EVALUATORS)
@pytest.mark.parametrize("population", [False, True], ids=["per-candidate", "vectorised"])
def test_objective_modifying_its_input_changes_nothing(library, strategy, evaluator, population):
    if population != (evaluator == "vectorized") and evaluator in ("serial", "vectorized"):
        pytest.skip("serial evaluates per candidate, vectorized whole populations")
    mutating, clean = (zero_after, no_zero) if population else (shift_in_place, shift)
    x0 = x0_of(library, 4)
    with evaluator_for(evaluator, population) as ev:
        es = fit(strategy, mutating, x0, ev)
    with evaluator_for(evaluator, population) as ev:
        reference = fit(strategy, clean, x0, ev)
    same_run(es, reference)
    x_ = as_handed(es.x_, evaluator)
    assert es.fun_ == (float(no_zero(x_[None])[0]) if population else shift(x_))  # as asked
    again = float(zero_after(unshared(x_)[None])[0]) if population else shift_in_place(unshared(x_))
    assert es.fun_ == again
    assert not np.array_equal(np.asarray(x_), np.zeros(4))  # X[:] = 0 did not reach x_


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_population_told_is_the_population_asked(library):
    """Stateful ask/evaluate/tell through an evaluator: the asked array is left untouched."""
    from evostrat.plugins import registry

    es = ES("cma_es", random_state=0).initialize(x0_of(library, 3))
    X = es.ask()
    before = np.array(np.asarray(X), copy=True)
    for name in ("serial", "vectorized", "auto"):
        objective = shift_in_place if name == "serial" else zero_after
        registry("evaluators")[name]().evaluate(objective, X, es.run_.runner.backend)
    with cf.ThreadPoolExecutor(2) as pool:
        ExecutorEvaluator(pool).evaluate(shift_in_place, X, es.run_.runner.backend)
        ExecutorEvaluator(pool, vectorized=True).evaluate(zero_after, X, es.run_.runner.backend)
    assert np.array_equal(np.asarray(X), before)


def test_jax_arrays_are_handed_as_they_are():
    jnp = pytest.importorskip("jax.numpy")
    x = jnp.ones(3)
    assert unshared(x) is x  # immutable: nothing to protect, nothing copied


# -- random modifications -------------------------------------------------------------------
OPS = ("add_slice", "set_slice", "strided", "scale", "negate", "flip", "zero", "flatten", "grow")


def mutate(x: Any, ops: list[tuple[str, int, int, float]]) -> None:
    """Apply ``ops`` to ``x`` in place (numpy array or torch tensor, one row or a population)."""
    is_torch = isinstance(x, torch.Tensor)
    for op, a, b, c in ops:
        n = x.shape[0]
        lo, hi = sorted((a % (n + 1), b % (n + 1)))
        if op == "add_slice":
            x[lo:hi] += c
        elif op == "set_slice":
            x[lo:hi] = c
        elif op == "strided":
            x[a % max(n, 1):: 1 + b % 3] = c
        elif op == "scale":
            x *= c
        elif op == "negate":
            if is_torch:
                x.neg_()
            else:
                np.negative(x, out=x)
        elif op == "flip":
            x[...] = x.flip(-1) if is_torch else x[..., ::-1].copy()
        elif op == "zero":
            x[...] = 0
        elif op == "flatten":  # change the shape of the array object itself
            size = int(np.prod(tuple(x.shape)))
            if is_torch:
                x.resize_(size)
            else:
                x.shape = (size,)
            x[a % max(size, 1)] = c
        elif op == "grow":  # more elements than were handed in, then write them all
            size = int(np.prod(tuple(x.shape))) + 1 + a % 5
            if is_torch:
                x.resize_(size)
            else:
                x.resize(size, refcheck=False)
            x[...] = c


op_lists = st.lists(
    st.tuples(st.sampled_from(OPS), st.integers(0, 20), st.integers(0, 20),
              st.sampled_from([-3.0, -1.0, 0.0, 0.5, 2.0, 1e300])),
    min_size=1, max_size=4,
)


def modifying(ops: list, population: bool) -> tuple[Any, Any]:
    """An objective that modifies its input by ``ops`` after computing its value, and the same without."""
    if population:
        def clean(X):
            return ((X - 0.5) ** 2).sum(-1) + X[:, 0]

        def dirty(X):
            values = clean(X)
            mutate(X, ops)
            return values

        clean.vectorized = dirty.vectorized = True
    else:
        def clean(x):
            return float(((x - 0.5) ** 2).sum() + x[0])

        def dirty(x):
            value = clean(x)
            mutate(x, ops)
            return value

    return dirty, clean


@fixed_seed("test_random_modifications_of_the_input_change_nothing")
@fuzz_settings(30)
@given(
    ops=op_lists,
    library=st.sampled_from(["numpy", "torch"]),
    strategy=st.sampled_from(["cma_es", "sep_cma_es", "snes", "xnes", "openai_es", "pgpe"]),
    evaluator=st.sampled_from(EVALUATORS),
    population=st.booleans(),
    dim=st.integers(2, 5),
)
def test_random_modifications_of_the_input_change_nothing(ops, library, strategy, evaluator, population, dim):
    count_case("objective-inputs")
    population = {"serial": False, "vectorized": True}.get(evaluator, population)
    dirty, clean = modifying(ops, population)
    x0 = x0_of(library, dim)
    with evaluator_for(evaluator, population) as ev:
        es = fit(strategy, dirty, x0, ev, generations=4)
    with evaluator_for(evaluator, population) as ev:
        same_run(es, fit(strategy, clean, x0, ev, generations=4))
    x_ = as_handed(es.x_, evaluator)
    value = dirty(unshared(x_[None]))[0] if population else dirty(x_)
    assert es.fun_ == float(value)  # fun_ == f(x_), exactly
