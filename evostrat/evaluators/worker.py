"""What runs on a worker: evaluate one chunk of candidates, never raise.

:func:`run_chunk` is the one function every remote evaluator ships (workers import
``evostrat``). It returns the values and at most one :class:`Failure` (the first
candidate that raised, ``SystemExit`` and ``KeyboardInterrupt`` too, returned a
non-number or ran past ``timeout``, with its traceback), which the driver
re-raises (:mod:`evostrat.evaluators.failures`). The objective gets copies
(:func:`~evostrat.evaluators.local.unshared`): with thread pools the rows are the driver's.
:func:`thread_env` and :func:`limit_threads` cap the intra-op threads of the workers of the
pools evostrat starts (torch, OpenMP and BLAS), as Ray caps its workers'.

Examples
--------
>>> import numpy as np
>>> from evostrat.evaluators.worker import WorkerOptions, run_chunk
>>> X = np.arange(6.0).reshape(3, 2)
>>> out = run_chunk(lambda x: float(x.sum()), X, 0, 3, 0, WorkerOptions())
>>> out.values.tolist(), out.failure
([1.0, 5.0, 9.0], None)
>>> bad = run_chunk(lambda x: 1 / 0, X, 0, 3, 0, WorkerOptions())
>>> bad.failure.index, bad.failure.type_name
(0, 'ZeroDivisionError')
"""

from __future__ import annotations

import copy
import os
import pickle
import signal
import sys
import threading
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from evostrat.backends import get_backend, to_host
from evostrat.evaluators.local import real_value, unshared
from evostrat.evaluators.replay import NeedState
from evostrat.evaluators.sync import syncs

__all__ = ["ChunkResult", "Failure", "WorkerOptions", "dumps", "limit_threads", "run_chunk", "thread_env"]

#: The variables that OpenMP (torch's intra-op pool), MKL, OpenBLAS, BLIS, Accelerate and numexpr
#: read for their thread counts when they load.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def thread_env(threads: int) -> dict[str, str]:
    """The environment variables that start a process's numeric libraries with ``threads`` threads each."""
    return {name: str(int(threads)) for name in THREAD_VARIABLES}


def limit_threads(threads: int) -> None:
    """A pool worker's initializer: ``threads`` intra-op threads for the numeric libraries.

    Sets :func:`thread_env`'s variables (libraries loaded later read them), calls
    ``torch.set_num_threads`` when torch is loaded already (a forked worker) and limits
    the BLAS/OpenMP pools already loaded through ``threadpoolctl`` when it is installed.
    """
    os.environ.update(thread_env(threads))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(int(threads))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn's dependency, installed with it
        return
    threadpool_limits(limits=int(threads))


