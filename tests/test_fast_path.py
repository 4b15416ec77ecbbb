"""The estimator's compiled JAX loop agrees with the step-by-step loop."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from evostrat import ES  # noqa: E402
from evostrat.errors import InvalidArgumentError  # noqa: E402
from evostrat.problems import rosenbrock, sphere  # noqa: E402


def fit_both(**kwargs):
    x0 = kwargs.pop("x0")
    objective = kwargs.pop("objective")
    fast = ES(compiled_loop="auto", **kwargs).fit(objective, x0)
    slow = ES(compiled_loop=False, **kwargs).fit(objective, x0)
    return fast, slow


def test_compiled_loop_stops_at_the_same_generation_as_the_step_by_step_loop() -> None:
    """SNES's fused step rounds exactly like the separate jitted ask/tell: same run."""
    fast, slow = fit_both(strategy="snes", sigma0=1.0, ftarget=1e-6, max_evals=20000,
                          random_state=0, x0=jnp.full(6, 2.0), objective=sphere)
    assert fast.fast_path_ == "compiled_loop" and slow.fast_path_ is None
    assert fast.stop_reason_ == slow.stop_reason_ == "ftarget"
    assert fast.n_evals_ == slow.n_evals_ and fast.n_generations_ == slow.n_generations_
    assert len(fast.history_) == len(slow.history_) == fast.n_generations_
    np.testing.assert_allclose(np.asarray(fast.x_), np.asarray(slow.x_), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fast.fun_, slow.fun_, rtol=1e-3)
    np.testing.assert_allclose(
        [h["best"] for h in fast.history_], [h["best"] for h in slow.history_], rtol=1e-3
    )
    # the final state is the state after exactly n_generations_ generations
    np.testing.assert_array_equal(np.asarray(fast.strategy_.state.key),
                                  np.asarray(slow.strategy_.state.key))


def test_cma_es_on_the_compiled_loop_matches_up_to_float32_rounding() -> None:
    """XLA fuses CMA-ES's whole step, so float32 rounding differs and the
    trajectories drift apart slowly: both must reach the target within a few
    generations of each other."""
    fast, slow = fit_both(strategy="cma_es", sigma0=1.0, ftarget=1e-6, max_evals=20000,
                          random_state=0, x0=jnp.full(6, 2.0), objective=sphere)
    assert fast.fast_path_ == "compiled_loop"
    assert fast.stop_reason_ == slow.stop_reason_ == "ftarget"
    assert abs(fast.n_generations_ - slow.n_generations_) <= 3
    assert len(fast.history_) == fast.n_generations_ == fast.strategy_.generation
    early = min(10, fast.n_generations_)
    np.testing.assert_allclose([h["best"] for h in fast.history_[:early]],
                               [h["best"] for h in slow.history_[:early]], rtol=1e-3)


@pytest.mark.filterwarnings("ignore::evostrat.errors.PerCandidateWarning")  # its objective takes one candidate
def test_budget_inside_a_chunk_and_maximize() -> None:
    fast, slow = fit_both(strategy="snes", max_generations=45, maximize=True, random_state=2,
                          x0=jnp.ones(4), objective=lambda X: -rosenbrock(X))
    assert fast.fast_path_ == "compiled_loop"
    assert fast.stop_reason_ == slow.stop_reason_ == "maxiter"
    assert fast.n_generations_ == 45 and fast.strategy_.generation == 45
    np.testing.assert_allclose(fast.fun_, slow.fun_, rtol=1e-4)
    assert fast.fun_ == max(h["generation_best"] for h in fast.history_)


def test_strategy_stop_criteria_fire_on_the_compiled_loop() -> None:
    fast, slow = fit_both(strategy="cma_es", sigma0=1.0, random_state=0,
                          x0=jnp.zeros(4), objective=lambda X: jnp.zeros(X.shape[0]))
    assert fast.stop_reason_ == slow.stop_reason_ != "maxiter"
    assert abs(fast.n_generations_ - slow.n_generations_) <= 3


