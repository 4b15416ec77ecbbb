"""A third-party distribution: the example plugin's Laplace, installed with pip, found by name in
the registry and searched with by the generic NES on numpy, torch and JAX; its closed-form scores
equal autodiff and its Fisher information matches Monte Carlo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from child_process import pip_install, private_copy

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "evostrat-plugin-example"


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("laplace_site")
    pip_install(private_copy(EXAMPLE, tmp_path_factory.mktemp("laplace_source")), target)
    return target


def run_python(code: str, site: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "EVOSTRAT_DISABLE_PLUGIN_AUTOLOAD"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=300)


def test_installed_distribution_is_found_by_name_and_searched_on_every_backend(example_site: Path) -> None:
    out = run_python(
        """
        import json, numpy as np, torch, jax.numpy as jnp, evostrat
        from evostrat.problems import sphere
        from evostrat.distributions.registry import distribution_class
        result = {"class": distribution_class("laplace").__module__}
        cases = {"numpy": np.full(4, 2.0), "torch": torch.full((4,), 2.0, dtype=torch.float64),
                 "jax": jnp.full((4,), 2.0)}
        for lib, x0 in cases.items():
            es = evostrat.ES("nes", strategy_options=dict(distribution="laplace"), ftarget=1e-6,
                             max_evals=20000, random_state=1).fit(sphere, x0)
            result[lib] = [es.stop_reason_, float(es.fun_)]
        plugin = [p for p in evostrat.list_plugins() if p["name"] == "one_plus_lambda"][0]
        result["provides"] = plugin["provides"]
        try:
            distribution_class("laplce")
        except LookupError as err:
            result["error"] = str(err)
        print(json.dumps(result))
        """,
        example_site,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["class"] == "evostrat_plugin_example.laplace"
    for lib in ("numpy", "torch", "jax"):
        assert result[lib][0] == "ftarget", (lib, result[lib])
    assert result["provides"]["distributions"] == ["laplace"]
    assert "did you mean 'laplace'" in result["error"] and "'student_t'" in result["error"]


def test_laplace_scores_and_fisher() -> None:
    sys.path.insert(0, str(EXAMPLE / "src"))
    try:
        from evostrat_plugin_example.laplace import Laplace
    finally:
        sys.path.remove(str(EXAMPLE / "src"))
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    mu, b = rng.normal(size=3), rng.uniform(0.5, 2.0, size=3)
    p = Laplace(mu, b)
    x = p.sample(400_000, key=0)
    np.testing.assert_allclose(x.std(0), np.sqrt(2) * b, rtol=0.01)
    s = p.score(x)
    tmu, tb = (torch.tensor(a, requires_grad=True) for a in (mu, b))
    g = torch.autograd.grad(Laplace(tmu, tb).log_prob(torch.tensor(x[:50])).sum(), (tmu, tb))
    np.testing.assert_allclose(g[0].numpy(), s["mu"][:50].sum(0), rtol=1e-10)
    np.testing.assert_allclose(g[1].numpy(), s["b"][:50].sum(0), rtol=1e-10)
    feats = np.concatenate([s["mu"], s["b"] * b], axis=1)  # log-b coordinates
    F = feats.T @ feats / len(feats)
    gm, gb = rng.normal(size=3), rng.normal(size=3)
    nat = p.natural_gradient({"mu": gm, "b": gb})
    want = np.linalg.solve(F, np.concatenate([gm, gb * b]))
    np.testing.assert_allclose(np.concatenate([nat["mu"], nat["b"]]), want, rtol=0.03, atol=0.03 * np.abs(want).max())


def test_a_family_missing_a_required_member_is_named_with_its_use() -> None:
    """A family without score (searched on numpy), log_prob, transform_noise or the shapes raised a bare
    NotImplementedError (an empty message); the error now names the member and what needs it."""
    from evostrat import ES
    from evostrat.distributions import Distribution
    from evostrat.problems import sphere

    class Half(Distribution):  # the location and scale, search_init and marginal_scale only
        param_names = ("mu", "sigma")
        positive = frozenset({"sigma"})

        def __init__(self, mu, sigma, *, mirrored=False):
            self.mu, self.sigma = self._convert(mirrored, mu=mu, sigma=sigma)

        @classmethod
        def search_init(cls, mean, sigma, **options):
            return cls(mean, sigma)

        def marginal_scale(self):
            return self.sigma

    with pytest.raises(NotImplementedError, match=r"^Half does not define batch_shape: the shape of a batch "):
        ES("nes", distribution=Half, max_generations=2).fit(sphere, np.ones(3))
    Half.event_shape = property(lambda self: (int(self.mu.shape[0]),))
    Half.batch_shape = property(lambda self: ())
    with pytest.raises(NotImplementedError, match=r"^Half does not define transform_noise\(eps\): the map from "
                                                  r"noise_dim standard normals to a draw"):
        ES("nes", distribution=Half, max_generations=2).fit(sphere, np.ones(3))
    Half._transform = lambda self, eps: self.mu + self.sigma * eps
    with pytest.raises(NotImplementedError, match=r"^Half does not define score\(x\): the closed-form gradients "
                                                  r"of log_prob that numpy, without autodiff, searches with"):
        ES("nes", distribution=Half, max_generations=2).fit(sphere, np.ones(3))
    p = Half(np.zeros(2), 1.0)
    for call, member in [(lambda: p.log_prob(np.zeros((1, 2))), r"log_prob\(x\)"), (p.entropy, r"entropy\(\)")]:
        with pytest.raises(NotImplementedError, match=rf"^Half does not define {member}: "):
            call()