def dumps(obj: Any) -> bytes:
    """Serialise with cloudpickle (lambdas and closures too), as loky, Dask and Ray do."""
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover - joblib vendors it
        from joblib.externals import cloudpickle
    return cloudpickle.dumps(obj)


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker evaluates its chunk.

    Attributes
    ----------
    backend : str
        Backend of the driver's population.
    as_backend : bool
        The objective receives rows of that library (on the CPU) instead of numpy rows.
    vectorized : bool
        Call ``objective(rows)`` once on the chunk instead of once per row.
    timeout : float or None
        Seconds per evaluation (``SIGALRM``, in a process's main thread on POSIX).
    behaviours : bool
        Return the outputs as they are (host copies); the driver stacks them.
    """

    backend: str = "numpy"
    as_backend: bool = False
    vectorized: bool = False
    timeout: float | None = None
    behaviours: bool = False


@dataclass
class Failure:
    """Why a chunk stopped: the candidate, the error and its traceback text."""

    kind: str  # "raised", "invalid" (not a real number), "timeout" or "load" (set-up failed)
    index: int | None
    start: int
    stop: int
    type_name: str
    message: str
    traceback: str
    exception: BaseException | None  # the original, when it can travel back


@dataclass
class ChunkResult:
    """Values of candidates ``start .. stop - 1`` and the worker's process id."""

    start: int
    stop: int
    values: np.ndarray
    failure: Failure | None = None
    outputs: list | None = None  # raw outputs (host copies) with WorkerOptions.behaviours
    #: Replay mode: nothing was evaluated, this worker lacked the driver's state (see NeedState).
    need_state: bool = False
    #: What a synced objective gathered, one record per candidate (:mod:`evostrat.evaluators.sync`).
    records: list | None = None
    pid: int = field(default_factory=os.getpid)


class CandidateTimeout(BaseException):
    """Raised inside the objective by the alarm; a BaseException so ``except Exception`` lets it through."""


@contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    main_thread = threading.current_thread() is threading.main_thread()
    if seconds is None or not hasattr(signal, "setitimer") or not main_thread:
        yield
        return

    def alarm(signum: int, frame: Any) -> None:
        raise CandidateTimeout(f"evaluation exceeded {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, previous)


def _travels(err: BaseException) -> bool:
    """Whether ``err`` pickles and can be rebuilt on the driver.

    ``copy.copy`` rebuilds through the ``__reduce_ex__`` an unpickler uses: this catches
    exceptions whose ``__init__`` does not accept their ``args``.
    """
    try:
        pickle.dumps(err)
        copy.copy(err)
    except Exception:  # noqa: BLE001 - such exceptions travel as text only
        return False
    return True


def _failed(kind: str, index: int | None, start: int, stop: int, values: np.ndarray,
            err: BaseException) -> ChunkResult:
    """The chunk's result for the error being handled (its traceback text, the error if it travels)."""
    text, original = traceback.format_exc(), err if _travels(err) else None
    return ChunkResult(start, stop, values, Failure(kind, index, start, stop, type(err).__name__, str(err),
                                                    text, original))


def _rows(source: Any, start: int, stop: int, offset: int, options: WorkerOptions) -> Any:
    rebuild = getattr(source, "rows", None)
    if rebuild is not None:
        # a GaussianSeed, or in replay mode a ReplayMessage / ReplayState (evostrat.evaluators.seeded)
        return rebuild(start, stop, as_backend=options.as_backend)
    rows = source[start - offset : stop - offset]  # a slice of the population (numpy)
    return get_backend(options.backend).from_host(rows) if options.as_backend else rows


def run_chunk(
    objective: Any, source: Any, start: int, stop: int, offset: int, options: WorkerOptions
) -> ChunkResult:
    """Evaluate candidates ``start .. stop - 1``; never raises for objective errors.

    Parameters
    ----------
    objective : callable
    source : ndarray, GaussianSeed, ReplayMessage or ReplayState
        Rows ``offset ..`` of the population, the generation's seed, or in
        replay mode the generation's message or full state
        (:mod:`evostrat.evaluators.seeded`). A :class:`~evostrat.evaluators.replay.ReplayMessage`
        this worker cannot replay gives a result with ``need_state=True``.
    start, stop : int
        Global candidate indices of the chunk.
    offset : int
        Global index of ``source``'s first row (array sources).
    options : WorkerOptions

    An objective of the generation protocol (:mod:`evostrat.evaluators.sync`) is told
    ``generation_start()`` first; what its ``collect()`` returns after the chunk comes back as
    :attr:`ChunkResult.records`.
    """
    values = np.full(stop - start, np.nan)
    try:
        rows = _rows(source, start, stop, offset, options)
    except NeedState:  # replay mode: the driver resends this chunk with the full state
        return ChunkResult(start, stop, values, need_state=True)
    except Exception as err:  # noqa: BLE001 - rebuilding the candidates failed
        return _failed("load", None, start, stop, values, err)
    if not syncs(objective):
        return _run_rows(objective, rows, start, stop, values, options)
    try:  # this copy keeps the state the driver sent and gathers records (evostrat.evaluators.sync)
        objective.generation_start()
    except Exception as err:  # noqa: BLE001
        return _failed("load", None, start, stop, values, err)
    result = _run_rows(objective, rows, start, stop, values, options)
    if result.failure is None:
        try:
            result.records = list(objective.collect())
        except Exception as err:  # noqa: BLE001
            return _failed("invalid", None, start, stop, values, err)
    return result


def _run_rows(objective: Any, rows: Any, start: int, stop: int, values: np.ndarray,
              options: WorkerOptions) -> ChunkResult:
    if options.vectorized:
        return _run_vectorized(objective, rows, start, stop, values, options)
    outputs: list | None = [] if options.behaviours else None
    for j in range(stop - start):
        i, kind = start + j, "raised"
        try:
            with _deadline(options.timeout):
                out = objective(unshared(rows[j]))
            kind = "invalid"  # InvalidTypeError, re-raised on the driver
            if outputs is not None:
                outputs.append(to_host(out))
            else:
                values[j] = real_value(out, i)
        except CandidateTimeout as err:
            return _failed("timeout", i, start, stop, values, err)
        except BaseException as err:  # noqa: BLE001 - SystemExit too: reported to the driver
            return _failed(kind, i, start, stop, values, err)
    return ChunkResult(start, stop, values, outputs=outputs)


def _run_vectorized(fn: Callable, rows: Any, start: int, stop: int, values: np.ndarray,
                    options: WorkerOptions) -> ChunkResult:
    n, kind = stop - start, "raised"
    try:
        with _deadline(None if options.timeout is None else options.timeout * n):
            out = fn(unshared(rows))
        kind = "invalid"
        if options.behaviours:  # stacked and checked on the driver
            return ChunkResult(start, stop, values, outputs=[to_host(out)])
        arr = np.asarray(to_host(out), dtype=np.float64)
        if arr.shape == (n, 1):  # one column: a value per candidate, as in-process
            arr = arr[:, 0]
        if arr.shape != (n,):
            raise ValueError(
                f"a vectorised objective must return shape ({n},) (or ({n}, 1)) for a chunk of {n} "
                f"candidates, got shape {arr.shape}"
            )
    except CandidateTimeout as err:
        return _failed("timeout", None, start, stop, values, err)
    except BaseException as err:  # noqa: BLE001
        return _failed(kind, None, start, stop, values, err)
    values[:] = arr
    return ChunkResult(start, stop, values)