@pytest.mark.parametrize("strategy,options", [("snes", dict(tolstagnation=60)), ("cma_es", {})])
def test_stagnation_stops_at_the_same_generation_on_the_compiled_loop(strategy, options) -> None:
    """The stagnation median test runs outside the generation loop, only when it is due."""

    def rugged(X):  # a deterministic, noise-like landscape: the run stagnates
        return jnp.sum(X**2, axis=1) + 10.0 * jnp.sin(1e4 * X[:, 0] * X[:, 1])

    fast, slow = fit_both(strategy=strategy, sigma0=1.0, random_state=0, tolfun=None, tolx=None,
                          tolfunhist=None, max_generations=3000, x0=jnp.full(4, 3.0), objective=rugged,
                          **options)
    assert fast.fast_path_ == "compiled_loop"
    assert fast.stop_reason_ == slow.stop_reason_ == "tolstagnation"
    assert fast.n_generations_ == slow.n_generations_ < 3000


@pytest.mark.filterwarnings("ignore::evostrat.errors.PerCandidateWarning")  # host objectives, one candidate each
def test_host_dependent_runs_take_the_step_by_step_loop() -> None:
    x0 = jnp.ones(3)
    assert ES("snes", max_generations=3).fit(lambda X: float(X.sum()), x0).fast_path_ is None
    # observers run between compiled chunks (issue 16): see tests/test_observed_runs.py
    assert ES("snes", max_generations=3).fit(sphere, x0, callbacks=[lambda es: None]).fast_path_ == "compiled_loop"
    # bounds map the candidates inside the program (tests/test_compiled_bounds.py); raising on a
    # non-finite value needs the host
    assert ES("snes", max_generations=3, bounds=(-5, 5)).fit(sphere, x0).fast_path_ == "compiled_loop"
    assert ES("snes", max_generations=3, nonfinite="raise").fit(sphere, x0).fast_path_ is None
    assert ES("snes", max_generations=3).fit(sphere, np.ones(3)).fast_path_ is None  # numpy
    with pytest.raises(InvalidArgumentError, match="compiled_loop"):
        ES("snes", max_generations=3, compiled_loop="yes").fit(sphere, x0)


def test_a_second_fit_reuses_the_compiled_chunk() -> None:
    """Equal settings share one jitted program; the refit gives the same run."""
    from evostrat.run.compiled_loop import CompiledLoop
    from evostrat.strategies.snes import SNES

    def objective(X):
        return jnp.sum((X - 0.5) ** 2, axis=1)

    first = ES("snes", sigma0=1.0, max_generations=40, random_state=1).fit(objective, jnp.ones(4))
    second = ES("snes", sigma0=1.0, max_generations=40, random_state=1).fit(objective, jnp.ones(4))
    assert first.fast_path_ == second.fast_path_ == "compiled_loop"
    np.testing.assert_array_equal(np.asarray(first.x_), np.asarray(second.x_))

    def run(strategy, obj=objective, sign=1.0):
        return CompiledLoop(strategy, obj, chunk=8, sign=sign)._run

    assert run(SNES(sigma0=1.0)) is run(SNES(sigma0=1.0))
    assert run(SNES(lr_mean=1.0)) is not run(SNES(lr_mean=0.5))
    # sigma0 is read by initial_state alone (initial_only_params): its value lives in the state
    assert run(SNES(sigma0=1.0)) is run(SNES(sigma0=2.0)) is run(SNES(sigma0=np.ones(4)))
    assert run(SNES(sigma0=1.0)) is not run(SNES(sigma0=1.0), obj=lambda X: objective(X))
    assert run(SNES(sigma0=1.0)) is not run(SNES(sigma0=1.0), sign=-1.0)


from jax_compiles import compiles as xla_compiles  # noqa: E402


