"""The plugin system: entry points, built-ins as plugins, broken and clashing plugins.

Third-party packages are installed for real with ``pip install --target`` into
a temporary directory and exercised in a subprocess whose ``PYTHONPATH``
includes it, so the installed distribution metadata and entry points are what
evostrat discovers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from plugin_fixtures import fresh_plugins, registered
from child_process import pip_install, private_copy

import evostrat
import evostrat.strategies.snes
from evostrat.errors import PluginError
from evostrat.hookspecs import hookimpl
from evostrat.plugins import get_plugin_manager, list_plugins, registry

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "evostrat-plugin-example"


def run_python(code: str, *paths: Path, disable_autoload: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), env.get("PYTHONPATH", "")])
    env.pop("EVOSTRAT_DISABLE_PLUGIN_AUTOLOAD", None)
    if disable_autoload:
        env["EVOSTRAT_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=300)


def make_package(root: Path, dist: str, module: str, body: str) -> Path:
    """Write a one-module distribution with an ``evostrat`` entry point."""
    pkg = root / dist
    (pkg / module).mkdir(parents=True)
    (pkg / module / "__init__.py").write_text(textwrap.dedent(body))
    (pkg / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{dist}"
        version = "9.9.9"
        [project.entry-points.evostrat]
        {module} = "{module}"
        [tool.setuptools]
        packages = ["{module}"]
    """))
    return pkg


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("example_site")
    pip_install(private_copy(EXAMPLE, tmp_path_factory.mktemp("example_source")), target)
    return target


@pytest.fixture(scope="module")
def broken_sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    src = tmp_path_factory.mktemp("broken_src")
    bodies = {
        "import_error": "import this_module_does_not_exist_anywhere\n",
        "raises_in_hook": """
            from evostrat import hookimpl
            @hookimpl
            def evostrat_strategies():
                raise RuntimeError("boom from the plugin")
        """,
        "duplicate_name": """
            from evostrat import hookimpl
            from evostrat.strategies.snes import SNES
            @hookimpl
            def evostrat_strategies():
                return {"snes": SNES}
        """,
        "misspelled_hook": """
            from evostrat import hookimpl
            @hookimpl
            def evostrat_strategys():
                return {}
        """,
    }
    sites = {}
    for kind, body in bodies.items():
        dist = f"evostrat-broken-{kind.replace('_', '-')}"
        pkg = make_package(src, dist, f"broken_{kind}", body)
        target = tmp_path_factory.mktemp(f"site_{kind}")
        pip_install(pkg, target)
        sites[kind] = target
    return sites


# -- built-ins are plugins ------------------------------------------------------------------

def test_builtins_are_registered_under_their_entry_point_names() -> None:
    names = {p["name"]: p for p in list_plugins()}
    for name in ("evostrat.backends", "evostrat.strategies", "evostrat.evaluators"):
        assert names[name]["distribution"] == "evostrat"
        assert names[name]["version"] == evostrat.__version__
    assert {"snes", "openai_es"} <= set(names["evostrat.strategies"]["provides"]["strategies"])
    assert set(names["evostrat.backends"]["provides"]["backends"]) >= {"numpy", "torch", "jax"}
    # dispatch hooks answer per call: listed by name (the kernels plugin provided nothing before)
    assert names["evostrat.kernels"]["provides"] == {"hooks": ["evostrat_kernel", "evostrat_stack_kernel"]}
    assert names["evostrat.backends"]["provides"]["hooks"] == ["evostrat_backend"]
    assert "hooks" not in names["evostrat.strategies"]["provides"]


def test_builtin_entry_points_are_declared_in_the_installed_metadata() -> None:
    from importlib.metadata import entry_points

    declared = {ep.name: ep.value for ep in entry_points(group="evostrat")}
    assert declared["evostrat.strategies"] == "evostrat.plugins.strategies"
    assert declared["evostrat.backends"] == "evostrat.plugins.backends"


def test_manager_is_cached_and_check_pending_passes() -> None:
    assert get_plugin_manager() is get_plugin_manager()
    get_plugin_manager().check_pending()


def test_duplicate_name_registered_in_process_names_both_plugins() -> None:
    class Clash:
        @hookimpl
        def evostrat_strategies(self) -> dict:
            from evostrat.strategies.snes import SNES

            return {"openai_es": SNES}

    with registered(Clash(), "clashing-plugin"):
        with pytest.raises(PluginError) as info:
            registry("strategies")
        message = str(info.value)
        assert "openai_es" in message and "evostrat.strategies" in message
        assert "clashing-plugin" in message
    assert "openai_es" in registry("strategies")


class LateSNES(evostrat.strategies.snes.SNES):
    """A strategy a plugin registers in-process, after the registries were first used."""


