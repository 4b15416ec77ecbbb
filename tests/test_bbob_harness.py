"""The BBOB harness (benchmarks/bbob, issue 23) end to end on a tiny configuration.

Two configurations (evostrat IPOP, pycma IPOP) on three functions at 2-D, two
instances, 200 x D evaluations: COCO's data folders are written, agree with our
records (evaluations and hits per instance, read from COCO's ``.info`` files), and
the report's table and ECDF figure exist with numbers that agree with the records.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("cocoex", reason="cocoex (pip package coco-experiment) is not installed: "
                    "pip install -e '.[dev]' installs it")
pytest.importorskip("cocopp", reason="cocopp is not installed: pip install -e '.[dev]' installs it")
pytest.importorskip("cma", reason="pycma is not installed: pip install -e '.[dev]' installs it")

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = (1, 7, 21)
INSTANCES = (1, 2)
BUDGET = 200


def _bbob(*args: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, "-m", "benchmarks.bbob", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _coco_info(folder: Path) -> dict[tuple[int, int], tuple[int, float]]:
    """(function, instance) -> (evaluations, final f - f_opt) from COCO's .info files."""
    found = {}
    for info in folder.glob("*.info"):
        function = int(re.search(r"funcId = (\d+)", info.read_text()).group(1))
        for instance, evals, delta in re.findall(r"(\d+):(\d+)\|([-+.eE\d]+)", info.read_text()):
            found[(function, int(instance))] = (int(evals), float(delta))
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bbob")
    common = ["--dims", "2", "--instances", "1-2", "--functions", ",".join(map(str, FUNCTIONS)),
              "--budget", str(BUDGET), "-q"]
    for algo in ("evostrat-ipop", "pycma-ipop"):
        _bbob("run", "--algo", algo, "--out", str(out / algo), *common)
    _bbob("report", str(out / "evostrat-ipop"), str(out / "pycma-ipop"), "-o", str(out / "bbob.md"),
          "--figures", str(out / "figures"))
    return out


@pytest.mark.parametrize("algo", ["evostrat-ipop", "pycma-ipop"])
def test_coco_data_agrees_with_records(runs: Path, algo: str) -> None:
    records = [json.loads(line) for line in (runs / algo / "records.jsonl").read_text().splitlines()]
    assert sorted((r["function"], r["instance"]) for r in records) == sorted(
        (f, i) for f in FUNCTIONS for i in INSTANCES)
    assert all(r["error"] is None and r["dimension"] == 2 and r["budget"] == 2 * BUDGET for r in records)
    # restarts stay inside the budget, up to the last generation's candidates
    assert all(r["evals"] <= r["budget"] + 40 for r in records), records
    info = _coco_info(runs / algo / "exdata" / algo)
    assert set(info) == {(r["function"], r["instance"]) for r in records}
    for r in records:
        evals, delta = info[(r["function"], r["instance"])]
        assert evals == r["evals"]
        assert (delta < 1e-8) == (r["hit_evals"] is not None), (r, delta)
    assert json.loads((runs / algo / "run.json").read_text())["problems"] == len(records)


def test_report_table_agrees_with_records(runs: Path) -> None:
    text = (runs / "bbob.md").read_text()
    for algo in ("evostrat-ipop", "pycma-ipop"):
        records = [json.loads(line) for line in (runs / algo / "records.jsonl").read_text().splitlines()]
        hit = [r for r in records if r["hit_evals"] is not None and r["hit_evals"] <= r["budget"]]
        assert re.search(rf"^\| {algo} \| {len(hit)}/{len(records)} \|", text, re.M), text
        for f in FUNCTIONS:
            per_f = [r for r in records if r["function"] == f]
            hits_f = sum(r in hit for r in per_f)
            row = re.search(rf"^\| f{f} \|(.*)$", text, re.M).group(1)
            assert f"{hits_f}/{len(per_f)}" in row.split("|")[0 if algo == "evostrat-ipop" else 1]
    # f1 is solved by both at 2-D within 400 evaluations: its aRT ratio is in the table
    ev = [json.loads(x) for x in (runs / "evostrat-ipop" / "records.jsonl").read_text().splitlines()]
    py = [json.loads(x) for x in (runs / "pycma-ipop" / "records.jsonl").read_text().splitlines()]

    def art(records: list[dict], f: int) -> float:
        rs = [r for r in records if r["function"] == f]
        hits = [r for r in rs if r["hit_evals"] is not None and r["hit_evals"] <= r["budget"]]
        return sum(r["hit_evals"] if r in hits else r["evals"] for r in rs) / len(hits)

    row = re.search(r"^\| f1 \|(.*)$", text, re.M).group(1).split("|")
    assert float(row[2]) == pytest.approx(art(ev, 1) / art(py, 1), abs=0.006)


def test_ecdf_figure_written(runs: Path) -> None:
    png = runs / "figures" / "ecdf_evostrat-ipop_2D.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](figures/ecdf_evostrat-ipop_2D.png)" in (runs / "bbob.md").read_text()
