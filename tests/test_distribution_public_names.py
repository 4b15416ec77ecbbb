"""A search-distribution family needs no private names: the contract's members are public
(``transform_noise``, ``convert_params``, ``validate``, ``finite_condition``, ``static_attrs``,
``leaf_attrs``), and a family written with the underscore names of earlier releases keeps working."""

from __future__ import annotations

import importlib.util
import math
import warnings
from typing import Any

import numpy as np
import pytest

from evostrat import ES
from evostrat.distributions import DiagNormal, Distribution, MultivariateNormal, StudentT
from evostrat.distributions.legacy import LEGACY_NAMES
from evostrat.errors import InvalidArgumentError
from evostrat.problems import sphere
from evostrat.testing import DISTRIBUTION_CHECKS, check_distribution

BACKENDS = [n for n in ("numpy", "torch", "jax") if importlib.util.find_spec(n)]


class PublicNormal(Distribution):
    """Independent normal coordinates, written with the public names only (and a static tag)."""

    param_names = ("mu", "sigma")
    event_ndim = 1
    positive = frozenset({"sigma"})
    static_attrs = ("mirrored", "tag")
    leaf_attrs = ("mu", "sigma")

    def __init__(self, mu: Any, sigma: Any, *, mirrored: bool = False, tag: str = "public") -> None:
        self.mu, self.sigma = self.convert_params(mirrored, mu=mu, sigma=sigma)
        if self.sigma.ndim == 0:
            self.sigma = self.xp.ones_like(self.mu) * self.sigma
        self.tag = tag
        self.validate(("mu must be finite", self.finite_condition(mu, self.mu)),
                      ("sigma must be positive and finite", self.finite_condition(sigma, self.sigma, positive=True)))

    @classmethod
    def search_init(cls, mean: Any, sigma: Any, **options: Any) -> "PublicNormal":
        return cls(mean, sigma, **options)

    batch_shape = property(lambda self: ())
    event_shape = property(lambda self: (int(self.mu.shape[0]),))

    def marginal_scale(self) -> Any:
        return self.sigma

    def transform_noise(self, eps: Any) -> Any:
        return self.mu + self.sigma * eps

    def log_prob(self, x: Any) -> Any:
        z = (self.asarray(x) - self.mu) / self.sigma
        return self.xp.sum(-0.5 * z * z - self.xp.log(self.sigma) - 0.5 * math.log(2 * math.pi), axis=-1)

    def entropy(self) -> Any:
        return self.xp.sum(self.xp.log(self.sigma) + 0.5 * (1 + math.log(2 * math.pi)))

    def score(self, x: Any) -> dict[str, Any]:
        r = self.asarray(x) - self.mu
        s2 = self.sigma * self.sigma
        return {"mu": r / s2, "sigma": r * r / (s2 * self.sigma) - 1.0 / self.sigma}

    def natural_gradient(self, grads: dict[str, Any]) -> dict[str, Any]:
        """Fisher information ``1 / sigma^2`` for ``mu`` and ``2`` for ``log sigma``."""
        return {"mu": self.sigma * self.sigma * grads["mu"], "sigma": 0.5 * self.sigma * grads["sigma"]}


class OldNormal(Distribution):
    """The same family written with the underscore names of earlier releases."""

    param_names = ("mu", "sigma")
    event_ndim = 1
    positive = frozenset({"sigma"})
    _static_attrs = ("mirrored", "tag")
    _leaf_attrs = ("mu", "sigma")

    def __init__(self, mu: Any, sigma: Any, *, mirrored: bool = False, tag: str = "old") -> None:
        self.mu, self.sigma = self._convert(mirrored, mu=mu, sigma=sigma)
        if self.sigma.ndim == 0:
            self.sigma = self.xp.ones_like(self.mu) * self.sigma
        self.tag = tag
        self._validate(("sigma must be positive and finite", self._finite(sigma, self.sigma, positive=True)))

    search_init = vars(PublicNormal)["search_init"]
    batch_shape = PublicNormal.batch_shape
    event_shape = PublicNormal.event_shape
    marginal_scale = PublicNormal.marginal_scale
    log_prob = PublicNormal.log_prob
    entropy = PublicNormal.entropy
    score = PublicNormal.score
    natural_gradient = PublicNormal.natural_gradient

    def _transform(self, eps: Any) -> Any:
        return self.mu + self.sigma * eps


def test_a_family_with_only_public_names_passes_the_kit_on_every_backend() -> None:
    assert check_distribution(PublicNormal) == list(DISTRIBUTION_CHECKS)


