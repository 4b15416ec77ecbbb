"""The output folder of a new ``evostrat run``: nothing of a run that failed before its first generation.

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
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterator, Sequence

__all__ = ["new_output"]


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
