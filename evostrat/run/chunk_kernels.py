"""The XLA kernels of a compiled chunk: what its first call's compile time is spent on (issue 15).

XLA's CPU compiler emits every fusion (and every sort, custom call and unfused reduction) of a
program as a kernel of its own, through MLIR and LLVM, at ~10-15 ms each whatever its size: the
chunk of CMA-ES at d = 10 spent ~2.1 of its 2.6 s of compilation there (``TF_CPP_MAX_VLOG_LEVEL=1``
logs each module's time), against ~0.3 s of HLO passes. Its kernel count is the measure of the
chunk's compile time that does not depend on the machine's load: 179 kernels before the issue's
pass, 128 after it, 107 after its second (the hand-written ``lax.scan`` of the same ask and tell: 70;
JAX 0.10.2). What the second pass took out: every scalar that a loop carries or hands to an inner
loop is a kernel of its own, so the run's counters (generation, evaluations, stop code, the run's
best's evaluation) stay in its packed ``ints`` and the bests and tolx's sigma in one vector, from the
program's input to its output, and the chunk's, block's and stage's generation counts are differences
of its generation; loop-invariant arithmetic on iotas (masks, strides) is hoisted into the program's
entry as a kernel each, so such masks are numpy constants; a floor division or remainder of a
count is its own kernel (an expensive op XLA does not duplicate into its users): ``lax.div`` where
the operand is not negative (the stagnation history's first record and count from one division of
two counts), and one remainder shared where two were taken.

Examples
--------
>>> kernel_count("%fused_computation (p: f32[]) -> f32[] {\\n  ROOT %n = f32[] negate(%p)\\n}\\n"
...              "ENTRY %main (a: f32[]) -> f32[] {\\n  ROOT %f = f32[] fusion(%a), kind=kLoop\\n}")
1
"""

from __future__ import annotations

import re
from typing import Any, Callable

__all__ = ["optimized_hlo", "kernel_count"]


def optimized_hlo(program: Callable, *args: Any) -> str:
    """The optimized HLO text of the unbatched chunk ``program`` (what
    :func:`~evostrat.run.compiled.chunk_program` returns) compiled for ``args`` (its ``(*run, limit)``)."""
    return program.program.lower(*args, program.inputs).compile().as_text()


def kernel_count(hlo: str) -> int:
    """The fusions of an optimized HLO module's computations, its fused computations' insides not
    counted: each one is a kernel that XLA's CPU compiler generates code for."""
    count, inside = 0, False
    for line in hlo.splitlines():
        if line and not line.startswith(" "):  # a computation's header or its closing brace
            inside = bool(re.match(r"%?fused_computation|%?wrapped_", line))
            continue
        if not inside and re.match(r"\s*(ROOT )?%\S+ = .*? fusion\(", line):
            count += 1
    return count
