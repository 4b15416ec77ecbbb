"""The host CPU's vector width, which bit-for-bit digests depend on (imported by name: tests/ is on the path).

XLA and torch's CPU kernels vectorise for the widest instruction set of the host, and a
reduction over wider vectors adds in another order: the same program rounds float32 (and
float64) sums differently on an AVX-512 CPU and on an AVX2 one. Tests that compare runs with
recorded digests key them by :func:`vector_isa` and skip on a CPU none was recorded on.
"""

from __future__ import annotations

import platform


def vector_isa() -> str:
    """``"avx512"``, ``"avx2"`` or, without either (or off Linux), the machine's name (``"aarch64"``...)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((set(line.split(":", 1)[1].split()) for line in cpuinfo if line.startswith("flags")), set())
    except OSError:
        flags = set()
    if "avx512f" in flags:
        return "avx512"
    return "avx2" if "avx2" in flags else platform.machine() or "unknown"