@pytest.mark.parametrize("lib", BACKENDS)
def test_a_family_with_only_public_names_is_searched_with_on_every_backend(lib: str) -> None:
    x0 = {"numpy": lambda: np.ones(4),
          "torch": lambda: __import__("torch").ones(4, dtype=__import__("torch").float64),
          "jax": lambda: __import__("jax.numpy").numpy.ones(4)}[lib]()
    es = ES("nes", distribution=PublicNormal, ftarget=1e-8, max_evals=20000, random_state=0).fit(sphere, x0)
    assert es.stop_reason_ == "ftarget" and float(es.fun_) < 1e-8


def test_public_helpers_validate_and_keep_static_attributes() -> None:
    with pytest.raises(InvalidArgumentError, match="^sigma must be positive and finite$"):
        PublicNormal(np.zeros(2), -1.0)
    with pytest.raises(InvalidArgumentError, match="^mu must be finite$"):
        PublicNormal(np.array([0.0, np.nan]), 1.0)
    p = PublicNormal(np.zeros(2), 0.5, tag="kept")
    leaves, aux = p.tree_flatten()
    q = PublicNormal.tree_unflatten(aux, leaves)
    assert q.tag == "kept" and np.array_equal(q.sigma, [0.5, 0.5])
    assert p.retract({"sigma": np.log(np.full(2, 2.0))}).tag == "kept"
    np.testing.assert_array_equal(p.sample(2, key=3), DiagNormal(np.zeros(2), 0.5).sample(2, key=3))


def test_an_old_style_family_with_underscore_names_still_works_silently() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_distribution(OldNormal, backends=["numpy"]) == list(DISTRIBUTION_CHECKS)
        es = ES("nes", distribution=OldNormal, ftarget=1e-8, max_evals=20000, random_state=0).fit(sphere, np.ones(4))
    assert es.stop_reason_ == "ftarget"
    assert OldNormal.static_attrs == ("mirrored", "tag") and OldNormal.leaf_attrs == ("mu", "sigma")
    p = OldNormal(np.zeros(2), 0.5, tag="kept")
    assert OldNormal.tree_unflatten(*reversed(p.tree_flatten())).tag == "kept"
    with pytest.raises(InvalidArgumentError, match="^sigma must be positive and finite$"):
        OldNormal(np.zeros(2), 0.0)
    # the same draws as the public-name family, through transform_noise and sample_rows
    new = PublicNormal(np.zeros(2), 0.5)
    np.testing.assert_array_equal(p.sample(4, key=1), new.sample(4, key=1))
    key = p.backend.key(2)
    np.testing.assert_array_equal(p.sample_rows(key, np.arange(3)), new.sample_rows(key, np.arange(3)))


def test_a_subclass_overriding_an_underscore_name_of_a_builtin_is_used() -> None:
    """A subclass of a built-in family overriding ``_transform`` or ``_static_attrs`` (the old names)
    overrides what sampling and the pytree use, and ``super()._transform`` reaches the built-in."""

    class Shifted(DiagNormal):
        def _transform(self, eps: Any) -> Any:
            return super()._transform(eps) + 100.0

    p, base = Shifted(np.zeros(3), 1.0), DiagNormal(np.zeros(3), 1.0)
    np.testing.assert_allclose(p.sample(4, key=0), base.sample(4, key=0) + 100.0)
    np.testing.assert_allclose(p.rsample(4, key=0), base.rsample(4, key=0) + 100.0)
    np.testing.assert_allclose(p.sample_rows(p.backend.key(1), np.arange(2)),
                               base.sample_rows(base.backend.key(1), np.arange(2)) + 100.0)

    class Tagged(StudentT):
        _static_attrs = (*StudentT.static_attrs, "tag")

        def __init__(self, *args: Any, tag: str = "t", **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.tag = tag

    t = Tagged(np.zeros(2), 1.0, df=3, tag="kept")
    u = Tagged.tree_unflatten(*reversed(t.tree_flatten()))
    assert (u.tag, u.df) == ("kept", t.df)


def test_builtin_families_answer_both_names() -> None:
    for cls in (DiagNormal, MultivariateNormal, StudentT):
        for old, new in LEGACY_NAMES.items():
            assert getattr(cls, old) == getattr(cls, new), (cls, old)
    assert MultivariateNormal.leaf_attrs == ("mu", "_matrix")
    assert StudentT._static_attrs == StudentT.static_attrs == ("mirrored", "df")
