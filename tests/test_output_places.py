"""Places a run cannot write (a read-only folder, a file where a folder should be, a full disk):
an :class:`~evostrat.errors.OutputError` naming the argument and the path, before the run starts
where it can be told, and a failed checkpoint write leaves the previous checkpoint whole, resumable
to the uninterrupted run's result bit for bit."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from evostrat import ES, OutputError
from evostrat.checkpoint import checkpoint_info
from evostrat.cli import main


def counted():
    calls = []

    def sphere(X):
        calls.append(len(X))
        return (np.asarray(X) ** 2).sum(axis=1)

    return sphere, calls


def _read_only(folder, monkeypatch) -> None:
    """``folder`` made read-only; as root (where a mode does not stop writes) creating files in it
    fails as on a read-only mount."""
    folder.chmod(0o555)
    probe = folder / ".can-i-write"
    try:
        probe.touch()
    except PermissionError:
        return
    probe.unlink()  # root: simulated
    real = os.open

    def refuse(path, flags, *args, **kwargs):
        if os.path.dirname(os.path.abspath(os.fspath(path))) == str(folder) and flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)


def test_checkpoint_under_a_file_is_refused_before_the_first_evaluation(tmp_path) -> None:
    """A ``checkpoint=`` inside a file failed with a bare FileExistsError at the first checkpoint,
    after the first generation (or ``every`` generations) had been evaluated."""
    (tmp_path / "notes.txt").write_text("x")
    objective, calls = counted()
    path = tmp_path / "notes.txt" / "runs" / "run.ckpt"
    with pytest.raises(OutputError, match=r"checkpoint '.*run\.ckpt' cannot be written: '.*notes\.txt' is not a "
                                          r"folder") as err:
        ES("snes", max_generations=50, random_state=0).fit(objective, np.ones(3), checkpoint=path,
                                                           checkpoint_every=20)
    assert calls == [] and isinstance(err.value, OSError)


def test_read_only_checkpoint_folder_is_refused_before_the_first_evaluation(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    _read_only(folder, monkeypatch)
    objective, calls = counted()
    try:
        with pytest.raises(OutputError, match=r"checkpoint '.*ro/run\.ckpt' \(in '.*ro'\) cannot be written \("):
            ES("snes", max_generations=50, random_state=0).fit(objective, np.ones(3), checkpoint=folder / "run.ckpt",
                                                               checkpoint_every=20)
        assert calls == []
    finally:
        folder.chmod(0o755)


def test_full_disk_keeps_the_previous_checkpoint_and_the_run_resumes_exactly(tmp_path, monkeypatch) -> None:
    """A write that fails (ENOSPC) raised a bare OSError; now an OutputError naming the file, its errno
    kept, the previous checkpoint whole and no temporary file left: resuming gives the uninterrupted run."""
    path = tmp_path / "run.ckpt"
    reference = ES("cma_es", max_generations=12, random_state=3).fit(lambda X: (X ** 2).sum(axis=1), np.ones(4))
    real_fsync, writes = os.fsync, []

    def full(fd):
        writes.append(fd)
        if len(writes) >= 2:  # the checkpoint of generation 6 on
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError, match=r"checkpoint '.*run\.ckpt' cannot be written \(No space left on device\); "
                                          r"the file there, if any, is unchanged") as err:
        ES("cma_es", max_generations=12, random_state=3).fit(lambda X: (X ** 2).sum(axis=1), np.ones(4),
                                                             checkpoint=path, checkpoint_every=3)
    assert err.value.errno == errno.ENOSPC
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert checkpoint_info(path)["n_generations"] == 3
    assert sorted(os.listdir(tmp_path)) == ["run.ckpt"]
    resumed = ES.resume(path, lambda X: (X ** 2).sum(axis=1))
    assert resumed.n_generations_ == 12 and resumed.fun_ == reference.fun_
    np.testing.assert_array_equal(resumed.x_, reference.x_)


def test_save_checkpoint_on_a_full_disk_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch) -> None:
    from evostrat.checkpoint import load_checkpoint, save_checkpoint

    es = ES("snes", random_state=0).initialize(np.zeros(3))
    path = tmp_path / "a.ckpt"
    save_checkpoint(es, path)
    before = path.read_bytes()
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left")))
    with pytest.raises(OutputError, match=rf"checkpoint {str(path)!r} cannot be written \(No space left\)"):
        save_checkpoint(es, path)
    assert path.read_bytes() == before and load_checkpoint(path).n_generations_ == 0


@pytest.mark.parametrize("make", ["csv", "jsonl", "recorder"])
def test_logger_files_that_cannot_be_written_name_the_logger_before_the_first_evaluation(
        tmp_path, monkeypatch, make) -> None:
    """A logger's file inside a file, or in a read-only folder, raised a bare FileExistsError,
    NotADirectoryError or PermissionError."""
    from evostrat.callbacks import CSVLogger, DistributionRecorder, JSONLinesLogger

    kinds = {"csv": (CSVLogger, "logger"), "jsonl": (JSONLinesLogger, "logger"),
             "recorder": (lambda path: DistributionRecorder(path=path), "recorder")}
    cls, owner = kinds[make]
    (tmp_path / "notes.txt").write_text("x")
    folder = tmp_path / "ro"
    folder.mkdir()
    for path, reason in ((tmp_path / "notes.txt" / "logs" / "log.txt", r"\(Not a directory\)|\(File exists\)"),
                         (folder / "log.txt", r"\((Read-only file system|Permission denied)\)")):
        if path.parent == folder:
            _read_only(folder, monkeypatch)
        objective, calls = counted()
        try:
            with pytest.raises(OutputError, match=rf"the {owner}'s file {str(path)!r} cannot be written {reason}"):
                ES("snes", max_generations=3, random_state=0).fit(objective, np.ones(3), callbacks=[cls(path)])
        finally:
            folder.chmod(0o755)
        assert calls == []


def test_cli_read_only_output_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    _read_only(folder, monkeypatch)
    try:
        assert main(["run", "-s", "snes", "-d", "3", "--max-generations", "3", "-o", str(folder / "run"),
                     "--no-progress"]) == 1
        assert f"--output {str(folder / 'run')!r} (in {str(folder)!r}) cannot be written (" in capsys.readouterr().err
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o755)
