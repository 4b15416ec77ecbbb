"""XLA compilations counted in tests: :func:`compiles` is the number so far in this process.

JAX records the event for a program read from its persistent compilation cache too (the suite
shares one between its processes: ``tests/conftest.py``), so a cache read counts as a
compilation: the process needed a new executable either way.

Import it after ``pytest.importorskip("jax")``; the listener is registered once, however many
test modules import it.
"""

from __future__ import annotations

from typing import Any

import jax

#: The event JAX records for each backend compilation.
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"

_seen: list[str] = []


def _listen(name: str, secs: float, **kwargs: Any) -> None:
    if name == COMPILE_EVENT:
        _seen.append(name)


jax.monitoring.register_event_duration_secs_listener(_listen)


def compiles() -> int:
    """XLA compilations since the first import of this module."""
    return len(_seen)
