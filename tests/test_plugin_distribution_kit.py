"""``evostrat.testing.check_distribution``: the conformance kit of a third-party search distribution.

The family is a plugin's Cauchy distribution (independent coordinates, a ratio of normals:
addressable draws from ``2 d`` standard normals), registered in-process as an installed
package's entry point would register it; each broken variant breaks one line of the
``evostrat_distributions`` contract and the kit names the check it fails.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from plugin_fixtures import module_plugin

from evostrat import ES, expectation
from evostrat.distributions import Distribution
from evostrat.errors import ConformanceError, InvalidArgumentError
from evostrat.hookspecs import hookimpl
from evostrat.plugins import registry
from evostrat.problems import sphere
from evostrat.strategies.nes import NES
from evostrat.testing import DISTRIBUTION_CHECKS, check_distribution

BACKENDS = [n for n in ("numpy", "torch", "jax") if __import__("importlib").util.find_spec(n)]


class Cauchy(Distribution):
    """Independent Cauchy coordinates with location ``mu`` and scale ``b``."""

    param_names = ("mu", "b")
    event_ndim = 1
    positive = frozenset({"b"})

    def __init__(self, mu: Any, b: Any, *, mirrored: bool = False) -> None:
        self.mu, self.b = self.convert_params(mirrored, mu=mu, b=b)

    @classmethod
    def search_init(cls, mean: Any, sigma: Any, **options: Any) -> "Cauchy":
        return cls(mean, sigma)

    batch_shape = property(lambda self: ())
    event_shape = property(lambda self: (int(self.mu.shape[0]),))
    noise_dim = property(lambda self: 2 * int(self.mu.shape[0]))

    def marginal_scale(self) -> Any:
        return self.b

    def transform_noise(self, eps: Any) -> Any:
        d = self.mu.shape[0]
        return self.mu + self.b * eps[..., :d] / self.xp.abs(eps[..., d:])

    def log_prob(self, x: Any) -> Any:
        r = (self.asarray(x) - self.mu) / self.b
        return self.xp.sum(-math.log(math.pi) - self.xp.log(self.b) - self.xp.log1p(r * r), axis=-1)

    def entropy(self) -> Any:
        return self.xp.sum(math.log(4 * math.pi) + self.xp.log(self.b))

    def score(self, x: Any) -> dict[str, Any]:
        r = self.asarray(x) - self.mu
        den = self.b * self.b + r * r
        return {"mu": 2 * r / den, "b": (r * r - self.b * self.b) / (self.b * den)}

    def natural_gradient(self, grads: dict[str, Any]) -> dict[str, Any]:
        """Fisher information ``1 / (2 b^2)`` for ``mu`` and ``1 / 2`` for ``log b``."""
        return {"mu": 2 * self.b**2 * grads["mu"], "b": 2 * self.b * grads["b"]}


class WrongScore(Cauchy):
    def score(self, x: Any) -> dict[str, Any]:
        s = super().score(x)
        return {"mu": -s["mu"], "b": s["b"]}  # the sign of the location's score flipped


class NoNoiseDim(Cauchy):
    noise_dim = Distribution.noise_dim  # d normals, but transform_noise reads 2 d


class UphillFisher(Cauchy):
    def natural_gradient(self, grads: dict[str, Any]) -> dict[str, Any]:
        return {k: -v for k, v in super().natural_gradient(grads).items()}


class HostLogProb(Cauchy):
    def log_prob(self, x: Any) -> Any:
        if float(self.xp.min(self.b)) <= 0:  # a host read: does not trace under jax.jit
            raise ValueError("b must be positive")
        return super().log_prob(x)


class VectorEntropy(Cauchy):
    def entropy(self) -> Any:
        return math.log(4 * math.pi) + self.xp.log(self.b)  # per coordinate, not summed


class CauchyPlugin:
    @hookimpl
    def evostrat_distributions(self) -> dict[str, type]:
        return {"cauchy": Cauchy}


plugin = module_plugin(CauchyPlugin, "cauchy-plugin")


def test_a_correct_family_passes_every_check_on_every_backend() -> None:
    assert check_distribution(registry("distributions")["cauchy"]) == list(DISTRIBUTION_CHECKS)
    es = ES("nes", distribution="cauchy", ftarget=1e-8, max_evals=20000, random_state=0).fit(sphere, np.ones(4))
    assert es.stop_reason_ == "ftarget"


@pytest.mark.parametrize("family, backends, check, detail", [
    (WrongScore, ["numpy"], "score", "along a direction of 'mu'"),
    (NoNoiseDim, ["numpy"], "sample", "noise_dim"),
    (UphillFisher, ["numpy"], "natural_gradient", "local_gradient(g)> = -"),
    (HostLogProb, ["jax"], "densities", None),
    (VectorEntropy, ["numpy"], "densities", "entropy()"),
])
def test_a_family_that_breaks_the_contract_is_named_with_the_check(family: type, backends: list[str], check: str,
                                                                   detail: str | None) -> None:
    if not set(backends) <= set(BACKENDS):
        pytest.skip(f"needs {backends}")
    with pytest.raises(ConformanceError) as info:
        check_distribution(family, backends=backends)
    message = str(info.value)
    assert f"distribution {family.__name__}" in message
    assert f"fails check {check!r}" in message or f"during {check} on" in message
    if detail is not None:
        assert detail in message


def test_a_wrong_score_is_what_numpy_searches_with() -> None:
    """Why the score check exists: on numpy the search follows score(x) alone, and a wrong one
    silently searches the wrong way (torch and JAX differentiate log_prob and do not notice)."""
    wrong = ES("nes", distribution=WrongScore, max_generations=200, random_state=0).fit(sphere, np.ones(4))
    right = ES("nes", distribution=Cauchy, max_generations=200, random_state=0).fit(sphere, np.ones(4))
    assert right.fun_ < 1e-6 < wrong.fun_


def test_the_kit_refuses_what_is_not_a_family() -> None:
    with pytest.raises(ConformanceError, match="must be a subclass of evostrat.distributions.Distribution, got 3"):
        check_distribution(3)


@pytest.mark.parametrize("name, options", [("diag_normal", None), ("multivariate_normal", None),
                                           ("student_t", {"df": 3}), ("low_rank_normal", {"rank": 1})])
def test_every_builtin_family_passes_the_kit(name: str, options: dict | None) -> None:
    assert check_distribution(registry("distributions")[name], options=options) == list(DISTRIBUTION_CHECKS)


class PowerCut(Exception):
    pass


def _cut_at(generation: int) -> Any:
    def callback(es: Any) -> None:
        if es.n_generations_ == generation:
            raise PowerCut
    return callback


@pytest.mark.parametrize("make", [
    lambda: ES(NES(distribution=Cauchy, lr_mean=0.7), max_generations=40, random_state=1),
    lambda: ES("nes", distribution=Cauchy, max_generations=40, random_state=1),
], ids=["strategy-instance", "es-distribution"])
def test_a_registered_family_given_as_a_class_is_checkpointed_by_its_name(make: Any, tmp_path: Any) -> None:
    path = tmp_path / "run.ckpt"
    full = make().fit(sphere, np.ones(4))
    with pytest.raises(PowerCut):  # was: CheckpointError (a class is no plain data) / resume asked for it again
        make().fit(sphere, np.ones(4), checkpoint=path, checkpoint_every=10, callbacks=[_cut_at(25)])
    resumed = ES.resume(path, sphere)
    assert resumed.fun_ == full.fun_ and np.array_equal(resumed.x_, full.x_)
    assert resumed.strategy_.strategy.distribution == "cauchy"


def test_a_strategy_with_a_callable_hyper_parameter_is_unsaved_and_given_again(tmp_path: Any) -> None:
    torch = pytest.importorskip("torch")

    def statistic(u: Any, X: Any, p: Any) -> Any:
        return len(X) * expectation(u, X, p)

    path, x0 = tmp_path / "run.ckpt", torch.ones(3, dtype=torch.float64)
    make = lambda: ES(NES(distribution="cauchy", statistic=statistic), max_generations=30, random_state=0)  # noqa: E731
    full = make().fit(sphere, x0)
    with pytest.raises(PowerCut):  # was: CheckpointError, no checkpoint at all
        make().fit(sphere, x0, checkpoint=path, checkpoint_every=10, callbacks=[_cut_at(15)])
    with pytest.raises(InvalidArgumentError, match=r"could not store the parameter\(s\) \['strategy'\] .*resume\(\.\.\., strategy=\.\.\.\)"):
        ES.resume(path, sphere)
    resumed = ES.resume(path, sphere, strategy=NES(distribution="cauchy", statistic=statistic))
    assert float(resumed.fun_) == float(full.fun_)


def test_a_family_missing_a_required_member_is_told_what_it_is_for() -> None:
    class NoScale(Cauchy):
        marginal_scale = Distribution.marginal_scale

    class NoStart(Cauchy):
        search_init = Distribution.__dict__["search_init"]  # as if never defined

    with pytest.raises(NotImplementedError, match=r"NoScale does not define marginal_scale\(\): the per-coordinate "
                                                  r"scale of a draw.*evostrat_distributions contract"):
        ES(NES(distribution=NoScale), max_generations=3).fit(sphere, np.ones(3))
    with pytest.raises(NotImplementedError, match=r"NoStart does not define search_init\(mean, sigma, \*\*options\): "
                                                  r"the distribution a search starts from.*contract"):
        ES(NES(distribution=NoStart), max_generations=3).fit(sphere, np.ones(3))
    with pytest.raises(ConformanceError, match="during search_init on numpy: NoScale does not define marginal_scale"):
        check_distribution(NoScale)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("distribution", ["cauchy", "normal"])
def test_a_warm_start_from_a_nes_run_takes_its_nested_state_over(backend: str, distribution: str,
                                                                 tmp_path: Any) -> None:
    """NES keeps its family's parameters and optimiser state in nested states: a warm start from a fitted
    run or its checkpoint flattened them (AttributeError: ... has no attribute 'velocity' at the first tell)."""
    path = tmp_path / "run.ckpt"
    first = ES("nes", distribution=distribution, max_generations=15, random_state=0, backend=backend)
    first.fit(sphere, np.ones(3), checkpoint=path)
    source = first.strategy_.state
    for spec in (first, str(path)):
        warm = ES("nes", distribution=distribution, max_generations=5, random_state=1, backend=backend,
                  warm_start=spec).initialize(np.ones(3))
        state = warm.strategy_.state
        assert type(state.params) is type(source.params) and type(state.opt) is type(source.opt)
        for name in ("mean", "params", "opt"):
            got, want = (np.asarray(leaf) for leaf in (getattr(state, name), getattr(source, name)))
            assert np.array_equal(got, want), name
        X = warm.ask()
        warm.tell(X, sphere(X))  # the optimiser's state is read here
        assert warm.n_generations_ == 1
