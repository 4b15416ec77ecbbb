"""The output folder of a new ``evostrat run``: nothing of a run that failed before its first generation,
and with ``--overwrite`` the previous run kept until the new one has a checkpoint.

A run whose fit fails (a wrong ``-O``, an objective raising on its first population, Ctrl-C)
before its first generation finishes has made no progress: :func:`new_output` then removes the
files of ``names`` that the run created, a checkpoint of that no-progress run, and the folders
it created if they are empty, so that rerunning the same command needs no ``--overwrite``. It
never removes a file or folder that existed before (a folder is removed only when empty), nor
anything once a generation has finished (the checkpoint of real progress is kept).

Examples
--------
>>> import os, tempfile
>>> out = os.path.join(tempfile.mkdtemp(), "runs", "new")
>>> try:
...     with new_output(out, ["config.json"], lambda: 0):
...         open(os.path.join(out, "config.json"), "w").close()
...         raise RuntimeError("the objective raised")
... except RuntimeError:
...     pass
>>> os.path.exists(os.path.dirname(out))
False

With ``--overwrite`` (:func:`replacing`) the previous run's files are moved into a fresh hidden
folder of ``out`` (``.overwritten-*``, made by :func:`tempfile.mkdtemp`; a link moves as the link):
the new run writes its own, and if it fails before its first checkpoint of a finished generation
its files go and the old ones come back unchanged; from that checkpoint on (or its first
generation, without checkpoints) nothing of the old run survives. A run killed (``SIGKILL``, a
crash of the machine) before either leaves that folder; the next ``evostrat run`` on ``out``
settles it first (:func:`recover_overwritten`): the old run comes back when the killed run has no
checkpoint, the folder goes when it has one, as the killed run would have done.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
from typing import Any, Callable, Iterator, Sequence

__all__ = ["new_output", "replacing", "recover_overwritten"]

#: The file of a ``.overwritten-*`` folder naming its process and the files moved (written after the moves)
STATE = ".overwrite.json"
PREFIX = ".overwritten-"


def _missing_folders(out: str) -> list[str]:
    """The folders ``os.makedirs(out)`` creates, deepest first."""
    missing, path = [], os.path.abspath(out)
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        missing.append(path)
        path = os.path.dirname(path)
    return missing


@contextlib.contextmanager
def new_output(out: str, names: Sequence[str], generations: Callable[[], int],
               checkpoint: str | None = None) -> Iterator[None]:
    """Create the folder ``out`` for the body, a new run; if the body raises while
    ``generations()`` is 0, remove what it created there.

    Parameters
    ----------
    out : str
        The output folder (created with its missing parents).
    names : sequence of str
        The files of the run in ``out``: those absent on entry are removed.
    generations : callable
        The run's finished generations (read when the body raises).
    checkpoint : str, optional
        The run's checkpoint file in ``out``, removed whenever present (a previous run's is
        removed before entry, by ``--overwrite``).
    """
    created = _missing_folders(out)
    os.makedirs(out, exist_ok=True)
    before = {name for name in names if os.path.lexists(os.path.join(out, name))}
    try:
        yield
    except BaseException:
        if generations() == 0:
            for name in [*(n for n in names if n not in before), *([checkpoint] if checkpoint else [])]:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(out, name))
            for folder in created:  # deepest first; one that is not empty stays, and so do its parents
                try:
                    os.rmdir(folder)
                except OSError:
                    break
        raise


def _remove(path: str) -> None:
    """Remove the file, link (not its target) or folder ``path`` when there is one."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)  # never follows a link inside either
    elif os.path.lexists(path):
        os.unlink(path)


class _PreviousRun:
    """The files ``names`` of the run in ``out``, moved aside into a fresh hidden folder of ``out``."""

    def __init__(self, out: str, names: Sequence[str]) -> None:
        self.out, self.names = out, list(names)
        self.moved = [name for name in names if os.path.lexists(os.path.join(out, name))]
        self.folder = tempfile.mkdtemp(prefix=PREFIX, dir=out) if self.moved else None
        for name in self.moved:  # os.rename moves a link itself, never its target
            os.rename(os.path.join(out, name), os.path.join(self.folder, name))
        if self.folder is not None:  # whose folder, for a later run if this one is killed
            with open(os.path.join(self.folder, STATE), "x", encoding="utf-8") as file:
                json.dump({"pid": os.getpid(), "host": socket.gethostname(), "moved": self.moved}, file)

    def discard(self) -> None:
        """The new run has a checkpoint: remove the old run's files."""
        if self.folder is not None:
            shutil.rmtree(self.folder)
            self.folder = None

    def put_back(self) -> None:
        """The new run failed before its first checkpoint: remove its files of ``names``, move the old back."""
        if self.folder is None:  # no previous run (or already discarded)
            return
        for name in self.names:
            _remove(os.path.join(self.out, name))
        for name in self.moved:
            os.rename(os.path.join(self.folder, name), os.path.join(self.out, name))
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(self.folder, STATE))
        os.rmdir(self.folder)
        self.folder = None


