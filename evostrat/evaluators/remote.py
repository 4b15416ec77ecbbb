"""Driver side of the chunked evaluators (``"executor"``, ``"ray"``).

:class:`ChunkedEvaluator` splits a population into contiguous chunks, has a
subclass run :func:`~evostrat.evaluators.worker.run_chunk` on each remotely,
and assembles the values in population order on the population's backend,
dtype and device. A worker's failure is re-raised on the driver as
:mod:`evostrat.evaluators.failures` describes.

Examples
--------
>>> from evostrat.evaluators.remote import chunk_bounds
>>> chunk_bounds(10, n_chunks=3)
[(0, 4), (4, 7), (7, 10)]
>>> chunk_bounds(10, chunksize=4)
[(0, 4), (4, 8), (8, 10)]
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Callable, Sequence

import numpy as np

from evostrat.backends import Backend, get_backend
from evostrat.errors import EvaluationTimeoutError, EvostratError, InvalidArgumentError, InvalidTypeError
from evostrat.evaluators.failures import RemoteTraceback, describe_candidates, raise_failure
from evostrat.evaluators.local import Evaluator, collect
from evostrat.evaluators.replay import REPLAY_WINDOW
from evostrat.evaluators.sync import hand_back, syncs
from evostrat.evaluators.worker import ChunkResult, WorkerOptions, dumps
from evostrat.params import Interval
from evostrat.run.behaviours import Outcome, population_output

__all__ = ["ChunkedEvaluator", "RemoteTraceback", "SEEDED_MODES", "chunk_bounds", "describe_candidates",
           "positive_int", "raise_failure"]

#: Accepted string values of ``seeded`` (besides ``True`` and ``False``).
SEEDED_MODES = ("auto", "seed", "replay")

Array = Any


def chunk_bounds(n: int, n_chunks: int | None = None, chunksize: int | None = None) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` chunks covering ``range(n)``, sizes differing by at most one."""
    if chunksize is not None:
        return [(a, min(a + chunksize, n)) for a in range(0, n, chunksize)]
    k = max(1, min(int(n_chunks or 1), n))
    base, extra = divmod(n, k)  # the first ``extra`` chunks get one candidate more
    starts = [c * base + min(c, extra) for c in range(k + 1)]
    return list(zip(starts[:-1], starts[1:]))


def positive_int(name: str, value: Any, allow_none: bool = True) -> None:
    """Raise :class:`~evostrat.errors.InvalidArgumentError` unless ``value`` is a positive int (or ``None``).

    Examples
    --------
    >>> positive_int("chunksize", 0)
    Traceback (most recent call last):
    ...
    evostrat.errors.InvalidArgumentError: chunksize must be a positive int or None, got 0
    """
    if not (value is None and allow_none) and value not in Interval(Integral, 0, None, closed="neither"):
        raise InvalidArgumentError(
            f"{name} must be a positive int{' or None' if allow_none else ''}, got {value!r}"
        )


