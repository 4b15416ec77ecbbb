"""The ``evostrat`` console script, run as a subprocess: exit codes, output and files.

Includes the crash test: an ``evostrat run`` process is killed with SIGKILL
after it wrote a checkpoint (inside a later IPOP restart), ``evostrat run
--resume`` finishes it, and its result and history equal those of a run that
was never interrupted.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from child_process import child_env

import evostrat
from evostrat.checkpoint import checkpoint_info

SCRIPT = Path(sys.executable).with_name("evostrat")
BASE = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "evostrat"]


def cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(BASE + list(args), capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env=child_env())


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("command, fragment", [
    ([], "COMMAND"),
    (["run"], "--resume"),
    (["demo"], "--dim"),
    (["plugins"], "entry-point group"),
    (["bench"], "pytest-benchmark"),
])
def test_every_command_has_help(command: list[str], fragment: str) -> None:
    out = cli(*command, "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: evostrat") and fragment in out.stdout


@pytest.mark.parametrize("args, message", [
    ([], "the following arguments are required: COMMAND"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["run", "--dim", "0"], "argument -d/--dim: expected a positive integer, got '0'"),
    (["run", "--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),  # was "random_state must be >= 0"
    (["run", "--strategy", "nope"], "argument -s/--strategy: invalid choice: 'nope'"),
    (["run", "--min-delta", "0.1"], "--min-delta needs --patience"),
    (["run", "--resume"], "--resume needs --output DIR"),
    # errors of the Python API name the option typed, not the parameter (were "popsize must be", "device must be")
    (["run", "--popsize", "1", "-d", "2", "-o", "{tmp}"], "evostrat run: error: --popsize must be >= 2 for cma_es, got 1"),
    (["run", "-s", "pgpe", "--popsize", "3", "-d", "2", "-o", "{tmp}"],
     "evostrat run: error: --popsize must be even with mirrored sampling, got 3"),
    (["run", "--device", "foo", "-d", "2", "-o", "{tmp}"], "evostrat run: error: --device must be None or 'cpu'"),
    (["demo", "--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),  # was "random_state must be >= 0"
    (["replay", "run.ckpt", "--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),  # gymnasium's error
    # was "path must end in .gif or .mp4", after loading the checkpoint and playing the episodes
    (["replay", "run.ckpt", "--out", "pong.avi"], "argument --out: expected a .gif or .mp4 file, got 'pong.avi'"),
    (["bench", "--path", "no/such/dir"], "no benchmark suite at 'no/such/dir'"),
    # was numpy's _ArrayMemoryError traceback ("Unable to allocate 7.1e+06 GiB") building the start point
    (["run", "--dim", str(10**15), "-o", "{tmp}"],
     "--dim 1000000000000000: a start point of that many float64 coordinates needs 7.45e+06 GiB, more than"),
])
def test_wrong_arguments_exit_with_2_and_a_clear_message(tmp_path: Path, args: list[str], message: str) -> None:
    out = cli(*[a.replace("{tmp}", str(tmp_path / "o")) for a in args], cwd=tmp_path)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_python_errors_keep_the_parameter_name_the_cli_writes_the_option(tmp_path: Path) -> None:
    from evostrat import ES
    from evostrat.cli.run import as_options
    from evostrat.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match=r"^popsize must be >= 2 for cma_es, got 1$"):
        ES("cma_es", popsize=1).fit(lambda X: (X ** 2).sum(axis=1), [1.0, 1.0])
    assert as_options("random_state must be >= 0, got -1") == "--seed must be >= 0, got -1"
    assert as_options("max_workers must be a positive int") == "--workers must be a positive int"
    assert as_options("resume(max_generations=4) is below") == "--max-generations 4 is below"
    assert as_options("popsizes differ") == "popsizes differ"  # a whole word only


def test_resume_misuse(tmp_path: Path) -> None:
    out = cli("run", "--resume", "-o", str(tmp_path), "--dim", "3")
    assert out.returncode == 2 and "drop --dim" in out.stderr
    out = cli("run", "--resume", "-o", str(tmp_path))
    assert out.returncode == 2 and "no checkpoint" in out.stderr


def test_plugins_lists_packages_and_versions() -> None:
    out = cli("plugins")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["plugin", "package", "version", "provides"]
    strategies = next(line for line in lines if line.startswith("evostrat.strategies"))
    assert evostrat.__version__ in strategies and "cma_es" in strategies and "snes" in strategies


def test_demo_prints_convergence_tables() -> None:
    out = cli("demo", "--dim", "2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("stop: ftarget") == 3 and "best f" in out.stdout


def test_run_writes_history_result_checkpoint_and_plots(tmp_path: Path) -> None:
    out = cli("run", "-s", "cma_es", "-p", "rosenbrock", "-d", "2", "--x0", "-1.5", "--ftarget", "1e-10",
              "--seed", "2", "-o", "out", "--plot", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # stderr is a pipe: no progress bar unless asked
    folder = tmp_path / "out"
    result = json.loads((folder / "result.json").read_text())
    assert result["stop_reason"] == "ftarget" and result["fun"] <= 1e-10 and len(result["x"]) == 2
    assert f"best f = {result['fun']:.6g}" in out.stdout
    rows = _rows(folder / "history.csv")
    assert len(rows) == result["n_generations"] and float(rows[-1]["best"]) == result["fun"]
    assert int(rows[-1]["n_evals"]) == result["n_evals"]
    assert json.loads((folder / "config.json").read_text())["problem"] == "rosenbrock"
    info = checkpoint_info(folder / "checkpoint.ckpt")
    assert (info["n_generations"], info["stop_reason"]) == (result["n_generations"], "ftarget")
    for png in ("convergence.png", "search.png"):
        data = (folder / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_run_refuses_to_overwrite_and_progress_on_request(tmp_path: Path) -> None:
    args = ["run", "-s", "snes", "-p", "sphere", "-d", "3", "--max-generations", "40", "-o", "o"]
    assert cli(*args, "--no-checkpoint", cwd=tmp_path).returncode == 0
    again = cli(*args, cwd=tmp_path)
    assert again.returncode == 2 and "already holds a run" in again.stderr and "--overwrite" in again.stderr
    forced = cli(*args, "--overwrite", "--progress", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "gen 40/40 | evals" in forced.stderr.splitlines()[-1] and "best" in forced.stderr
    assert not (tmp_path / "o" / "search.png").exists()


#: ``python -c`` of an ``evostrat`` command line (``argv[2:]``) whose process SIGKILLs itself right after
#: writing a checkpoint past generation ``argv[1]``.
KILLED_AFTER_CHECKPOINT = """
import os, signal, sys
import evostrat.checkpoint as checkpoint
from evostrat.cli import main

