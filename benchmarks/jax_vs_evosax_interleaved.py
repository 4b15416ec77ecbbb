"""The JAX CPU matrix against evosax with interleaved rounds in one process (issue 17).

Each cell compiles the same ``lax.scan`` loops as ``benchmarks/test_matrix_jax.py``
(evostrat's ``ask``/``tell`` and evosax's, same popsize and initial std), then alternates
their rounds (evostrat first on even rounds, evosax first on odd ones) and prints the
ratio of the medians of CPU time (``time.process_time``; XLA pinned to one thread, so it is
the work done, whatever the load on the machine), the ratio of the minimums and the ratio
of wall-time medians. The goal is a ratio of medians <= 1.0 in every cell.

Run (from the repository root)::

    ROUNDS=31 python benchmarks/jax_vs_evosax_interleaved.py snes:10:1 pgpe:100000:4 ...

Each argument is ``strategy:dim:popsize factor``; without arguments, every cell of the
matrix (the six strategies; d = 100,000 only for the diagonal ones, as in ``_matrix.cells``).
With ``HLO=1`` each cell also prints the op counts of one compiled generation of both
libraries (``jax.jit(f).lower(...).compile().as_text()``), the most frequent ops first.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _single_thread  # noqa: E402

_single_thread.pin()

DEFAULT_STRATEGIES = ["snes", "openai_es", "pgpe", "sep_cma_es", "cma_es", "xnes"]


def build(name: str, dim: int, factor: int) -> tuple[Callable[[], Any], Callable[[], Any], int]:
    """Compiled rounds of evostrat and evosax for one cell, and the generations per round."""
    import jax
    import test_matrix_jax as tm

    s, body, state0, length = tm.evostrat_loop(jax, name, dim, factor)
    ours = jax.jit(lambda c: jax.lax.scan(body, c, None, length=length)[0]).lower(state0).compile()
    peer_body, peer0 = tm.evosax_loop(jax, name, dim, s)
    peer = jax.jit(lambda c: jax.lax.scan(peer_body, c, None, length=length)[0]).lower(peer0).compile()
    if os.environ.get("HLO"):
        print(f"HLO of one generation, {name} d={dim} pop={factor}x")
        print("  evostrat:", hlo_op_counts(jax.jit(lambda c: body(c, None)[0]), state0))
        print("  evosax:  ", hlo_op_counts(jax.jit(lambda c: peer_body(c, None)[0]), peer0))
    return (lambda: jax.block_until_ready(ours(state0))), (lambda: jax.block_until_ready(peer(peer0))), length


def hlo_op_counts(fn: Any, arg: Any, top: int = 14) -> str:
    """The most frequent HLO ops of ``fn(arg)`` after compilation (fusions count once)."""
    import re
    from collections import Counter

    text = fn.lower(arg).compile().as_text()
    ops = Counter(re.findall(r"= \S+ ([a-z][a-z0-9-]*)\(", text))
    calls = sorted(set(re.findall(r'custom_call_target="([^"]+)"', text)))
    return ", ".join(f"{op} {n}" for op, n in ops.most_common(top)) + f"; custom calls {calls}"


def measure(name: str, dim: int, factor: int, rounds: int) -> str:
    """One line: per-generation CPU-time medians and the ratios (evostrat / evosax)."""
    import numpy as np

    ours, peer, length = build(name, dim, factor)
    ours(), peer()
    cpu: dict[str, list[float]] = {"ours": [], "peer": []}
    wall: dict[str, list[float]] = {"ours": [], "peer": []}
    for r in range(rounds):
        order = [("ours", ours), ("peer", peer)]
        for label, fn in order if r % 2 == 0 else order[::-1]:
            c, w = time.process_time(), time.perf_counter()
            fn()
            cpu[label].append(time.process_time() - c)
            wall[label].append(time.perf_counter() - w)
    m_ours, m_peer = np.median(cpu["ours"]) / length, np.median(cpu["peer"]) / length
    return (f"{name} d={dim} pop={factor}x: evostrat {m_ours * 1e6:.1f} us, evosax {m_peer * 1e6:.1f} us, "
            f"ratio {m_ours / m_peer:.2f}, mins {min(cpu['ours']) / min(cpu['peer']):.2f}, "
            f"wall {np.median(wall['ours']) / np.median(wall['peer']):.2f} ({rounds} rounds)")


def main(argv: list[str]) -> None:
    rounds = int(os.environ.get("ROUNDS", 31))
    cells = [tuple(a.split(":")) for a in argv] or [
        (n, d, f) for n in DEFAULT_STRATEGIES for d in (10, 100, 1000, 100_000) for f in (1, 4)
        if d <= 1000 or n not in ("cma_es", "xnes")]
    for name, dim, factor in cells:
        print(measure(str(name), int(dim), int(factor), rounds), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
