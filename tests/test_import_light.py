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
ROOT = Path(__file__).resolve().parents[1]


def loaded_after(statements: str) -> list[str]:
    """The heavy top-level modules in ``sys.modules`` after running ``statements`` in a new interpreter."""
    code = textwrap.dedent(statements) + textwrap.dedent(
        f"""
        import json, sys
        print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("statement", ["import evostrat", "from evostrat import ES"])
def test_import_loads_no_heavy_module(statement: str) -> None:
    assert loaded_after(statement) == []


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
