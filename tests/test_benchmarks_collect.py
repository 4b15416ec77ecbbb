"""`make bench` collects every benchmark module (a collection error stops the whole run), and
the benchmarks run untimed (`--benchmark-disable`) as a smoke test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_suite_collects_without_errors() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "error" not in done.stdout.splitlines()[-1].lower()
    assert "test_run_overhead.py" in done.stdout


def test_benchmarks_run_as_a_smoke_test_with_timing_disabled() -> None:
    """`--benchmark-disable` runs each benchmark once, untimed: the `record` fixture and the
    benchmarks' own checks must not assume the timed rounds."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/test_run_overhead.py", "benchmarks/test_nes_demo_speed.py",
         "-k", "numpy or nes_mean", "-q", "-p", "no:cacheprovider", "--benchmark-disable"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1]
