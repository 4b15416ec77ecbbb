"""``evaluator="executor"``: chunks of candidates on any ``concurrent.futures.Executor``.

The default pool is loky's (vendored by joblib): it serialises with cloudpickle
(lambdas and closures work), starts workers by fork + exec (safe with torch and
JAX threads), replaces a worker whose memory grew by more than 300 MB, and is
shut down by :meth:`ExecutorEvaluator.close` at the end of ``ES.fit``. The workers
of the pool it starts run one intra-op thread each (``worker_threads``: torch, OpenMP,
BLAS), as Ray's do: a library's default, a thread per core in every worker, oversubscribes
the cores (a torch policy on 2 workers of 2 cores ran 3 times slower). A given
executor (thread or process pool, Dask's ``client.get_executor()``,
``mpi4py.futures.MPIPoolExecutor``) is never shut down by evostrat. An interrupt
(``KeyboardInterrupt``) kills the owned pool's workers at once; a given executor's
futures are cancelled and not waited for. Scripts
using process pools need the usual ``if __name__ == "__main__":`` guard.

Examples
--------
>>> import numpy as np
>>> from concurrent.futures import ThreadPoolExecutor
>>> from evostrat import ES
>>> from evostrat.evaluators import ExecutorEvaluator
>>> with ThreadPoolExecutor(2) as pool:
...     es = ES("snes", max_generations=30, random_state=0,
...             evaluator=ExecutorEvaluator(pool)).fit(lambda x: float(x @ x), np.ones(3))
>>> es.n_generations_
30
"""

from __future__ import annotations

import copy
import os
import pickle
from typing import TYPE_CHECKING, Any, Callable, Sequence

from evostrat.errors import InvalidArgumentError, InvalidTypeError, ObjectiveError
from evostrat.evaluators.remote import ChunkedEvaluator, describe_candidates, positive_int
from evostrat.evaluators.sync import syncs
from evostrat.evaluators.worker import ChunkResult, WorkerOptions, dumps, limit_threads, run_chunk, thread_env

if TYPE_CHECKING:
    import concurrent.futures as cf

__all__ = ["ExecutorEvaluator"]


