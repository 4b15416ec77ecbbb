"""Docstring examples marked ``# doctest: +SKIP`` run too, where their libraries are installed.

``pytest --doctest-modules`` (the suite's ``addopts``) skips them: they need torch, JAX,
matplotlib or Ray, which a numpy-only install lacks. Unrun, they rotted:
:mod:`evostrat.run.device_termination`'s example passed a scalar type that
``initial_progress`` refused, fed its host arrays to ``check`` (which updates JAX arrays)
and printed ``(0, 'ftarget')`` for a first generation of no criterion. Here each such
module's examples run with the marker removed, when the modules they import are installed.

Hook implementations shown out of context (:mod:`evostrat.hookspecs`) and examples that start a
Ray cluster are left to their own tests.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: module -> the optional modules its skipped examples import
NEEDS: dict[str, tuple[str, ...]] = {
    "evostrat.backends.jax": ("jax",),
    "evostrat.backends.torch": ("torch",),
    "evostrat.distributions.magic_box": ("torch",),
    "evostrat.distributions.normal": ("torch",),
    "evostrat.plotting": ("matplotlib",),
    "evostrat.run.block_termination": ("jax",),
    "evostrat.run.compiled": ("jax",),
    "evostrat.run.compiled_loop": ("jax",),
    "evostrat.run.device_termination": ("jax",),
    "evostrat.run.order_statistics": ("jax",),
    "evostrat.run.row_reductions": ("jax",),
}
SLOW = {"evostrat.run.batch_jax": ("jax",)}  # 64 vmapped CMA-ES runs: a long compile
LEFT_TO_THEIR_TESTS = {"evostrat.hookspecs", "evostrat.evaluators.ray"}


def _skipped_examples(name: str) -> list[doctest.DocTest]:
    """The module's docstring tests that hold ``+SKIP`` examples, with the marker removed."""
    tests = []
    for test in doctest.DocTestFinder().find(importlib.import_module(name), name):
        skipped = [ex for ex in test.examples if ex.options.get(doctest.SKIP)]
        for ex in skipped:
            ex.options = {flag: on for flag, on in ex.options.items() if flag != doctest.SKIP}
        if skipped:
            tests.append(test)
    return tests


def _run(name: str, needs: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{name}'s examples need {missing}")
    if "matplotlib" in needs:
        import matplotlib

        matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    tests = _skipped_examples(name)
    assert tests, f"{name} has no +SKIP example left: remove it from this file"
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_skipped_docstring_examples_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run(name, NEEDS[name], tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW))
def test_slow_skipped_docstring_examples_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run(name, SLOW[name], tmp_path, monkeypatch)


def test_every_module_with_skipped_examples_is_listed() -> None:
    listed = set(NEEDS) | set(SLOW) | LEFT_TO_THEIR_TESTS
    found = set()
    for path in sorted((ROOT / "evostrat").rglob("*.py")):
        if "doctest: +SKIP" in path.read_text():
            parts = path.relative_to(ROOT).with_suffix("").parts
            found.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    assert found == listed, f"unlisted: {sorted(found - listed)}, no longer skipped: {sorted(listed - found)}"


def test_initial_progress_takes_a_dtype_as_its_example_writes_it() -> None:
    # the example's jnp.float32 (a scalar type) was refused: np.dtype(str(np.float32)) fails
    import numpy as np

    from evostrat.run.device_termination import Rules, initial_progress
    from evostrat.run.termination import Termination

    rules = Rules.from_termination(Termination(max_generations=2), popsize=3, capacity=4)
    for dtype in ("float32", np.float32, np.dtype("float32")):
        p = initial_progress(rules, dtype)
        assert p.recent.dtype == np.float32 and p.run_best.dtype == np.float32 and p.run_best == np.inf
