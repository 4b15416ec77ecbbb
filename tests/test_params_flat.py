"""Flat vectors <-> torch modules and JAX pytrees (evostrat.params_flat)."""

from __future__ import annotations

import numpy as np
import pytest

from evostrat.errors import InvalidArgumentError, InvalidTypeError

torch = pytest.importorskip("torch")


def _net() -> "torch.nn.Module":
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))


def test_torch_roundtrip_and_layout() -> None:
    from evostrat.params_flat import TorchParams

    net = _net()
    spec = TorchParams(net)
    assert spec.dim == 3 * 5 + 5 + 5 * 2 + 2
    theta = spec.flatten()
    expected = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    assert torch.equal(theta, expected)
    new = torch.arange(spec.dim, dtype=torch.float32)
    spec.load(new)
    assert torch.equal(net[0].weight, new[:15].view(5, 3))
    assert torch.equal(net[2].bias, new[-2:])
    assert torch.equal(spec.flatten(), new)
    # load casts an array to the module's dtype and copies (the module does not alias the input)
    spec.load(np.zeros(spec.dim))
    assert net[0].weight.dtype == torch.float32 and float(net[0].weight.detach().abs().sum()) == 0.0
    assert float(new.sum()) > 0


def test_torch_unflatten_is_views_and_batched_call_matches_loop() -> None:
    from evostrat.params_flat import TorchParams

    net = _net()
    spec = TorchParams(net)
    theta = torch.randn(spec.dim)
    views = spec.unflatten(theta)
    assert views["0.weight"].data_ptr() == theta.data_ptr()  # no copy
    X = torch.randn(4, spec.dim)
    inputs = torch.randn(6, 3)
    batched = spec.batched_call(X, inputs)
    assert batched.shape == (4, 6, 2)
    for i in range(4):
        spec.load(X[i])
        torch.testing.assert_close(batched[i], net(inputs))
        torch.testing.assert_close(spec.call(X[i], inputs), net(inputs))


def test_torch_wrong_length_names_expected_length() -> None:
    from evostrat.params_flat import TorchParams

    spec = TorchParams(_net())
    with pytest.raises(InvalidArgumentError, match=r"\(32,\).*32 parameters.*\(31,\)"):
        spec.load(torch.zeros(31))
    with pytest.raises(InvalidArgumentError, match="32 parameters"):
        spec.batched_call(torch.zeros(4, 33), torch.zeros(1, 3))
    with pytest.raises(InvalidTypeError, match="torch.nn.Module"):
        TorchParams([1, 2, 3])


def test_jax_pytree_roundtrip_and_wrong_length() -> None:
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from evostrat.params_flat import JaxParams

    tree = {"w": jnp.ones((3, 4)), "b": jnp.arange(4.0), "out": [jnp.full((4, 1), 2.0)]}
    spec = JaxParams(tree)
    assert spec.dim == 12 + 4 + 4
    flat = spec.flatten()
    back = spec.unflatten(flat)
    for a, b in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(tree)):
        assert a.shape == b.shape and bool(jnp.all(a == b))
    # traceable: jit + vmap over a population of vectors
    X = jnp.stack([flat, 2 * flat])
    sums = jax.jit(jax.vmap(lambda v: spec.unflatten(v)["b"].sum()))(X)
    assert sums.tolist() == [6.0, 12.0]
    with pytest.raises(InvalidArgumentError, match=r"\(20,\).*20 parameters"):
        spec.unflatten(jnp.zeros(19))
    with pytest.raises(InvalidArgumentError, match="empty"):
        JaxParams({})


def test_every_parameter_is_evolved_requires_grad_or_not_and_buffers_stay_fixed(tmp_path) -> None:
    # The documented choice (as EvoTorch's NEProblem): requires_grad=False parameters are searched
    # on every path (TorchParams, x0 as a module, GymProblem, checkpoints); buffers are not.
    from torch.func import functional_call

    from evostrat import ES
    from evostrat.params_flat import TorchParams

    net = _net()
    net[0].weight.requires_grad_(False)  # "frozen" for gradient training only
    net.register_buffer("offset", torch.full((2,), 0.5))
    dim = 3 * 5 + 5 + 5 * 2 + 2
    assert TorchParams(net).dim == dim

    def loss(params: dict) -> float:
        assert set(params) == {"0.weight", "0.bias", "2.weight", "2.bias"}  # no buffer
        with torch.no_grad():
            return float(((functional_call(net, params, (torch.ones(1, 3),)) - 1.0) ** 2).sum()
                         + (params["0.weight"] ** 2).sum())

    loss.vectorized = False
    before = net[0].weight.clone()
    kwargs = dict(popsize=6, max_generations=4, random_state=0)
    es = ES("snes", **kwargs).fit(loss, net, checkpoint=tmp_path / "net.ckpt")
    assert not torch.equal(es.x_[0].weight, before)  # the frozen layer was searched
    assert es.x_[0].weight.requires_grad is False and torch.equal(net[0].weight, before)
    assert torch.equal(es.x_.offset, net.offset)  # buffers: copied, never searched
    resumed = ES.resume(tmp_path / "net.ckpt", loss)  # a module comes back as a dict of all parameters
    assert torch.equal(resumed.x_["0.weight"], es.x_[0].weight)
    gymnasium = pytest.importorskip("gymnasium")
    from evostrat.problems.gym import GymProblem

    policy = torch.nn.Sequential(torch.nn.Linear(4, 2))
    policy[0].weight.requires_grad_(False)
    assert GymProblem("CartPole-v1", policy).dim == 4 * 2 + 2 and gymnasium


def test_jax_unflatten_takes_a_population() -> None:
    # evosax's ParameterReshaper.reshape(X) idiom: X (n, dim) was refused ("must have shape (20,)")
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from evostrat.params_flat import JaxParams

    spec = JaxParams({"w": jnp.ones((3, 4)), "b": jnp.arange(4.0)})
    X = jnp.arange(3 * spec.dim, dtype=jnp.float32).reshape(3, spec.dim)
    trees = spec.unflatten(X)
    assert trees["w"].shape == (3, 3, 4) and trees["b"].shape == (3, 4)
    for i in range(3):
        one = spec.unflatten(X[i])
        assert bool(jnp.all(trees["w"][i] == one["w"])) and bool(jnp.all(trees["b"][i] == one["b"]))
    with pytest.raises(InvalidArgumentError, match=r"\(n, 16\).*got shape \(3, 15\)"):
        spec.unflatten(X[:, :15])
    with pytest.raises(InvalidArgumentError, match=r"\(16,\)"):
        spec.unflatten(jnp.zeros((2, 2, 16)))