class ExecutorEvaluator(ChunkedEvaluator):
    """Evaluate chunks of candidates on a ``concurrent.futures`` executor.

    Parameters
    ----------
    executor : concurrent.futures.Executor, optional
        Used as given and never shut down by evostrat. Default: a (loky)
        process pool owned by this evaluator.
    max_workers : int, optional
        Processes of the owned pool (default ``os.cpu_count()``); with a given
        executor, the number of chunks per generation (default: the executor's
        ``_max_workers`` when it has one, else ``os.cpu_count()``).
    mp_context : str or multiprocessing context, optional
        Owned pool only: ``None`` (default) for loky's pool; a start method
        (``"spawn"``, ``"forkserver"``, ...) or context for the standard
        library's ``ProcessPoolExecutor`` (module-level objectives only).
    chunksize, timeout, seeded, vectorized, arrays
        See :class:`~evostrat.evaluators.remote.ChunkedEvaluator`. With
        ``seeded="auto"``, thread pools get the population itself (no copy is
        made), other executors its seed.
    worker_threads : int or None
        Owned pool only: intra-op threads of each worker's numeric libraries
        (``torch.set_num_threads``, ``OMP_NUM_THREADS``, the BLAS pools; default 1,
        one per worker as Ray sets); ``None`` leaves the libraries' defaults (a
        thread per core in every worker). A given executor's workers are left as they are.

    Examples
    --------
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.evaluators import ExecutorEvaluator
    >>> f = lambda x: float(x @ x)
    >>> with ThreadPoolExecutor(2) as pool:                 # your executor: never shut down by evostrat
    ...     es = ES("snes", evaluator=ExecutorEvaluator(pool), max_generations=20, random_state=0).fit(f, np.ones(3))
    >>> es.fun_ == ES("snes", evaluator="serial", max_generations=20, random_state=0).fit(f, np.ones(3)).fun_
    True
    """

    name = "executor"

    def __init__(self, executor: cf.Executor | None = None, max_workers: int | None = None,
                 mp_context: Any = None, chunksize: int | None = None, timeout: float | None = None,
                 seeded: Any = "auto", vectorized: bool | None = None, arrays: str = "backend",
                 worker_threads: int | None = 1) -> None:
        self.executor = executor
        self.max_workers = max_workers
        self.mp_context = mp_context
        self.worker_threads = worker_threads
        super().__init__(chunksize, timeout, seeded, vectorized, arrays)
        self._pool: cf.Executor | None = None
        self._checked: tuple[Callable, int] | None = None  # objective, its pickled size

    def check_parameters(self) -> None:
        import concurrent.futures as cf  # here, not at import: the registry lists this class
        import multiprocessing

        super().check_parameters()
        if self.executor is not None and not isinstance(self.executor, cf.Executor):
            raise InvalidTypeError(
                "executor must be a concurrent.futures.Executor (e.g. ProcessPoolExecutor, "
                f"client.get_executor()) or None, got {type(self.executor).__name__}"
            )
        positive_int("max_workers", self.max_workers)
        positive_int("worker_threads", self.worker_threads)
        methods = multiprocessing.get_all_start_methods()
        if isinstance(self.mp_context, str):
            if self.mp_context not in methods:
                raise InvalidArgumentError(
                    f"mp_context must be one of {methods} or a multiprocessing context, "
                    f"got {self.mp_context!r}"
                )
        elif self.mp_context is not None and not callable(getattr(self.mp_context, "get_start_method", None)):
            raise InvalidTypeError(
                f"mp_context must be None, one of {methods} or a multiprocessing context "
                f"(multiprocessing.get_context(...)), got {type(self.mp_context).__name__}"
            )

    # -- the pool ----------------------------------------------------------------------
    def _in_process(self) -> bool:
        import concurrent.futures as cf

        return isinstance(self.executor, cf.ThreadPoolExecutor)

    def wants_seed(self) -> bool:
        return not self._in_process()

    def n_workers(self) -> int:
        if self.max_workers is not None:
            return self.max_workers
        given = None if self.executor is None else getattr(self.executor, "_max_workers", None)
        return int(given or os.cpu_count() or 1)

    def _get_pool(self) -> cf.Executor:
        if self.executor is not None:
            return self.executor
        if self._pool is None:
            workers, threads = self.n_workers(), self.worker_threads
            limits: dict[str, Any] = {} if threads is None else {"initializer": limit_threads,
                                                                 "initargs": (threads,)}
            if self.mp_context is None:
                from joblib.externals.loky import ProcessPoolExecutor as LokyPool

                env = None if threads is None else thread_env(threads)  # set before the worker imports
                self._pool = LokyPool(max_workers=workers, env=env, **limits)
            else:
                import concurrent.futures as cf
                import multiprocessing

                context = self.mp_context
                context = multiprocessing.get_context(context) if isinstance(context, str) else context
                self._pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, **limits)
        return self._pool

    def close(self) -> None:
        """Shut down the pool this evaluator created (never a pool it was given)."""
        pool, self._pool, self._checked = self._pool, None, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _abandon(self, futures: Any) -> None:
        """Cancel ``futures`` and kill an owned pool (a given executor is never stored in ``_pool``)."""
        for future in futures:
            future.cancel()
        self._kill_pool()

    def _kill_pool(self) -> None:
        """Stop an owned pool, not waiting for its workers (stuck, dead or interrupted)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            pool.shutdown(wait=False, kill_workers=True)  # loky: SIGKILL to the workers
        except TypeError:  # the standard library's pool
            for process in list(getattr(pool, "_processes", {}).values()):
                process.kill()
            pool.shutdown(wait=False, cancel_futures=True)

    # -- chunks ------------------------------------------------------------------------
    def _check_objective(self, objective: Callable, pool: cf.Executor) -> int:
        """Fail early, and clearly, on an objective the pool cannot send; its size in bytes."""
        if self._in_process():
            return 0
        if self._checked is not None and self._checked[0] is objective:
            return self._checked[1]
        import concurrent.futures as cf

        plain_pickle = isinstance(pool, cf.ProcessPoolExecutor)  # the standard library's
        hint = ("; this ProcessPoolExecutor pickles by reference: use a module-level function, "
                "or the default pool (mp_context=None), which accepts lambdas and closures"
                if plain_pickle else "; use a ThreadPoolExecutor or evaluator='serial' instead")
        size = self.serialised_size(objective, pickle.dumps if plain_pickle else dumps, hint)
        self._checked = (objective, size)
        return size

    @staticmethod
    def _private_copy(objective: Callable) -> Callable:
        """A thread pool's copy of an objective of the generation protocol for one chunk (as in a
        process), which gathers the chunk's records (:mod:`evostrat.evaluators.sync`)."""
        try:
            return copy.deepcopy(objective)
        except Exception as err:  # noqa: BLE001 - locks, open files, ...
            raise InvalidTypeError(
                "objective must be copyable (copy.deepcopy): a thread pool evaluates a copy of an objective "
                "with generation_start/collect/merge (evostrat.evaluators.sync) per chunk, got "
                f"{type(objective).__name__}: {type(err).__name__}: {err}"
            ) from err

    def run_chunks(self, objective: Callable, source: Any, chunks: Sequence[tuple[int, int]],
                   options: WorkerOptions) -> list[ChunkResult]:
        import concurrent.futures as cf

        pool = self._get_pool()
        self.last_shipped_["objective_bytes"] = self._check_objective(objective, pool)
        plain = hasattr(source, "shape")  # plain: only each chunk's rows travel; else the seed
        private = self._in_process() and syncs(objective)  # each chunk its own copy
        tasks = [self._private_copy(objective) if private else objective for _ in chunks]
        futures: list[cf.Future] = []
        try:
            for (a, b), task in zip(chunks, tasks):
                futures.append(pool.submit(run_chunk, task, source[a:b] if plain else source, a, b,
                                           a if plain else 0, options))
            done, pending = cf.wait(futures, timeout=self.backstop(chunks))
        except Exception as err:  # the pool refused work: shut down, or broken by a dead worker
            self._abandon(futures)
            start, stop = chunks[min(len(futures), len(chunks) - 1)]
            raise ObjectiveError(
                f"the executor refused to run {describe_candidates(start, stop)}: "
                f"{type(err).__name__}: {err} (a pool that was shut down, or broken by a worker "
                "that died, cannot be reused: pass a new executor)", indices=tuple(range(start, stop)),
            ) from err
        except BaseException:  # KeyboardInterrupt in the driver: stop now, never wait for workers
            self._abandon(futures)
            raise
        if pending:
            self._abandon(pending)
            raise self.timed_out(chunks, futures, pending)
        results = []
        for (start, stop), future in zip(chunks, futures):
            try:
                results.append(future.result())
            except Exception as err:  # noqa: BLE001 - the executor failed, not the objective
                self._kill_pool()  # a broken process pool cannot be reused
                raise ObjectiveError(
                    f"the executor failed to evaluate {describe_candidates(start, stop)}: "
                    f"{type(err).__name__}: {err} (a worker process that dies, e.g. killed "
                    "or out of memory, breaks a process pool, and a worker must be able to "
                    "import the objective's module; evaluator='ray' retries dead workers)",
                    indices=tuple(range(start, stop)),
                ) from err
        return results