after, write = int(sys.argv[1]), checkpoint.write_checkpoint

def write_then_die(path, meta, arrays):
    write(path, meta, arrays)
    if checkpoint.checkpoint_info(path)["n_generations"] > after:
        os.kill(os.getpid(), signal.SIGKILL)

checkpoint.write_checkpoint = write_then_die
sys.argv = ["evostrat"] + sys.argv[2:]
raise SystemExit(main())
"""


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    config = ["-s", "snes", "-p", "rastrigin", "-d", "8", "--restarts", "ipop", "--max-evals", "12000",
              "--seed", "3", "--checkpoint-every", "25", "--no-progress"]
    whole = cli("run", *config, "-o", "whole", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    expected = json.loads((tmp_path / "whole" / "result.json").read_text())
    first_restart = next(int(r["generation"]) for r in _rows(tmp_path / "whole" / "history.csv")
                         if r["run"] == "1")
    assert expected["restarts"] >= 1 and expected["n_generations"] > first_restart + 100

    ckpt = tmp_path / "killed" / "checkpoint.ckpt"
    # the process is SIGKILLed right after the first checkpoint inside the second run (after the first
    # restart): by itself, from its checkpoint writer, so that no polling races a run that may finish
    # within a poll's interval on a fast machine (it did: "the run finished before it could be killed")
    proc = subprocess.run([sys.executable, "-c", KILLED_AFTER_CHECKPOINT, str(first_restart), "run", *config,
                           "-o", "killed"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=child_env())
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    killed_at = checkpoint_info(ckpt)["n_generations"]
    assert first_restart < killed_at < expected["n_generations"]
    assert not (tmp_path / "killed" / "result.json").exists()

    resumed = cli("run", "--resume", "-o", "killed", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed at generation {killed_at}" in resumed.stdout
    got = json.loads((tmp_path / "killed" / "result.json").read_text())
    for key in ("fun", "x", "n_evals", "n_generations", "stop_reason", "restarts"):
        assert got[key] == expected[key], key
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]  # noqa: E731
    assert strip(_rows(tmp_path / "killed" / "history.csv")) == strip(_rows(tmp_path / "whole" / "history.csv"))


BENCH = '''
def test_fast_sum(benchmark):
    assert benchmark(sum, range(100)) == 4950
'''


def test_bench_runs_the_suite_and_prints_the_table(tmp_path: Path) -> None:
    pytest.importorskip("pytest_benchmark")
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_tiny.py").write_text(BENCH)
    quick = ["--", "--benchmark-max-time=0.01", "--benchmark-warmup=off"]  # passed on to pytest
    out = cli("bench", "--path", "suite", "-k", "fast", "--json", "b.json", *quick, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "test_fast_sum" in out.stdout and "Median" in out.stdout and "1 passed" in out.stdout
    assert json.loads((tmp_path / "b.json").read_text())["benchmarks"][0]["name"] == "test_fast_sum"
    none = cli("bench", "--path", "suite", "-k", "no_such_benchmark", cwd=tmp_path)
    assert none.returncode == 2 and "no benchmark was selected" in none.stderr


@pytest.mark.parametrize("option", ["--json", "--report"])
def test_bench_output_that_cannot_be_written_is_refused_before_the_suites_run(tmp_path: Path, monkeypatch,
                                                                            capsys, option: str) -> None:
    """``--json``/``--report`` inside a file (or naming a folder) failed only after every benchmark had run,
    inside pytest-benchmark or report.py."""
    from evostrat.cli import main

    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "res.json").mkdir()
    monkeypatch.setattr(subprocess, "call", lambda *a, **k: pytest.fail("ran the suites"))
    target = tmp_path / "notes.txt" / "bench.json"
    assert main(["bench", "--path", str(tmp_path), option, str(target)]) == 1
    assert f"OutputError: {option} {str(target)!r} cannot be written: {str(tmp_path / 'notes.txt')!r} is not a " \
           "folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["bench", "--path", str(tmp_path), option, str(tmp_path / "res.json")])
    assert stop.value.code == 2 and f"argument {option}: " in capsys.readouterr().err
