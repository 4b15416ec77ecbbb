"""The documentation site builds with ``mkdocs build --strict`` (once, for every test here)
and reads as rendered text (issue 18, item 1).

- no Sphinx role (``:mod:``, ``:class:``, ``:meth:``, ``:func:``, ...) or reST literal
  marker (``text::``) is left in the HTML outside code listings (docs/_ext/sphinx_roles.py
  turns them into cross-references when the site is built);
- numpydoc types are shown as written (``array-like``, not ``array - like``);
- the API reference has a section for every public module a user meets;
- with headless Chromium installed (Debian's ``chromium``), the slow suite screenshots two
  pages and checks the PNGs have the page's size (docs/images/screenshot-*.png are such screenshots,
  looked at when committed).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROLE = re.compile(r":(?:py:)?(mod|class|meth|func|attr|data|exc|obj):")
CODE_LISTING = re.compile(r"(?s)<pre\b.*?</pre>")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers", "griffe"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install evostrat[docs])")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(out)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr
    return out


def test_site_builds_strictly(site: Path) -> None:
    assert (site / "index.html").exists() and (site / "strategies" / "cma_es" / "index.html").exists()
    plugins = (site / "guides" / "plugins" / "index.html").read_text()
    assert "one_plus_lambda_es" in plugins and "evostrat_strategies" in plugins  # snippets, hookspecs


def _text(page: Path) -> str:
    return CODE_LISTING.sub("", page.read_text(encoding="utf-8"))


def test_no_raw_sphinx_markup_in_the_built_html(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 10
    left = {str(p.relative_to(site)): sorted(set(ROLE.findall(_text(p)))) for p in pages}
    assert not {p: roles for p, roles in left.items() if roles}, "raw Sphinx roles left in the site"
    literal = {str(p.relative_to(site)) for p in pages if re.search(r"\w::\s*</p>", _text(p))}
    assert not literal, f"reST '::' markers left in {sorted(literal)}"
    reference = _text(site / "reference" / "index.html")
    assert "array - like" not in reference and "array-like" in reference
    assert "shape(n" not in reference and "array, shape (n,)" in reference  # Returns types as written too


def test_roles_become_working_cross_references(site: Path) -> None:
    reference = _text(site / "reference" / "index.html")
    # ES's docstring: :class:`~evostrat.errors.ParameterOverrideWarning` links to its entry
    assert re.search(r'<a class="autorefs autorefs-internal"[^>]*href="#evostrat\.errors\.ParameterOverrideWarning"',
                     reference)


@pytest.mark.parametrize("section", [
    "evostrat.estimator.ES", "evostrat.strategies.base.Strategy", "evostrat.backends.base.Backend",
    "evostrat.evaluators.local.AutoEvaluator", "evostrat.evaluators.ExecutorEvaluator",
    "evostrat.problems.functions.rosenbrock", "evostrat.run.restarts.Restarts",
    "evostrat.run.termination.Termination", "evostrat.callbacks.DistributionRecorder",
    "evostrat.callbacks.tracking.TensorBoardLogger", "evostrat.callbacks.tracking.MLflowLogger",
    "evostrat.plotting.plot_diagnostics", "evostrat.testing.check_strategy", "evostrat.testing.check_distribution",
    "evostrat.plugins.list_plugins",
])
def test_reference_documents_every_public_module(site: Path, section: str) -> None:
    assert f'id="{section}"' in (site / "reference" / "index.html").read_text(encoding="utf-8")


def test_getting_started_shows_the_diagnostic_figure(site: Path) -> None:
    page = (site / "getting-started" / "index.html").read_text(encoding="utf-8")
    assert "images/diagnostics-cma_es-ellipsoid.png" in page
    assert (site / "images" / "diagnostics-cma_es-ellipsoid.png").stat().st_size > 10_000


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.slow  # about 7 s a page
@pytest.mark.parametrize("page", ["getting-started", "reference"])
def test_headless_chromium_screenshots(site: Path, tmp_path: Path, page: str) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    shot = tmp_path / f"{page}.png"
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--screenshot={shot}", "--window-size=1280,1600",
                           (site / page / "index.html").as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")) == (1280, 1600)
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one


def test_parameters_documented_together_are_one_row_without_a_wrong_default(site: Path) -> None:
    page = _text(site / "strategies" / "openai_es" / "index.html")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert text.count("Multiplicative decay per generation and floors.") == 1  # not four rows
    row = text[text.index("lr_decay, lr_min, sigma_decay, sigma_min"):]
    row = row[:row.index("Multiplicative decay per generation and floors.") + 60]
    assert "1.0" not in row.split("floors.")[1][:20]  # lr_min's default is 0.0: no shared default shown
