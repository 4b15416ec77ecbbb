"""Hits, aRT and ECDF figures from the folders written by ``run``.

The numbers come from each run's ``records.jsonl`` (never from cocopp's HTML):

- a *hit* is a problem (function, dimension, instance) whose final target
  f_opt + 1e-8 was reached within the budget;
- *aRT* (average running time, COCO's measure) of a function in a dimension is
  the evaluations spent over all its instances (up to the hit for a hit, all
  of them otherwise) divided by the number of hits (infinite without hits);
- the *aRT ratio* is evostrat's aRT over its pycma peer's
  (:data:`benchmarks.bbob.algorithms.PEERS`) on functions both solve at least
  once; below 1 is evostrat faster. Their median is taken per dimension.

``cocopp`` draws the ECDF of runtimes (all 24 functions, the 51 targets
100..1e-8) for each evostrat/pycma pair and dimension; the PNGs are copied to
``--figures`` as ``ecdf_<evostrat configuration>_<D>D.png``.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from benchmarks.bbob.algorithms import PEERS


def load_records(folder: str | os.PathLike) -> list[dict[str, Any]]:
    path = Path(folder) / "records.jsonl"
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def is_hit(record: dict[str, Any]) -> bool:
    return record["hit_evals"] is not None and record["hit_evals"] <= record["budget"]


def summarise(records: Iterable[dict[str, Any]]) -> dict[tuple[int, int], dict[str, Any]]:
    """(function, dimension) -> runs, hits, evaluations spent (to the hit or all), aRT."""
    table: dict[tuple[int, int], dict[str, Any]] = defaultdict(lambda: dict(runs=0, hits=0, spent=0))
    for r in records:
        cell = table[(r["function"], r["dimension"])]
        cell["runs"] += 1
        if is_hit(r):
            cell["hits"] += 1
            cell["spent"] += r["hit_evals"]
        else:
            cell["spent"] += r["evals"]
    for cell in table.values():
        cell["aRT"] = cell["spent"] / cell["hits"] if cell["hits"] else float("inf")
    return dict(table)


def art_ratios(mine: dict, peer: dict) -> dict[tuple[int, int], float]:
    """(function, dimension) -> aRT ratio mine/peer where both hit at least once."""
    return {key: mine[key]["aRT"] / peer[key]["aRT"] for key in mine
            if key in peer and mine[key]["hits"] and peer[key]["hits"]}


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def write_report(runs: Sequence[str | os.PathLike], figures: str | os.PathLike | None = None,
                 dpi: int = 60, links_from: str | os.PathLike = ".") -> str:
    """The markdown report of ``runs`` (and, with ``figures``, the ECDF PNGs, linked
    relative to the folder ``links_from`` where the markdown will live)."""
    data: dict[str, dict] = {}
    meta: dict[str, dict] = {}
    folders: dict[str, Path] = {}
    for folder in runs:
        records = load_records(folder)
        if not records:
            continue
        name = records[0]["algorithm"]
        if name in data:
            raise SystemExit(f"two runs of {name}: {folders[name]} and {folder}")
        data[name] = summarise(records)
        folders[name] = Path(folder)
        run_json = Path(folder) / "run.json"
        meta[name] = json.loads(run_json.read_text()) if run_json.exists() else {}
        meta[name]["errors"] = sum(r["error"] is not None for r in records)
    names = list(data)
    dims = sorted({d for s in data.values() for (_, d) in s})
    functions = sorted({f for s in data.values() for (f, _) in s})
    lines = ["# BBOB: hits and aRT", ""]
    lines.append("Hits: problems (function, instance) whose target f_opt + 1e-8 was reached within the "
                 "budget, of all run. aRT ratio: evostrat's aRT / pycma's on functions both solve "
                 "at least once (below 1: evostrat needs fewer evaluations).")
    lines.append("")
    lines.append("| configuration | " + " | ".join(f"{d}-D hits" for d in dims) + " | wall time |")
    lines.append("|---|" + "---:|" * len(dims) + "---:|")
    for name in names:
        cells = []
        for d in dims:
            hits = sum(c["hits"] for (f, dd), c in data[name].items() if dd == d)
            total = sum(c["runs"] for (f, dd), c in data[name].items() if dd == d)
            cells.append(f"{hits}/{total}" if total else "-")
        wall = meta[name].get("wall_seconds")
        errors = meta[name]["errors"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {wall if wall is not None else '-'} s |"
                     + (f" ({errors} runs raised)" if errors else ""))
    lines.append("")
    pairs = [(mine, peer) for mine, peer in PEERS.items() if mine in data and peer in data]
    if pairs:
        lines.append("Median per-function aRT ratio (functions solved by both / functions run):")
        lines.append("")
        lines.append("| evostrat / pycma | " + " | ".join(f"{d}-D" for d in dims) + " |")
        lines.append("|---|" + "---:|" * len(dims))
        for mine, peer in pairs:
            ratios = art_ratios(data[mine], data[peer])
            cells = []
            for d in dims:
                values = [v for (f, dd), v in ratios.items() if dd == d]
                run = sum(1 for (f, dd) in data[mine] if dd == d)
                cells.append(f"{statistics.median(values):.2f} ({len(values)}/{run})" if values else "-")
            lines.append(f"| {mine} / {peer} | " + " | ".join(cells) + " |")
        lines.append("")
    for d in dims:
        lines.append(f"## {d}-D: hits per function" + (" and aRT ratio" if pairs else ""))
        lines.append("")
        header = ["f"] + names + [f"aRT {m} / {p}" for m, p in pairs]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|---|" + "---:|" * (len(header) - 1))
        ratios = {m: art_ratios(data[m], data[p]) for m, p in pairs}
        for f in functions:
            row = [f"f{f}"]
            for name in names:
                c = data[name].get((f, d))
                row.append(f"{c['hits']}/{c['runs']}" if c else "-")
            for m, _ in pairs:
                row.append(_fmt_ratio(ratios[m].get((f, d))))
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    if figures is not None:
        made = draw_ecdfs(folders, pairs, dims, Path(figures), dpi)
        if made:
            lines.append("## ECDF figures (cocopp)")
            lines.append("")
            for path in made:
                lines.append(f"![{path.stem}]({Path(os.path.relpath(path, links_from)).as_posix()})")
            lines.append("")
    return "\n".join(lines)


def draw_ecdfs(folders: dict[str, Path], pairs: list[tuple[str, str]], dims: list[int], out: Path,
               dpi: int = 60) -> list[Path]:
    """cocopp's runtime ECDF over all functions, one PNG per pair and dimension."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cocopp warns that it cannot reach its online archive
        import cocopp
    cocopp.genericsettings.figure_file_formats = ["png"]
    cocopp.genericsettings.in_a_hurry = 1 if dpi <= 60 else 0  # cocopp's switch between 60 and 300 dpi
    out.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    for mine, peer in pairs:
        with tempfile.TemporaryDirectory() as tmp:
            # cocopp labels curves by folder name, cut to a few characters: name them by library.
            inputs = []
            for label, name in (("evostrat", mine), ("pycma", peer)):
                target = Path(tmp) / label
                shutil.copytree(folders[name] / "exdata" / name, target)
                inputs.append(str(target))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cocopp.main(["--rld-only", "--no-rld-single-fcts", "-o", str(Path(tmp) / "pp")] + inputs)
            for d in dims:
                found = glob.glob(str(Path(tmp) / "pp" / "*" / f"pprldmany_{d:02d}D_noiselessall.png"))
                if found:
                    target = out / f"ecdf_{mine}_{d}D.png"
                    shutil.copyfile(found[0], target)
                    made.append(target)
    return made
