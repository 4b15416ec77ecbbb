"""Run-folder files (issue 16, items 3, 6 and 10).

- ``evostrat run --resume -o DIR`` never writes through symbolic links planted in
  ``DIR`` (``history.csv``, ``result.json`` and its old temporary name, the checkpoint
  and temporary names of every kind): links are refused (``history.csv``) or replaced,
  and files outside the folder stay as they were.
- The file loggers refuse a symlinked output file, naming it.
- Temporary files of writes killed mid-way (``.ckpt-<name>-<hex>.tmp``) are removed
  by the next write and by ``--resume``: only regular files of our own pattern, never
  links or other files.
- A damaged checkpoint or a tampered saved configuration makes ``--resume`` print a
  ``CheckpointError`` naming the file, without a traceback.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evostrat import ES
from evostrat.callbacks import CSVLogger, JSONLinesLogger
from evostrat.checkpoint import checkpoint_info, read_checkpoint, save_checkpoint
from evostrat.checkpoint.format import write_checkpoint
from evostrat.cli import main
from evostrat.cli.run import CONFIG_DEFAULTS
from evostrat.errors import InvalidArgumentError, OutputError
from evostrat.problems import sphere

SCRIPT = Path(sys.executable).with_name("evostrat")
BASE = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "evostrat"]
CONFIG = {**CONFIG_DEFAULTS, "strategy": "snes", "problem": "sphere", "dim": 3, "max_generations": 12,
          "checkpoint_every": 5, "seed": 1}


def _killed_run(out: Path) -> Path:
    """The folder ``evostrat run`` leaves when killed after its checkpoint at generation 5."""
    es = ES("snes", max_generations=12, random_state=1).initialize(np.full(3, 3.0))
    for _ in range(5):
        X = es.ask()
        es.tell(X, sphere(X))
    out.mkdir()
    save_checkpoint(es, out / "checkpoint.ckpt", metadata={"cli": CONFIG})
    (out / "config.json").write_text(json.dumps(CONFIG))
    (out / "history.csv").write_text("generation\n1\n")
    return out


def _outside(tmp_path: Path, name: str) -> Path:
    target = tmp_path / "outside" / name
    target.parent.mkdir(exist_ok=True)
    target.write_text(f"precious {name}\n")
    return target


def _resume(out: Path, *extra: str) -> int:
    return main(["run", "--resume", "-o", str(out), "--no-progress", *extra])


# -- item 6: links in the run folder ---------------------------------------------------------
def test_resume_refuses_a_symlinked_history_file_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = _killed_run(tmp_path / "run")
    target = _outside(tmp_path, "history.csv")
    (out / "history.csv").unlink()
    (out / "history.csv").symlink_to(target)
    assert _resume(out) != 0
    err = capsys.readouterr().err
    assert "history.csv" in err and "symbolic link" in err and "Traceback" not in err
    assert target.read_text() == "precious history.csv\n"


def test_resume_never_writes_through_planted_links(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = _killed_run(tmp_path / "run")
    planted = ["result.json", "result.json.tmp", "config.json", ".result.json-000000000000.tmp",
               ".ckpt-checkpoint.ckpt-000000000000.tmp", ".ckpt-checkpoint.ckpt-abcdef012345.tmp",
               ".ckpt-a1b2c3d4.tmp", "checkpoint.ckpt.tmp"]
    targets = {}
    for name in planted:
        targets[name] = _outside(tmp_path, name.strip("."))
        if (out / name).exists():
            (out / name).unlink()
        (out / name).symlink_to(targets[name])
    assert _resume(out) == 0, capsys.readouterr().err
    for name, target in targets.items():
        assert target.read_text() == f"precious {name.strip('.')}\n", name
    for name in planted[1:]:  # the temporary names are left alone: never opened, never removed
        assert (out / name).is_symlink(), name
    assert not (out / "result.json").is_symlink()  # replaced, not written through
    assert json.loads((out / "result.json").read_text())["n_generations"] == 12
    assert checkpoint_info(out / "checkpoint.ckpt")["n_generations"] == 12
    assert (out / "history.csv").read_text().count("\n") == 13


def test_a_symlinked_checkpoint_is_read_then_replaced_not_written_through(tmp_path: Path) -> None:
    out = _killed_run(tmp_path / "run")
    outside = tmp_path / "elsewhere.ckpt"
    os.replace(out / "checkpoint.ckpt", outside)
    (out / "checkpoint.ckpt").symlink_to(outside)
    before = outside.read_bytes()
    assert _resume(out) == 0
    assert outside.read_bytes() == before
    assert not (out / "checkpoint.ckpt").is_symlink()
    assert checkpoint_info(out / "checkpoint.ckpt")["n_generations"] == 12


def test_resume_with_plots_replaces_a_linked_figure(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = _killed_run(tmp_path / "run")
    target = _outside(tmp_path, "convergence.png")
    (out / "convergence.png").symlink_to(target)
    assert _resume(out, "--plot") == 0
    assert target.read_text() == "precious convergence.png\n"
    assert (out / "convergence.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("logger", [CSVLogger, JSONLinesLogger])
@pytest.mark.parametrize("dangling", [False, True])
def test_file_loggers_refuse_a_symlinked_file(tmp_path: Path, logger: type, dangling: bool) -> None:
    target = tmp_path / "outside.txt"
    if not dangling:
        target.write_text("precious\n")
    link = tmp_path / "log"
    link.symlink_to(target)
    with pytest.raises(InvalidArgumentError, match="symbolic link") as info:
        ES("snes", max_generations=3, random_state=0).fit(sphere, np.ones(2), callbacks=[logger(link)])
    assert str(link) in str(info.value)
    assert (target.read_text() == "precious\n") if not dangling else not target.exists()


def test_a_planted_link_at_the_temporary_name_is_never_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = _outside(tmp_path, "victim")
    (tmp_path / ".ckpt-a.ckpt-000000000000.tmp").symlink_to(target)
    monkeypatch.setattr(secrets, "token_hex", lambda n: "0" * (2 * n))  # the attacker guessed the name
    with pytest.raises(OutputError, match=r"checkpoint .*a\.ckpt' cannot be written \(File exists\)") as err:
        write_checkpoint(tmp_path / "a.ckpt", {}, {"x": np.ones(2)})
    assert err.value.errno == errno.EEXIST  # an OSError of the system's code (was a bare FileExistsError)
    assert target.read_text() == "precious victim\n" and not (tmp_path / "a.ckpt").exists()


# -- item 10: temporary files of killed writes ------------------------------------------------
def _litter(folder: Path, tmp_path: Path) -> tuple[list[str], list[str]]:
    """Stale temporary files of ``run.ckpt`` (to remove) and look-alikes (to keep)."""
    stale = [".ckpt-run.ckpt-0123456789ab.tmp", ".ckpt-run.ckpt-ffffffffffff.tmp"]
    keep = [".ckpt-other.ckpt-0123456789ab.tmp", ".ckpt-run.ckpt-0123456789ab.tmp.keep", "notes.tmp",
            ".ckpt-run.ckpt-xyz.tmp"]
    for name in stale + keep:
        (folder / name).write_bytes(b"partial")
    (folder / ".ckpt-run.ckpt-aaaaaaaaaaaa.tmp").symlink_to(_outside(tmp_path, "linked"))
    (folder / ".ckpt-run.ckpt-bbbbbbbbbbbb.tmp").mkdir()
    return stale, keep + [".ckpt-run.ckpt-aaaaaaaaaaaa.tmp", ".ckpt-run.ckpt-bbbbbbbbbbbb.tmp"]


def test_next_write_removes_only_our_own_stale_temporaries(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    stale, keep = _litter(folder, tmp_path)
    save_checkpoint(ES("snes", random_state=0).initialize(np.zeros(2)), folder / "run.ckpt")
    names = set(os.listdir(folder))
    assert names == {"run.ckpt", *keep}, names - {"run.ckpt", *keep}
    assert (tmp_path / "outside" / "linked").read_text() == "precious linked\n"


def test_a_write_killed_mid_way_is_cleaned_up_by_resume(tmp_path: Path) -> None:
    out = _killed_run(tmp_path / "run")
    before = (out / "checkpoint.ckpt").read_bytes()
    code = ("import os, sys\nfrom evostrat.checkpoint.format import atomic_file\n"
            "cm = atomic_file(sys.argv[1])\nf = cm.__enter__()\nf.write(b'PK half a checkpoint')\nf.flush()\nos._exit(9)\n")
    subprocess.run([sys.executable, "-c", code, str(out / "checkpoint.ckpt")], check=False, timeout=120)
    left = [n for n in os.listdir(out) if n.startswith(".ckpt-")]
    assert len(left) == 1 and left[0].endswith(".tmp")  # what a kill mid-write leaves
    assert (out / "checkpoint.ckpt").read_bytes() == before  # the checkpoint itself is intact
    assert _resume(out) == 0
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]


def test_resume_cleans_up_even_when_nothing_is_written(tmp_path: Path) -> None:
    out = _killed_run(tmp_path / "run")
    assert _resume(out) == 0  # finished: the next resume writes no checkpoint
    stale = out / ".ckpt-checkpoint.ckpt-0123456789ab.tmp"
    stale.write_bytes(b"partial")
    assert _resume(out) == 0
    assert not stale.exists()


# -- items 3 and 5 through the command line -------------------------------------------------
def test_damaged_checkpoint_resume_prints_the_error_without_traceback(tmp_path: Path) -> None:
    out = _killed_run(tmp_path / "run")
    data = bytearray((out / "checkpoint.ckpt").read_bytes())
    start = 30 + len("metadata.json")  # the first member's compressed data
    data[start:start + 3] = b"\xff\xff\xff"  # an invalid deflate block: zlib.error before the fix
    (out / "checkpoint.ckpt").write_bytes(bytes(data))
    proc = subprocess.run(BASE + ["run", "--resume", "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "CheckpointError" in proc.stderr and str(out / "checkpoint.ckpt") in proc.stderr


@pytest.mark.parametrize("field, value", [("problem", "no_such_problem"), ("dim", "3"), ("seed", [1]),
                                          ("problem", ["sphere"])])
def test_tampered_saved_configuration_is_refused_naming_the_field(
        tmp_path: Path, capsys: pytest.CaptureFixture, field: str, value: object) -> None:
    out, err = _tampered_resume(tmp_path, capsys, field, value)
    assert "CheckpointError" in err and repr(field) in err and str(out / "checkpoint.ckpt") in err
    assert not (out / "result.json").exists()


def _tampered_resume(tmp_path: Path, capsys: pytest.CaptureFixture, field: str, value: object) -> tuple[Path, str]:
    """``--resume`` of a killed run whose saved configuration has ``field`` set to ``value`` (the
    checkpoint's digest recomputed): the folder and stderr, after asserting exit status 1."""
    out = _killed_run(tmp_path / "run")
    meta, arrays = read_checkpoint(out / "checkpoint.ckpt")
    meta["user"]["cli"][field] = value
    write_checkpoint(out / "checkpoint.ckpt", meta, arrays)  # digest recomputed
    assert _resume(out) == 1
    return out, capsys.readouterr().err


@pytest.mark.parametrize("field, value", [("workers", 0), ("workers", -3), ("patience", 0), ("min_delta", -1.0),
                                          ("min_delta", float("inf")), ("checkpoint_every", 0),
                                          ("checkpoint_every", -5), ("x0", []), ("x0", float("nan")),
                                          ("x0", [1.0, float("inf"), 2.0]), ("x0", "@")])
def test_saved_configuration_out_of_the_command_lines_range_is_refused_naming_the_field(
        tmp_path: Path, capsys: pytest.CaptureFixture, field: str, value: object) -> None:
    """The fields that set no ES parameter were only type-checked: workers 0, patience 0 or
    checkpoint_every 0 passed (ZeroDivision or a silent misrun later) where --workers 0 is a usage error."""
    out, err = _tampered_resume(tmp_path, capsys, field, value)
    assert "CheckpointError" in err and f"field {field!r} must be" in err and str(out / "checkpoint.ckpt") in err
    assert "Traceback" not in err
    assert not (out / "result.json").exists()


def test_resume_reports_the_runs_own_strategy_options_not_a_forged_configurations(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The saved configuration's ``strategy_options`` was taken as it was: an edited ``{"lr_mean": 9.0}``
    went into config.json and the next checkpoints of a run that never had it (the run itself used the
    checkpoint's parameters)."""
    out = _killed_run(tmp_path / "run")
    meta, arrays = read_checkpoint(out / "checkpoint.ckpt")
    meta["user"]["cli"]["strategy_options"] = {"lr_mean": 9.0}
    write_checkpoint(out / "checkpoint.ckpt", meta, arrays)  # digest recomputed
    assert _resume(out, "--max-generations", "14") == 0
    assert json.loads((out / "config.json").read_text())["strategy_options"] is None
    assert checkpoint_info(out / "checkpoint.ckpt")["user"]["cli"]["strategy_options"] is None


def test_an_output_that_is_a_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``-o`` naming an existing file ended in a FileExistsError traceback from os.makedirs."""
    (tmp_path / "afile").write_text("mine\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "-d", "2", "--max-evals", "20", "-o", str(tmp_path / "afile"), "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument -o/--output" in err and "exists and is not a folder" in err and "Traceback" not in err
    assert (tmp_path / "afile").read_text() == "mine\n"


# -- a run that fails before its first generation leaves nothing of its own ---------------
OBJECTIVE = """
import os
import numpy as np

def f(x):
    with open(os.path.join(os.path.dirname(__file__), "mode")) as file:
        mode, n = file.read().split()
    if mode != "ok":
        with open(os.path.join(os.path.dirname(__file__), "calls"), "a") as file:
            file.write(".")
        with open(os.path.join(os.path.dirname(__file__), "calls")) as file:
            if len(file.read()) > int(n):
                raise KeyboardInterrupt if mode == "interrupt" else RuntimeError("boom")
    return float(np.sum(np.asarray(x) ** 2))
"""


def _objective(tmp_path: Path, mode: str, after: int = 0) -> str:
    (tmp_path / "obj.py").write_text(OBJECTIVE)
    (tmp_path / "mode").write_text(f"{mode} {after}")
    (tmp_path / "calls").write_text("")
    return f"{tmp_path / 'obj.py'}:f"


def _cmd(problem: str, out: Path, *extra: str) -> list[str]:
    return ["run", "-s", "snes", "-p", problem, "-d", "3", "--max-generations", "6", "--checkpoint-every", "2",
            "-o", str(out), "--no-progress", *extra]


@pytest.mark.parametrize("mode, status", [("raise", 1), ("interrupt", 130)])
def test_a_run_failing_in_its_first_generation_leaves_no_folder_and_reruns_without_overwrite(
        tmp_path: Path, capsys: pytest.CaptureFixture, mode: str, status: int) -> None:
    """config.json, history.csv, distribution.jsonl and a checkpoint of generation 0 stayed: the same
    command then answered "already holds a run (checkpoint.ckpt); pass --resume ... --overwrite"."""
    out = tmp_path / "runs" / "new"
    assert main(_cmd(_objective(tmp_path, mode), out)) == status
    assert not (tmp_path / "runs").exists()  # the folder and the parent it created
    (tmp_path / "mode").write_text("ok 0")
    assert main(_cmd(f"{tmp_path / 'obj.py'}:f", out)) == 0
    assert json.loads((out / "result.json").read_text())["n_generations"] == 6


def test_a_wrong_strategy_option_found_by_the_fit_leaves_no_folder(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["run", "-s", "nes", "-d", "3", "-O", "distribution=typo", "-o", str(out), "--no-progress"]) == 2
    assert "-O distribution must be one of" in capsys.readouterr().err and not out.exists()


def test_a_failing_run_removes_only_its_own_files_from_an_existing_folder(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    (out / "history.csv").write_text("an older file\n")  # was there before: kept
    assert main(_cmd(_objective(tmp_path, "raise"), out)) == 1
    assert sorted(os.listdir(out)) == ["history.csv", "notes.txt"] and (out / "notes.txt").read_text() == "mine\n"
    assert main(_cmd(_objective(tmp_path, "ok"), out)) == 0  # no --overwrite needed
    assert main(_cmd(_objective(tmp_path, "raise"), out, "--overwrite")) == 1  # failed before its first checkpoint
    assert checkpoint_info(out / "checkpoint.ckpt")["n_generations"] == 6  # the old run stays (test_cli_overwrite)
    assert (out / "notes.txt").exists()


def test_a_run_failing_after_real_progress_keeps_its_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    problem = _objective(tmp_path, "raise", after=3 * 7 + 2)  # snes's 7 candidates a generation: in the 4th
    assert main(_cmd(problem, out)) == 1
    assert checkpoint_info(str(out / "checkpoint.ckpt"))["n_generations"] == 3
    assert {"config.json", "history.csv", "distribution.jsonl"} <= set(os.listdir(out))
    (tmp_path / "mode").write_text("ok 0")
    assert main(["run", "--resume", "-p", problem, "-o", str(out), "--no-progress"]) == 0
    assert json.loads((out / "result.json").read_text())["resumed_from_generation"] == 3


def test_resume_of_a_run_saved_before_maximize_existed_minimises(tmp_path: Path) -> None:
    """A checkpoint whose configuration has no "maximize" (written before --maximize) resumes as the
    minimising run it was, not refused as not written by 'evostrat run'."""
    old = {k: v for k, v in CONFIG.items() if k != "maximize"}
    es = ES("snes", max_generations=12, random_state=1).initialize(np.full(3, 3.0))
    for _ in range(5):
        X = es.ask()
        es.tell(X, sphere(X))
    out = tmp_path / "old"
    out.mkdir()
    save_checkpoint(es, out / "checkpoint.ckpt", metadata={"cli": old})
    assert main(["run", "--no-progress", "--resume", "-o", str(out)]) == 0
    want = ES("snes", max_generations=12, random_state=1).fit(sphere, np.full(3, 3.0))
    assert json.loads((out / "result.json").read_text())["fun"] == want.fun_


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("name", ["history.csv", "distribution.jsonl"])
def test_resume_refuses_a_planted_fifo_instead_of_waiting_for_a_reader(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                      name: str) -> None:
    """A FIFO at history.csv made ``--resume`` block in ``open`` forever (no reader ever comes)."""
    import signal

    out = _killed_run(tmp_path / "run")
    (out / name).unlink(missing_ok=True)
    os.mkfifo(out / name)
    before = (out / "checkpoint.ckpt").read_bytes()

    def _blocked(*_: object) -> None:
        raise TimeoutError(f"--resume blocked on the FIFO {name}")

    previous = signal.signal(signal.SIGALRM, _blocked)
    signal.alarm(60)
    try:
        assert _resume(out) == 2
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert f"{name}' is a FIFO" in capsys.readouterr().err
    assert (out / "checkpoint.ckpt").read_bytes() == before


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_file_loggers_refuse_a_fifo_naming_it(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "log.csv")
    with pytest.raises(InvalidArgumentError, match=r"log\.csv' is a FIFO; the logger writes regular files"):
        ES("snes", max_generations=2, random_state=0).fit(sphere, np.ones(2),
                                                          callbacks=[CSVLogger(tmp_path / "log.csv")])


def test_an_edited_saved_configuration_is_reported_as_the_run_it_describes_not_as_edited(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A configuration edited in the checkpoint (strategy, seed, dim, maximize: none of them used by the
    resumed run, which has its own parameters) was printed and written to result.json and config.json as
    the run's: a cma_es run on 9-D, seed 99, maximising, reported for the snes run on 3-D, seed 1."""
    out = _killed_run(tmp_path / "run")
    meta, arrays = read_checkpoint(out / "checkpoint.ckpt")
    meta["user"]["cli"].update(strategy="cma_es", seed=99, dim=9, maximize=True, backend="torch")
    write_checkpoint(out / "checkpoint.ckpt", meta, arrays)  # digest recomputed
    assert _resume(out, "--max-generations", "14") == 0
    printed = capsys.readouterr().out
    assert "snes on 3-D sphere (auto, seed 1)" in printed
    result = json.loads((out / "result.json").read_text())
    assert (result["strategy"], result["dim"], result["seed"], result["backend"]) == ("snes", 3, 1, "auto")
    config = json.loads((out / "config.json").read_text())
    assert (config["strategy"], config["seed"], config["dim"], config["maximize"]) == ("snes", 1, 3, False)
    saved = checkpoint_info(out / "checkpoint.ckpt")["user"]["cli"]
    assert (saved["strategy"], saved["seed"], saved["dim"], saved["maximize"]) == ("snes", 1, 3, False)
    want = ES("snes", max_generations=14, random_state=1).fit(sphere, np.full(3, 3.0))
    assert result["fun"] == want.fun_


def test_an_output_folder_that_cannot_be_made_exits_1_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``-o FILE/run`` (or a read-only or full disk) ended in an OSError traceback; then it printed
    ``NotADirectoryError: [Errno 20] ...`` without naming the option: now an OutputError naming ``--output``
    and the file in the way."""
    (tmp_path / "afile").write_text("")
    status = main(["run", "-s", "snes", "-p", "sphere", "--dim", "2", "--max-evals", "20", "--no-progress",
                   "-o", str(tmp_path / "afile" / "run")])
    assert status == 1
    err = capsys.readouterr().err
    assert (f"evostrat run: error: OutputError: --output {str(tmp_path / 'afile' / 'run')!r} cannot be written: "
            f"{str(tmp_path / 'afile')!r} is not a folder") in err
    assert "Traceback" not in err
