"""``evostrat run --overwrite`` keeps the previous run until the new one has a checkpoint.

The old run's files were removed before the new fit began: a new run that failed in its first
generation (or was interrupted) left the user with neither run. Now they are moved aside
(:func:`evostrat.cli.outdir.replacing`) and come back byte for byte when the new run fails before
its first checkpoint of a finished generation; from that checkpoint on, and after a successful
run, nothing of the old run survives. Links planted among the old files move and come back as
links; their targets are never written or removed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from child_process import child_env

from evostrat.checkpoint import checkpoint_info
from evostrat.cli import main
from evostrat.cli.outdir import recover_overwritten, replacing

OBJECTIVE = """
import os
import time
import numpy as np

HERE = os.path.dirname(__file__)

def f(x):
    with open(os.path.join(HERE, "mode")) as file:
        mode, n = file.read().split()
    with open(os.path.join(HERE, "calls"), "a") as file:
        file.write(".")
    with open(os.path.join(HERE, "calls")) as file:
        if mode != "ok" and len(file.read()) > int(n):
            if mode == "block":  # until killed: the test waits for this file
                open(os.path.join(HERE, "blocked"), "w").close()
                while True:
                    time.sleep(0.05)
            raise KeyboardInterrupt if mode == "interrupt" else RuntimeError("boom")
    return float(np.sum(np.asarray(x) ** 2))
