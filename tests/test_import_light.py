"""``import evostrat`` and ``from evostrat import ES`` load no heavy library (issue 18 item 9).

Module presence, not timing: a heavy import shows up in ``sys.modules`` on every machine,
while a time limit would be flaky. Measured times are in BENCHMARKS.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

HEAVY = ("sklearn", "torch", "jax", "ray", "gymnasium", "matplotlib", "pandas", "scipy", "rich")
# Standard-library modules only an executor, a checkpoint, a plugin lookup or an error message needs.
DEFERRED = ("concurrent.futures", "multiprocessing", "hashlib", "uuid", "importlib.metadata", "zipfile", "email",
            "difflib")
ROOT = Path(__file__).resolve().parents[1]


def loaded_after(statements: str, modules: tuple[str, ...] = HEAVY) -> list[str]:
    """Those of ``modules`` in ``sys.modules`` after running ``statements`` in a new interpreter."""
    code = textwrap.dedent(statements) + textwrap.dedent(
        f"""
        import json, sys
        print(json.dumps(sorted(m for m in {modules!r} if m in sys.modules)))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("statement", ["import evostrat", "from evostrat import ES"])
def test_import_loads_no_heavy_module(statement: str) -> None:
    assert loaded_after(statement) == []


@pytest.mark.parametrize("statement", ["import evostrat", "from evostrat import ES"])
def test_import_defers_executor_checkpoint_and_plugin_modules(statement: str) -> None:
    assert loaded_after(statement, DEFERRED) == []


def test_evaluators_package_loads_its_classes_on_first_access() -> None:
    statements = """
        import sys
        import evostrat.evaluators as ev
        assert "evostrat.evaluators.executor" not in sys.modules
        assert {"ChunkedEvaluator", "ExecutorEvaluator", "RayEvaluator"} <= set(dir(ev))
        from evostrat.evaluators import ExecutorEvaluator
        from evostrat.evaluators.executor import ExecutorEvaluator as defined
        from evostrat.evaluators.remote import ChunkedEvaluator
        assert ExecutorEvaluator is defined and ev.ChunkedEvaluator is ChunkedEvaluator
        assert ev.RayEvaluator.__module__ == "evostrat.evaluators.ray"
        try:
            ev.NoSuchEvaluator
        except AttributeError as err:
            assert "NoSuchEvaluator" in str(err), err
        else:
            raise AssertionError("no AttributeError")
    """
    assert loaded_after(statements) == []


def test_fit_without_checkpoint_or_executor_loads_neither() -> None:
    statements = """
        import sys
        import numpy as np
        from evostrat import ES
        ES("snes", max_generations=3, random_state=0, evaluator="serial").fit(lambda x: float(x @ x), np.ones(3))
        assert "evostrat.checkpoint" not in sys.modules
        assert "evostrat.checkpoint.format" not in sys.modules
    """
    # the registry lists ExecutorEvaluator (its module loads), but the pool machinery stays unloaded
    assert loaded_after(statements, ("multiprocessing", "uuid")) == []


def test_plugin_lookup_after_a_light_import_lists_every_builtin() -> None:
    statements = """
        import evostrat
        from evostrat.plugins import lookup, registry
        assert lookup("strategies", "CMA-ES", "strategy") == "cma_es"
        names = set(registry("strategies"))
        for name in ("openai_es", "snes", "xnes", "pgpe", "cma_es", "sep_cma_es", "maxvar_es", "maxent_es"):
            assert name in names, (name, names)
        assert set(registry("evaluators")) == {"auto", "vectorized", "serial", "executor", "ray"}
        plugins = {p["name"] for p in evostrat.list_plugins()}
        assert {"evostrat.backends", "evostrat.strategies", "evostrat.evaluators"} <= plugins, plugins
    """
    assert loaded_after(statements, ("importlib.metadata",)) == ["importlib.metadata"]


def test_numpy_fit_and_clone_load_only_what_they_use() -> None:
    statements = textwrap.dedent("""
        import numpy as np
        from evostrat import ES
        es = ES("snes", max_generations=5, random_state=0).fit(lambda X: (X ** 2).sum(axis=1), np.ones(3))
        params = ES(**es.get_params(deep=False)).get_params()
        assert params == es.get_params(), params
    """)
    assert loaded_after(statements) == []
    # scikit-learn's clone still works on ES; it is the one that imports scikit-learn.
    assert "sklearn" in loaded_after(statements + "from sklearn.base import clone; clone(es)\n")


def test_license_is_an_spdx_expression_with_its_file() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"  # a string (PEP 639), not the deprecated {text = ...} table
    for name in project["license-files"]:
        assert "MIT License" in (ROOT / name).read_text()
