"""Batched torch fits (issue 19 item 1, :mod:`evostrat.run.batch_torch`): runs in lockstep,
one evaluator call per generation, ``tell`` under ``torch.func.vmap`` where it vmaps;
every run equals the same run alone (stop generation, reason, values)."""

from __future__ import annotations

import numpy as np
import pytest

from evostrat import ES
from evostrat.run.batch import fit_batch

torch = pytest.importorskip("torch")

X0 = torch.full((6,), 2.0, dtype=torch.float64)


def _sphere(X):
    return (X * X).sum(axis=1)


def _alone(strategy: str, params: dict, objective=_sphere, **settings) -> ES:
    return ES(strategy, **settings).set_params(**params).fit(objective, X0)


def _assert_runs_alone(res, strategy: str, objective=_sphere, **settings) -> None:
    for i, params in enumerate(res.params):
        alone = _alone(strategy, params, objective, **settings)
        batched = res.estimators[i]
        assert batched.run_.fast_path == "batched"
        assert res.stop_reason[i] == alone.stop_reason_
        assert res.n_evals[i] == alone.n_evals_ and res.n_generations[i] == alone.n_generations_
        # a vmapped tell rounds batched products differently from one run's (CMA-ES: 1e-16
        # relative per generation, grown to 3e-7 at f = 5e-15 after 200 generations)
        np.testing.assert_allclose(res.fun[i], alone.fun_, rtol=1e-6, atol=1e-18)
        np.testing.assert_allclose(res.x[i], alone.x_.numpy(), rtol=1e-6, atol=1e-12)
        assert isinstance(batched.x_, torch.Tensor)
        assert len(batched.history_) == len(alone.history_)
        np.testing.assert_allclose([h["median"] for h in batched.history_], [h["median"] for h in alone.history_],
                                   rtol=1e-6, atol=1e-15)
        np.testing.assert_allclose([h["sigma"] for h in batched.history_], [h["sigma"] for h in alone.history_],
                                   rtol=1e-6)


@pytest.mark.parametrize("strategy, grid", [
    ("snes", {"strategy__lr_sigma": [0.1, 0.3]}),
    ("cma_es", {"sigma0": [0.5, 1.5], "strategy__active": [True, False]}),
    # VkD-CMA asks run by run (its draws have k columns, k not a host number under vmap): batched,
    # the buffer's k_max columns drew other samples than the run alone from the generation k grew
    ("vkd_cma", {"sigma0": [0.5, 1.5]}),
])
def test_batch_run_equals_run_alone(strategy: str, grid: dict) -> None:
    # default criteria: CMA-ES runs stop by tolfun at different generations, the others at the budget.
    # CMA-ES with popsize 16 (mu = 8 >= d = 6): with the default 10 (mu = 5) and active=False the first
    # updates leave C with a repeated eigenvalue, whose eigenvectors eigh may return in any basis of
    # that eigenspace; the vmapped tell's C differs from the lone one's in the last bit (batched matrix
    # products), which can turn that basis, and then the samples differ (from the same distribution).
    budget = 220 if strategy == "cma_es" else 120
    settings = {"max_generations": budget, **({"popsize": 16} if strategy == "cma_es" else {})}
    res = fit_batch(ES(strategy, **settings), _sphere, X0, seeds=4, grid=grid)
    assert res.fast_path == "batched" and res.n_programs == len(res.params) // 4
    _assert_runs_alone(res, strategy, **settings)
    if strategy == "cma_es":
        assert len(set(res.n_generations.tolist())) > 1  # the runs stopped at different generations


@pytest.mark.filterwarnings("ignore::evostrat.errors.PerCandidateWarning")  # per-candidate, as named
def test_batch_maximize_and_per_candidate_objective() -> None:
    def one(x):  # a per-candidate objective: the "auto" evaluator calls it row by row
        return -float((x * x).sum())

    res = fit_batch(ES("snes", max_generations=25, maximize=True), one, X0, seeds=3)
    assert res.fast_path == "batched"
    _assert_runs_alone(res, "snes", one, max_generations=25, maximize=True)
    assert (res.fun <= 0).all()


MAPPED = ["snes", "cma_es", "sep_cma_es", "xnes", "openai_es", "pgpe", "lm_ma_es", "vkd_cma"]


