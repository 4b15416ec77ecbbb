"""Fused torch ``tell`` (issue 17 item 4): every built-in ``fusable_methods`` strategy's
``tell`` traces into one graph (``fullgraph=True`` raises on a graph break, so a host read
of a device value, ``bool()``/``.item()``/data-dependent shapes, fails here) and gives the
eager states; the fused path through the public API equals the eager run.

Compiles are shared: one compiled ``tell`` per strategy (module-scoped), small d."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from evostrat import ES  # noqa: E402
from evostrat.backends.namespaces import cheap_cond, host_cached  # noqa: E402
from evostrat.backends.torch import TorchBackend  # noqa: E402
from evostrat.backends.torch_fused import FusedProgram, fusable, fused_setting  # noqa: E402
from evostrat.backends.trees import named_leaves  # noqa: E402
from evostrat.errors import InvalidArgumentError  # noqa: E402
from evostrat.strategies.cma_es import CMAES  # noqa: E402
from evostrat.strategies.openai_es import OpenAIES  # noqa: E402
from evostrat.strategies.pgpe import PGPE  # noqa: E402
from evostrat.strategies.sep_cma_es import SepCMAES  # noqa: E402
from evostrat.strategies.snes import SNES  # noqa: E402
from evostrat.strategies.xnes import XNES  # noqa: E402
from torch_compiling import graph_capture, one_graph  # noqa: E402

DIM = 5
GENERATIONS = 5
STRATEGIES = {
    "cma_lazy": lambda: CMAES(lazy_eigen=2),  # the queue and both sides of the decision
    "cma_every": lambda: CMAES(lazy_eigen=False),  # decomposed (and maybe repaired) every time
    "sep_cma": SepCMAES,
    "snes": SNES,
    "xnes": XNES,
    "openai_es": OpenAIES,
    "pgpe": PGPE,
}


def _objective(X):
    scale = torch.logspace(0, 3, X.shape[1], dtype=X.dtype)
    return ((X - 1.0) ** 2 * scale).sum(axis=1)


def _assert_same(a, b, exact: bool = True) -> None:
    for (name, x), (_, y) in zip(named_leaves(a), named_leaves(b)):
        if isinstance(x, torch.Tensor):
            if exact:
                assert torch.equal(x, y), name
            else:
                torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-12, msg=name)
        else:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)


def _trajectory(strategy, tell, generations: int = GENERATIONS, state=None):
    """States after each of ``generations`` ask/tell steps (the asks eager)."""
    if state is None:
        state = strategy.init(torch.full((DIM,), 0.5, dtype=torch.float64), None, "torch",
                              random_state=3)
    out = []
    for _ in range(generations):
        X, state = strategy.ask(state)
        state = tell(state, X, _objective(X))
        out.append(state)
    return out


@pytest.fixture(scope="module", params=sorted(STRATEGIES))
def traced(request):
    """(strategy, eager trajectory, ``tell`` compiled with fullgraph=True by dynamo alone:
    the graph runs the same torch operations, so the states are equal bit for bit)."""
    strategy = STRATEGIES[request.param]()
    eager = _trajectory(strategy, strategy.tell)  # also fills the host constant caches
    return strategy, eager, one_graph(strategy.tell)


def test_tell_traces_in_one_graph_and_equals_eager(traced):
    # fullgraph=True: a graph break (a host read of a device value) raises here
    strategy, eager, compiled = traced
    torch.compiler.reset()  # a fresh recompile budget (the fixture's program may be shared)
    fused = _trajectory(strategy, compiled)
    for a, b in zip(eager, fused):
        _assert_same(a, b)


def test_the_lazy_cma_case_takes_both_sides_of_the_decision():
    # what the traced lazy case covers: generations 2 and 4 decompose (the queue is emptied)
    strategy = STRATEGIES["cma_lazy"]()
    eager = _trajectory(strategy, strategy.tell)
    assert [bool((s.queue_coef == 0).all()) for s in eager] == [False, True, False, True, False]
    assert not torch.equal(eager[0].B, eager[1].B)


def test_cma_repair_is_a_select_and_matches_eager():
    """A covariance far outside RESCALE_RANGE is repaired (rescaled) without a host read."""
    strategy = CMAES(lazy_eigen=False)
    state = strategy.init(torch.zeros(DIM, dtype=torch.float64), None, "torch", random_state=0)
    state = state._replace(C=state.C * 1e12, diag_C=state.diag_C * 1e12)
    X, state = strategy.ask(state)
    f = _objective(X)
    eager = strategy.tell(state, X, f)
    assert float(eager.log_scale) != 0.0  # the repair branch was taken
    _assert_same(eager, one_graph(strategy.tell)(state, X, f))


@pytest.mark.parametrize("compiler", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_lazy_cma_through_a_compiler_matches_eager(compiler):
    # aot_eager decomposes some operations (a dot product into a multiply and a sum) and
    # inductor generates its own loops, so their rounding differs from eager's in the last bits
    strategy = CMAES(lazy_eigen=2)
    eager = _trajectory(strategy, strategy.tell, 4)
    fused = _trajectory(strategy, one_graph(strategy.tell, compiler), 4)
    for a, b in zip(eager, fused):
        _assert_same(a, b, exact=False)


@pytest.mark.parametrize("name", ["cma_es", "sep_cma_es", "xnes", "pgpe"])
def test_fit_with_the_fused_path_equals_the_eager_fit(name):
    def fit(fused):
        backend = TorchBackend(fused=fused, compiler="eager")
        es = ES(name, max_generations=6, random_state=1, backend=backend)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*functools.lru_cache")
            return es.fit(_objective, torch.full((DIM,), 0.5, dtype=torch.float64))

    eager, fused = fit("never"), fit("always")
    runner = fused.run_.runner  # the AskTell: its tell went through TorchBackend.compile
    assert isinstance(runner._tell, FusedProgram)
    assert runner._tell.calls >= 6 and runner._tell.failure is None
    assert fused.n_generations_ == eager.n_generations_ == 6
    assert torch.equal(fused.x_, eager.x_) and fused.fun_ == eager.fun_
    _assert_same(runner.state, eager.run_.runner.state)


def test_the_backend_fuses_only_listed_methods():
    backend = TorchBackend(fused="always", compiler="eager")
    snes = SNES()
    assert isinstance(backend.compile(snes.tell), FusedProgram)
    assert backend.compile(snes.ask) == snes.ask  # host keys: never fused
    assert TorchBackend(fused="never").compile(snes.tell) == snes.tell

    class Custom(SNES):
        def tell(self, state, X, fitness):  # may read the host: not fused unless listed again
            return super().tell(state, X, fitness)

    assert not fusable(Custom().tell) and fusable(CMAES().tell) and not fusable(len)


def test_auto_fuses_on_cuda_only():
    program = FusedProgram(lambda x: x + 1, when="auto", compiler="eager")
    assert not program.applies((torch.zeros(2),))
    assert program(torch.zeros(2)).tolist() == [1.0, 1.0] and program.waited == 0  # CPU: eager


def test_auto_compiles_only_after_its_eager_calls(monkeypatch):
    import evostrat.backends.torch_fused as fused

    monkeypatch.setattr(fused, "AUTO_EAGER_CALLS", 3)
    program = FusedProgram(lambda x: x + 1, when="auto", compiler="eager")
    monkeypatch.setattr(program, "applies", lambda args: True)  # as for tensors on a CUDA device
    compiled = []
    monkeypatch.setattr(program, "_program", lambda: compiled.append(1) or program.fn)
    for _ in range(3):
        program(torch.zeros(1))
    assert program.waited == 3 and program.calls == 0 and not compiled  # a short run never compiles
    program(torch.zeros(1))  # the fused path's first call is eager (it fills the host caches)
    program(torch.zeros(1))
    assert program.calls == 2 and compiled == [1]
    assert FusedProgram(len, when="always").applies((torch.zeros(2),))
    assert not FusedProgram(len, when="never").applies((torch.zeros(2),))


def test_settings_from_words_and_the_environment(monkeypatch):
    assert fused_setting(False) == "never" and fused_setting("1") == "always"
    monkeypatch.setenv("EVOSTRAT_TORCH_FUSED", "never")
    monkeypatch.setenv("EVOSTRAT_TORCH_FUSED_MODE", "reduce-overhead")
    backend = TorchBackend()
    assert backend.fused == "never" and backend.fused_mode == "reduce-overhead"
    with pytest.raises(InvalidArgumentError, match="fused"):
        fused_setting("sometimes")


def test_a_failed_compile_warns_and_runs_eagerly():
    program = FusedProgram(lambda x: x + 1, when="always", compiler="no-such-compiler")
    assert program(torch.zeros(1)).item() == 1.0  # the first call is eager
    with pytest.warns(UserWarning, match="running it eagerly"):
        assert program(torch.zeros(1)).item() == 1.0
    assert program.failure is not None and program(torch.zeros(1)).item() == 1.0


def test_cheap_cond_selects_off_the_host_and_branches_on_it():
    from evostrat.backends import get_backend

    be = get_backend("torch")
    calls = []

    def branch(tag):
        def run(x):
            calls.append(tag)
            return x + (1.0 if tag == "t" else 0.0)
        return run

    # a predicate on another device (meta: no values, as a GPU's would need a synchronisation): both, selected
    out = cheap_cond(be, torch.tensor(False, device="meta"), branch("t"), branch("f"), torch.zeros(2, device="meta"))
    assert out.device.type == "meta" and out.shape == (2,) and sorted(calls) == ["f", "t"]
    calls.clear()
    # in host memory the predicate is read: one branch
    for pred, want, taken in [(False, [0.0, 0.0], ["f"]), (True, [1.0, 1.0], ["t"])]:
        out = cheap_cond(be, torch.tensor(pred), branch("t"), branch("f"), torch.zeros(2))
        assert out.tolist() == want and calls == taken
        calls.clear()
    # under torch.func.vmap a batched predicate cannot be read: both branches, selected per row
    rows = torch.func.vmap(lambda p, x: cheap_cond(be, p, branch("t"), branch("f"), x))(
        torch.tensor([True, False]), torch.zeros(2, 2))
    assert rows.tolist() == [[1.0, 1.0], [0.0, 0.0]] and sorted(calls) == ["f", "t"]
    calls.clear()
    out = cheap_cond(get_backend("numpy"), np.bool_(True), branch("t"), branch("f"), np.zeros(2))
    assert out.tolist() == [1.0, 1.0] and calls == ["t"]


def test_host_cached_returns_the_cached_object():
    seen = []

    @host_cached(maxsize=2)
    def table(n, scale=1):
        seen.append(n)
        return [n * scale]

    assert table(3) is table(3) and table(3, scale=2) == [6] and seen == [3, 3]
    table(4)  # over maxsize: emptied, then filled
    table(3)
    assert seen == [3, 3, 4, 3]


def test_nes_utilities_on_a_device_trace_in_one_graph():
    # the accelerator branch of nes_utilities (a cached device tensor, keyed by the namespace's
    # name: a module as a dict key made dynamo break the graph); "meta" stands in for CUDA
    import array_api_compat.torch as xp

    from evostrat.strategies.shaping import nes_utilities

    def weigh(x):
        return x * nes_utilities(x.shape[0], xp, x.dtype, x.device)

    x = torch.ones(6, device="meta")
    weigh(x)  # fills the cache, as a fused program's eager first call does
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*functools.lru_cache")
        out = torch.compile(weigh, fullgraph=True, backend="eager")(x)
    assert out.shape == (6,) and out.device.type == "meta"


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_tell_on_an_accelerator_traces_in_one_graph_and_runs(name):
    # the device-dependent branches (cached device constants) as on CUDA: "meta" tensors
    # stand in for it, in a state built there as on CUDA (initial_state reads no value), so
    # CMA-ES's generation counter is on the host; the graph runs: the lazy CMA-ES torch.cond
    # reads its predicate, which a meta tensor could not give (tests/test_torch_host_counter.py)
    from evostrat.backends import get_backend

    backend = get_backend("torch")
    strategy = STRATEGIES[name]()
    X, _ = strategy.ask(strategy.init(torch.full((DIM,), 0.5), None, "torch", random_state=0))
    state = strategy.initial_state(torch.full((DIM,), 0.5, device="meta"), backend.key(0), backend)
    args = (state, X.to("meta"), torch.empty(X.shape[0], device="meta"))
    strategy.tell(*args)  # the eager first call: fills the device caches
    capture, graphs = graph_capture()
    out = one_graph(strategy.tell, capture)(*args)
    assert out.mean.device.type == "meta" and len(graphs) == 1


def test_the_device_test_stops_at_the_first_tensor():
    """``applies`` (every fused call) reads the first tensor's device and walks no further: a
    tell's state has its tensor first, so the population and the values are never visited."""
    from collections import namedtuple

    from evostrat.backends.trees import iter_leaves, tree_leaves

    class Unwalkable(list):
        def __iter__(self):
            raise AssertionError("walked past the first tensor")

    State = namedtuple("State", "mean parts")
    state = State(torch.zeros(2), {"a": (1.0, [torch.ones(1)]), "b": 2})
    assert FusedProgram(lambda *a: a, when="auto").applies((state, Unwalkable([torch.ones(3)]))) is False
    assert FusedProgram(lambda *a: a, when="auto").applies((1.0, [2.0], {"k": None})) is False  # no tensor
    tree = (state, [3.0, (4.0,)], {"x": state})
    assert all(a is b for a, b in zip(iter_leaves(tree), tree_leaves(tree), strict=True))


def test_the_device_test_reads_the_first_leaf_wherever_it_lies():
    """The state's first field is read without a walk when it is a tensor; any other first
    argument is walked: either way the device of the first tensor leaf."""
    from collections import namedtuple

    from evostrat.backends.torch_fused import _device_type

    State = namedtuple("State", "mean rest")
    meta, cpu = torch.zeros(1, device="meta"), torch.zeros(1)
    assert _device_type((State(meta, cpu), cpu)) == "meta"  # the first field
    assert _device_type((State(1.0, {"a": meta}), cpu)) == "meta"  # a number first: walked
    assert _device_type(((State(meta, cpu),), cpu)) == "meta"  # a tuple of states
    assert _device_type(([meta], cpu)) == "meta" and _device_type((meta, cpu)) == "meta"
    assert _device_type(((), cpu)) == "cpu" and _device_type(()) is None and _device_type((1.0, [2.0])) is None
