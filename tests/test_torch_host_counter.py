"""CMA-ES's lazy-decomposition decision reads no device value on torch (issue 17 item 4).

The decision ``generation % k == 0`` reads the state's generation counter alone, which a
torch state keeps on the host (:meth:`~evostrat.backends.base.Backend.counter_device`) whatever
its arrays' device: ``bool()`` of a CPU tensor does not wait for the GPU. "meta" tensors
stand in for CUDA here: they hold no values, so reading one fails; the ``device_reads``
fixture makes every read of a non-CPU tensor raise :class:`DeviceRead` besides (a plain
failed read would be taken by ``TorchBackend.cond`` for a vmapped predicate, which runs both
branches and selects, and would go unnoticed). numpy and JAX keep the counter with the
arrays; the trajectories are those recorded before the change, bit for bit.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from evostrat.backends import get_backend  # noqa: E402
from evostrat.backends.trees import map_tree, named_leaves, tree_leaves, tree_with_leaves  # noqa: E402
from evostrat.strategies.cma_es import CMAES  # noqa: E402
from cpu_rounding import vector_isa  # noqa: E402
from torch_compiling import graph_capture, one_graph  # noqa: E402

DIM = 5
K = 2  # decompose every other generation: both sides of the decision


class DeviceRead(AssertionError):
    """A device tensor's value was read on the host (on CUDA: a synchronisation)."""


@pytest.fixture
def device_reads(monkeypatch):
    """Every host read of a non-CPU tensor (``bool``, ``item``, ``int``...) raises DeviceRead."""
    for name in ("__bool__", "item", "__int__", "__float__", "__index__", "tolist"):
        original = getattr(torch.Tensor, name)

        def guarded(self, *args, _original=original, _name=name):
            if self.device.type != "cpu":
                raise DeviceRead(f"{_name} of a {self.device.type} tensor")
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, name, guarded)


def _meta_state(strategy):
    """A fresh state built on the meta device, as on CUDA (``initial_state`` reads no value)."""
    backend = get_backend("torch")
    return strategy.initial_state(torch.full((DIM,), 0.5, device="meta"), backend.key(0), backend)


def _population(strategy):
    return torch.empty((strategy.resolved_popsize(DIM), DIM), device="meta")


def _counting_decompositions(strategy, calls: list, clock: list):
    """``strategy.decompose`` recording the generation (from ``clock``) it runs in."""
    decompose = strategy.decompose

    def counted(state):
        calls.append(clock[0])
        return decompose(state)

    strategy.decompose = counted


def test_a_torch_state_on_a_device_keeps_its_counter_on_the_host():
    state = _meta_state(CMAES(lazy_eigen=K))
    devices = {name: x.device.type for name, x in named_leaves(state) if isinstance(x, torch.Tensor)}
    assert devices.pop("generation") == "cpu" and set(devices.values()) == {"meta"}
    assert state.generation.dtype == torch.int32 and state.generation.shape == ()


def test_numpy_and_jax_counters_stay_with_the_arrays():
    state = CMAES(lazy_eigen=K).init(np.full(DIM, 0.5), None, "numpy", random_state=0)
    assert isinstance(state.generation, np.ndarray) and state.generation.dtype == np.int32
    jnp = pytest.importorskip("jax.numpy")
    state = CMAES(lazy_eigen=K, covariance="eigen").init(jnp.full(DIM, 0.5), None, "jax", random_state=0)
    assert state.generation.devices() == state.mean.devices()


def test_the_guard_catches_a_device_counter(device_reads):
    # the check below is live: with the counter on the device, the decision reads it
    strategy = CMAES(lazy_eigen=K)
    state = _meta_state(strategy)
    state = state._replace(generation=state.generation.to("meta"))
    with pytest.raises(DeviceRead, match="__bool__ of a meta tensor"):
        strategy.tell(state, _population(strategy), torch.empty(strategy.resolved_popsize(DIM), device="meta"))


def test_eager_lazy_tells_read_no_device_value(device_reads):
    strategy = CMAES(lazy_eigen=K)
    calls, clock = [], [0]
    _counting_decompositions(strategy, calls, clock)
    state = _meta_state(strategy)
    for generation in range(1, 6):
        clock[0] = generation
        state = strategy.tell(state, _population(strategy), torch.empty(strategy.resolved_popsize(DIM), device="meta"))
    assert calls == [2, 4]  # one branch taken, not both (a select would decompose every time)
    assert state.generation.device.type == "cpu" and int(state.generation) == 5
    assert state.mean.device.type == "meta" and state.C.device.type == "meta"


@pytest.mark.parametrize("compiler", ["capture", "aot_eager"])
def test_the_fused_tell_decides_on_the_host(device_reads, compiler):
    # one graph (fullgraph=True); its torch.cond's predicate is a CPU tensor and its operands
    # are on the device; the program runs (on meta: a device predicate could not be read)
    strategy = CMAES(lazy_eigen=K)
    state = _meta_state(strategy)
    f = torch.empty(strategy.resolved_popsize(DIM), device="meta")
    state = strategy.tell(state, _population(strategy), f)  # the eager first call (host caches)
    capture, graphs = graph_capture()
    tell = one_graph(strategy.tell, capture if compiler == "capture" else compiler)
    for _ in range(4):
        state = tell(state, _population(strategy), f)
    assert state.generation.device.type == "cpu" and int(state.generation) == 5
    assert state.B.device.type == "meta"
    if compiler == "capture":
        assert len(graphs) == 1
        conds = [n for n in graphs[0].graph.nodes if n.target is torch.ops.higher_order.cond]
        assert len(conds) == 1
        pred, _, _, operands = conds[0].args
        assert pred.meta["example_value"].device.type == "cpu"
        assert {o.meta["example_value"].device.type for o in operands} == {"meta"}