"""
POPSIZE = 7  # snes in 3-D

pytestmark = pytest.mark.filterwarnings("ignore::evostrat.errors.PerCandidateWarning")


def _problem(tmp_path: Path, mode: str, after: int = 0) -> str:
    (tmp_path / "obj.py").write_text(OBJECTIVE)
    (tmp_path / "mode").write_text(f"{mode} {after}")
    (tmp_path / "calls").write_text("")
    return f"{tmp_path / 'obj.py'}:f"


def _args(problem: str, out: Path, seed: int, *extra: str) -> list[str]:
    return ["run", "-s", "snes", "-p", problem, "-d", "3", "--max-generations", "6", "--checkpoint-every", "2",
            "-o", str(out), "--no-progress", "--seed", str(seed), *extra]


def _run(problem: str, out: Path, seed: int, *extra: str) -> int:
    return main(_args(problem, out, seed, *extra))


def _files(out: Path) -> dict[str, bytes | str]:
    """Every entry of ``out``: a file's bytes, a link's target."""
    return {p.name: os.readlink(p) if p.is_symlink() else p.read_bytes() for p in sorted(out.iterdir())}


@pytest.fixture
def old_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    out = tmp_path / "run"
    assert _run(_problem(tmp_path, "ok"), out, 1) == 0
    assert sorted(os.listdir(out)) == ["checkpoint.ckpt", "config.json", "distribution.jsonl", "history.csv",
                                       "result.json"]
    return out


@pytest.mark.parametrize("mode, status, after", [("raise", 1, 0), ("interrupt", 130, 0), ("raise", 1, 3)])
def test_a_new_run_failing_before_its_first_checkpoint_leaves_the_old_run(
        tmp_path: Path, old_run: Path, mode: str, status: int, after: int) -> None:
    """Was: checkpoint.ckpt and result.json removed, config.json, history.csv and distribution.jsonl
    those of the failed run: neither run survived."""
    before = _files(old_run)
    assert _run(_problem(tmp_path, mode, after), old_run, 2, "--overwrite") == status
    assert _files(old_run) == before  # no hidden folder left either


def test_a_new_run_failing_after_its_first_checkpoint_replaces_the_old_run(tmp_path: Path, old_run: Path) -> None:
    """The failure in generation 4: the periodic checkpoint of generation 2 was written, the final one is of 3."""
    assert _run(_problem(tmp_path, "raise", 3 * POPSIZE + 1), old_run, 2, "--overwrite") == 1
    assert sorted(os.listdir(old_run)) == ["checkpoint.ckpt", "config.json", "distribution.jsonl", "history.csv"]
    assert checkpoint_info(old_run / "checkpoint.ckpt")["n_generations"] == 3
    assert json.loads((old_run / "config.json").read_text())["seed"] == 2
    assert len((old_run / "history.csv").read_text().splitlines()) == 1 + 3


def test_a_successful_overwrite_leaves_only_the_new_run(tmp_path: Path, old_run: Path) -> None:
    (old_run / "search.png").write_bytes(b"old figure")  # a file of the old run the new one does not write
    assert _run(_problem(tmp_path, "ok"), old_run, 2, "--overwrite") == 0
    assert sorted(os.listdir(old_run)) == ["checkpoint.ckpt", "config.json", "distribution.jsonl", "history.csv",
                                           "result.json"]
    assert json.loads((old_run / "result.json").read_text())["seed"] == 2
    assert checkpoint_info(old_run / "checkpoint.ckpt")["user"]["cli"]["seed"] == 2


@pytest.mark.parametrize("mode, status", [("raise", 1), ("ok", 0)])
def test_links_among_the_old_files_move_as_links(tmp_path: Path, old_run: Path, mode: str, status: int) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text("precious\n")
    (old_run / "result.json").unlink()
    (old_run / "result.json").symlink_to(outside)
    before = _files(old_run)
    assert _run(_problem(tmp_path, mode), old_run, 2, "--overwrite") == status
    assert outside.read_text() == "precious\n"
    if mode == "raise":
        assert _files(old_run) == before and (old_run / "result.json").is_symlink()
    else:
        assert not (old_run / "result.json").is_symlink()
        assert json.loads((old_run / "result.json").read_text())["seed"] == 2


def test_replacing_discards_the_old_files_at_the_first_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text("old")
    done = [False]
    with replacing(str(tmp_path), ["result.json", "history.csv"], lambda: done[0]) as check:
        (hidden,) = [p for p in tmp_path.iterdir() if p.name.startswith(".overwritten-")]
        assert (hidden / "result.json").read_text() == "old" and not (tmp_path / "result.json").exists()
        check(None)
        assert hidden.exists()
        done[0] = True
        check(None)  # the new run has a checkpoint: the old files go now, not at the end
        assert not hidden.exists()
    assert os.listdir(tmp_path) == []


def _killed_overwrite(tmp_path: Path, out: Path, after: int) -> list[Path]:
    """``evostrat run --overwrite`` of ``out`` in a process killed with SIGKILL in its objective's call
    ``after + 1``; the ``.overwritten-*`` folders it left."""
    problem = _problem(tmp_path, "block", after)
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "evostrat", *_args(problem, out, 2, "--overwrite")],
                                stdout=log, stderr=subprocess.STDOUT, env=child_env())
    try:
        while not (tmp_path / "blocked").exists():  # no time margin: the objective says when it blocks
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (tmp_path / "blocked").unlink()
    return [p for p in out.iterdir() if p.name.startswith(".overwritten-")]


@pytest.mark.parametrize("then", ["plain", "resume", "overwrite"])
def test_a_run_killed_before_its_first_checkpoint_gets_the_old_run_back(
        tmp_path: Path, old_run: Path, capsys: pytest.CaptureFixture, then: str) -> None:
    """Was: the old run stayed in the hidden folder forever; the next run neither restored nor removed it
    (a plain run then wrote beside it, --resume found no checkpoint, --overwrite moved the killed run's files
    into a second folder). Now any next run of the folder puts the old run back first, and says so."""
    before = _files(old_run)
    assert len(_killed_overwrite(tmp_path, old_run, 0)) == 1
    assert not (old_run / "checkpoint.ckpt").exists()  # killed in its first generation
    capsys.readouterr()
    problem = _problem(tmp_path, "ok")
    if then == "plain":
        with pytest.raises(SystemExit) as exit_:
            _run(problem, old_run, 2)
        assert exit_.value.code == 2 and _files(old_run) == before  # byte for byte, no hidden folder
        err = capsys.readouterr().err
        assert "restored the previous run" in err and "already holds a run" in err
    elif then == "resume":
        assert main(["run", "-p", problem, "-o", str(old_run), "--resume", "--max-generations", "8",
                     "--no-progress"]) == 0
        assert "restored the previous run" in capsys.readouterr().err
        assert checkpoint_info(old_run / "checkpoint.ckpt")["n_generations"] == 8
        assert json.loads((old_run / "result.json").read_text())["resumed_from_generation"] == 6
    else:
        assert _run(problem, old_run, 3, "--overwrite") == 0
        assert json.loads((old_run / "result.json").read_text())["seed"] == 3
    assert not [p for p in old_run.iterdir() if p.name.startswith(".")]


def test_a_run_killed_after_its_first_checkpoint_leaves_the_new_run(
        tmp_path: Path, old_run: Path, capsys: pytest.CaptureFixture) -> None:
    """Killed in generation 3, after the checkpoint of generation 2 and before the old files went: the
    next run removes them (the killed run had replaced the old one) and --resume goes on with the new run."""
    (hidden,) = _killed_overwrite(tmp_path, old_run, 2 * POPSIZE)
    assert checkpoint_info(old_run / "checkpoint.ckpt")["n_generations"] == 2
    assert (hidden / "result.json").exists()
    capsys.readouterr()
    assert main(["run", "-p", _problem(tmp_path, "ok"), "-o", str(old_run), "--resume", "--no-progress"]) == 0
    assert f"removed {hidden}" in capsys.readouterr().err and not hidden.exists()
    result = json.loads((old_run / "result.json").read_text())
    assert result["seed"] == 2 and result["resumed_from_generation"] == 2 and result["n_generations"] == 6


def test_an_overwritten_folder_of_a_live_run_is_left_alone(tmp_path: Path) -> None:
    """A folder whose --overwrite still runs (this process here) is neither restored nor removed."""
    (tmp_path / "result.json").write_text("old")
    with replacing(str(tmp_path), ["result.json"], lambda: False):
        (hidden,) = [p for p in tmp_path.iterdir() if p.name.startswith(".overwritten-")]
        state = json.loads((hidden / ".overwrite.json").read_text())
        assert state["moved"] == ["result.json"] and state["pid"] == os.getpid()
        state["pid"] = os.getppid()  # another live process
        (hidden / ".overwrite.json").write_text(json.dumps(state))
        (note,) = recover_overwritten(str(tmp_path), ["result.json"], "checkpoint.ckpt")
        assert "may still run" in note and (hidden / "result.json").read_text() == "old"
        state["pid"] = os.getpid()
        (hidden / ".overwrite.json").write_text(json.dumps(state))
    assert not hidden.exists()  # the body ended: the old run discarded, as before


@pytest.mark.parametrize("with_state", [False, True])
def test_a_planted_overwritten_folder_neither_deletes_nor_brings_in_other_files(tmp_path: Path,
                                                                                  with_state: bool) -> None:
    """A ``.overwritten-*`` folder planted in an output folder (without ``.overwrite.json``: as if killed while
    moving) made the next run delete the folder's files of the same names (``notes.txt``, the user's own)
    and move the planted ones in their place."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    hidden = out / ".overwritten-planted"
    hidden.mkdir()
    (hidden / "notes.txt").write_text("planted")
    (hidden / "result.json").write_text("{}")
    if with_state:  # of a process here that has ended: settled, were it ours
        import socket

        ended = subprocess.Popen([sys.executable, "-c", "pass"])
        ended.wait()
        state = {"pid": ended.pid, "host": socket.gethostname(), "moved": ["notes.txt", "result.json"]}
        (hidden / ".overwrite.json").write_text(json.dumps(state))
    notes = recover_overwritten(str(out), ["result.json", "config.json"], "checkpoint.ckpt")
    assert "holds files no `evostrat run --overwrite` moves there (notes.txt)" in notes[0]
    assert (out / "notes.txt").read_text() == "mine" and (hidden / "notes.txt").read_text() == "planted"
    assert not (out / "result.json").exists()


def test_a_planted_state_file_nested_past_the_recursion_limit_is_read_as_none(tmp_path: Path) -> None:
    """json.load of a planted ``.overwrite.json`` of 100000 nested lists raised RecursionError: the next
    ``evostrat run`` on the folder ended in a traceback."""
    hidden = tmp_path / ".overwritten-planted"
    hidden.mkdir()
    (hidden / ".overwrite.json").write_text("[" * 100_000 + "]" * 100_000)
    (hidden / "result.json").write_text("{}")
    notes = recover_overwritten(str(tmp_path), ["result.json"], "checkpoint.ckpt")
    assert (tmp_path / "result.json").read_text() == "{}" and "restored the previous run" in notes[0]
