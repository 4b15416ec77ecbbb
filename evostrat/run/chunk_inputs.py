"""The criteria's thresholds and budgets as a compiled chunk's inputs, read where they are compared.

A chunk takes the run's thresholds and budgets as two input vectors (not constants of its
program: runs that differ only in them share it). Read into scalars before the chunk's loops,
each was a kernel of its own and a value every loop carried; a threshold was also rounded again
to the run's dtype, which it already has: rounded on the host in its comparison's direction
(:meth:`~evostrat.run.device_termination.Rules.threshold_inputs`), it is what that rounding gives.
:class:`Directed` and :class:`Budget` hold an input vector and an index, read where the criteria
compare (issue 15: 4 kernels fewer in CMA-ES d = 10's chunk). :func:`with_inputs` gives a compiled
chunk its two vectors.

Examples
--------
>>> import numpy as np
>>> budget(Budget(np.asarray([0, 300], np.int32), 1)), budget(300)
(np.int32(300), 300)
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from evostrat.run.thresholds import threshold as rounded

__all__ = ["Directed", "Budget", "budget", "threshold", "with_inputs"]


class Directed(NamedTuple):
    """A threshold that is a compiled chunk's input, already rounded on the host in its comparison's
    direction (:meth:`~evostrat.run.device_termination.Rules.threshold_inputs`, ``with_thresholds(..., directed=True)``):
    entry ``index`` of the input vector ``values``, read where it is compared (a scalar read before
    the chunk's loops is a kernel of its own, and a value each loop carries)."""

    values: Any
    index: int

    @property
    def value(self) -> Any:
        return self.values[self.index]


class Budget(NamedTuple):
    """A budget that is a compiled chunk's input: entry ``index`` of the int32 vector ``values``,
    read where it is compared (as :class:`Directed`; ``Rules.with_budgets``)."""

    values: Any
    index: int

    @property
    def value(self) -> Any:
        return self.values[self.index]


def budget(value: Any) -> Any:
    """``value``, a budget of the criteria's ``Rules``, as a number or array (a :class:`Budget` read here)."""
    return value.value if isinstance(value, Budget) else value


def threshold(value: Any, like: Any, up: bool = True) -> Any:
    """:func:`evostrat.run.thresholds.threshold`, and a :class:`Directed` input as it is where it
    has the dtype of ``like``: rounded on the host in that dtype (never to a subnormal number), it
    is what the rounding gives, and the chunk skips a few operations per threshold (and their
    kernels, hoisted out of its loops: issue 15)."""
    if isinstance(value, Directed):
        import jax.numpy as jnp

        if value.values.dtype == jnp.result_type(like):
            return value.value
        value = value.value
    return rounded(value, like, up)


def with_inputs(program: Callable, inputs: tuple[np.ndarray, np.ndarray], batched: bool) -> Callable:
    """``program`` called with ``inputs``, the rules' thresholds and budgets, as its last input.

    The thresholds are in JAX's widest float, each rounded in its comparison's direction, and inside
    to the dtype of what it is compared with (:func:`~evostrat.run.device_termination.threshold`);
    the budgets are int32, as the counters they bound. A one-run chunk gets them placed where its
    run is, once (a host vector cost a run of one-generation chunks about 15 us a generation)."""
    import jax

    if batched:
        return lambda runs, limit: program(runs, limit, inputs)
    placed: dict[Any, Any] = {}

    def call(state: Any, best_x: Any, floats: Any, ints: Any, limit: Any) -> Any:
        where = floats.sharding
        if where not in placed:
            placed[where] = jax.device_put(inputs, where)
        return program(state, best_x, floats, ints, limit, placed[where])

    call.program, call.inputs = program, inputs  # for chunk_kernels.optimized_hlo
    return call