class ChunkedEvaluator(Evaluator):
    """Base of evaluators that send chunks of candidates to workers.

    Parameters
    ----------
    chunksize : int, optional
        Candidates per chunk; default: one chunk per worker.
    timeout : float, optional
        Seconds allowed for each evaluation (per candidate; a vectorised chunk
        gets ``timeout * len(chunk)``). A candidate past it raises
        :class:`~evostrat.errors.EvaluationTimeoutError` naming it.
    seeded : {"auto", True, "seed", "replay", False}
        How Gaussian populations (``openai_es``, ``snes``, ``pgpe`` on the CPU)
        travel (:mod:`evostrat.evaluators.seeded`); others always travel plain.
        ``True``/``"seed"``: the generation's key, mean and sigma (workers
        rebuild their rows); ``"replay"``: the told fitness, workers replaying
        the update (:mod:`evostrat.evaluators.replay`); ``False``: the
        population itself; ``"auto"`` (default): ``"seed"`` where workers are
        other processes and the population has at least :attr:`seed_min_bytes`
        (8 MiB), else plain (never replay: ask for it where bandwidth, not
        CPU, is the bottleneck).
    vectorized : bool, optional
        Call ``objective(rows)`` once per chunk; default: when the objective is
        marked ``vectorized`` (:func:`evostrat.evaluators.local.vectorized`).
    arrays : {"backend", "numpy"}
        What the objective receives on a worker: rows of the population's
        library (torch/JAX on the CPU; as with ``evaluator="serial"``) or numpy rows.

    Attributes
    ----------
    last_shipped_ : dict
        What the last generation sent: ``mode`` (``"plain"``, ``"seed"`` or
        ``"replay"``), ``seeded`` (not plain), ``chunks``, ``population_bytes``
        (array bytes of the population, of its seed or of the replay message),
        in replay mode ``state_chunks`` (chunks sent the full state, first
        generation and fallbacks) and ``state_bytes`` (array bytes of that
        state, 0 when none was sent) and, for executors, ``objective_bytes``
        (sent with every chunk).
    """

    accepts_seed = True
    accepts_replay = True
    #: Replay mode: generations of told fitness per message (a worker that far behind catches up).
    replay_window: int = REPLAY_WINDOW
    #: ``seeded="auto"`` ships seeds from this population size on (bytes): below it sending
    #: the rows costs less than rebuilding them (256 x 1000 float64, 2 workers, benchmarks/).
    seed_min_bytes: int = 8 * 2**20

    def __init__(self, chunksize: int | None = None, timeout: float | None = None, seeded: Any = "auto",
                 vectorized: bool | None = None, arrays: str = "backend") -> None:
        self.chunksize = chunksize
        self.timeout = timeout
        self.seeded = seeded
        self.vectorized = vectorized
        self.arrays = arrays
        self.check_parameters()

    def check_parameters(self) -> None:
        """Raise an evostrat error naming the first invalid constructor argument."""
        positive_int("chunksize", self.chunksize)
        if self.timeout is not None and self.timeout not in Interval(Real, 0, None, closed="neither"):
            raise InvalidArgumentError(
                f"timeout must be a positive number of seconds or None, got {self.timeout!r}"
            )
        if not (isinstance(self.seeded, bool) or self.seeded in SEEDED_MODES):
            raise InvalidArgumentError(
                f"seeded must be True, False, 'auto', 'seed' or 'replay', got {self.seeded!r}"
            )
        if self.vectorized is not None and not isinstance(self.vectorized, bool):
            raise InvalidArgumentError(f"vectorized must be True, False or None, got {self.vectorized!r}")
        if self.arrays not in ("backend", "numpy"):
            raise InvalidArgumentError(f"arrays must be 'backend' or 'numpy', got {self.arrays!r}")

    # -- subclass interface ---------------------------------------------------------
    def n_workers(self) -> int:
        """How many chunks run at once (default chunking: one chunk per worker)."""
        raise NotImplementedError

    def wants_seed(self) -> bool:
        """Whether ``seeded="auto"`` ships seeds with this evaluator's workers."""
        return True

    def run_chunks(self, objective: Callable, source: Any, chunks: Sequence[tuple[int, int]],
                   options: WorkerOptions) -> list[ChunkResult]:
        """Run :func:`~evostrat.evaluators.worker.run_chunk` for every chunk (in order)."""
        raise NotImplementedError

    @staticmethod
    def serialised_size(objective: Callable, serialise: Callable = dumps, hint: str = "") -> int:
        """Bytes of ``objective`` as ``serialise`` sends it; a clear error when it cannot travel."""
        try:
            return len(serialise(objective))
        except Exception as err:  # noqa: BLE001 - locks, open files, local functions, ...
            raise InvalidTypeError(
                f"objective must be serialisable to run in worker processes, got "
                f"{type(objective).__name__}: {type(err).__name__}: {err}{hint}"
            ) from err

    # -- the evaluation ------------------------------------------------------------
    def mode(self, X: Array, seed: Any = None, replay: Any = None) -> str:
        """How ``X`` travels: ``"plain"``, ``"seed"`` or ``"replay"`` (see ``seeded``)."""
        if seed is None or self.seeded is False:
            return "plain"
        if self.seeded == "replay":
            return "replay" if replay is not None else "seed"
        if self.seeded in (True, "seed"):
            return "seed"
        big = X.shape[0] * X.shape[1] * X.dtype.itemsize >= self.seed_min_bytes
        return "seed" if self.wants_seed() and big else "plain"

    def evaluate(
        self, objective: Callable, X: Array, backend: Backend, seed: Any = None, replay: Any = None
    ) -> Array:
        """Values of ``X`` on ``X``'s backend.

        ``seed`` (a :class:`~evostrat.evaluators.seeded.GaussianSeed`) and ``replay`` (a
        :class:`~evostrat.evaluators.replay.ReplayStep`) describe ``X``; ``ES.fit`` passes
        them and ``seeded`` chooses what travels.
        """
        self.check_parameters()
        n = int(X.shape[0])
        chunks = chunk_bounds(n, n_chunks=self.n_workers(), chunksize=self.chunksize)
        mode = self.mode(X, seed, replay)
        if mode == "replay":
            # a run's first generation (no told fitness yet): workers cannot have the state
            source = replay.message(self.replay_window) if replay.history else replay.full()
        else:
            source = seed if mode == "seed" else np.asarray(backend.to_numpy(X))
        vectorized = self.vectorized
        if vectorized is None:
            vectorized = bool(getattr(objective, "vectorized", False))
        options = WorkerOptions(
            backend=backend.name, as_backend=self.arrays == "backend", vectorized=vectorized,
            timeout=None if self.timeout is None else float(self.timeout),
            behaviours=bool(self.behaviours),
        )
        self.last_shipped_ = {"mode": mode, "seeded": mode != "plain", "chunks": len(chunks),
                              "population_bytes": int(source.nbytes)}
        results = self.run_chunks(objective, source, chunks, options)
        if mode == "replay":
            results = self._resend_state(objective, replay, source, chunks, results, options)
        for result in results:
            if result.failure is not None:
                raise_failure(result.failure, self.timeout)
        if syncs(objective):  # the workers' records, in population order, to the driver's objective
            hand_back(objective, [record for result in results for record in (result.records or ())])
        if options.behaviours:
            return _behaviours(results, X, backend, vectorized)
        values = np.concatenate([result.values for result in results])  # the chunks in order
        return backend.asarray(values, dtype=X.dtype, device=backend.device(X))

    def _resend_state(self, objective: Callable, replay: Any, source: Any, chunks: Sequence[tuple[int, int]],
                      results: list[ChunkResult], options: WorkerOptions) -> list[ChunkResult]:
        """Replay mode: rerun the chunks whose workers lacked the state, with the full state."""
        full = replay.full()
        missing = [i for i, r in enumerate(results) if r.need_state]
        sent = len(chunks) if source is full else len(missing)
        self.last_shipped_.update(state_chunks=sent, state_bytes=int(full.nbytes) if sent else 0)
        if not missing:
            return results
        again = self.run_chunks(objective, full, [chunks[i] for i in missing], options)
        results = list(results)
        for i, result in zip(missing, again):
            if result.need_state:  # a full state is always installed
                raise EvostratError(
                    f"a worker asked for the state of {describe_candidates(*chunks[i])} again "
                    "after receiving it (evostrat bug; seeded='seed' avoids replay)"
                )
            results[i] = result
        return results

    #: Seconds added to the driver's wait for a generation when ``timeout`` is set.
    backstop_grace: float = 10.0

    def backstop(self, chunks: Sequence[tuple[int, int]]) -> float | None:
        """Seconds the driver waits for a generation: ``timeout`` per candidate a worker runs, plus grace.

        The worker-side alarm normally fires long before; this covers objectives stuck outside
        Python (C extensions, blocked signals) and workers without ``SIGALRM`` (threads, Windows).
        """
        if self.timeout is None:
            return None
        longest = max(stop - start for start, stop in chunks)
        rounds = math.ceil(len(chunks) / max(1, self.n_workers()))
        return float(self.timeout) * longest * rounds + float(self.backstop_grace)

    def timed_out(self, chunks: Sequence[tuple[int, int]], handles: Sequence[Any],
                  pending: Any) -> EvaluationTimeoutError:
        """The error for the chunks whose handles (futures, Ray refs) were pending at the backstop."""
        chunks = [chunk for chunk, handle in zip(chunks, handles) if handle in pending]
        names = ", ".join(describe_candidates(a, b) for a, b in chunks)
        indices = tuple(i for a, b in chunks for i in range(a, b))
        return EvaluationTimeoutError(
            f"evaluation timed out (timeout={self.timeout} s per candidate): {names} "
            "did not finish; their workers were stopped",
            index=indices[0] if len(indices) == 1 else None,
            indices=indices,
        )


def _behaviours(results: Sequence[ChunkResult], X: Array, backend: Backend, vectorized: bool) -> Any:
    """Stack the outputs of a behaviour strategy's chunks (see :mod:`evostrat.run.behaviours`)."""
    if not vectorized:
        return collect([out for r in results for out in r.outputs], X, backend, behaviours=True)
    numpy = get_backend("numpy")
    parts = [population_output(r.outputs[0], r.stop - r.start, np.empty(0), numpy) for r in results]
    fitness = [p.fitness if isinstance(p, Outcome) else None for p in parts]
    rows = [np.asarray(p.behaviours if isinstance(p, Outcome) else p) for p in parts]
    if any(f is None for f in fitness) != all(f is None for f in fitness):
        raise InvalidArgumentError(
            "a vectorised objective returned fitness with behaviours for some chunks but not "
            "for others; return (fitness, behaviours) for all or none"
        )
    device = backend.device(X)
    B = backend.asarray(np.concatenate(rows, axis=0), dtype=X.dtype, device=device)
    if fitness[0] is None:
        return B
    F = backend.asarray(np.concatenate([np.asarray(f) for f in fitness]), dtype=X.dtype, device=device)
    return Outcome(F, B)