@pytest.mark.parametrize("strategy", MAPPED)
def test_stacked_methods_equal_the_methods_run_by_run(strategy: str) -> None:
    from evostrat.run.batch_stack import RunStack, StackedMethods

    runs = [ES(strategy, random_state=s).initialize(X0).run_ for s in range(3)]
    runner = runs[0].runner
    s = runner.strategy
    methods = StackedMethods(s, runner.backend)
    stack = RunStack([d.runner.state for d in runs], runner.backend)
    X, asked = methods.ask(stack)
    if strategy == "vkd_cma":  # its ask draws k columns, k read on the host: run by run, as alone
        assert X is None
        pairs = [s.ask(state) for state in stack.split()]
        X, asked = torch.stack([p[0] for p in pairs]), RunStack([p[1] for p in pairs], runner.backend)
    told, (sigmas, stops) = methods.tell(asked, X, (X * X).sum(axis=-1))
    # all three mapped, none run by run (but VkD-CMA's ask)
    assert methods.maps == {"ask": strategy != "vkd_cma", "tell": True, "read": True}
    for i, d in enumerate(runs):
        X_alone, state = s.ask(d.runner.state)
        assert torch.equal(X[i], X_alone)  # each run drew from its own key, as alone
        assert (asked.host_row(i)[-1] == state.key).all() and asked.host_row(i)[-1] is not state.key
        alone = s.tell(state, X_alone, _sphere(X_alone))
        for a, b in zip(alone, told.run_state(i)):
            if isinstance(a, torch.Tensor):  # a batched product may round the last bit differently
                torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-15)
        assert sigmas[i] == pytest.approx(runner.sigma_of(alone), rel=1e-12)
        assert stops[i] == {k: bool(v) for k, v in s.stop(alone).items()}


def test_an_unkeyed_draw_under_a_mapped_ask_is_refused() -> None:
    from evostrat.backends import get_backend

    be = get_backend(X0)
    with pytest.raises(RuntimeError, match="KeyBatch"):  # each run would get the same numbers
        be.vmap(lambda x: x + torch.randn(()), keyed_draws=True)(torch.zeros(3))
    with pytest.raises(RuntimeError):  # outside a keyed ask a draw under vmap is torch's error
        be.vmap(lambda x: x + torch.randn(()))(torch.zeros(3))


def test_stopped_runs_keep_their_own_state_and_non_finite_values_warn_per_run() -> None:
    from evostrat.errors import NonFiniteFitnessWarning

    def holes(X):  # NaN for candidates far out: some generations of some runs only
        f = (X * X).sum(axis=1)
        return torch.where(f > 60.0, torch.nan, f)

    with pytest.warns(NonFiniteFitnessWarning):
        res = fit_batch(ES("snes", max_generations=30, sigma0=2.0), holes, X0, seeds=3)
    assert res.fast_path == "batched"
    with pytest.warns(NonFiniteFitnessWarning):  # the same runs alone warn as well
        _assert_runs_alone(res, "snes", holes, max_generations=30, sigma0=2.0)
    for e in res.estimators:
        mean = e.run_.runner.state.mean
        assert mean.untyped_storage().nbytes() == mean.numel() * mean.element_size()  # not a view of the stack