def test_a_plugin_registered_in_process_after_first_use_is_found_and_unregistered() -> None:
    import numpy as np

    from evostrat.problems import sphere

    class Late:
        @hookimpl
        def evostrat_strategies(self) -> dict:
            return {"late_snes": LateSNES}

    with fresh_plugins():
        assert "late_snes" not in registry("strategies") and LateSNES.name == "snes"  # registries built
        plugin = Late()
        get_plugin_manager().register(plugin, name="late-plugin")
        assert registry("strategies")["late_snes"] is LateSNES and LateSNES.name == "late_snes"
        assert evostrat.ES("late_snes", max_generations=2).fit(sphere, np.ones(2)).n_generations_ == 2
        assert {"strategies": ["late_snes"]} in [p["provides"] for p in list_plugins() if p["name"] == "late-plugin"]
        get_plugin_manager().unregister(plugin)
        assert "late_snes" not in registry("strategies") and LateSNES.name == "snes"


def test_a_plugin_registering_what_breaks_the_contract_is_named() -> None:
    import numpy as np

    from evostrat.errors import InvalidTypeError
    from evostrat.problems import sphere

    class NotAStrategy:
        pass

    class NotAnEvaluator:  # evaluates, but is no Evaluator (no parameters, no options)
        def evaluate(self, objective, X, backend):
            return objective(X)

    class Wrong:
        @hookimpl
        def evostrat_strategies(self) -> dict:
            return {"not_a_strategy": NotAStrategy}

        @hookimpl
        def evostrat_evaluators(self) -> dict:
            return {"not_an_evaluator": NotAnEvaluator}

    class NumberedName:
        @hookimpl
        def evostrat_strategies(self) -> dict:
            return {3: evostrat.strategies.snes.SNES}

    with registered(Wrong(), "wrong-plugin"):
        with pytest.raises(InvalidTypeError, match=r"strategy 'not_a_strategy' is registered as .*NotAStrategy.*, "
                                                   r"which is not a subclass of evostrat.strategies.base.Strategy"):
            evostrat.ES("not_a_strategy").fit(sphere, np.ones(2))
        with pytest.raises(InvalidTypeError, match=r"evaluator 'not_an_evaluator' is registered as .*NotAnEvaluator.*, "
                                                   r"which is not a subclass of evostrat.evaluators.local.Evaluator"):
            evostrat.ES("snes", evaluator="not_an_evaluator").fit(sphere, np.ones(2))
        get_plugin_manager().register(NumberedName(), name="numbered-plugin")
        with pytest.raises(PluginError, match=r"plugin 'numbered-plugin' \(registered in-process\): "
                                              r"evostrat_strategies\(\) must return .* str names, got the name 3"):
            list_plugins()


def test_a_registered_strategy_whose_init_takes_more_than_hyper_parameters_is_named() -> None:
    """ES("name") called the class with no arguments: a required argument raised a bare TypeError
    from deep inside, and **kwargs gave 'ES(sigma0=...) applies to strategies with a sigma0 parameter'."""
    import numpy as np

    from evostrat.errors import InvalidTypeError
    from evostrat.problems import sphere
    from evostrat.strategies.snes import SNES

    class NeedsRate(SNES):
        def __init__(self, rate, popsize=None, sigma0=1.0):
            super().__init__(popsize=popsize, sigma0=sigma0)
            self.rate = rate

    class Forwards(SNES):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)

    class Loose:
        @hookimpl
        def evostrat_strategies(self) -> dict:
            return {"needs_rate": NeedsRate, "forwards": Forwards}

    with registered(Loose(), "loose-plugin"):
        with pytest.raises(InvalidTypeError, match=r"^strategy 'needs_rate' \(.*NeedsRate\): __init__ must take only "
                                                   r"named hyper-parameters with defaults \(the evostrat_strategies "
                                                   r"contract\), but 'rate' has no default$"):
            evostrat.ES("needs_rate", max_generations=2).fit(sphere, np.ones(2))
        with pytest.raises(InvalidTypeError, match=r"^strategy 'forwards' .* but it takes \*args, \*\*kwargs$"):
            evostrat.ES("forwards", sigma0=0.5, max_generations=2).fit(sphere, np.ones(2))


# -- a real third-party package ---------------------------------------------------------------