@pytest.mark.parametrize("x0", [jnp.full(4, 2.0), jnp.ones(4)], ids=["weakly typed", "float32"])
def test_a_run_over_several_chunks_compiles_its_chunk_once(x0) -> None:
    """The first chunk call of a run takes the same input types as the later ones (committed,
    strongly typed arrays, as a chunk's outputs are), so it compiles one program: a run of 3
    chunks compiles as many programs as a run of 1, and observing the run compiles none."""

    def fit(objective, generations, **kwargs):
        es = ES("snes", max_generations=generations, tolfun=None, tolx=None, random_state=0)
        return es.fit(objective, x0, **kwargs)

    def compiles(generations, objective=None, **kwargs):
        objective = objective or (lambda X: jnp.sum((X - 0.5) ** 2, axis=1))  # a new program
        before = xla_compiles()
        es = fit(objective, generations, **kwargs)
        return xla_compiles() - before, es, objective

    compiles(5)  # the programs every run shares (initial state)
    short, _, _ = compiles(20)
    long, es, objective = compiles(1100)
    assert es.fast_path_ == "compiled_loop" and es.n_generations_ == 1100  # chunks of 512: three
    assert long == short >= 1
    assert compiles(1100, objective, callbacks=[lambda e: None])[0] == 0  # a generation a chunk, same program


@pytest.mark.parametrize("name", ["snes", "cma_es"])
def test_a_fit_with_another_sigma0_compiles_only_its_initial_state(name) -> None:
    """``sigma0`` is read by ``initial_state`` alone (``initial_only_params``), so a fit that
    changes only ``sigma0`` reuses the chunk (and ask/tell) programs: it compiles one program,
    the initial state, where another ``lr``-like hyper-parameter compiles the chunk again."""

    def objective(X):
        return jnp.sum((X - 0.5) ** 2, axis=1)

    def compiles(**kwargs):
        before = xla_compiles()
        es = ES(name, max_generations=30, random_state=0, **kwargs).fit(objective, jnp.ones(4))
        assert es.fast_path_ == "compiled_loop"
        return xla_compiles() - before, es

    compiles(sigma0=1.0)
    n, es = compiles(sigma0=0.25)
    assert n == 1
    assert np.isclose(float(es.history_[0]["sigma"]), 0.25, rtol=0.5)  # the run started from its own sigma0
    options = {"lr_sigma": 0.05} if name == "snes" else {"active": False}
    assert compiles(sigma0=1.0, strategy_options=options)[0] >= 2  # the initial state and the chunk


def test_a_fit_with_other_thresholds_runs_on_the_compiled_chunk_and_stops_on_them() -> None:
    """``ftarget``, ``tolfun``, ``tolx`` and ``tolfunhist`` are inputs of the chunk, not constants of
    its program: fits that change only them compile nothing, and each stops where its own
    thresholds say, as the host loop does (``compiled_loop=False``)."""

    def objective(X):
        return jnp.sum((X - 0.5) ** 2, axis=1)

    def fit(**kwargs):
        before = xla_compiles()
        es = ES("cma_es", max_generations=400, random_state=3, **kwargs).fit(objective, jnp.ones(5))
        return xla_compiles() - before, es

    fit(ftarget=1e-3, tolfun=1e-11, tolx=1e-12)
    runs = {}
    for kwargs in (dict(ftarget=1e-6, tolfun=1e-11, tolx=1e-12), dict(ftarget=1e-9, tolfun=1e-11, tolx=1e-12),
                   dict(ftarget=1e-30, tolfun=1e-3, tolx=1e-12), dict(ftarget=1e-20, tolfun=1e-11, tolx=1e-4)):
        n, es = fit(**kwargs)
        assert es.fast_path_ == "compiled_loop" and n == 0, kwargs
        runs[tuple(kwargs.values())] = (es.stop_reason_, es.n_generations_)
    assert [r[0] for r in runs.values()] == ["ftarget", "ftarget", "tolfun", "tolx"]
    assert len({r[1] for r in runs.values()}) == 4  # four different stops
    for (ftarget, tolfun, tolx), got in runs.items():
        host = ES("cma_es", max_generations=400, random_state=3, ftarget=ftarget, tolfun=tolfun, tolx=tolx,
                  compiled_loop=False).fit(objective, jnp.ones(5))
        assert (host.stop_reason_, host.n_generations_) == got
    assert fit(ftarget=1e-6, tolfun=None, tolx=1e-12)[0] >= 1  # a criterion switched off: another program


