"""SIGTERM and SIGHUP end a command as Ctrl-C does.

By default these signals kill the Python process at once: an ``evostrat run`` stopped by
``kill``, a batch scheduler's time limit or a closed terminal would lose the generations since
its last periodic checkpoint. Inside :func:`terminate_as_interrupt` they raise
:class:`Terminated`, a ``KeyboardInterrupt``, instead: the run goes back to its last finished
generation, writes its final checkpoint and the command exits with ``128 + signal``, as a
shell reports a process the signal killed. A signal the process ignores stays ignored, and a
process forked from the command (a worker) still dies of it as by default.

Examples
--------
>>> import os, signal
>>> from evostrat.cli.signals import Terminated, terminate_as_interrupt
>>> try:
...     with terminate_as_interrupt():
...         os.kill(os.getpid(), signal.SIGTERM)
... except Terminated as err:
...     err.exit_status
143
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Any, Iterator

__all__ = ["Terminated", "terminate_as_interrupt"]


class Terminated(KeyboardInterrupt):
    """A termination signal received by the command: a ``KeyboardInterrupt`` with the signal number.

    Parameters
    ----------
    signum : int
        The signal (``signal.SIGTERM``, ``signal.SIGHUP``).
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """``128 + signum``: the status a shell gives a process the signal killed."""
        return 128 + self.signum


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread.

    Outside the main thread (where handlers cannot be set) the block runs unchanged; the
    previous handlers are restored when it ends.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def terminate(signum: int, frame: Any) -> None:
        if os.getpid() != owner:  # a forked child: the signal's default action (it dies)
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Terminated(signum)

    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, terminate)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)  # None: set outside Python
