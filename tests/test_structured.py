"""Structured parameters (issue 19 item 2): x0 as a dict of arrays, a JAX pytree or a torch
nn.Module; the objective gets candidates in that structure, x_ comes back in it, sigma0 may be
per leaf, and the structure survives ask/tell, fit, checkpoints and batched fits."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import evostrat
from evostrat import ES, InvalidArgumentError, InvalidTypeError
from evostrat.backends.structured import as_structure


def _loss(tree):  # per candidate, any library: sum of squares of every leaf minus one
    return sum(float(((leaf - 1.0) ** 2).sum()) for leaf in (tree.values() if isinstance(tree, dict) else tree))


def test_dict_of_numpy_arrays_round_trips_through_fit():
    x0 = {"w": np.zeros((2, 3)), "b": np.zeros(2)}
    seen = []

    def f(p):
        seen.append((set(p), p["w"].shape, p["b"].shape))
        return float(((p["w"] - 1) ** 2).sum() + ((p["b"] + 2) ** 2).sum())

    es = ES("cma_es", sigma0=0.5, max_generations=150, random_state=0).fit(f, x0)
    assert seen[0] == ({"w", "b"}, (2, 3), (2,))
    assert set(es.x_) == {"b", "w"} and es.x_["w"].shape == (2, 3)
    np.testing.assert_allclose(es.x_["w"], 1.0, atol=1e-3)
    np.testing.assert_allclose(es.x_["b"], -2.0, atol=1e-3)
    def g(x):
        return float(((x[2:] - 1) ** 2).sum() + ((x[:2] + 2) ** 2).sum())

    g.vectorized = False
    flat = ES("cma_es", sigma0=0.5, max_generations=150, random_state=0).fit(g, np.zeros(8))
    assert es.fun_ == flat.fun_  # the same run as on the flat vector (b first: keys sorted as JAX sorts)


def test_vectorised_objective_receives_a_batched_structure():
    shapes = []

    @evostrat.vectorized
    def f(p):
        shapes.append((p["w"].shape, p["b"].shape))
        return ((p["w"] - 1) ** 2).sum(axis=(1, 2)) + (p["b"] ** 2).sum(axis=1)

    es = ES("snes", popsize=6, max_generations=3, random_state=0).fit(f, {"w": np.zeros((2, 3)), "b": np.ones(4)})
    assert shapes == [((6, 2, 3), (6, 4))] * 3 and es.n_evals_ == 18


def test_jax_pytree_compiled_and_per_leaf_sigma():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    x0 = {"layer": {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)}, "scale": jnp.zeros(())}

    def f(p):  # one candidate; vmap-ed by evostrat, so the run stays compiled
        return ((p["layer"]["w"] - 0.5) ** 2).sum() + (p["layer"]["b"] ** 2).sum() + (p["scale"] - 2.0) ** 2

    sigma0 = {"layer": {"w": 0.3, "b": jnp.full(2, 0.1)}, "scale": 1.0}
    es = ES("snes", sigma0=sigma0, max_generations=300, random_state=0).fit(f, x0)
    assert es.fast_path_ == "compiled_loop"
    assert jax.tree_util.tree_structure(es.x_) == jax.tree_util.tree_structure(x0)
    np.testing.assert_allclose(es.x_["layer"]["w"], 0.5, atol=1e-2)
    np.testing.assert_allclose(float(es.x_["scale"]), 2.0, atol=1e-2)
    start = ES("snes", sigma0=sigma0, random_state=0).initialize(x0)
    assert start.strategy_.sigma == pytest.approx(1.0)  # the largest per-leaf step
    np.testing.assert_allclose(np.asarray(start.strategy_.strategy.sigma0), [0.1, 0.1] + [0.3] * 6 + [1.0])


def test_torch_module_round_trips_through_ask_tell_fit_and_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    from torch.func import functional_call

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
    inputs, target = torch.randn(16, 2), torch.randn(16, 1)

    def loss(params):
        assert set(params) == {name for name, _ in net.named_parameters()}
        with torch.no_grad():
            return float(((functional_call(net, params, (inputs,)) - target) ** 2).mean())

    es = ES("snes", sigma0=0.1, popsize=8, random_state=1).initialize(net)
    X = es.ask()
    assert X["0.weight"].shape == (8, 3, 2)
    values = [loss({k: v[i] for k, v in X.items()}) for i in range(8)]
    es.tell(X, values)
    path = tmp_path / "run.ckpt"
    es = ES("snes", sigma0=0.1, popsize=8, max_generations=20, random_state=1)
    es.fit(loss, net, checkpoint=path)
    assert isinstance(es.x_, torch.nn.Module) and es.x_ is not net
    assert loss(dict(es.x_.named_parameters())) == pytest.approx(es.fun_)
    assert torch.equal(torch.nn.utils.parameters_to_vector(net.parameters()),
                       as_structure(net).flat)  # the user's module is untouched
    resumed = ES.resume(path, loss, max_generations=25)
    assert set(resumed.x_) == {name for name, _ in net.named_parameters()}  # a module comes back as a dict
    assert resumed.x_["0.weight"].shape == (3, 2) and resumed.n_generations_ == 25
    whole = ES("snes", sigma0=0.1, popsize=8, max_generations=25, random_state=1).fit(loss, net)
    assert resumed.fun_ == whole.fun_ and [r["generation_best"] for r in resumed.history_] == [
        r["generation_best"] for r in whole.history_]
    assert all(torch.equal(resumed.x_[name], p) for name, p in whole.x_.named_parameters())


def test_a_resumed_module_run_searches_its_parameters_in_the_module_order(tmp_path):
    # The checkpoint's module layout ("0.weight", "0.bias", ...) came back as a plain dict, which is
    # searched in sorted-key order: the resumed run's candidates and x_ had their leaves shuffled
    # (x_["0.weight"] off by up to 3.7, generation 4's best 8.3 instead of 0.71 here).
    torch = pytest.importorskip("torch")
    from torch.func import functional_call

    from evostrat.backends.structure_spec import structure_from_spec
    from evostrat.backends.structured import ModuleParameters

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))

    def loss(params):
        with torch.no_grad():
            return float(((functional_call(net, params, (torch.ones(1, 3),)) - 1.0) ** 2).sum())

    loss.vectorized = False
    whole = ES("snes", popsize=6, max_generations=8, random_state=0).fit(loss, net)

    def cut(es):
        if es.n_generations_ == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ES("snes", popsize=6, max_generations=8, random_state=0).fit(loss, net, checkpoint=tmp_path / "m.ckpt",
                                                                     callbacks=[cut])
    resumed = ES.resume(tmp_path / "m.ckpt", loss)
    assert [r["generation_best"] for r in resumed.history_] == [r["generation_best"] for r in whole.history_]
    assert list(resumed.x_) == [name for name, _ in net.named_parameters()]
    assert all(torch.equal(resumed.x_[name], p) for name, p in whole.x_.named_parameters())
    # a file written before the "module" kind existed (a "tree" of the module's names, unsorted) too
    old = {"kind": "tree", "paths": [[["d", "w"]], [["d", "b"]]], "shapes": [[2], [1]]}
    rebuilt = structure_from_spec(old, torch.arange(3.0))
    assert isinstance(rebuilt, ModuleParameters) and rebuilt["w"].tolist() == [0.0, 1.0]
    assert as_structure(rebuilt).flat.tolist() == [0.0, 1.0, 2.0]
    assert type(structure_from_spec({**old, "paths": [[["d", "b"]], [["d", "w"]]]}, np.zeros(3))) is dict


def test_pytree_checkpoint_resumes_the_same_run(tmp_path):
    x0 = {"a": np.zeros(3), "b": [np.ones(2), np.zeros((1, 2))]}
    path = tmp_path / "tree.ckpt"
    whole = ES("snes", max_generations=30, random_state=2).fit(_loss_tree, x0)
    ES("snes", max_generations=12, random_state=2).fit(_loss_tree, x0, checkpoint=path)
    resumed = ES.resume(path, _loss_tree, max_generations=30)
    assert resumed.fun_ == whole.fun_
    assert isinstance(resumed.x_["b"], list) and resumed.x_["b"][1].shape == (1, 2)
    np.testing.assert_array_equal(resumed.x_["b"][1], whole.x_["b"][1])


def _loss_tree(p):
    return float((p["a"] ** 2).sum() + ((p["b"][0] - 1) ** 2).sum() + (p["b"][1] ** 2).sum())


def test_batched_fit_over_a_structure():
    res = evostrat.fit_batch(ES("snes", max_generations=10), _loss_tree,
                             {"a": np.zeros(3), "b": [np.ones(2), np.zeros((1, 2))]}, seeds=2)
    assert res.x.shape == (2, 7) and res.x_structured[1]["b"][1].shape == (1, 2)


@pytest.mark.parametrize("x0, sigma0, error, match", [
    ({}, None, InvalidArgumentError, "x0 must hold at least one parameter array"),
    ({"w": np.zeros(3, dtype=int)}, None, InvalidTypeError, r"x0 leaf \['w'\] must be floating point"),
    ({"w": np.zeros(3), "b": np.zeros(2)}, {"w": 1.0}, InvalidArgumentError, "sigma0 must have the structure of x0"),
    ({"w": np.zeros(3)}, {"w": np.ones(2)}, InvalidArgumentError, r"sigma0 leaf \['w'\] has shape \(2,\)"),
    ({"w": np.zeros(3), "b": "x"}, None, InvalidTypeError, r"x0 leaves must be .* got str at \['b'\]"),
    # leaves that hold no number: was "x0 must have shape (dim,) with dim >= 1, got shape (0,)", a flat x0's message
    ({"w": np.zeros((0, 3)), "b": np.zeros(0)}, None, InvalidArgumentError,
     r"x0 must hold at least one number to search; its leaves \[\"\['b'\]\", \"\['w'\]\"\] have shapes \[\(0,\), \(0, 3\)\]"),
    # an int among float leaves (a float is taken): was "x0 leaves must be numpy arrays, ... got int"
    ({"w": np.zeros(3), "b": 1}, None, InvalidTypeError, r"x0 leaf \['b'\] must be floating point \(a float or a float "
                                                         r"array\), got int 1"),
])
def test_bad_structures_are_named(x0, sigma0, error, match):
    with pytest.raises(error, match=match):
        ES("snes", sigma0=sigma0, max_generations=2).fit(_loss, x0)


def test_bad_jax_and_torch_structures():
    jnp = pytest.importorskip("jax.numpy")
    with pytest.raises(InvalidTypeError, match=r"x0 leaf \['k'\] must be floating point"):
        ES("snes").initialize({"k": jnp.zeros(2, dtype=jnp.int32)})
    torch = pytest.importorskip("torch")
    with pytest.raises(InvalidArgumentError, match="without parameters"):
        ES("snes").initialize(torch.nn.Tanh())
    with pytest.raises(InvalidArgumentError, match=r"x0 must hold at least one number to search; its leaves "
                                                   r"\['weight'\] have shapes \[\(0, 0\)\]"):
        ES("snes").initialize(torch.nn.Linear(0, 0, bias=False))  # parameters, all empty
    with pytest.raises(InvalidArgumentError, match=r"x0 must hold at least one number to search"):
        ES("snes").initialize({"k": jnp.zeros(0)})


def test_a_module_subclass_defined_outside_torch_is_a_structure():
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):  # a user's module (its class lives in the user's module, not torch's)
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 1)

        def forward(self, x):
            return self.lin(x)

    net = Net()
    es = ES("snes", popsize=4, max_generations=3, random_state=0).fit(
        lambda p: float((p["lin.weight"] ** 2).sum() + (p["lin.bias"] ** 2).sum()), net)
    assert isinstance(es.x_, Net) and es.x_ is not net and es.n_evals_ == 12


def test_torch_leaves_that_require_grad():
    torch = pytest.importorskip("torch")
    x0 = {"w": torch.zeros(2, 3, requires_grad=True), "b": torch.zeros(2)}
    es = ES("snes", max_generations=3, random_state=0).fit(
        lambda p: float((p["w"] ** 2).sum() + (p["b"] ** 2).sum()), x0)
    assert es.x_["w"].shape == (2, 3) and not es.x_["w"].requires_grad


@pytest.mark.parametrize("x0", [[np.zeros(3), np.ones((1, 2))], (np.zeros(3),)])
def test_a_list_or_tuple_of_arrays_is_a_structure(x0):
    es = ES("snes", max_generations=3, random_state=0).fit(lambda p: sum(float((leaf ** 2).sum()) for leaf in p), x0)
    assert type(es.x_) is type(x0) and [leaf.shape for leaf in es.x_] == [leaf.shape for leaf in x0]
    with pytest.raises(InvalidArgumentError, match=r"x0 must have shape \(dim,\)"):  # nested numbers: a 2-D point
        ES("snes").initialize([[1.0, 2.0], [3.0, 4.0]])


def test_named_tuple_pytree_and_its_sigma0():
    jnp = pytest.importorskip("jax.numpy")
    from typing import NamedTuple

    class Params(NamedTuple):
        w: Any
        b: Any

    es = ES("snes", sigma0=Params(0.1, 2.0), max_generations=2, random_state=0).fit(
        lambda p: jnp.sum(p.w ** 2) + jnp.sum(p.b ** 2), Params(jnp.zeros(2), jnp.zeros(1)))
    assert isinstance(es.x_, Params) and es.x_.w.shape == (2,)
    np.testing.assert_allclose(np.asarray(es.strategy_.strategy.sigma0), [0.1, 0.1, 2.0])


def test_leaves_of_several_dtypes_keep_theirs():
    seen = []

    def f(p):
        seen.append((p["a"].dtype, p["b"].dtype))
        return float((p["a"] ** 2).sum() + (p["b"] ** 2).sum())

    es = ES("snes", popsize=4, max_generations=2, random_state=0).fit(
        f, {"a": np.zeros(2, np.float32), "b": np.zeros(3)})
    assert set(seen) == {(np.dtype("float32"), np.dtype("float64"))}
    assert (es.x_["a"].dtype, es.x_["b"].dtype) == (np.float32, np.float64)
    es = ES("snes", popsize=4, random_state=0).initialize({"a": np.zeros(2, np.float32), "b": np.zeros(3)})
    X = es.ask()
    assert (X["a"].dtype, X["b"].dtype) == (np.float32, np.float64)
    es.tell(X, np.arange(4.0))  # ask's population, though its float32 leaf is rounded
    assert es.n_evals_ == 4
    torch = pytest.importorskip("torch")

    class Mixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.zeros(2))
            self.b = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))

    es = ES("snes", popsize=4, max_generations=2, random_state=0).fit(f, Mixed())
    assert seen[-1] == (torch.float32, torch.float64)
    assert (es.x_.a.dtype, es.x_.b.dtype) == (torch.float32, torch.float64)
    best = float((es.x_.a.detach().double() ** 2).sum() + (es.x_.b.detach() ** 2).sum())
    assert best == pytest.approx(es.fun_, rel=1e-6)


def test_jax_pytree_of_several_dtypes_under_x64():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    with jax.enable_x64(True):
        x0 = {"w": jnp.zeros(2, jnp.float32), "b": jnp.zeros(3)}

        def f(p):
            return jnp.sum((p["w"] - 1) ** 2) + jnp.sum(p["b"] ** 2)

        es = ES("snes", popsize=4, random_state=0).initialize(x0)
        X = es.ask()
        assert (X["w"].dtype, X["b"].dtype) == (jnp.float32, jnp.float64)
        es.tell(X, jax.vmap(f)(X))  # ask's population, though its float32 leaf is rounded
        es = ES("snes", dtype="float32", max_generations=3, random_state=0).fit(f, x0)  # unravel took float64 only
        assert (es.x_["w"].dtype, es.x_["b"].dtype) == (jnp.float32, jnp.float64) and es.n_generations_ == 3


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_a_checkpoint_keeps_the_leaves_dtypes_and_resumes_the_same_run(tmp_path, library):
    """The structure's description in a checkpoint had no dtypes: the resumed run's float32 leaf came
    back float64 (candidates not rounded as the run's were)."""
    if library == "torch":
        torch = pytest.importorskip("torch")
        x0 = {"a": torch.full((2,), 0.3), "b": torch.full((3,), 0.7, dtype=torch.float64)}
    else:
        x0 = {"a": np.full(2, 0.3, np.float32), "b": np.full(3, 0.7)}
    seen = set()

    def f(p):
        seen.add((str(p["a"].dtype), str(p["b"].dtype)))
        return float(((p["a"] - 1.0) ** 2).sum() + ((p["b"] + 1.0) ** 2).sum())

    path = tmp_path / "mixed.ckpt"
    whole = ES("snes", max_generations=20, random_state=3).fit(f, x0)
    ES("snes", max_generations=8, random_state=3).fit(f, x0, checkpoint=path)
    resumed = ES.resume(path, f, max_generations=20)
    assert len(seen) == 1 and resumed.fun_ == whole.fun_
    assert (resumed.x_["a"].dtype, resumed.x_["b"].dtype) == (whole.x_["a"].dtype, whole.x_["b"].dtype)


@pytest.mark.parametrize("dtypes", [["float32"], ["float32", "int64"], "float32", [["float32"], "float64"]])
def test_a_structure_description_naming_bad_dtypes_is_refused(dtypes):
    from evostrat.backends.structure_spec import structure_from_spec

    spec = {"kind": "tree", "paths": [[["d", "a"]], [["d", "b"]]], "shapes": [[2], [1]], "dtypes": dtypes}
    with pytest.raises(InvalidArgumentError, match="structure description is malformed"):
        structure_from_spec(spec, np.zeros(3))
