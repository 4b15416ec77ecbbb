"""The torch stack kernel of CMA-ES and sep-CMA-ES (:mod:`evostrat.kernels.cma_torch_stack`) and
the ``evostrat_stack_kernel`` hook: every run of a stacked ask, tell and read-out is the
generic methods' run alone (candidates bit for bit, states to the rounding of batched
products), on the eager path, the lazy eigendecomposition, repairs, ties, NaN and float32."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from plugin_fixtures import registered

from evostrat import ES, hookimpl, vectorized
from evostrat.backends import get_backend
from evostrat.kernels import StackKernel, resolve_stack_kernel
from evostrat.run.batch import fit_batch
from evostrat.strategies.cma_es import CMAES
from evostrat.strategies.sep_cma_es import SepCMAES
from evostrat.strategies.snes import SNES

torch = pytest.importorskip("torch")

from stack_states import stack_states as _states  # noqa: E402

BE = get_backend("torch")



def _assert_equal_alone(strategy: CMAES, states: list, fitness, generations: int = 6,
                        rtol: float = 1e-12, exact: bool = False) -> list:
    """``generations`` stacked generations of the kernel against each run's generic methods;
    the criteria read each generation."""
    from evostrat.run.batch_stack import RunStack, StackedMethods

    methods = StackedMethods(strategy, BE)
    assert methods.kernel is not None
    stack, read = RunStack(states, BE), []
    for _ in range(generations):
        X, asked = methods.ask(stack)
        f = fitness(X)
        stack, (sigmas, stops) = methods.tell(asked, X, f)
        assert methods.maps == {"ask": True, "tell": True, "read": True}
        alone_states = []
        for i, state in enumerate(states):
            X_alone, state = strategy.ask(state)
            assert torch.equal(X[i], X_alone)  # the run's own draws, as alone
            state = strategy.tell(state, X_alone, f[i])
            for name, a, b in zip(state._fields, state, stack.run_state(i)):
                if exact and name in ("C", "B", "D"):  # C to the last bit, or eigh may pick another
                    # basis of a repeated eigenvalue (popsize < n), and so its eigenpairs
                    assert torch.equal(b, a), name
                elif name == "B":  # at some small sizes (d = 5) torch's CPU bmm sums in another
                    # order than mm: C apart in the last bit, eigenvectors of close eigenvalues
                    # (gap 5e-4) by up to eps / gap
                    torch.testing.assert_close(b, a, rtol=0.0, atol=rtol * 1e3, msg=name)
                elif isinstance(a, torch.Tensor):
                    torch.testing.assert_close(b, a, rtol=rtol, atol=rtol * 1e-3, msg=name)
                else:
                    assert (a == b).all(), name  # the key
            assert sigmas[i] == pytest.approx(float(strategy.sigma(state)), rel=rtol)
            assert stops[i] == {k: bool(v) for k, v in strategy.stop(state).items()}
            alone_states.append(state)
        states = alone_states  # the next generation starts from the lone states' draws
        stack = RunStack(states, BE)
        read.append(stops)
    return read


@vectorized  # one call per generation for all the batch's populations (fit_batch's usual path)
def _sphere(X):
    return (X * X).sum(-1)


def test_the_kernel_is_chosen_for_cma_es_and_sep_cma_es_on_torch_only() -> None:
    for cls in (CMAES, SepCMAES):
        assert isinstance(resolve_stack_kernel(cls(), BE), StackKernel)
        assert resolve_stack_kernel(cls(), get_backend("numpy")) is None
        off = cls()
        off.stack_kernel = False
        assert resolve_stack_kernel(off, BE) is None
    assert resolve_stack_kernel(SNES(), BE) is None

    class OwnWhitening(SepCMAES):  # a step of the diagonal model: the generic steps under vmap
        def whiten(self, state, Y, w_mean, y_w):
            return super().whiten(state, Y, w_mean, y_w)

    assert resolve_stack_kernel(OwnWhitening(), BE) is None

    class OwnDecay(CMAES):  # overrides a step the kernel would otherwise compute its own way
        @staticmethod
        def cov_decay(c, hsig):
            return CMAES.cov_decay(c, hsig) * 0.5

    assert resolve_stack_kernel(OwnDecay(), BE) is None
    x0 = torch.ones(4, dtype=torch.float64)
    res = fit_batch(ES(OwnDecay(), max_generations=5), _sphere, x0, seeds=2)
    alone = ES(OwnDecay(), max_generations=5, random_state=1).fit(_sphere, x0)
    assert res.fun[1] == pytest.approx(alone.fun_, rel=1e-9)  # its own step, under vmap


@pytest.mark.parametrize("options, dim", [({}, 5), ({"active": False, "popsize": 12}, 5), ({"popsize": 7}, 5),
                                           ({}, 20), ({"active": False}, 20)])
def test_every_run_equals_the_generic_run_alone(options: dict, dim: int) -> None:
    # d = 20, default popsize 12: the first updates leave C with a repeated eigenvalue, so C must be
    # the lone run's bit for bit (products of 12 x 20 x 20: the same summation batched as alone);
    # at d = 5 without active weights mu = 6 >= d, so that no eigenvalue repeats
    s = CMAES(**options)
    _assert_equal_alone(s, _states(s, 4, dim), _sphere, exact=dim == 20)


def test_lazy_eigendecomposition_with_runs_due_at_different_generations() -> None:
    s = CMAES(lazy_eigen=3)
    states = _states(s, 4, 6, warm=1)  # counters 0, 1, 2, 3: each generation some runs are due, some not
    assert len({int(st.generation) for st in states}) == 4
    _assert_equal_alone(s, states, _sphere, generations=7)


def test_ties_nan_and_float32() -> None:
    s = CMAES()

    def tied_with_nan(X):
        f = torch.round(_sphere(X))  # ties
        f[1, 2] = float("nan")  # ranks worst in run 1 only
        return f

    _assert_equal_alone(s, _states(s, 3, 4), tied_with_nan)
    _assert_equal_alone(s, _states(s, 3, 4, dtype=torch.float32), _sphere, rtol=1e-5)


def test_criteria_that_trigger_in_some_runs() -> None:
    s = CMAES(tolfacupx=1.5, tolconditioncov=10.0)
    # a steep ellipsoid: C's condition passes 10 within a dozen generations in some runs, and
    # the wide runs' deviations grow past 1.5 sigma0 (tolfacupx) in some runs first
    scale = torch.logspace(0, 3, 5, dtype=torch.float64)

    def ellipsoid(X):
        return ((X * scale) ** 2).sum(-1)

    read = _assert_equal_alone(s, _states(s, 4, 5), ellipsoid, generations=12)
    for name in ("tolfacupx", "tolconditioncov"):  # each holds in some runs and not in others
        assert any(len({stops[name] for stops in generation}) == 2 for generation in read), name


def test_repair_in_some_runs_only() -> None:
    s = CMAES()
    states = _states(s, 3, 4)
    # run 1's C near the top of RESCALE_RANGE: the update pushes its largest eigenvalue past
    # 1e10, so its C is rescaled into sigma; the other runs are not repaired
    big = states[1]
    states[1] = big._replace(C=big.C * 9.9e9, B=big.B, D=big.D * 9.9e9 ** 0.5, diag_C=big.diag_C * 9.9e9)
    _assert_equal_alone(s, states, _sphere, generations=3)
    from evostrat.run.batch_stack import RunStack, StackedMethods

    methods = StackedMethods(s, BE)
    X, asked = methods.ask(RunStack(states, BE))
    told, _ = methods.tell(asked, X, _sphere(X))
    log_scale = told.run_state(1).log_scale
    assert float(log_scale) > 20 and float(told.run_state(0).log_scale) == 0.0  # only run 1 repaired


def _fit_batch_counting_tells(*args: Any, **kwargs: Any) -> tuple[Any, int]:
    """``fit_batch(*args, **kwargs)`` and how many times it called the stack kernel's ``tell``."""
    from evostrat.kernels import cma_torch_stack

    calls = []
    tell = cma_torch_stack.tell

    def counting(*args):
        calls.append(1)
        return tell(*args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cma_torch_stack, "tell", counting)
        return fit_batch(*args, **kwargs), len(calls)


