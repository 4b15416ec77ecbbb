"""Child processes of the tests: a nested pytest's environment, a package installed into a folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def child_env(**extra: str) -> dict[str, str]:
    """``os.environ`` without what pytest and pytest-xdist set for the running session, plus
    ``extra``: a nested pytest (``evostrat bench``, an example's tests) is a session of its own,
    and pytest-benchmark refuses ``--benchmark-only`` where ``PYTEST_XDIST_WORKER`` is set.

    Examples
    --------
    >>> "PYTEST_CURRENT_TEST" in child_env(), child_env(A="1")["A"]
    (False, '1')
    """
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("PYTEST_XDIST_") or k in ("PYTEST_CURRENT_TEST", "PYTEST_VERSION"))}
    env.update(extra)
    return env


def private_copy(source: Path, folder: Path) -> Path:
    """``source`` copied into ``folder`` without build outputs: setuptools builds in the source
    tree, so two test processes installing the example at once would share its ``build/``."""
    copy = folder / source.name
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    return copy


def pip_install(source: Path, target: Path) -> None:
    """``pip install --target target source``, without dependencies or build isolation."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True, capture_output=True, text=True,
    )
