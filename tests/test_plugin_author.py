"""A third-party strategy, written from the plugin guide alone, through evostrat's run features.

The plugin is registered in-process (``get_plugin_manager().register``), as an installed
package's entry point would register it: a (1+1)-ES with the 1/5th success rule, whose
population is one candidate (``min_popsize = 1``).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import pytest
from plugin_fixtures import module_plugin, registered

from evostrat import ES, fit_batch
from evostrat.backends import get_backend
from evostrat.hookspecs import hookimpl
from evostrat.problems import sphere
from evostrat.run.termination import Termination
from evostrat.strategies.base import Strategy, clamp_sigma
from evostrat.strategies.shaping import sanitize_fitness


class OnePlusOneState(NamedTuple):
    mean: Any
    parent_f: Any
    sigma: Any  # 0-d
    key: Any


class OnePlusOneES(Strategy):
    """(1+1)-ES: one offspring per generation, the 1/5th success rule (Rechenberg 1973)."""

    min_popsize = 1
    initial_only_params = frozenset({"sigma0"})

    def default_popsize(self, dim: int) -> int:
        return 1

    def initial_state(self, x0: Any, key: Any, backend: Any) -> OnePlusOneState:
        inf = backend.xp.asarray(math.inf, dtype=x0.dtype, device=backend.device(x0))
        return OnePlusOneState(x0, inf, self.initial_sigma(x0, backend)[0], key)

    def ask(self, state: OnePlusOneState) -> tuple[Any, OnePlusOneState]:
        be = get_backend(state.mean)
        d = state.mean.shape[0]
        key, sub = be.split(state.key)
        z = be.normal(sub, (self.resolved_popsize(d), d), state.mean.dtype, be.device(state.mean))
        return state.mean + state.sigma * z, state._replace(key=key)

    def tell(self, state: OnePlusOneState, X: Any, fitness: Any) -> OnePlusOneState:
        xp = get_backend(state.mean).xp
        f = sanitize_fitness(fitness)
        best = xp.argmin(f)
        ok = f[best] <= state.parent_f
        success = xp.mean(xp.astype(f < state.parent_f, f.dtype))
        sigma = state.sigma * xp.exp((success - 0.2) / (1.0 + state.mean.shape[0] / 2.0))
        return state._replace(mean=xp.where(ok, X[best], state.mean), parent_f=xp.where(ok, f[best], state.parent_f),
                              sigma=clamp_sigma(sigma))

    def sigma(self, state: OnePlusOneState) -> Any:
        return state.sigma


class LabelledOnePlusOne(OnePlusOneES):
    name = "(1+1)-ES"  # a label of its own, not the key it is registered under


class AuthorPlugin:
    @hookimpl
    def evostrat_strategies(self) -> dict[str, type]:
        return {"one_plus_one_es": OnePlusOneES, "labelled_one_plus_one": LabelledOnePlusOne}


plugin = module_plugin(AuthorPlugin, "author-plugin")


def _x0(backend: str) -> Any:
    if backend == "torch":
        torch = pytest.importorskip("torch")
        return torch.ones(4, dtype=torch.float64)
    if backend == "jax":
        return pytest.importorskip("jax.numpy").ones(4)
    return np.ones(4)


def test_tolfun_needs_two_generations_when_a_generation_has_one_value() -> None:
    t = Termination(dim=4, popsize=1)
    assert t.check(generation=1, n_evals=1, best=5.0, values=[5.0], sigma=1.0) is None  # was 'tolfun'
    assert t.check(generation=2, n_evals=2, best=5.0, values=[7.0], sigma=1.0) is None
    flat = Termination(dim=4, popsize=1)
    flat.check(generation=1, n_evals=1, best=5.0, values=[5.0], sigma=1.0)
    assert flat.check(generation=2, n_evals=2, best=5.0, values=[5.0], sigma=1.0) == "tolfun"
    two = Termination(dim=4, popsize=2)  # a flat objective still stops after one generation
    assert two.check(generation=1, n_evals=2, best=5.0, values=[5.0, 5.0], sigma=1.0) == "tolfun"


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_a_population_of_one_runs_past_its_first_generation(backend: str) -> None:
    es = ES("one_plus_one_es", ftarget=1e-8, max_evals=5000, random_state=0).fit(sphere, _x0(backend))
    assert es.stop_reason_ == "ftarget" and 100 < es.n_generations_ == es.n_evals_  # was tolfun after 1
    if backend == "jax":
        assert es.fast_path_ == "compiled_loop"


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_a_batch_of_populations_of_one_runs_as_alone(backend: str) -> None:
    res = fit_batch(ES("one_plus_one_es", ftarget=1e-8, max_evals=5000), sphere, _x0(backend), seeds=2)
    assert list(res.stop_reason) == ["ftarget", "ftarget"]
    alone = ES("one_plus_one_es", ftarget=1e-8, max_evals=5000, random_state=1).fit(sphere, _x0(backend))
    assert res.n_generations[1] == alone.n_generations_ and res.fun[1] == pytest.approx(float(alone.fun_), rel=1e-5)


class ArchiveState(NamedTuple):
    """A plugin's state whose other fields happen to be named as CMA-ES's."""

    mean: Any
    parent_f: Any
    sigma: Any
    key: Any
    B: Any  # an archive of the last 3 parents, (3, d)
    C: Any  # per-coordinate counts of accepted moves, (d,)
    D: Any  # (d,)


class ArchiveES(OnePlusOneES):
    def initial_state(self, x0: Any, key: Any, backend: Any) -> ArchiveState:
        xp, s = backend.xp, super().initial_state(x0, key, backend)
        return ArchiveState(*s, B=xp.zeros((3, x0.shape[0]), dtype=x0.dtype), C=xp.zeros_like(x0), D=xp.zeros_like(x0))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_an_injected_point_is_clipped_by_the_plugins_sigma_not_by_its_fields_named_as_cma_es(backend: str) -> None:
    s = ArchiveES(sigma0=1.0).initialize(_x0(backend), random_state=0)
    target = np.array([1.5, 1.0, 1.0, 1.0])  # 0.5 sigma from the mean: inside the sqrt(n) bound, learnt as given
    s.inject(target)
    X = s.ask()
    s.tell(X, sphere(np.asarray(X.tolist())) * 0.0)  # accepted: no worse than the (infinite) parent
    assert np.array_equal(np.asarray(s.mean.tolist()), target)  # was: the old mean (B, C, D read as CMA-ES's)
    far = ArchiveES(sigma0=1.0).initialize(_x0(backend), random_state=0)
    far.inject(np.array([101.0, 1.0, 1.0, 1.0]))
    X = far.ask()
    far.tell(X, sphere(np.asarray(X.tolist())) * 0.0)
    assert np.allclose(np.asarray(far.mean.tolist()), [1.0 + math.sqrt(4), 1.0, 1.0, 1.0])  # clipped to sqrt(n)


def test_the_distribution_summary_of_a_plugin_reads_its_sigma_and_its_covariance() -> None:
    from evostrat.backends import get_backend
    from evostrat.callbacks.recorder import distribution_summary

    s, numpy = ArchiveES(sigma0=0.5), get_backend("numpy")
    summary = distribution_summary(s, s.init(np.ones(4), random_state=0), numpy)
    assert summary["stds"] == [0.5] * 4  # was [0, 0, 0, 0]: its counts C read as sep-CMA-ES's diagonal

    class Correlated(ArchiveES):
        def covariance(self, state: Any) -> Any:  # the optional read-out the recorder uses
            return state.sigma**2 * np.array([[1.0, 0.5], [0.5, 1.0]])

    summary = distribution_summary(Correlated(sigma0=2.0), Correlated(sigma0=2.0).init(np.ones(2), random_state=0), numpy)
    assert np.allclose(summary["stds"], [2.0, 2.0]) and np.allclose(summary["correlations"], [0.5, 1.5])


def test_a_plugins_kernel_for_a_strategy_that_resolves_kernels_is_used() -> None:
    """The evostrat_kernel hookspec's example: a kernel offered for sep-CMA-ES on numpy runs its steps."""
    from evostrat.kernels import Kernel
    from evostrat.kernels.sep_cma_numpy import kernel

    asked: list[int] = []

    class FastSep:
        @hookimpl(tryfirst=True)
        def evostrat_kernel(self, strategy: Any, backend: Any) -> Any:
            if backend.host_arrays and strategy.name == "sep_cma_es":
                own = kernel(strategy)
                return Kernel(ask=lambda state: (asked.append(1), own.ask(state))[1], tell=own.tell)
            return None

    with registered(FastSep(), "fast-sep", fresh=False):
        es = ES("sep_cma_es", max_generations=12, random_state=0).fit(sphere, np.ones(3))
    assert len(asked) == es.n_generations_ == 12


@pytest.mark.parametrize("strategy", [OnePlusOneES(sigma0=0.5), LabelledOnePlusOne(sigma0=0.5)],
                         ids=["named-by-registry", "own-name-attribute"])
def test_an_instance_of_a_registered_strategy_is_checkpointed_by_its_registry_key(strategy: Any, tmp_path: Any) -> None:
    """A class that sets its own ``name`` was stored as unsaved (its name is no registry key), so
    ``resume`` asked for the strategy again although the class is registered."""
    path = tmp_path / "run.ckpt"
    ES(strategy, max_generations=10, random_state=0).fit(sphere, np.ones(3), checkpoint=path)
    resumed = ES.resume(path, sphere, max_generations=30)
    full = ES(strategy, max_generations=30, random_state=0).fit(sphere, np.ones(3))
    assert type(resumed.strategy_.strategy) is type(strategy) and resumed.strategy_.strategy.sigma0 == 0.5
    assert resumed.fun_ == full.fun_ and np.array_equal(resumed.x_, full.x_)