def test_fit_batch_runs_the_kernel_and_equals_the_runs_alone() -> None:
    x0 = torch.full((6,), 2.0, dtype=torch.float64)
    settings = {"max_generations": 60, "popsize": 16}
    res, tells = _fit_batch_counting_tells(ES("cma_es", **settings), _sphere, x0, seeds=3)
    assert res.fast_path == "batched" and tells == 60
    for i in range(3):
        alone = ES("cma_es", random_state=i, **settings).fit(_sphere, x0)
        assert res.n_evals[i] == alone.n_evals_ and res.stop_reason[i] == alone.stop_reason_
        np.testing.assert_allclose(res.fun[i], alone.fun_, rtol=1e-6, atol=1e-18)
        np.testing.assert_allclose([h["sigma"] for h in res.estimators[i].history_],
                                   [h["sigma"] for h in alone.history_], rtol=1e-6)


def test_fit_batch_with_popsize_below_the_dimension_follows_the_runs_alone() -> None:
    # popsize 12 < d = 20: C starts with a repeated eigenvalue, so a C apart in the last bit may get
    # another eigenbasis and other samples: the batch's products must sum as the lone run's (on an
    # AVX-512 Xeon its batched vector products did not, and the runs ended up to 75 % apart in fun_)
    x0 = torch.linspace(-1.0, 2.0, 20, dtype=torch.float64)
    res = fit_batch(ES("cma_es", max_generations=100), _sphere, x0, seeds=4)
    assert res.fast_path == "batched"
    for i in range(4):
        alone = ES("cma_es", max_generations=100, random_state=i).fit(_sphere, x0)
        np.testing.assert_allclose(res.fun[i], alone.fun_, rtol=1e-6)
        torch.testing.assert_close(torch.as_tensor(res.x[i]), alone.x_, rtol=1e-6, atol=1e-9)


