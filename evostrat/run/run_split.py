"""A batch's stacked strategy states, split run by run only when a run's state is read.

A JAX batch (:mod:`evostrat.run.batch_jax`) holds its runs' strategy states stacked along a
leading axis. Splitting them into one state per run makes a JAX array of every leaf of every
run (for 64 runs of CMA-ES about 800 arrays: 12 ms on one CPU under a profiler, and without it
the 64-run batch of 200 generations went from 1.045x evosax's ``jax.vmap`` to 0.99x), which a
run needs only when its state is read: to continue it by ``ask``/``tell``, for a checkpoint, a
refit from it. So a run's driver gets a
:class:`DeferredState`, and the first read of any run's state splits the stack, all runs at
once, in one compiled call (:func:`split_runs`). (A run that stops while the others go on takes its
own state at once: a deferred one would keep that chunk's whole stack alive.)

Examples
--------
>>> import jax.numpy as jnp
>>> stack = RunSplit({"mean": jnp.arange(6.0).reshape(3, 2)}, 3)
>>> later = DeferredState(stack, 1)
>>> stack.runs is None, later.resolve()["mean"].tolist(), len(stack.runs)
(True, [2.0, 3.0], 3)
"""

from __future__ import annotations

import functools
from typing import Any, Callable

__all__ = ["split_runs", "RunSplit", "DeferredState"]


@functools.cache
def _splitter() -> Callable:
    import jax

    def split(tree: Any, n: int) -> list[Any]:
        return [jax.tree_util.tree_map(lambda a: a[i], tree) for i in range(n)]

    return jax.jit(split, static_argnums=1)


def split_runs(tree: Any, n: int) -> list[Any]:
    """The first ``n`` entries along the leading axis of every leaf of ``tree``, as ``n``
    trees, in one compiled call (a batch's stacked states, run by run)."""
    return _splitter()(tree, n)


class RunSplit:
    """The stacked states ``stacked`` of ``n`` runs, split run by run when first asked for.

    Parameters
    ----------
    stacked : pytree
        Every leaf with a leading axis of (at least) ``n`` runs.
    n : int
        The runs.
    first_part : bool
        Each run's entry is a tuple whose first part is its strategy state (a batch with
        hyper-parameters per run carries them beside the state); :meth:`run` returns that part.
    """

    def __init__(self, stacked: Any, n: int, first_part: bool = False) -> None:
        self.stacked, self.n, self.first_part, self.runs = stacked, n, first_part, None

    def run(self, index: int) -> Any:
        """Run ``index``'s state (the whole stack split on the first call)."""
        if self.runs is None:
            runs = split_runs(self.stacked, self.n)
            self.runs = [run[0] for run in runs] if self.first_part else runs
            self.stacked = None  # the split runs hold their own arrays
        return self.runs[index]


class DeferredState:
    """Run ``index``'s strategy state in a :class:`RunSplit`, built when first read
    (:class:`~evostrat.run.deferred_state.DeferredStateSlot`: a runner's ``state``).

    Parameters
    ----------
    split : RunSplit
        The stacked states (``run(index)`` splits them once and returns one).
    index : int
        The run's place in the stack.
    mean : array, shape (dim,), optional
        The state's mean, where it is known without the split (a family's validated ``x0``,
        which a new runner reads).
    """

    def __init__(self, split: RunSplit, index: int, mean: Any = None) -> None:
        self.split, self.index, self.mean = split, index, mean

    def resolve(self) -> Any:
        """The run's strategy state."""
        return self.split.run(self.index)
