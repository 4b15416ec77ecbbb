"""Hypothesis settings and case counting shared by the reliability suites.

``tests/test_fuzz_strategies.py``, ``tests/test_numerical_safety.py`` and
``tests/test_determinism.py`` take their settings from :func:`fuzz_settings`,
so CI time is bounded and every run draws the same examples:

- profile ``"evostrat-ci"`` (the default): a fixed seed per test and
  parametrisation (:func:`fixed_seed`: the CRC-32 of the test id, so every
  strategy/backend pair draws its own examples, the same ones in every run),
  no example database, ``deadline=None`` (JAX compiles on first use; wall time
  is never asserted), and the number of examples each test states;
- profile ``"evostrat-soak"`` (``EVOSTRAT_HYPOTHESIS_PROFILE=evostrat-soak``):
  ``EVOSTRAT_HYPOTHESIS_SCALE`` (default 20) times as many examples, randomised,
  for local soak runs. Failures print a reproduction blob either way.

Every executed example is counted in :data:`CASES` (per suite); the
``pytest_terminal_summary`` hook in ``tests/conftest.py`` prints the totals at
the end of the run, e.g. ``hypothesis cases run: fuzz=300``.
"""

from __future__ import annotations

import os
import zlib
from collections import Counter
from typing import Any, Callable

from hypothesis import HealthCheck, seed, settings

__all__ = ["CASES", "PROFILE", "SCALE", "fuzz_settings", "fixed_seed", "count_case"]

_COMMON = dict(
    deadline=None,
    print_blob=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
settings.register_profile("evostrat-ci", derandomize=False, **_COMMON)
settings.register_profile("evostrat-soak", derandomize=False, **_COMMON)

#: The active profile (``EVOSTRAT_HYPOTHESIS_PROFILE``, default ``"evostrat-ci"``).
PROFILE = os.environ.get("EVOSTRAT_HYPOTHESIS_PROFILE", "evostrat-ci")
if PROFILE not in ("evostrat-ci", "evostrat-soak"):
    raise ValueError(
        f"EVOSTRAT_HYPOTHESIS_PROFILE must be 'evostrat-ci' or 'evostrat-soak', got {PROFILE!r}"
    )
#: Multiplier of every test's stated number of examples (1 in CI).
SCALE = int(os.environ.get("EVOSTRAT_HYPOTHESIS_SCALE", "20")) if PROFILE == "evostrat-soak" else 1

#: Executed hypothesis examples per suite name, reported at the end of the session.
CASES: Counter[str] = Counter()


def fuzz_settings(max_examples: int) -> settings:
    """Settings of the active profile with ``max_examples`` (times :data:`SCALE`)."""
    return settings(settings.get_profile(PROFILE), max_examples=max_examples * SCALE)


def fixed_seed(*parts: Any) -> Callable:
    """``hypothesis.seed`` from ``parts`` (test name, strategy, backend) in CI; random when soaking."""
    if PROFILE == "evostrat-soak":
        return lambda test: test
    return seed(zlib.crc32("/".join(map(str, parts)).encode()))


def count_case(suite: str) -> None:
    """Record one executed example of ``suite``."""
    CASES[suite] += 1
