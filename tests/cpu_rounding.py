"""The host CPU's vector width, which bit-for-bit digests depend on (imported by name: tests/ is on the path).

XLA and torch's CPU kernels vectorise for the widest instruction set of the host, and a
reduction over wider vectors adds in another order: the same program rounds float32 (and
float64) sums differently on an AVX-512 CPU and on an AVX2 one. Tests that compare runs with
recorded digests key them by :func:`vector_isa` and skip on a CPU none was recorded on.

torch's CPU wheel computes its matrix products and decompositions with MKL, which takes its
AVX2 code on AMD CPUs whether or not they have AVX-512: on an AMD EPYC with AVX-512 (Zen 4)
torch's CMA-ES trajectories are those of the AVX2 EPYCs, bit for bit, while XLA's are those of
the AVX-512 Xeons. ``vector_isa("torch")`` gives that width.
"""

from __future__ import annotations

import platform


def _cpuinfo() -> tuple[set[str], str]:
    """The first processor's flags and vendor (empty off Linux)."""
    flags, vendor = set(), ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
                elif line.startswith("vendor_id") and not vendor:
                    vendor = line.split(":", 1)[1].strip()
                if flags and vendor:
                    break
    except OSError:
        pass
    return flags, vendor


def vector_isa(library: str = "xla") -> str:
    """``"avx512"``, ``"avx2"`` or, without either (or off Linux), the machine's name (``"aarch64"``...).

    ``library``: ``"xla"`` (JAX; the host's widest set) or ``"torch"`` (MKL's: AVX2 on AMD CPUs).
    """
    flags, vendor = _cpuinfo()
    if "avx512f" in flags and not (library == "torch" and vendor == "AuthenticAMD"):
        return "avx512"
    return "avx2" if "avx2" in flags else platform.machine() or "unknown"
