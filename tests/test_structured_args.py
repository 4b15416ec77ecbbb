"""Arguments in a structured x0's structure: bounds, integer, inject, warm starts, checkpoints; NamedTuples."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pytest

import evostrat
from evostrat import ES, InvalidArgumentError, InvalidTypeError


class Params(NamedTuple):
    w: Any
    b: Any


X0 = {"w": np.zeros((2, 2)), "b": np.zeros(2)}  # flat layout: b (2 values), then w (4), keys sorted


def _loss(p):
    return float(((p["w"] - 0.5) ** 2).sum() + ((p["b"] - 2.3) ** 2).sum())


def _nt_loss(p):
    return float(((p.w - 0.5) ** 2).sum() + ((p.b - 2.3) ** 2).sum())


def test_a_named_tuple_of_numpy_or_torch_arrays_runs_on_their_backend():
    es = ES("cma_es", max_generations=5, random_state=0).fit(_nt_loss, Params(np.zeros((2, 2)), np.zeros(2)))
    assert es.strategy_.backend.name == "numpy"  # was JAX (the NamedTuple was taken as a JAX pytree)
    assert isinstance(es.x_, Params) and isinstance(es.x_.w, np.ndarray) and es.x_.w.shape == (2, 2)
    torch = pytest.importorskip("torch")
    es = ES("snes", max_generations=3, random_state=0).fit(
        _nt_loss, Params(torch.zeros(2, 2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)))
    assert es.strategy_.backend.name == "torch" and isinstance(es.x_, Params) and torch.is_tensor(es.x_.b)
    es = ES("snes", max_generations=2, random_state=0).fit(lambda p: (p.w - 1.0) ** 2, Params(0.0, {"c": 1.0}))
    assert isinstance(es.x_, Params) and es.x_.b["c"].shape == ()  # numbers: a NamedTuple is still a structure


@pytest.mark.parametrize("library", ["numpy", "jax"])
def test_a_named_tuple_checkpoint_resumes_with_its_fields(tmp_path, library):
    xp = np if library == "numpy" else pytest.importorskip("jax.numpy")
    x0 = Params(xp.zeros((2, 2)), {"c": xp.zeros(2)})

    def loss(p):  # attribute access: a resumed run must hand out NamedTuples, not plain tuples
        return ((p.w - 0.5) ** 2).sum() + ((p.b["c"] - 1.0) ** 2).sum()

    objective = (lambda p: float(loss(p))) if library == "numpy" else loss
    whole = ES("snes", max_generations=12, random_state=3).fit(objective, x0)
    ES("snes", max_generations=5, random_state=3).fit(objective, x0, checkpoint=tmp_path / "nt.ckpt")
    resumed = ES.resume(tmp_path / "nt.ckpt", objective, max_generations=12)
    assert resumed.fun_ == whole.fun_
    assert resumed.x_._fields == ("w", "b") and type(resumed.x_).__name__ == "Params"
    np.testing.assert_array_equal(np.asarray(resumed.x_.b["c"]), np.asarray(whole.x_.b["c"]))


def _flat_box():  # X0's box in the flat layout: b in [-5, 5], w in [-1, 1]
    return np.array([-5.0, -5.0, -1.0, -1.0, -1.0, -1.0]), np.array([5.0, 5.0, 1.0, 1.0, 1.0, 1.0])


@pytest.mark.parametrize("bounds", [
    ({"w": -1.0, "b": -5.0}, {"w": np.ones((2, 2)), "b": 5.0}),
    ({"w": -np.ones((2, 2)), "b": np.full(2, -5.0)}, {"w": 1.0, "b": np.full(2, 5.0)}),
])
def test_bounds_given_as_a_pair_of_structures_are_the_flat_box(bounds):
    reference = ES("cma_es", max_generations=30, random_state=0, bounds=_flat_box()).fit(_loss, X0)
    es = ES("cma_es", max_generations=30, random_state=0, bounds=bounds).fit(_loss, X0)
    assert es.fun_ == reference.fun_
    np.testing.assert_array_equal(es.x_["w"], reference.x_["w"])
    assert es.x_["b"].max() <= 5.0 and es.x_["w"].max() <= 1.0


def test_a_leaf_value_that_broadcasts_to_its_leaf_is_repeated_as_numpy_broadcasts_it():
    # documented: per leaf a number, an array of the leaf's shape, or one that broadcasts to it
    from evostrat.backends.structure_args import flat_bounds, flat_sigma
    from evostrat.backends.structured import as_structure

    structure = as_structure(X0)
    np.testing.assert_array_equal(flat_sigma(structure, {"w": np.array([0.1, 0.2]), "b": 1.0}),
                                  [1.0, 1.0, 0.1, 0.2, 0.1, 0.2])
    lower, upper = flat_bounds(structure, ({"w": np.array([-1.0, -2.0]), "b": -5.0}, 5.0))
    np.testing.assert_array_equal(lower, [-5.0, -5.0, -1.0, -2.0, -1.0, -2.0])
    with pytest.raises(InvalidArgumentError, match=r"sigma0 leaf \['w'\] has shape \(3,\); .*broadcasting to it"):
        flat_sigma(structure, {"w": np.ones(3), "b": 1.0})


@pytest.mark.parametrize("bounds, error, match", [
    ({"w": (-1, 1), "b": (-5, 5)}, InvalidTypeError, r"bounds must be a pair \(lower, upper\); for a structured x0"),
    (({"w": -1.0}, 1.0), InvalidArgumentError, r"bounds lower must have the structure of x0: .*missing \[\"\['b'\]\"\]"),
    ((-1.0, {"w": 1.0, "b": 5.0, "c": 2.0}), InvalidArgumentError, r"bounds upper .*unexpected \[\"\['c'\]\"\]"),
    (({"w": np.zeros(3), "b": -5.0}, 1.0), InvalidArgumentError, r"bounds lower leaf \['w'\] has shape \(3,\)"),
])
def test_structured_bounds_that_do_not_match_are_named(bounds, error, match):
    with pytest.raises(error, match=match):
        ES("cma_es", max_generations=2, bounds=bounds).fit(_loss, X0)


def test_an_integer_mask_given_as_a_structure_is_the_flat_mask():
    mask = {"w": np.array([[True, False], [False, False]]), "b": True}
    reference = ES("cma_es", max_generations=30, random_state=0,
                   integer=[True, True, True, False, False, False]).fit(_loss, X0)
    es = ES("cma_es", max_generations=30, random_state=0, integer=mask).fit(_loss, X0)
    assert es.fun_ == reference.fun_
    assert es.x_["b"].tolist() == [2.0, 2.0] and float(es.x_["w"][0, 0]).is_integer()
    with pytest.raises(InvalidTypeError, match=r"integer leaf \['w'\] must be a bool or a boolean array"):
        ES("cma_es", integer={"w": np.zeros((2, 2)), "b": True}).initialize(X0)
    with pytest.raises(InvalidArgumentError, match=r"integer must have the structure of x0"):
        ES("cma_es", integer={"w": True}).initialize(X0)


def test_inject_takes_candidates_in_the_structure():
    es = ES("cma_es", random_state=0).initialize(X0)
    es.inject({"w": np.full((2, 2), 0.5), "b": np.full(2, 2.0)})  # one candidate
    X = es.ask()
    assert X["w"][0].tolist() == [[0.5, 0.5], [0.5, 0.5]] and X["b"][0].tolist() == [2.0, 2.0]
    es.tell(X, np.array([_loss({"w": X["w"][i], "b": X["b"][i]}) for i in range(len(X["b"]))]))
    es.inject({"w": np.arange(12.0).reshape(3, 2, 2) / 20, "b": np.zeros((3, 2))})  # three, as ask returns them
    X = es.ask()
    np.testing.assert_array_equal(X["w"][:3], np.arange(12.0).reshape(3, 2, 2) / 20)
    with pytest.raises(InvalidArgumentError, match=r"solutions must be one candidate \(every leaf of its shape\) or k "
                       r"candidates \(every leaf with the same leading axis k\), got leaf shapes "
                       r"\{\"\['b'\]\": \(2, 2\), \"\['w'\]\": \(3, 2, 2\)\}"):
        es.inject({"w": np.zeros((3, 2, 2)), "b": np.zeros((2, 2))})
    # the leaf that fits neither form is named: was "solutions leaf ['b'] has shape (2,); expected the
    # leaf's shape (2,)", the right leaf with its own shape, for a w of the wrong shape
    with pytest.raises(InvalidArgumentError, match=r"solutions leaf \['w'\] has shape \(2,\); expected the leaf's "
                                                   r"shape \(2, 2\) \(one candidate\) or \(k,\) \+ \(2, 2\)"):
        es.inject({"w": np.zeros(2), "b": np.zeros(2)})
    with pytest.raises(InvalidArgumentError, match=r"got leaf shapes \{\"\['b'\]\": \(2,\), \"\['w'\]\": \(2, 2, 2\)\}"):
        es.inject({"w": np.zeros((2, 2, 2)), "b": np.zeros(2)})  # two candidates' w, one candidate's b
    with pytest.raises(InvalidArgumentError, match=r"solutions must have the structure of x0"):
        es.inject({"w": np.zeros((2, 2))})


def test_a_modules_bounds_integer_and_injections_are_keyed_by_parameter_name():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Linear(2, 1)

    def loss(p):
        return float((p["weight"] ** 2).sum() + ((p["bias"] - 0.7) ** 2).sum())

    es = ES("snes", max_generations=40, random_state=0, bounds=({"weight": -2.0, "bias": -1.0}, 1.0),
            integer={"weight": False, "bias": True}).fit(loss, net)
    assert es.x_.bias.detach().item() == 1.0 and float(es.x_.weight.detach().abs().max()) < 0.2
    es = ES("snes", random_state=0).initialize(net)
    es.inject({"weight": torch.ones(1, 2), "bias": torch.zeros(1)})
    X = es.ask()
    assert X["weight"][0].tolist() == [[1.0, 1.0]] and X["bias"][0].tolist() == [0.0]
    with pytest.raises(InvalidTypeError, match="bounds lower must be a dict keyed by the module's parameter names"):
        ES("snes", bounds=([-1.0, -1.0], 1.0)).initialize(net)  # a list of 2 numbers, dim 3: not flat


def test_a_checkpoint_stores_structured_sigma0_bounds_and_integer(tmp_path):
    settings = dict(sigma0=Params(0.3, 1.0), bounds=(Params(-1.0, -5.0), Params(1.0, 5.0)),
                    integer=Params(False, np.array([True, False])))
    x0 = Params(np.zeros((2, 2)), np.zeros(2))
    whole = ES("cma_es", max_generations=20, random_state=1, **settings).fit(_nt_loss, x0)
    ES("cma_es", max_generations=8, random_state=1, **settings).fit(_nt_loss, x0, checkpoint=tmp_path / "c")
    resumed = ES.resume(tmp_path / "c", _nt_loss, max_generations=20)  # nothing to pass again
    assert resumed.fun_ == whole.fun_ and resumed.x_.b[0] == whole.x_.b[0]


def test_warm_start_checks_the_layout_and_takes_solutions_in_the_structure():
    source = ES("cma_es", max_generations=10, random_state=0).fit(_loss, X0)
    assert ES("cma_es", warm_start=source).initialize(np.zeros(6)).strategy_.dim == 6  # flat: any layout
    with pytest.raises(InvalidArgumentError, match=r"warm_start run's x0 has leaves .* the layouts must agree"):
        ES("cma_es", warm_start=source).initialize({"v": np.zeros(6)})
    rng = np.random.default_rng(0)
    X = {"w": rng.uniform(0, 1, (50, 2, 2)), "b": rng.uniform(0, 1, (50, 2))}
    values = ((X["w"] - 0.4) ** 2).sum(axis=(1, 2)) + ((X["b"] - 0.4) ** 2).sum(axis=1)
    flat = np.concatenate([X["b"], X["w"].reshape(50, 4)], axis=1)
    es = ES("cma_es", warm_start=(X, values)).initialize(X0)
    reference = ES("cma_es", warm_start=(flat, values)).initialize(X0)
    np.testing.assert_array_equal(es.strategy_.mean, reference.strategy_.mean)


@pytest.mark.parametrize("library", ["numpy", "jax"])
def test_fit_batch_seeds_none_runs_once_with_the_templates_random_state(library):
    xp = np if library == "numpy" else pytest.importorskip("jax.numpy")
    x0 = xp.ones(3)
    res = evostrat.fit_batch(ES("snes", max_generations=15, random_state=7), lambda X: (X ** 2).sum(axis=1),
                             x0, seeds=None, grid={"popsize": [6, 8]})
    assert [p["random_state"] for p in res.params] == [7, 7] and len(res) == 2
    alone = ES("snes", max_generations=15, random_state=7, popsize=8).fit(lambda X: (X ** 2).sum(axis=1), x0)
    np.testing.assert_allclose(res.fun[1], alone.fun_, rtol=1e-4 if library == "jax" else 0)
    with pytest.raises(InvalidArgumentError, match="seeds must be a positive int, a non-empty list of ints or None"):
        evostrat.fit_batch(ES("snes"), lambda X: (X ** 2).sum(axis=1), x0, seeds="all")


@pytest.mark.parametrize("named", [
    [{"path": [], "name": "not an identifier", "fields": ["w", "b"]}],
    [{"path": [], "name": "P", "fields": ["w"]}],  # one field for a tuple of two
    {"path": []},  # not a list of entries
])
def test_a_structure_description_with_bad_named_tuples_is_refused(named):
    from evostrat.backends.structure_spec import structure_from_spec

    spec = {"kind": "tree", "paths": [[["t", 0]], [["t", 1]]], "shapes": [[2], [1]], "named": named}
    with pytest.raises(InvalidArgumentError, match="structure description is malformed"):
        structure_from_spec(spec, np.zeros(3))
    good = structure_from_spec({**spec, "named": [{"path": [], "name": "P", "fields": ["w", "b"]}]}, np.zeros(3))
    assert good._fields == ("w", "b") and good.b.shape == (1,)