@contextlib.contextmanager
def replacing(out: str, names: Sequence[str], saved: Callable[[], bool]) -> Iterator[Callable[[Any], None]]:
    """Replace the run in ``out`` (``--overwrite``) once the new run, the body, has ``saved()`` its
    progress; yield a callback that checks ``saved()`` after each generation.

    Parameters
    ----------
    out : str
        The output folder (existing or not).
    names : sequence of str
        The files of a run in ``out``: the previous run's are moved aside on entry.
    saved : callable
        Whether the new run has written a checkpoint of a finished generation (its first
        generation, without checkpoints).

    The old files are removed as soon as ``saved()`` holds, and when the body ends without
    error; if the body raises before, the new run's files of ``names`` are removed and the old
    ones put back.
    """
    previous = _PreviousRun(out, names if os.path.isdir(out) else ())

    def check(_es: Any = None) -> None:
        if previous.folder is not None and saved():
            previous.discard()

    try:
        yield check
    except BaseException:
        if saved():
            previous.discard()
        else:
            previous.put_back()
        raise
    previous.discard()


def _owner_runs(state: dict[str, Any] | None) -> bool:
    """Whether the process that made a ``.overwritten-*`` folder (its ``state``) may still run: on this
    machine, a live process of that id; on another machine (or on Windows), it cannot be told (so it may)."""
    if state is None:
        return False  # killed while moving the files, or a folder of an older evostrat
    if state.get("host") != socket.gethostname() or os.name == "nt":  # Windows: os.kill(pid, 0) would end it
        return True
    pid = state.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's live process
        return True
    return True


def _state(folder: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(folder, STATE), "rb") as file:
            state = json.loads(file.read(1 << 20))  # ours is a line: a larger or deeper file is not
    except (OSError, ValueError, RecursionError):
        return None
    return state if isinstance(state, dict) else None


def recover_overwritten(out: str, names: Sequence[str], checkpoint: str) -> list[str]:
    """Settle the ``.overwritten-*`` folders that an ``--overwrite`` killed mid-way left in ``out``;
    return what was done, one sentence each (for the user).

    Parameters
    ----------
    out : str
        The output folder.
    names : sequence of str
        The files of a run in ``out`` (those :func:`replacing` moves).
    checkpoint : str
        The run's checkpoint file in ``out``.

    Notes
    -----
    A folder whose process still runs is left as it is. Otherwise, if ``out`` holds a checkpoint,
    the killed run had one: the folder is removed (as :func:`replacing` would have). If not,
    the killed run made no saved progress: its files of ``names`` are removed and the old run's
    are moved back (where the move itself was cut short, only the files moved come back). Two
    or more such folders, and one holding anything but files of ``names`` (not made by
    :func:`replacing`: planted), are left for the user, named in the answer, and ``out`` as it is.
    """
    if not os.path.isdir(out):
        return []
    folders = sorted(os.path.join(out, name) for name in os.listdir(out) if name.startswith(PREFIX)
                     and os.path.isdir(os.path.join(out, name)) and not os.path.islink(os.path.join(out, name)))
    notes, pending = [], []
    for folder in folders:
        state = _state(folder)
        if _owner_runs(state):
            notes.append(f"{folder} holds the previous run of an `evostrat run --overwrite` that may still run "
                         f"(process {state.get('pid')} on {state.get('host')}); left as it is")
        elif os.path.lexists(os.path.join(out, checkpoint)):
            shutil.rmtree(folder)
            notes.append(f"removed {folder}: the run replaced by an `evostrat run --overwrite` that was killed "
                         "after its first checkpoint")
        else:
            pending.append((folder, state))
    if len(pending) > 1:
        notes += [f"{folder} holds a previous run moved aside by an `evostrat run --overwrite` that was killed; "
                  f"move its files back into {out} or remove it" for folder, _ in pending]
    elif pending:
        (folder, state), = pending
        found = [name for name in os.listdir(folder) if name != STATE]
        foreign = sorted(set(found) - set(names))  # never moved there by replacing(): not ours to settle
        if foreign:
            return notes + [f"{folder} holds files no `evostrat run --overwrite` moves there ({', '.join(foreign)}); "
                            f"left as it is, with {out}"]
        moved = found
        for name in (names if state is not None else moved):  # the killed run's files (all: the move was done)
            _remove(os.path.join(out, name))
        for name in moved:
            os.rename(os.path.join(folder, name), os.path.join(out, name))
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(folder, STATE))
        os.rmdir(folder)
        if moved:
            notes.append(f"restored the previous run ({', '.join(sorted(moved))}) from {folder}: an "
                         "`evostrat run --overwrite` was killed before its first checkpoint")
    return notes