def test_example_plugin_installed_with_pip_is_usable_by_name(example_site: Path) -> None:
    out = run_python(
        """
        import json, numpy as np, evostrat
        from evostrat.problems import sphere
        es = evostrat.ES("one_plus_lambda_es", ftarget=1e-8, max_evals=20000,
                         random_state=0).fit(sphere, np.full(5, 3.0))
        plugin = [p for p in evostrat.list_plugins() if p["name"] == "one_plus_lambda"][0]
        print(json.dumps({"fun": es.fun_, "stop": es.stop_reason_, "plugin": plugin}))
        """,
        example_site,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["stop"] == "ftarget" and result["fun"] <= 1e-8
    assert result["plugin"]["distribution"] == "evostrat-plugin-example"
    assert result["plugin"]["version"] == "0.1.0"
    assert result["plugin"]["provides"] == {"strategies": ["one_plus_lambda_es"], "distributions": ["laplace"]}


def test_example_plugin_runs_on_torch_and_jax(example_site: Path) -> None:
    out = run_python(
        """
        import torch, jax.numpy as jnp, evostrat
        from evostrat.problems import sphere
        for x0 in (torch.full((4,), 2.0), jnp.full((4,), 2.0)):
            es = evostrat.ES("one_plus_lambda_es", ftarget=1e-6, max_evals=20000,
                             random_state=1).fit(sphere, x0)
            assert es.stop_reason_ == "ftarget", (type(x0), es.fun_)
            assert type(es.x_).__module__.split(".")[0] == type(x0).__module__.split(".")[0]
        print("ok")
        """,
        example_site,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def test_disable_autoload_hides_third_party_plugins(example_site: Path) -> None:
    out = run_python(
        """
        import evostrat
        from evostrat.plugins import registry
        print(sorted(registry("strategies")))
        """,
        example_site,
        disable_autoload=True,
    )
    assert out.returncode == 0, out.stderr
    assert "one_plus_lambda_es" not in out.stdout and "snes" in out.stdout


# -- broken third-party packages --------------------------------------------------------------

FIT_SNES = """
import numpy as np, evostrat
from evostrat.problems import sphere
try:
    es = evostrat.ES("snes", max_generations=5, random_state=0).fit(sphere, np.ones(3))
    print("FIT-OK", es.n_generations_)
except evostrat.PluginError as err:
    assert isinstance(err, evostrat.EvostratError) and isinstance(err, RuntimeError), type(err).__mro__
    print("PLUGIN-ERROR", str(err).replace(chr(10), " "))
"""

FIT_EVERY_BUILTIN = """
import numpy as np, evostrat
from evostrat.plugins import list_plugins, registry
from evostrat.problems import sphere
builtin = [p for p in list_plugins() if p["name"] == "evostrat.strategies"][0]
names = builtin["provides"]["strategies"]
assert sorted(registry("strategies")) == sorted(names), (sorted(registry("strategies")), names)
for name in names:
    es = evostrat.ES(name, max_generations=2, random_state=0).fit(sphere, np.ones(3))
    assert es.n_generations_ == 2 and np.all(np.isfinite(es.x_)), name
print("ALL-OK", len(names))
"""

BROKEN_CASES = {
    "import_error": ("failed to import", "this_module_does_not_exist_anywhere"),
    "raises_in_hook": ("raised in evostrat_strategies", "boom from the plugin"),
    "duplicate_name": ("duplicate strategy name 'snes'", "evostrat.strategies"),
    "misspelled_hook": ("evostrat_strategys", "unknown hook"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN_CASES))
def test_broken_plugin_gives_clear_error_naming_plugin_and_distribution(
    kind: str, broken_sites: dict[str, Path]
) -> None:
    out = run_python(FIT_SNES, broken_sites[kind])
    assert out.returncode == 0, out.stderr  # `import evostrat` itself keeps working
    line = out.stdout.strip().splitlines()[-1]
    assert line.startswith("PLUGIN-ERROR"), line
    dist = f"evostrat-broken-{kind.replace('_', '-')}"
    assert f"broken_{kind}" in line and dist in line and "9.9.9" in line, line
    for fragment in BROKEN_CASES[kind]:
        assert fragment in line, (fragment, line)
    assert "EVOSTRAT_DISABLE_PLUGIN_AUTOLOAD=1" in line, line  # the error names the way out


@pytest.mark.parametrize("kind", sorted(BROKEN_CASES))
def test_disable_autoload_keeps_every_builtin_strategy_working(
    kind: str, broken_sites: dict[str, Path]
) -> None:
    out = run_python(FIT_EVERY_BUILTIN, broken_sites[kind], disable_autoload=True)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip().splitlines()[-1]
    from evostrat.plugins import list_plugins

    builtin = [p for p in list_plugins() if p["name"] == "evostrat.strategies"][0]
    assert line == f"ALL-OK {len(builtin['provides']['strategies'])}", line


@pytest.mark.parametrize("kind", sorted(BROKEN_CASES))
def test_disable_autoload_is_the_way_out(kind: str, broken_sites: dict[str, Path]) -> None:
    out = run_python(FIT_SNES, broken_sites[kind], disable_autoload=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "FIT-OK 5"


def test_import_evostrat_stays_light() -> None:
    out = run_python(
        "import evostrat, sys; "
        "heavy = {'torch', 'jax', 'sklearn', 'ray'} & set(sys.modules); "
        "assert not heavy, heavy; print('light')"
    )
    assert out.returncode == 0, out.stderr
