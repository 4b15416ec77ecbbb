"""benchmarks/report.py turns pytest-benchmark JSON into the BENCHMARKS.md tables.

Fed a synthetic JSON document (no benchmark runs here, no timing).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from child_process import child_env

REPORT = Path(__file__).resolve().parents[1] / "benchmarks" / "report.py"


@pytest.fixture(scope="module")
def report() -> Any:
    spec = importlib.util.spec_from_file_location("bench_report", REPORT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bench(median: float, **row: Any) -> dict:
    return {"name": f"test_{row['library']}", "fullname": f"benchmarks/x.py::test_{row['library']}",
            "stats": {"median": median, "mean": median, "min": median * 0.4 if row["library"] == "evostrat"
                      else median}, "extra_info": dict(row)}


def _document() -> dict:
    snes = dict(suite="jax-scan", case="snes d=10 pop=1x (10)", strategy="snes", dim=10, popsize=10,
                target=1.0)
    cma = dict(suite="numpy", case="cma_es d=1000 pop=1x (24)", strategy="cma_es", dim=1000,
               popsize=24, target=0.5, per_round=1)
    shared = dict(suite="numpy-block8", case="d=1000", library="cmaes", strategy="cma_es",
                  dim=1000, target=0.5, per_round=1)
    return {
        "datetime": "2026-11-23T04:00:00",
        "machine_info": {"cpu": {"brand_raw": "Test CPU", "count": 2}, "python_version": "3.11.0",
                         "system": "Linux", "release": "6"},
        "benchmarks": [
            _bench(8e-4, library="evostrat", per_round=100, compile_s=1.5, **snes),  # 8 us
            _bench(1.6e-3, library="evosax", per_round=100, compile_s=2.5, **snes),  # 16 us
            _bench(0.3, library="evostrat", **cma),
            _bench(0.4, library="pycma", **cma),
            _bench(0.5, library="cmaes", **cma),
            {"name": "both", "fullname": "x", "stats": {"median": 1.0, "mean": 1.0},
             "extra_info": {**shared, "suite": "numpy", "rows": [
                 {**shared, "suite": "numpy"}, shared]}},
            _bench(2.0, library="evostrat", suite="quality", case="sphere 10-D", strategy="cma_es",
                   dim=10, per_round=2, evals=[1400, 1500], evals_median=1450, successes=2, runs=2),
            _bench(3.0, library="pycma", suite="quality", case="sphere 10-D", strategy="cma_es",
                   dim=10, per_round=2, evals=[1450, 1550], evals_median=1500, successes=2, runs=2),
            _bench(60.0, library="evostrat", suite="memory", case="snes d=1000000 pop=1000 seeded",
                   strategy="snes", dim=1_000_000, popsize=1000, peak_bytes=100 * 2**20,
                   population_bytes=8_000_000_000, mode="seeded"),
            {"name": "untagged", "fullname": "y", "stats": {"median": 1.0, "mean": 1.0},
             "extra_info": {}},
        ],
    }


def test_rows_from_json_alone(report: Any) -> None:
    rows = report.load_rows(_document())
    assert len(rows) == 10  # the untagged benchmark is left out, the shared one counts twice
    snes = [r for r in rows if r["suite"] == "jax-scan" and r["library"] == "evostrat"][0]
    assert snes["median"] == pytest.approx(8e-6)  # per generation: median / per_round
    assert {r["suite"] for r in rows if r["library"] == "cmaes"} >= {"numpy", "numpy-block8"}


def test_markdown_ratios_targets_and_machine(report: Any) -> None:
    text = report.render(_document())
    assert "| snes d=10 pop=1x (10) | 8.0 us | 16.0 us | 0.50 | <= 1 | met | 0.20 |" in text
    # ratio to the fastest peer (pycma 0.4 s, not cmaes 0.5 s): 0.75 > 0.5
    assert ("| cma_es d=1000 pop=1x (24) | 300.00 ms | 500.00 ms | 400.00 ms | 0.75 | <= 0.5 "
            "| **missed** | 0.30 |") in text
    assert "| jax-scan | snes d=10 pop=1x (10) | 1.50 | 2.50 |" in text
    assert "1 rows meet their target, 1 miss it." in text
    assert ("- numpy cma_es d=1000 pop=1x (24): 0.75, fastest rounds 0.30 (target <= 0.5) "
            "(met by the fastest rounds)") in text
    assert "Test CPU (2 logical cores)" in text
    assert text.index("### numpy\n") < text.index("### jax-scan")
    assert "| sphere 10-D | 1450 (2/2) | 1500 (2/2) | 0.97 | evostrat 1.00 s, pycma 1.50 s |" in text
    assert "| snes d=1000000 pop=1000 seeded | 100.0 MiB | 13.1 | 7629 MiB | 60.00 s |" in text


def test_command_line_writes_the_file(report: Any, tmp_path: Path) -> None:
    source = tmp_path / "bench.json"
    source.write_text(json.dumps(_document()))
    out = tmp_path / "table.md"
    assert report.main([str(source), "-o", str(out), "--title", "Here"]) == 0
    assert out.read_text().startswith("## Here\n")


def test_merged_runs_replace_rows(report: Any, tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(_document()))
    later = {"benchmarks": [_bench(4e-4, library="evostrat", per_round=100, suite="jax-scan",
                                   case="snes d=10 pop=1x (10)", strategy="snes", dim=10,
                                   popsize=10, target=1.0)]}
    second.write_text(json.dumps(later))
    out = tmp_path / "t.md"
    assert report.main([str(first), str(second), "-o", str(out)]) == 0
    assert "| snes d=10 pop=1x (10) | 4.0 us | 16.0 us | 0.25 | <= 1 | met |" in out.read_text()


def test_rows_timed_by_their_suite_use_their_own_statistics(report: Any) -> None:
    # One benchmark carrying two interleaved rows (test_matrix_jax): each row's median_s / min_s
    # replace the benchmark's statistics, which belong to the evostrat rounds alone.
    shared = dict(suite="jax-scan", case="cma_es d=10 pop=1x (10)", strategy="cma_es", dim=10,
                  popsize=10, target=1.0, per_round=100)
    bench = {"name": "test_jax_scan", "fullname": "benchmarks/test_matrix_jax.py::test_jax_scan",
             "stats": {"median": 1.0, "mean": 1.0, "min": 1.0},
             "extra_info": {"rows": [dict(shared, library="evostrat", median_s=9e-4, min_s=8e-4),
                                     dict(shared, library="evosax", median_s=1e-3, min_s=1e-3)]}}
    rows = report.load_rows({"benchmarks": [bench]})
    assert [(r["library"], r["median"], r["min"]) for r in rows] == [
        ("evostrat", pytest.approx(9e-6), pytest.approx(8e-6)),
        ("evosax", pytest.approx(1e-5), pytest.approx(1e-5))]
    assert "| cma_es d=10 pop=1x (10) | 9.0 us | 10.0 us | 0.90 | <= 1 | met | 0.80 |" in report.render(
        {"benchmarks": [bench]})


def test_format_seconds(report: Any) -> None:
    assert report.format_seconds(None) == "-"
    assert report.format_seconds(2.5e-6) == "2.5 us"
    assert report.format_seconds(12.0) == "12.00 s"


SUITE = """
def test_tagged(benchmark):
    benchmark(sum, range(10))
    benchmark.extra_info.update(suite="numpy", case="d=10", library="evostrat", target=0.5,
                                strategy="cma_es", dim=10, per_round=1)
"""


def test_evostrat_bench_writes_the_report(tmp_path: Path) -> None:
    pytest.importorskip("pytest_benchmark")
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_tiny.py").write_text(SUITE)
    shutil.copy(REPORT, suite / "report.py")
    quick = ["--", "--benchmark-max-time=0.01", "--benchmark-warmup=off"]
    done = subprocess.run([sys.executable, "-m", "evostrat", "bench", "--path", "suite",
                           "--report", "table.md", *quick], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120, env=child_env())
    assert done.returncode == 0, done.stdout + done.stderr
    text = (tmp_path / "table.md").read_text()
    assert "### numpy" in text and "| d=10 |" in text
    assert json.loads((tmp_path / "table.json").read_text())["benchmarks"]