def test_a_restored_leaf_goes_where_the_template_keeps_it():
    # a checkpoint restores a torch state's host counter on the host, its arrays on the run's device
    backend = get_backend("torch")
    state = _meta_state(CMAES(lazy_eigen=K))
    assert backend.restored_device(state.generation, torch.device("meta")).type == "cpu"
    assert backend.restored_device(state.mean, torch.device("meta")).type == "meta"
    assert get_backend("numpy").restored_device(np.zeros(()), None) is None


def test_a_checkpointed_state_keeps_its_counter_on_the_host(monkeypatch):
    # state_from_numpy (checkpoint restore) puts each torch leaf on its template's device: the
    # counter on the host, the arrays on the run's device (here everything is on the CPU, and
    # the run's device is given as meta: no leaf may go there unless its template is there)
    from evostrat.run.asktell import state_from_numpy, state_to_numpy

    backend = get_backend("torch")
    strategy = CMAES(lazy_eigen=K)
    state = strategy.init(torch.full((DIM,), 0.5, dtype=torch.float64), None, "torch", random_state=3)
    restored = state_from_numpy(state, state_to_numpy(state, backend), backend, torch.device("meta"))
    assert {x.device.type for x in tree_leaves(restored) if isinstance(x, torch.Tensor)} == {"cpu"}
    assert torch.equal(restored.generation, state.generation) and torch.equal(restored.C, state.C)


def test_vmapped_tells_over_host_counters():
    # a batch stacks the host counters into a CPU vector, which vmap cannot combine with the
    # device's tensors: TorchBackend.vmap moves it to their device first
    strategy = CMAES(lazy_eigen=K)
    backend = get_backend("torch")
    states = [_meta_state(strategy) for _ in range(3)]
    template = tree_leaves(states[0])
    batched = [backend.owns(x) for x in template]
    stacked = tuple(torch.stack([tree_leaves(s)[i] for s in states]) for i, b in enumerate(batched) if b)
    lam = strategy.resolved_popsize(DIM)

    def tell(tensors, X, f):
        it = iter(tensors)
        state = tree_with_leaves(states[0], [next(it) if b else x for b, x in zip(batched, template)])
        return tuple(o for o, b in zip(tree_leaves(strategy.tell(state, X, f)), batched) if b)

    X, f = torch.empty((3, lam, DIM), device="meta"), torch.empty((3, lam), device="meta")
    told = backend.vmap(tell)(stacked, X, f)
    assert all(t.device.type == "meta" and t.shape[0] == 3 for t in told)
    with pytest.raises(RuntimeError, match="device"):
        torch.func.vmap(tell)(stacked, X, f)


# -- the numbers: the trajectories recorded before the counter moved, bit for bit --------------
def _digest(xp_name: str, lazy: int, generations: int = 12) -> str:
    """sha256 of every leaf of the states of a lazy CMA-ES run (the first 16 hex digits)."""
    strategy = CMAES(lazy_eigen=lazy, covariance="eigen")
    if xp_name == "torch":
        x0, scale, tell = torch.linspace(-1.0, 2.0, 6, dtype=torch.float64), torch.logspace(0, 3, 6), strategy.tell
    else:
        jax = pytest.importorskip("jax")
        x0, scale, tell = jax.numpy.linspace(-1.0, 2.0, 6), jax.numpy.logspace(0, 3, 6), jax.jit(strategy.tell)
    state = strategy.init(x0, None, xp_name, random_state=7)
    h = hashlib.sha256()
    for _ in range(generations):
        X, state = strategy.ask(state)
        state = tell(state, X, (((X - 1.0) ** 2) * scale).sum(1))
        for name, x in named_leaves(state):
            h.update(name.encode())
            h.update(np.ascontiguousarray(np.asarray(x.cpu() if isinstance(x, torch.Tensor) else x)).tobytes())
    return h.hexdigest()[:16]


#: by vector width (:mod:`cpu_rounding`), with torch 2.13.0+cpu and JAX 0.10.2: on this project's
#: AVX-512 machines before the change; on its AVX2 machines from the code that still gives those
#: (the same trajectories, summed in another order)
RECORDED = {
    ("avx512", "torch", "2.13.0+cpu", 2): "896ac92c7b1c1ccd", ("avx512", "torch", "2.13.0+cpu", 3): "aa5d99fe89a906a3",
    ("avx512", "jax", "0.10.2", 2): "ddc9f2a6246b04fb", ("avx512", "jax", "0.10.2", 3): "897bfe852c41d7f7",
    ("avx2", "torch", "2.13.0+cpu", 2): "92cd319509352807", ("avx2", "torch", "2.13.0+cpu", 3): "e700260678b6b58e",
    ("avx2", "jax", "0.10.2", 2): "b0b124710ac78494", ("avx2", "jax", "0.10.2", 3): "306d842efab1bb4a",
}


@pytest.mark.parametrize("lazy", [2, 3])
@pytest.mark.parametrize("xp_name", ["torch", "jax"])
def test_lazy_trajectories_are_unchanged(xp_name, lazy):
    version = torch.__version__ if xp_name == "torch" else pytest.importorskip("jax").__version__
    isa = vector_isa("torch" if xp_name == "torch" else "xla")
    expected = RECORDED.get((isa, xp_name, version, lazy))
    if expected is None:
        pytest.skip(f"no digests recorded with {xp_name} {version} on a CPU with {isa}")
    assert _digest(xp_name, lazy) == expected