def test_stop_names_are_read_without_running_stop_and_keep_its_order() -> None:
    """The compiled driver reads the names of ``strategy.stop(state)`` by tracing it abstractly
    (no program compiled per population size), in the strategy's own order (its stop codes
    index it), and calls ``stop`` when it does not trace."""
    from evostrat.run.chunk_host import _stop_names
    from evostrat.strategies.cma_es import CMAES
    from evostrat.strategies.snes import SNES

    s = CMAES(popsize=9)
    state = s.init(jnp.ones(3), random_state=0)
    before = xla_compiles()
    names = _stop_names(s, state)
    assert xla_compiles() == before
    assert names == tuple(s.stop(state)) == ("tolconditioncov", "noeffectaxis", "noeffectcoord", "tolupsigma",
                                             "tolfacupx")

    class HostStop(SNES):
        def stop(self, state):  # reads a device value on the host: does not trace
            return {"z_late": bool(float(state.sigma.max()) < 0.0), "a_early": False}

    h = HostStop()
    assert _stop_names(h, h.init(jnp.ones(3), random_state=0)) == ("z_late", "a_early")


@pytest.mark.parametrize("maximize", [False, True])
def test_an_infinite_best_reaches_ftarget_on_the_host_and_compiled_alike(maximize: bool) -> None:
    """-inf (+inf when maximising) reaches any target, as in pycma; the runs went on to maxiter."""
    sign = -1.0 if maximize else 1.0

    def f(X):  # the sphere around 3, -inf (the best possible value) within 0.1 of its centre
        d2 = jnp.sum((X - 3.0) ** 2, axis=1)
        return sign * jnp.where(d2 < 0.01, -jnp.inf, d2)

    def f_host(X):
        return np.asarray(f(jnp.asarray(X)))

    f_host.vectorized = True
    runs = [ES("cma_es", ftarget=sign * -1e6, maximize=maximize, max_generations=500, nonfinite="ignore",
               random_state=1).fit(objective, x0) for objective, x0 in ((f, jnp.zeros(3)), (f_host, np.zeros(3)))]
    assert runs[0].fast_path_ == "compiled_loop"
    assert [r.stop_reason_ for r in runs] == ["ftarget", "ftarget"]
    assert runs[0].fun_ == runs[1].fun_ == sign * -np.inf and runs[0].n_generations_ < 500
    assert all(float(np.sum((np.asarray(r.x_) - 3.0) ** 2)) < 0.01 for r in runs)


@pytest.mark.parametrize("name", ["snes", "cma_es"])
def test_a_new_budget_runs_on_the_chunk_already_compiled(name) -> None:
    """``max_generations`` and ``max_evals`` are inputs of the compiled chunk, as the thresholds
    are (a new budget compiled the chunk again: seconds), and each run still stops where the
    host loop stops. Which budgets are set stays part of the program, and budgets far apart get
    their own (the stagnation history's length, ``history_capacity``)."""

    def objective(X):
        return jnp.sum((X - 0.5) ** 2, axis=1)

    def fit(compiled_loop="auto", **budget):
        before = xla_compiles()
        es = ES(name, random_state=0, tolfun=None, tolx=None, compiled_loop=compiled_loop, **budget)
        es.fit(objective, jnp.ones(4))
        return xla_compiles() - before, es

    # the programs of each kind of budget (the stagnation history is sized by the budget, in steps)
    fit(max_generations=300), fit(max_evals=2000)
    for budget in ({"max_generations": 301}, {"max_generations": 317}, {"max_evals": 2017}, {"max_evals": 2040}):
        n, es = fit(**budget)
        _, host = fit(compiled_loop=False, **budget)
        assert n == 0 and es.fast_path_ == "compiled_loop", budget
        assert (es.n_generations_, es.n_evals_, es.stop_reason_) == (host.n_generations_, host.n_evals_,
                                                                      host.stop_reason_), budget
        np.testing.assert_allclose(es.fun_, host.fun_, rtol=1e-5)