class _SnesStackPlugin:
    """A third party's stack kernel: SNES's own methods, run by run, counted."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def evostrat_stack_kernel(self, strategy, backend):
        if not isinstance(strategy, SNES) or backend.name != "torch":
            return None
        from evostrat.backends.trees import tree_leaves, tree_with_leaves
        from evostrat.run.batch_stack import RunStack

        def runs(state):  # run i's state: row i of every leaf (the key's row too)
            leaves = tree_leaves(state)
            return [tree_with_leaves(state, [v[i] for v in leaves]) for i in range(state.mean.shape[0])]

        def join(states):
            return RunStack(states, BE).as_state()

        def ask(state):
            self.calls.append("ask")
            pairs = [strategy.ask(s) for s in runs(state)]
            return torch.stack([p[0] for p in pairs]), join([p[1] for p in pairs])

        def tell(state, X, f):
            self.calls.append("tell")
            return join([strategy.tell(s, x, v) for s, x, v in zip(runs(state), X, f)])

        def read(state):
            self.calls.append("read")
            return torch.stack([strategy.sigma(s) for s in runs(state)]), {}

        return StackKernel(ask=ask, tell=tell, read=read)


def test_a_third_party_stack_kernel_is_used() -> None:
    with registered(_SnesStackPlugin(), "test-snes-stack-kernel", fresh=False) as plugin:
        x0 = torch.full((3,), 1.0, dtype=torch.float64)
        res = fit_batch(ES("snes", max_generations=8), _sphere, x0, seeds=2)
    assert plugin.calls[:3] == ["ask", "tell", "read"] and len(plugin.calls) == 24
    for i in range(2):
        alone = ES("snes", max_generations=8, random_state=i).fit(_sphere, x0)
        assert res.fun[i] == pytest.approx(alone.fun_, rel=1e-12)


def test_without_the_kernel_the_generic_steps_map_and_agree() -> None:
    from evostrat.run.batch_stack import RunStack, StackedMethods

    on, off = CMAES(lazy_eigen=2), CMAES(lazy_eigen=2)
    off.stack_kernel = False
    states = _states(on, 3, 5, warm=1)
    kernel, mapped = StackedMethods(on, BE), StackedMethods(off, BE)
    assert kernel.kernel is not None and mapped.kernel is None
    a = b = RunStack(states, BE)
    for generation in range(4):
        (Xa, a), (Xb, b) = kernel.ask(a), mapped.ask(b)
        if generation == 0:  # the kernel's candidates are the lone runs' bit for bit; vmap's batched
            # products may round otherwise (tiny sizes on some CPUs: see stack_products.way)
            assert torch.equal(Xa, torch.stack([on.ask(s)[0] for s in states]))
        torch.testing.assert_close(Xa, Xb, rtol=1e-12, atol=1e-12)  # the same draws, batched rounding
        (a, read_a), (b, read_b) = kernel.tell(a, Xa, _sphere(Xa)), mapped.tell(b, Xb, _sphere(Xb))
        assert mapped.maps == {"ask": True, "tell": True, "read": True}  # under vmap, not run by run
        assert read_a[1] == read_b[1]
        np.testing.assert_allclose(read_a[0], read_b[0], rtol=1e-12)
        for x, y in zip(a.tensors, b.tensors):
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


def test_runs_above_the_population_size_equal_the_runs_alone_after_others_stop() -> None:
    # d = 20, popsize 12: C starts with a repeated eigenvalue, so a run stays its lone self only if
    # its C is the lone run's to the last bit; the runs told to stop after 8 generations leave the
    # stack (the rest taken out of it, the eigenvectors' layout changed), the others go on to 40
    x0 = torch.linspace(-1.0, 2.0, 20, dtype=torch.float64)
    res = fit_batch(ES("cma_es"), _sphere, x0, seeds=2, grid={"max_generations": [8, 40]})
    assert res.fast_path == "batched" and res.n_programs == 1
    for i, params in enumerate(res.params):
        alone = ES("cma_es", **params).fit(_sphere, x0)
        assert res.n_generations[i] == params["max_generations"] == alone.n_generations_
        np.testing.assert_allclose([h["median"] for h in res.estimators[i].history_],
                                   [h["median"] for h in alone.history_], rtol=1e-9)
        np.testing.assert_allclose(res.x[i], alone.x_.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("options, dim", [({}, 5), ({}, 20), ({"active": False, "popsize": 12}, 7), ({}, 100)])
def test_sep_cma_es_runs_equal_the_generic_runs_alone(options: dict, dim: int) -> None:
    # the diagonal model has no batched product but the weighted sums: every leaf is the lone run's
    # bit for bit except sigma, whose ||p_s||^2 sums in another order (a few ulp)
    s = SepCMAES(**options)
    _assert_equal_alone(s, _states(s, 4, dim), _sphere, generations=8, rtol=1e-15, exact=True)
    states = _states(s, 3, dim)
    from evostrat.run.batch_stack import RunStack, StackedMethods

    methods = StackedMethods(s, BE)
    X, asked = methods.ask(RunStack(states, BE))
    told, _ = methods.tell(asked, X, _sphere(X))
    for i, state in enumerate(states):
        X_alone, state = s.ask(state)
        alone = s.tell(state, X_alone, _sphere(X_alone))
        for name, a, b in zip(alone._fields, alone, told.run_state(i)):
            if name != "sigma" and isinstance(a, torch.Tensor):
                assert torch.equal(a, b), name


def test_sep_cma_es_criteria_and_repairs_in_some_runs() -> None:
    s = SepCMAES(tolfacupx=1.5, tolconditioncov=10.0)
    scale = torch.logspace(0, 3, 5, dtype=torch.float64)

    def ellipsoid(X):
        return ((X * scale) ** 2).sum(-1)

    read = _assert_equal_alone(s, _states(s, 4, 5), ellipsoid, generations=12, rtol=1e-13)
    for name in ("tolfacupx", "tolconditioncov"):  # each holds in some runs and not in others
        assert any(len({stops[name] for stops in generation}) == 2 for generation in read), name
    states = _states(SepCMAES(), 3, 4)
    states[1] = states[1]._replace(C=states[1].C * 5e10)  # past 1e10 after its update: rescaled into sigma
    from evostrat.run.batch_stack import RunStack, StackedMethods

    methods = StackedMethods(SepCMAES(), BE)
    X, asked = methods.ask(RunStack(states, BE))
    told, _ = methods.tell(asked, X, _sphere(X))
    assert float(told.run_state(1).log_scale) > 20 and float(told.run_state(0).log_scale) == 0.0
    _assert_equal_alone(SepCMAES(), states, _sphere, generations=3, rtol=1e-13)


def test_sep_cma_es_fit_batch_runs_the_kernel_and_stops_where_the_runs_stop_alone() -> None:
    x0 = torch.linspace(-1.0, 2.0, 12, dtype=torch.float64)
    res, tells = _fit_batch_counting_tells(ES("sep_cma_es", ftarget=1e-6), _sphere, x0, seeds=2,
                                           grid={"max_generations": [10, 400]})
    assert res.fast_path == "batched" and res.n_programs == 1 and tells == max(res.n_generations)
    for i, params in enumerate(res.params):
        alone = ES("sep_cma_es", ftarget=1e-6, **params).fit(_sphere, x0)
        assert res.n_generations[i] == alone.n_generations_ and res.stop_reason[i] == alone.stop_reason_
        np.testing.assert_allclose([h["median"] for h in res.estimators[i].history_],
                                   [h["median"] for h in alone.history_], rtol=1e-9)
    assert set(res.stop_reason) == {"maxiter", "ftarget"}  # the short runs stop first, the others reach the target


def test_products_run_by_run_where_batched_ones_would_round_otherwise(monkeypatch) -> None:
    # the fallback of _product on any CPU: each run's products as the lone run's, so its candidates
    # (and, for sep-CMA-ES, C) bit for bit; on CPUs whose batched products round otherwise at these
    # sizes the kernel takes this path by itself (an AVX-512 Xeon at d = 5)
    from evostrat.kernels import stack_products

    monkeypatch.setattr(stack_products, "way", lambda a, b: "run by run")
    for s in (CMAES(), CMAES(lazy_eigen=2)):
        _assert_equal_alone(s, _states(s, 3, 5, warm=1), _sphere, generations=4)
    sep = SepCMAES()
    _assert_equal_alone(sep, _states(sep, 3, 5), _sphere, generations=4, rtol=1e-15, exact=True)


def test_each_product_sums_as_the_lone_runs_and_is_batched_where_that_does() -> None:
    from evostrat.kernels.stack_products import batched as _batched, padded as _padded, product as _product, way as _way

    draw = torch.Generator().manual_seed(1)
    for runs, p, n in [(3, 12, 20), (2, 8, 5), (4, 10, 10), (2, 6, 4)]:
        Z = torch.randn(runs, p, n, generator=draw, dtype=torch.float64)
        A = torch.randn(runs, n, n, generator=draw, dtype=torch.float64)
        B = torch.linalg.eigh(A + A.mT)[1]  # column-major, as the states' eigenvectors
        w, v = (torch.randn(runs, k, generator=draw, dtype=torch.float64) for k in (p, n))
        for a, b in [(Z, B), (Z, B.mT), (Z.mT * w[:, None, :], Z), (w, Z), (B, v)]:
            single = torch.stack([x @ y for x, y in zip(a, b)])
            assert torch.equal(_product(a, b), single)  # the lone products' bits, whichever way
            assert (_way(a, b) == "batched") == torch.equal(_batched(a, b), single)  # batched where it can
            torch.testing.assert_close(_padded(a, b), single, rtol=1e-14, atol=1e-14)  # the padding's sums


@pytest.mark.parametrize("name", ["cma_es", "sep_cma_es"])
def test_a_kernel_generation_does_not_take_the_stacked_state_apart(monkeypatch, name: str) -> None:
    """The stack kernel's state goes from ask to tell to the read-outs as it is: once the runs are
    stacked, a generation neither splits the state into leaves nor rebuilds it (the runs' results
    unchanged: the other tests)."""
    import evostrat.run.batch_stack as batch_stack

    calls = {"tree_leaves": 0, "tree_with_leaves": 0}

    def counted(name: str, fn: Any) -> Any:
        def wrapper(*args: Any) -> Any:
            calls[name] += 1
            return fn(*args)
        return wrapper

    runs, generations = 3, 12
    for helper in calls:
        monkeypatch.setattr(batch_stack, helper, counted(helper, getattr(batch_stack, helper)))
    opts = dict(tolconditioncov=None, tolupsigma=None, tolfacupx=None, noeffectaxis=False, noeffectcoord=False)
    res = fit_batch(ES(name, max_generations=generations, tolfun=None, tolx=None, tolfunhist=None,
                       tolstagnation=None, tolflatfitness=None, strategy_options=opts),
                    vectorized(lambda X: (X * X).sum(1)), torch.ones(5, dtype=torch.float64), seeds=runs)
    assert res.fast_path == "batched" and (res.n_generations == generations).all()
    # stacking the runs' states (one split each), the stack once as one state; the last
    # generation's stack taken apart to give each run its own final state
    assert calls["tree_leaves"] <= runs + 1 and calls["tree_with_leaves"] <= 1 + runs, calls