def test_torch_cond_and_vecdot_under_vmap() -> None:
    from typing import NamedTuple

    from torch.func import vmap

    import array_api_compat.torch as xp_torch
    from evostrat.backends import get_backend

    be = get_backend(X0)

    class Pair(NamedTuple):
        a: torch.Tensor
        b: torch.Tensor

    def step(p: torch.Tensor, x: torch.Tensor) -> Pair:
        return be.cond(p > 0, lambda v: Pair(2.0 * v, v), lambda v: Pair(v - 1.0, -v), x)

    out = vmap(step)(torch.tensor([1.0, -1.0, 3.0]), torch.tensor([10.0, 10.0, 10.0]))
    assert out.a.tolist() == [20.0, 9.0, 20.0] and out.b.tolist() == [10.0, -10.0, 10.0]
    assert be.cond(torch.tensor(-1.0) > 0, lambda v: v, lambda v: -v, X0)[0] == -2.0  # eager: one branch
    Z = torch.randn(4, 24, 100, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(be.vecdot(Z, Z), xp_torch.vecdot(Z, Z, axis=-1))  # the same numbers as before
    assert torch.equal(vmap(lambda z: be.vecdot(z, z))(Z), be.vecdot(Z, Z))


def test_runs_the_batch_cannot_express_fall_back_to_fit() -> None:
    res = fit_batch(ES("snes", max_generations=15, bounds=(-3.0, 3.0)), _sphere, X0, seeds=2)
    assert res.fast_path is None and all(e.run_.fast_path is None for e in res.estimators)
    alone = _alone("snes", res.params[1], max_generations=15, bounds=(-3.0, 3.0))
    assert res.fun[1] == alone.fun_ and res.n_evals[1] == alone.n_evals_


def test_objective_errors_reach_the_caller() -> None:
    from evostrat.errors import ObjectiveError

    def bad(X):
        raise ValueError("boom")

    with pytest.raises(ObjectiveError, match="boom"):
        fit_batch(ES("snes", max_generations=5), bad, X0, seeds=2)


def test_a_key_batch_draws_each_run_s_numbers_from_its_own_key() -> None:
    from evostrat.backends import get_backend
    from evostrat.backends.key_batch import KeyBatch

    be = get_backend(X0)
    keys = [be.split(be.key(s))[1] for s in range(4)]
    batch = KeyBatch(np.stack(keys), None)
    for draw in (lambda k: be.normal(k, (3, 5), torch.float64), lambda k: be.uniform(k, (7,), torch.float32),
                 lambda k: be.normal_rows(k, range(2, 5), 6, torch.float64)):
        together = draw(batch)
        for i, key in enumerate(keys):
            assert torch.equal(together[i], draw(key))
    for child, alone in zip(batch.split(3), zip(*[be.split(k, 3) for k in keys])):
        assert all((a == b).all() for a, b in zip(child.keys, alone))


@pytest.mark.parametrize("unmapped", [("ask",), ("tell",), ("read",), ("ask", "tell", "read")])
def test_methods_that_do_not_map_run_run_by_run(monkeypatch: pytest.MonkeyPatch, unmapped: tuple) -> None:
    from evostrat.run import batch_stack

    init = batch_stack.StackedMethods.__init__

    def without(self, *args):  # as if these methods raised under vmap
        init(self, *args)
        self.maps.update(dict.fromkeys(unmapped, False))

    monkeypatch.setattr(batch_stack.StackedMethods, "__init__", without)
    settings = {"max_generations": 40, "popsize": 16}
    res = fit_batch(ES("cma_es", **settings), _sphere, X0, seeds=3)
    assert res.fast_path == "batched"
    _assert_runs_alone(res, "cma_es", **settings)


def test_read_outs_that_do_not_map_leave_tell_mapped() -> None:
    from evostrat.run.batch_stack import RunStack, StackedMethods
    from evostrat.strategies.snes import SNES

    class HostStop(SNES):  # a criterion read on the host: does not map under vmap
        def stop(self, state):
            return {"tiny_sigma": bool(state.sigma.max() < 1e-300)}

    runs = [ES(HostStop(), random_state=s).initialize(X0).run_ for s in range(3)]
    methods = StackedMethods(runs[0].runner.strategy, runs[0].runner.backend)
    X, asked = methods.ask(RunStack([d.runner.state for d in runs], runs[0].runner.backend))
    told, read = methods.tell(asked, X, (X * X).sum(axis=-1))
    assert told is not None and read is None
    assert methods.maps == {"ask": True, "tell": True, "read": False}
    res = fit_batch(ES(HostStop(), max_generations=15), _sphere, X0, seeds=2)
    for i in range(2):
        alone = ES(HostStop(), max_generations=15, random_state=i).fit(_sphere, X0)
        assert res.fun[i] == pytest.approx(alone.fun_, rel=1e-9) and res.n_evals[i] == alone.n_evals_



def test_a_strategy_that_breaks_the_contract_is_named_in_a_batch() -> None:
    """A torch batch checks the first ask and tell as a lone run does (it raised a broadcasting or
    index error, or went on with a dict for a state)."""
    from evostrat.errors import InvalidTypeError
    from evostrat.strategies.snes import SNES

    class ShortAsk(SNES):
        def ask(self, state):
            X, state = super().ask(state)
            return X[:-1], state

    class DictTell(SNES):
        def tell(self, state, X, fitness):
            return dict(super().tell(state, X, fitness)._asdict())

    for broken, match in ((ShortAsk(), r"X of shape \(popsize, dim\) = \(9, 6\), got shape \(8, 6\)"),
                          (DictTell(), "tell of strategy 'snes' must return the new state")):
        with pytest.raises(InvalidTypeError, match=match):
            ES(broken, max_generations=3, random_state=0).fit(_sphere, X0)
        with pytest.raises(InvalidTypeError, match=match):
            fit_batch(ES(broken, max_generations=3), _sphere, X0, seeds=2)


def test_a_batched_run_that_found_nothing_warns_as_alone() -> None:
    # batched torch runs ended with fun inf silently; ES.fit warns NoSolutionWarning for each
    from evostrat import NoSolutionWarning

    def nowhere(X):
        return X.sum(-1) * float("nan")

    with pytest.warns(NoSolutionWarning) as caught:
        res = fit_batch(ES("snes", max_generations=3), nowhere, torch.ones(3), seeds=2)
    assert res.fast_path == "batched" and np.all(np.isinf(res.fun))
    assert sum(w.category is NoSolutionWarning for w in caught) == 2
