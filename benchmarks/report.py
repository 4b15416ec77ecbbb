"""Turn a pytest-benchmark JSON file into the markdown tables of ``BENCHMARKS.md``.

Usage::

    python -m pytest benchmarks --benchmark-only --benchmark-json=bench.json
    python benchmarks/report.py bench.json -o table.md
    python benchmarks/report.py bench.json bench-gpu.json -o table.md   # merged

Every benchmark the suites ``record`` carries its row in ``extra_info``
(``suite``, ``case``, ``library``, ``per_round``, ``strategy``, ``dim``,
``popsize``, ``target``, optionally ``compile_s``; a benchmark recorded under
several rows lists them in ``extra_info["rows"]``), so the report needs the
JSON alone. Per suite, one row per case: the median time per generation of
each library (the benchmark's median over ``per_round``, or the row's own ``median_s`` and
``min_s`` when the suite timed interleaved rounds itself), the ratio of each
evostrat library to the fastest peer, the target of issue 9, whether it is
met, and the ratio of the fastest rounds (``min``; on a loaded machine the
least disturbed estimate). Then the JAX compilation times, the list of targets and the machine.
Benchmarks without a ``suite`` (``test_evaluation_overhead.py``) are left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

__all__ = ["Row", "format_seconds", "load_rows", "main", "merge", "render"]

#: One recorded row: {suite, case, library, median, strategy, dim, popsize, target, compile_s}.
Row = dict


def format_seconds(seconds: float | None) -> str:
    """``12.3 us``, ``4.56 ms`` or ``1.23 s``; ``-`` for ``None``.

    Examples
    --------
    >>> format_seconds(1.5e-5), format_seconds(0.0123), format_seconds(2.0)
    ('15.0 us', '12.30 ms', '2.00 s')
    """
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def load_rows(data: dict) -> list[Row]:
    """The recorded rows of a pytest-benchmark JSON document (already parsed)."""
    rows = []
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info") or {}
        tags = info.get("rows") or ([info] if "suite" in info else [])
        for tag in tags:
            per_round = tag.get("per_round") or 1
            # A row timed by its suite (interleaved rounds) carries its own median and minimum.
            median = tag.get("median_s", bench["stats"]["median"])
            fastest = tag.get("min_s", bench["stats"].get("min", median))
            rows.append({
                "suite": tag["suite"], "case": tag["case"], "library": tag["library"],
                "median": median / per_round, "min": fastest / per_round,
                "strategy": tag.get("strategy"), "dim": tag.get("dim"),
                "popsize": tag.get("popsize"), "target": tag.get("target"),
                "compile_s": tag.get("compile_s"), "test": bench.get("fullname", ""),
                "evals_median": tag.get("evals_median"), "successes": tag.get("successes"),
                "runs": tag.get("runs"), "peak_bytes": tag.get("peak_bytes"),
                "population_bytes": tag.get("population_bytes"), "mode": tag.get("mode"),
            })
    return rows


def _is_ours(library: str) -> bool:
    return library.startswith("evostrat")


def _case_key(row: Row) -> tuple:
    return (str(row["strategy"]), row["dim"] or 0, row["popsize"] or 0, row["case"])


def _suite_key(suite: str) -> tuple:
    order = ["numpy", "numpy-block8", "torch-cpu", "jax-scan", "torch-cuda", "jax-gpu", "nes-demo",
             "quality", "memory"]
    return (order.index(suite) if suite in order else len(order), suite)


def _compare(libs: dict[str, Row]) -> tuple[dict[str, float], float | None, str, dict[str, float]]:
    """Ratios of each evostrat library to the fastest peer (medians), the target, the
    status, and the same ratios of the fastest rounds (``min``)."""
    peers = [r for lib, r in libs.items() if not _is_ours(lib)]
    ratios, min_ratios = {}, {}
    if peers:
        best = min(r["median"] for r in peers)
        best_min = min(r.get("min", r["median"]) for r in peers)
        for lib, r in libs.items():
            if _is_ours(lib):
                ratios[lib] = r["median"] / best
                min_ratios[lib] = r.get("min", r["median"]) / best_min
    targets = [r["target"] for r in libs.values() if r.get("target") is not None]
    target = targets[0] if targets else None
    if target is None or not ratios:
        status = ""
    else:
        status = "met" if all(v <= target for v in ratios.values()) else "**missed**"
    return ratios, target, status, min_ratios


def _ratio_text(ratios: dict[str, float]) -> str:
    if len(ratios) > 1:
        return ", ".join(f"{lib.removeprefix('evostrat-')} {v:.2f}" for lib, v in ratios.items())
    return ", ".join(f"{v:.2f}" for v in ratios.values())


def _table(suite: str, cases: dict[str, dict[str, Row]]) -> list[str]:
    libraries = sorted({lib for libs in cases.values() for lib in libs},
                       key=lambda lib: (not _is_ours(lib), lib))
    lines = [f"### {suite}", "",
             "| case | " + " | ".join(libraries) + " | ratio | target | status | ratio of mins |",
             "|---|" + "---:|" * len(libraries) + "---:|---:|---|---:|"]
    ordered = sorted(cases.items(), key=lambda kv: _case_key(next(iter(kv[1].values()))))
    for case, libs in ordered:
        ratios, target, status, min_ratios = _compare(libs)
        cells = [format_seconds(libs[lib]["median"]) if lib in libs else "" for lib in libraries]
        lines.append(f"| {case} | " + " | ".join(cells)
                     + f" | {_ratio_text(ratios)} | {'' if target is None else f'<= {target:g}'} "
                     + f"| {status} | {_ratio_text(min_ratios)} |")
    return lines + [""]


def _quality_table(suite: str, cases: dict[str, dict[str, Row]]) -> list[str]:
    """Evaluations to the target (median over the successful runs) and time per run."""
    libraries = sorted({lib for libs in cases.values() for lib in libs},
                       key=lambda lib: (not _is_ours(lib), lib))
    lines = [f"### {suite}: evaluations to f < 1e-8 (median over successful runs; successes/runs)",
             "", "| problem | " + " | ".join(libraries) + " | evaluations ratio | time per run |",
             "|---|" + "---:|" * len(libraries) + "---:|---|"]
    for case, libs in sorted(cases.items()):
        cells, peers = [], []
        for lib in libraries:
            r = libs.get(lib)
            if r is None or r.get("evals_median") is None:
                cells.append("" if r is None else f"- ({r.get('successes')}/{r.get('runs')})")
                continue
            cells.append(f"{r['evals_median']:g} ({r['successes']}/{r['runs']})")
            if not _is_ours(lib):
                peers.append(r["evals_median"])
        ours = [r["evals_median"] for lib, r in libs.items()
                if _is_ours(lib) and r.get("evals_median") is not None]
        ratio = f"{ours[0] / min(peers):.2f}" if ours and peers else ""
        times = ", ".join(f"{lib} {format_seconds(r['median'])}" for lib, r in sorted(libs.items()))
        lines.append(f"| {case} | " + " | ".join(cells) + f" | {ratio} | {times} |")
    return lines + [""]


def _memory_table(suite: str, cases: dict[str, dict[str, Row]]) -> list[str]:
    """Peak memory of one generation against the size of the plain population."""
    lines = [f"### {suite}: peak memory of one generation (tracemalloc)", "",
             "| case | peak | peak / (8 d) | population as an array | time |",
             "|---|---:|---:|---:|---:|"]
    rows = sorted((r for libs in cases.values() for r in libs.values()), key=_case_key)
    for r in rows:
        dim = r.get("dim") or 1
        lines.append(f"| {r['case']} | {r['peak_bytes'] / 2**20:.1f} MiB | "
                     f"{r['peak_bytes'] / (8 * dim):.1f} | {r['population_bytes'] / 2**20:.0f} MiB | "
                     f"{format_seconds(r['median'])} |")
    return lines + [""]


def _compile_table(rows: Iterable[Row]) -> list[str]:
    by_case: dict[tuple, dict[str, float]] = defaultdict(dict)
    for row in rows:
        if row.get("compile_s") is not None:
            by_case[(row["suite"], row["case"], _case_key(row))][row["library"]] = row["compile_s"]
    if not by_case:
        return []
    libraries = sorted({lib for libs in by_case.values() for lib in libs},
                       key=lambda lib: (not _is_ours(lib), lib))
    lines = ["### JAX compilation (jit of the whole scan, seconds, not in the times above)", "",
             "| suite | case | " + " | ".join(libraries) + " |",
             "|---|---|" + "---:|" * len(libraries)]
    for (suite, case, _), libs in sorted(by_case.items(), key=lambda kv: (_suite_key(kv[0][0]), kv[0][2])):
        lines.append(f"| {suite} | {case} | "
                     + " | ".join(f"{libs[lib]:.2f}" if lib in libs else "" for lib in libraries) + " |")
    return lines + [""]


def _targets(grouped: dict[str, dict[str, dict[str, Row]]]) -> list[str]:
    met, missed = 0, []
    for suite, cases in grouped.items():
        for case, libs in cases.items():
            ratios, target, status, min_ratios = _compare(libs)
            if status == "met":
                met += 1
            elif status:
                worst, worst_min = max(ratios.values()), max(min_ratios.values())
                note = " (met by the fastest rounds)" if worst_min <= target else ""
                missed.append(f"- {suite} {case}: {worst:.2f}, fastest rounds {worst_min:.2f} "
                              f"(target <= {target:g}){note}")
    lines = ["### Targets", "", f"{met} rows meet their target, {len(missed)} miss it."]
    if missed:
        lines += ["", "Missed:", ""] + missed
    return lines + [""]


def _machine(data: dict) -> list[str]:
    info = data.get("machine_info") or {}
    cpu = info.get("cpu") or {}
    parts = [f"- date: {data.get('datetime', '?')}",
             f"- CPU: {cpu.get('brand_raw', '?')} ({cpu.get('count', '?')} logical cores), "
             f"{info.get('system', '?')} {info.get('release', '')}",
             f"- Python {info.get('python_version', '?')} ({info.get('python_implementation', '')})"]
    commit = data.get("commit_info") or {}
    if commit.get("id"):
        parts.append(f"- commit {commit['id'][:12]}{' (dirty)' if commit.get('dirty') else ''}")
    return ["### Machine", ""] + parts + [""]


def render(data: dict, title: str = "Per-generation time (median)") -> str:
    """The markdown report of a parsed pytest-benchmark JSON document."""
    rows = load_rows(data)
    grouped: dict[str, dict[str, dict[str, Row]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        grouped[row["suite"]][row["case"]][row["library"]] = row
    lines = [f"## {title}", "",
             "Ratio = evostrat / fastest peer (below 1: evostrat is faster); times are "
             "medians per generation; the status compares the ratio of medians with the target; "
             "'ratio of mins' is the same ratio of the fastest rounds (less sensitive to load "
             "from other processes).", ""]
    for suite in sorted(grouped, key=_suite_key):
        quality = any(r.get("evals_median") is not None or r.get("runs")
                      for libs in grouped[suite].values() for r in libs.values())
        memory = all(r.get("peak_bytes") is not None
                     for libs in grouped[suite].values() for r in libs.values())
        render_suite = _memory_table if memory else _quality_table if quality else _table
        lines += render_suite(suite, grouped[suite])
    lines += _compile_table(rows) + _targets(grouped) + _machine(data)
    return "\n".join(lines)


def merge(documents: list[dict]) -> dict:
    """One document of several runs: the first one's machine and date, all benchmarks in order.

    Rows recorded again by a later document replace the earlier ones in :func:`render`.
    """
    merged = dict(documents[0])
    merged["benchmarks"] = [b for doc in documents for b in doc.get("benchmarks", [])]
    return merged


def main(argv: list[str] | None = None) -> int:
    """Command line: ``report.py BENCH.json [-o OUT.md] [--title TITLE]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, nargs="+",
                        help="pytest-benchmark JSON (--benchmark-json); several files are merged, "
                             "a later file's rows replacing an earlier one's (e.g. a GPU run)")
    parser.add_argument("-o", "--output", type=Path, default=None, help="write here (default stdout)")
    parser.add_argument("--title", default="Per-generation time (median)")
    args = parser.parse_args(argv)
    text = render(merge([json.loads(path.read_text()) for path in args.json]), title=args.title)
    if args.output is None:
        sys.stdout.write(text + "\n")
    else:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
