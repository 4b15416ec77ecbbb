"""The documentation site: it builds with ``mkdocs build --strict`` and every code
example in it runs.

Each page's fenced ``python`` blocks run in order in one namespace, in a fresh
working directory. Markers on a block's first lines:

- ``# requires: torch, jax``: the page stops there (skipped) unless those
  modules are installed;
- ``# doc-test: slow``: run only by the slow suite (``-m slow``);
- ``# doc-test: skip``: never run (a fragment of another package, e.g. a hook
  implementation shown out of context).

Blocks that only include a repository file (``--8<-- "path"``) are that file,
which its own tests cover.
"""

from __future__ import annotations

import importlib.util
import re
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
MARKER = re.compile(r"^#\s*(requires|doc-test):\s*(.*)$")


def code_blocks(page: Path) -> Iterator[tuple[int, str, list[str], str]]:
    """``(line, code, required modules, mode)`` of each python block; mode is
    ``"run"``, ``"slow"`` or ``"skip"``."""
    text = page.read_text()
    for match in FENCE.finditer(text):
        if match.group("lang") != "python":
            continue
        code = textwrap.dedent(match.group("body"))
        lines = [line for line in code.splitlines() if line.strip()]
        if lines and all(line.strip().startswith("--8<--") for line in lines):
            continue
        requires: list[str] = []
        mode = "run"
        for line in lines:
            marker = MARKER.match(line.strip())
            if not marker:
                break
            if marker.group(1) == "requires":
                requires += [m.strip() for m in marker.group(2).split(",") if m.strip()]
            else:
                mode = marker.group(2).split()[0]
        line_number = text.count("\n", 0, match.start()) + 2
        yield line_number, code, requires, mode


PAGES = sorted(p for p in DOCS.rglob("*.md") if any(True for _ in code_blocks(p)))


def _run_page(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slow: bool) -> int:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    ran = 0
    for line, code, requires, mode in code_blocks(page):
        if mode == "skip" or (mode == "slow" and not slow):
            continue
        missing = [m for m in requires if importlib.util.find_spec(m) is None]
        if missing:
            pytest.skip(f"{page.relative_to(ROOT)}:{line} needs {missing}")
        exec(compile(code, f"{page.relative_to(ROOT)}:{line}", "exec"), namespace)  # noqa: S102
        ran += 1
    return ran


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_code_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    assert _run_page(page, tmp_path, monkeypatch, slow=False) >= 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "page", [p for p in PAGES if any(m == "slow" for *_, m in code_blocks(p))],
    ids=lambda p: str(p.relative_to(DOCS)),
)
def test_slow_code_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run_page(page, tmp_path, monkeypatch, slow=True)


def test_readme_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the README (the package's front page) is no page of the site: its blocks ran nowhere
    assert _run_page(ROOT / "README.md", tmp_path, monkeypatch, slow=False) >= 3


def test_markers_are_understood() -> None:
    for page in [*PAGES, ROOT / "README.md"]:
        for line, _, requires, mode in code_blocks(page):
            assert mode in ("run", "slow", "skip"), f"{page}:{line}: unknown doc-test mode {mode!r}"
            assert all(re.fullmatch(r"[\w.]+", m) for m in requires), f"{page}:{line}: {requires}"


def test_every_builtin_strategy_has_a_page() -> None:
    from evostrat import list_plugins

    builtin = next(p for p in list_plugins() if p["name"] == "evostrat.strategies")
    pages = " ".join(p.read_text() for p in (DOCS / "strategies").glob("*.md"))
    for name in builtin["provides"]["strategies"]:
        assert f'ES("{name}")' in pages, f"no strategy page documents {name!r}"


def _popsize_rule(formula: str, d: int) -> int:
    """A page's ``popsize`` formula (``4 + floor(3 ln d)``, ``2 * (...)``) at dimension ``d``."""
    import math

    expr = re.sub(r"(\d) (log|\()", r"\1 * \2", formula.replace("ln d", "log(d)"))
    assert set(re.findall(r"[a-z]+", expr)) <= {"floor", "log", "d"}, formula
    return eval(expr, {"floor": math.floor, "log": math.log, "d": d})  # the page's own arithmetic


def test_every_strategy_pages_default_popsize_is_the_strategys() -> None:
    # the mirrored strategies' pages said "4 + floor(3 ln d) rounded up to even"; they use twice it
    from conftest import strategy_class

    for page in sorted((DOCS / "strategies").glob("*.md")):
        text = page.read_text()
        row = re.search(r"^\| `popsize` \| `([^`]+)`", text, re.M)
        if row is None:
            continue
        names = re.findall(r'ES\("(\w+)"\)', text.split("\n\n", 1)[0] + text.split("\n")[2])
        assert names, page
        for name in names:
            for d in (1, 2, 10, 100):
                expected = _popsize_rule(row.group(1), d)
                got = strategy_class(name)().resolved_popsize(d)
                assert got == expected, f"{page.name}: {name} at d={d} uses {got}, the page says {expected}"


def test_every_page_is_in_the_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in DOCS.rglob("*.md"):
        assert str(page.relative_to(DOCS)) in nav, f"{page} is not in mkdocs.yml's nav"


# The strict build and the checks of the built HTML: tests/test_docs_render.py (one build for all).
