"""The objective of a structured run (evostrat.backends.structured_objective): the user's learning
objective keeps its generation protocol, the wrapper pickles, and it does not keep the user's
objective alive."""

from __future__ import annotations

import gc
import pickle
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from evostrat import ES
from evostrat.backends.structured import as_structure
from evostrat.backends.structured_objective import StructuredObjective, structured_objective


class Learning:
    """Values shift with the number of candidates merged so far: the state must stay fixed within
    a generation (the protocol of evostrat.evaluators.sync) for a run to be reproducible."""

    def __init__(self, flat: bool = False) -> None:
        self.seen, self.merges, self._pending, self.flat = 0, 0, None, flat

    def __call__(self, x):
        w = x if self.flat else np.concatenate([x["b"], x["w"]])
        if self._pending is None:
            self.seen += 1
        else:
            self._pending.append(1)
        return float(np.sum((w - 1.0) ** 2) + 1e-3 * self.seen)

    def generation_start(self) -> None:
        self._pending = []

    def collect(self) -> list:
        out, self._pending = self._pending or [], ([] if self._pending is not None else None)
        return out

    def merge(self, records) -> None:
        self.seen, self.merges, self._pending = self.seen + sum(records), self.merges + 1, None


def _x0():
    return {"w": np.zeros(3), "b": np.zeros(2)}


def test_a_structured_run_keeps_the_objectives_generation_protocol():
    structured, flat = Learning(), Learning(flat=True)
    es = ES("snes", max_generations=6, random_state=0, evaluator="serial").fit(structured, _x0())
    ref = ES("snes", max_generations=6, random_state=0, evaluator="serial").fit(flat, np.zeros(5))
    assert structured.merges == 6 and structured.seen == es.n_evals_  # merged once a generation, all counted
    assert es.fun_ == ref.fun_  # every candidate saw the generation's start, as the flat run's did
    np.testing.assert_array_equal(np.concatenate([es.x_["b"], es.x_["w"]]), ref.x_)


def test_a_structured_learning_objective_gives_the_serial_values_in_a_thread_pool():
    serial, pooled = Learning(), Learning()
    a = ES("snes", max_generations=5, random_state=1, evaluator="serial").fit(serial, _x0())
    with ThreadPoolExecutor(2) as pool:
        b = ES("snes", max_generations=5, random_state=1, evaluator="executor",
               evaluator_options={"executor": pool, "chunksize": 2}).fit(pooled, _x0())
    assert (pooled.seen, pooled.merges) == (serial.seen, serial.merges) == (a.n_evals_, 5)
    assert a.fun_ == b.fun_


def _sum_of_leaves(tree):
    return float(sum(np.sum(v) for v in tree.values()))


def test_the_wrapper_pickles_with_the_users_objective():
    wrapper = as_structure(_x0()).objective(_sum_of_leaves)
    assert isinstance(wrapper, StructuredObjective) and wrapper.vectorized is False
    copy = pickle.loads(pickle.dumps(wrapper))
    assert copy.fn is _sum_of_leaves and copy(np.arange(5.0)) == wrapper(np.arange(5.0)) == 10.0


def test_the_wrapper_forwards_only_the_protocol():
    f = Learning()
    f.extra = 1
    wrapper = as_structure(_x0()).objective(f)
    assert wrapper.generation_start.__self__ is f and wrapper.merge.__self__ is f
    with pytest.raises(AttributeError, match="extra"):
        wrapper.extra  # noqa: B018


def test_one_wrapper_per_objective_and_layout_and_none_kept_once_the_objective_is_gone():
    structure = as_structure(_x0())

    def make():
        def f(tree):
            return _sum_of_leaves(tree)
        return f

    f = make()
    assert structured_objective(structure, f) is structured_objective(as_structure(_x0()), f)  # compiled once
    refs = []
    for seed in range(2):
        g = make()
        refs.append(weakref.ref(g))
        ES("snes", max_generations=2, random_state=seed).fit(g, _x0())
        del g
    gc.collect()
    assert [r() for r in refs] == [None, None]  # the old closures kept every objective alive


def test_a_vectorized_objective_gets_the_population_as_one_structure():
    def f(tree):
        assert tree["w"].shape == (4, 3)
        return tree["w"].sum(axis=1) + tree["b"].sum(axis=1)

    f.vectorized = True
    wrapper = as_structure(_x0()).objective(f)
    assert wrapper.vectorized is True and wrapper.mode == "batched"
    np.testing.assert_array_equal(wrapper(np.ones((4, 5))), np.full(4, 5.0))


@pytest.mark.parametrize("misuse,error", [(lambda m: m(torch_inputs()), TypeError),
                                          (lambda m: m.weight.sum(), AttributeError)])
def test_a_module_candidate_used_as_a_module_is_told_to_use_functional_call(misuse, error):
    torch = pytest.importorskip("torch")
    from evostrat import ObjectiveError, vectorized
    from evostrat.backends.structured_objective import MODULE_CANDIDATES

    net = torch.nn.Linear(3, 1).double()
    with pytest.raises(ObjectiveError, match=r"candidate 0: .*'dict' object .*functional_call\(module, params, args\)"
                       ) as caught:
        ES("snes", max_generations=2, random_state=0).fit(lambda m: float(misuse(m)), net)
    assert type(caught.value.__cause__) is error and MODULE_CANDIDATES in str(caught.value.__cause__)
    with pytest.raises(ObjectiveError, match="functional_call"):  # the population's structure alike
        ES("snes", max_generations=2, random_state=0).fit(vectorized(lambda P: misuse(P)), net)
    # the hint is for a module's dicts only: a dict x0's candidates are what the objective asked for
    with pytest.raises(ObjectiveError) as plain:
        ES("snes", max_generations=2, random_state=0).fit(lambda d: float(misuse(d)), {"weight": torch.ones(3)})
    assert "functional_call" not in str(plain.value)
    # an objective's own TypeError passes unchanged
    with pytest.raises(ObjectiveError, match=r"TypeError: mine$"):
        ES("snes", max_generations=2, random_state=0).fit(lambda m: (_ for _ in ()).throw(TypeError("mine")), net)


def torch_inputs():
    import torch

    return torch.ones(2, 3, dtype=torch.float64)
