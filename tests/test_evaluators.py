"""Evaluators: serial, executor (process pool, thread pool, Dask) give the same runs.

Checks, with real worker processes where it matters:

- the same seed gives the same ``x_`` with ``serial`` and ``executor`` (process
  pool seeded and plain, thread pool) on numpy, torch and JAX;
- values come back in population order when chunks finish out of order;
- an objective's exception becomes ``ObjectiveError`` with the candidate index,
  the original exception as ``__cause__`` and the worker's traceback text;
  so do ``SystemExit`` and other ``BaseException`` s raised by the objective in a
  worker; a ``KeyboardInterrupt`` interrupts the run, from a worker as locally;
- a candidate past ``timeout`` raises ``EvaluationTimeoutError`` naming it, also
  when the worker cannot be interrupted (the pool is then killed);
- an owned pool is shut down at the end of ``fit``, a given executor never;
- options and bad options.

Objectives are built by factory functions: closures travel to worker
processes by value (cloudpickle), without importing this module there.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import LIBRARY_CASES, to_numpy
from worker_objectives import RaisingOn

from evostrat import ES
from evostrat.backends import get_backend
from evostrat.errors import (
    EvaluationTimeoutError,
    InvalidArgumentError,
    InvalidTypeError,
    ObjectiveError,
    UnknownNameError,
)
from evostrat.evaluators.local import vectorized
from evostrat.evaluators import ExecutorEvaluator
from evostrat.evaluators.remote import RemoteTraceback, chunk_bounds
from evostrat.evaluators.worker import thread_env
from evostrat.plugins import registry

NUMPY = get_backend("numpy")


def shifted_sphere():
    def objective(x):
        x = np.asarray(x.detach() if hasattr(x, "detach") else x, dtype=np.float64)
        return float(np.sum((x - 0.25) ** 2))

    return objective


def indexed_population(n: int, dim: int = 3) -> np.ndarray:
    """Row i is i everywhere, so a worker knows which candidate it holds."""
    return np.repeat(np.arange(n, dtype=np.float64)[:, None], dim, axis=1)


def slow_for_early_rows(n: int):
    def objective(x):
        import time

        time.sleep(0.03 * (n - x[0]))  # the first chunks finish last
        return float(x[0] * 10 + 1)

    return objective


def raising_on(index: int):
    def objective(x):
        if int(x[0]) == index:
            raise ValueError(f"boom on {index}")
        return float(x[0])

    return objective


def sleeping_on(index: int, seconds: float, block_alarm: bool = False):
    def objective(x):
        import signal
        import time

        if int(x[0]) == index:
            if block_alarm:  # an objective stuck where SIGALRM cannot reach it
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(seconds)
        return float(x[0])

    return objective


@pytest.fixture(scope="module")
def process_pool():
    """One (loky) process pool for the module: evostrat must use it and leave it running."""
    from pathlib import Path

    from joblib.externals.loky import ProcessPoolExecutor

    # workers import tests/worker_objectives.py by name (see its docstring)
    pool = ProcessPoolExecutor(2, initializer=exec,
                               initargs=(f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})",))
    yield pool
    pool.shutdown(wait=True)


def worker_torch_threads(x):
    """The intra-op threads of torch where the candidate is evaluated (module level: any pool sends it)."""
    import torch

    return float(torch.get_num_threads())


def module_level_sphere(x):
    """Picklable by reference, for the standard library's ProcessPoolExecutor."""
    return float(np.sum((np.asarray(x, dtype=np.float64) - 0.25) ** 2))


# -- registry and import hygiene -------------------------------------------------------------
def test_registered_and_ray_not_imported():
    assert {"auto", "vectorized", "serial", "executor", "ray"} <= set(registry("evaluators"))
    code = (
        "import sys, evostrat; from evostrat.plugins import registry; "
        "registry('evaluators'); from evostrat.evaluators import RayEvaluator; "
        "RayEvaluator(num_cpus=1); "
        "print(sorted(m for m in ('ray', 'torch', 'jax') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_evaluators_package_exports_its_classes_lazily_through_the_shared_helper():
    code = (
        "import sys, evostrat.evaluators as ev; "
        "light = [m for m in ('ray', 'torch', 'jax', 'concurrent.futures', 'evostrat.evaluators.executor') "
        "if m in sys.modules]; "
        "listed = [n for n in ev.__all__ if n in dir(ev)]; "
        "from evostrat.evaluators import ChunkedEvaluator, ExecutorEvaluator, RayEvaluator; "
        "from evostrat.evaluators.executor import ExecutorEvaluator as home; "
        "print(light, listed, ExecutorEvaluator is home, ev.__getattr__.__module__, "
        "[m for m in ('ray', 'torch', 'jax') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ("[] ['ChunkedEvaluator', 'ExecutorEvaluator', 'RayEvaluator'] True "
                                  "evostrat.plugins.lazy []")
    import evostrat.evaluators as ev

    with pytest.raises(AttributeError, match="module 'evostrat.evaluators' has no attribute 'Nope'"):
        ev.Nope  # noqa: B018


def test_chunk_bounds_cover_in_order():
    for n in (1, 7, 256):
        for k in (1, 2, 3, 300):
            bounds = chunk_bounds(n, n_chunks=k)
            assert [i for a, b in bounds for i in range(a, b)] == list(range(n))
            sizes = [b - a for a, b in bounds]
            assert max(sizes) - min(sizes) <= 1 and len(bounds) == min(k, n)
    assert chunk_bounds(5, chunksize=2) == [(0, 2), (2, 4), (4, 5)]


def on_cpu(x) -> bool:
    """Whether ``x`` lives on the host (JAX's default device is a GPU where there is one)."""
    return get_backend(x).on_cpu(x)


# -- same runs -------------------------------------------------------------------------------
@pytest.mark.parametrize("case", LIBRARY_CASES)
def test_same_seed_same_run_serial_and_executor(case, process_pool):
    x0 = case.array(np.linspace(-1.0, 1.0, 4))

    def run(evaluator):
        es = ES("snes", sigma0=0.5, max_generations=12, random_state=7, evaluator=evaluator)
        return es.fit(shifted_sphere(), x0)

    reference = run("serial")
    if case.backend == "jax":
        # A pool of its own (JAX and torch in one worker exceed loky's 300 MB leak guard,
        # which restarts it), one worker: JAX imported and the rebuild compiled once.
        seeded = ExecutorEvaluator(max_workers=1, seeded=True)
    else:
        seeded = ExecutorEvaluator(process_pool, seeded=True)
    runs = {
        "pool seeded": run(seeded),
        "threads": run(ExecutorEvaluator(cf.ThreadPoolExecutor(2))),
    }
    if case.backend != "jax":  # the plain path does not depend on the backend
        runs["pool plain"] = run(ExecutorEvaluator(process_pool, seeded=False, chunksize=3))
    # seeds are rebuilt on the workers' CPUs: an accelerator's population ships as rows
    assert seeded.last_shipped_["seeded"] is on_cpu(x0)
    for name, es in runs.items():
        assert case.is_native(es.x_), name
        assert np.array_equal(to_numpy(es.x_), to_numpy(reference.x_)), name
        assert es.fun_ == reference.fun_ and es.n_evals_ == reference.n_evals_, name


@pytest.mark.parametrize("name", ["openai_es", "snes", "pgpe"])
@pytest.mark.parametrize("case", LIBRARY_CASES)
def test_replay_same_run_as_serial(case, name, process_pool):
    """seeded="replay": workers replay the strategy's updates; x_ equals serial's bit for bit.

    Only the first generation ships the full state (to every chunk); later ones
    a message of told fitness, unless a worker fell behind by more than the
    window (here it cannot: 2 workers, 3 chunks, window 4 > generations apart).
    """
    x0 = case.array(np.linspace(-1.0, 1.0, 5))
    maximize = name == "pgpe"  # the told fitness is the negated values

    def objective():
        f = shifted_sphere()
        return (lambda x: -f(x)) if maximize else f

    def run(evaluator, shipped=None):
        es = ES(name, popsize=8, max_generations=8, random_state=7, evaluator=evaluator,
                maximize=maximize)
        callbacks = [lambda e: shipped.append(dict(evaluator.last_shipped_))] if shipped is not None else None
        return es.fit(objective(), x0, callbacks=callbacks)

    reference = run("serial")
    if case.backend == "numpy":
        pool = ExecutorEvaluator(process_pool, seeded="replay", chunksize=3)
    else:  # pools of their own: torch or JAX in the shared pool's workers trips loky's leak guard
        pool = ExecutorEvaluator(max_workers=1 if case.backend == "jax" else 2, seeded="replay",
                                 chunksize=3)
    shipped = []
    es = run(pool, shipped)
    assert case.is_native(es.x_)
    assert np.array_equal(to_numpy(es.x_), to_numpy(reference.x_))
    assert es.fun_ == reference.fun_ and es.n_evals_ == reference.n_evals_
    if not on_cpu(x0):  # an accelerator's population ships as rows (seeds rebuild on CPUs)
        assert [s["mode"] for s in shipped] == ["plain"] * 8
        return
    assert [s["mode"] for s in shipped] == ["replay"] * 8
    assert shipped[0]["state_chunks"] == shipped[0]["chunks"] and shipped[0]["state_bytes"] > 0
    later = shipped[1:]
    # a worker that missed generations catches up (up to the window of 4); the state is
    # sent again only to a worker loky replaced (its leak guard) or one idle for longer
    assert sum(s["state_chunks"] == 0 for s in later) >= len(later) // 2, later
    assert all(s["population_bytes"] <= 4 * 8 * x0.dtype.itemsize + 48 for s in later)
    threads = ExecutorEvaluator(cf.ThreadPoolExecutor(2), seeded="replay")
    assert np.array_equal(to_numpy(run(threads).x_), to_numpy(reference.x_))


def test_replay_falls_back_to_the_full_state_for_fresh_workers():
    """A pool replaced mid-run (new processes, empty caches) gets the state again."""
    ref = ES("snes", popsize=6, max_generations=6, random_state=1, evaluator="serial").fit(
        shifted_sphere(), np.ones(3))
    ev = ExecutorEvaluator(max_workers=2, seeded="replay")
    shipped = []

    def restart_pool(es):
        shipped.append(dict(ev.last_shipped_))
        if es.n_generations_ == 3:
            ev.close()  # the next generation starts a fresh pool

    try:
        es = ES("snes", popsize=6, max_generations=6, random_state=1, evaluator=ev).fit(
            shifted_sphere(), np.ones(3), callbacks=[restart_pool])
    finally:
        ev.close()
    assert np.array_equal(es.x_, ref.x_) and es.fun_ == ref.fun_
    assert [s["state_chunks"] for s in shipped][3] == 2  # both fresh workers asked for it
    assert shipped[3]["state_bytes"] > 0 and shipped[4]["state_chunks"] == 0


def test_owned_pool_with_options_runs_and_shuts_down():
    ev = ExecutorEvaluator(max_workers=2)
    for strategy in ("openai_es", "pgpe"):
        reference = ES(strategy, max_generations=5, random_state=3, evaluator="serial")
        reference.fit(shifted_sphere(), np.ones(6))
        es = ES(strategy, max_generations=5, random_state=3, evaluator="executor",
                evaluator_options={"max_workers": 2, "chunksize": 5})
        es.fit(shifted_sphere(), np.ones(6))
        assert np.array_equal(es.x_, reference.x_)
    ES("snes", max_generations=2, random_state=0, evaluator=ev).fit(shifted_sphere(), np.ones(3))
    assert ev._pool is None  # closed by fit
    assert ev.n_workers() == 2


def test_objective_receives_backend_rows_or_numpy(process_pool):
    torch = pytest.importorskip("torch")
    be = get_backend("torch")
    X = torch.arange(6, dtype=torch.float32).reshape(3, 2)

    def kind(x):
        return float(type(x).__module__.startswith("torch")) + 10 * float(x.dtype == torch.float32)

    for arrays, expected in (("backend", 11.0), ("numpy", 0.0)):
        values = ExecutorEvaluator(process_pool, arrays=arrays).evaluate(kind, X, be)
        assert isinstance(values, torch.Tensor) and values.dtype == torch.float32
        assert values.tolist() == [expected] * 3


# -- order ----------------------------------------------------------------------------------
def test_order_preserved_with_uneven_durations(process_pool):
    n = 8
    X = indexed_population(n)
    finished = []
    ev = ExecutorEvaluator(process_pool, chunksize=1)
    original = ev.run_chunks

    def spy(*args, **kwargs):
        results = original(*args, **kwargs)
        finished.extend(results)
        return results

    ev.run_chunks = spy
    values = ev.evaluate(slow_for_early_rows(n), X, NUMPY)
    assert values.tolist() == [10.0 * i + 1 for i in range(n)]
    assert len(finished) == n and {r.pid for r in finished} <= set(process_pool._processes)


def test_vectorized_objective_gets_chunks(process_pool):
    @vectorized
    def rows_sum(X):
        assert X.ndim == 2 and X.shape[0] <= 3
        return X.sum(axis=1)

    X = indexed_population(7, dim=2)
    values = ExecutorEvaluator(process_pool, chunksize=3).evaluate(rows_sum, X, NUMPY)
    assert values.tolist() == [2.0 * i for i in range(7)]


def test_vectorized_objective_may_return_one_column_as_in_process():
    """``(n, 1)`` is one value per candidate in workers too, as ``evaluator="vectorized"`` takes it."""
    from evostrat.evaluators.local import VectorizedEvaluator

    @vectorized
    def column(X):
        return X.sum(axis=1, keepdims=True)

    X = indexed_population(7, dim=2)
    expected = VectorizedEvaluator().evaluate(column, X, NUMPY).tolist()
    with cf.ThreadPoolExecutor(2) as pool:
        values = ExecutorEvaluator(pool, chunksize=3).evaluate(column, X, NUMPY)
    assert values.tolist() == expected == [2.0 * i for i in range(7)]


# -- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("pool_kind", ["processes", "threads"])
def test_objective_error_names_candidate_with_traceback(pool_kind, process_pool):
    pool = process_pool if pool_kind == "processes" else cf.ThreadPoolExecutor(2)
    ev = ExecutorEvaluator(pool, chunksize=2)
    # an objective the worker imports by name: its traceback's source lines do not depend on
    # how the pool pickles this module (tests/worker_objectives.py)
    with pytest.raises(ObjectiveError, match=r"objective raised on candidate 5: ValueError: boom on 5") as info:
        ev.evaluate(RaisingOn(5), indexed_population(8), NUMPY)
    err = info.value
    assert err.index == 5 and err.indices == (5,)
    assert isinstance(err.__cause__, ValueError) and str(err.__cause__) == "boom on 5"
    assert isinstance(err.__cause__.__cause__, RemoteTraceback)
    assert "in __call__" in err.traceback and 'raise ValueError(f"boom on {self.index}")' in err.traceback


def base_exception_on(index: int, kind: str):
    """Raise a BaseException that is not an Exception (``SystemExit(3)``, ...) on candidate ``index``."""
    def objective(x):
        if int(x[0]) == index:
            if kind == "exit":
                raise SystemExit(3)
            if kind == "interrupt":
                raise KeyboardInterrupt("raised by the objective")
            raise GeneratorExit("a BaseException of another kind")
        return float(x[0])

    return objective


@pytest.mark.parametrize("kind, name", [("exit", "SystemExit: 3"), ("interrupt", "KeyboardInterrupt"),
                                        ("other", "GeneratorExit")])
@pytest.mark.parametrize("pool_kind", ["processes", "threads", "serial", "vectorized"])
def test_base_exceptions_from_the_objective_name_the_candidate(kind, name, pool_kind, process_pool):
    """SystemExit, GeneratorExit, ... in an objective become ObjectiveError with the index.

    A KeyboardInterrupt interrupts the run on every evaluator, as ``serial``'s does (it came
    back from a worker as an ObjectiveError), with the worker's traceback as its cause.
    """
    objective = base_exception_on(5, kind)
    local = pool_kind in ("serial", "vectorized")
    if pool_kind == "processes":
        ev = ExecutorEvaluator(process_pool, chunksize=2)
    elif pool_kind == "threads":
        ev = ExecutorEvaluator(cf.ThreadPoolExecutor(2), chunksize=2)
    else:
        ev = registry("evaluators")[pool_kind]()
    if pool_kind == "vectorized":  # the whole population at once: the row is unknown
        def objective(X, per_row=objective):
            return np.array([per_row(x) for x in X])
    if kind == "interrupt":
        with pytest.raises(KeyboardInterrupt) as interrupted:
            ev.evaluate(objective, indexed_population(8), NUMPY)
        assert type(interrupted.value) is KeyboardInterrupt
        if not local:
            assert str(interrupted.value) == "raised by the objective"
            assert isinstance(interrupted.value.__cause__, RemoteTraceback)
            assert "in objective" in interrupted.value.__cause__.text
            assert ev.evaluate(shifted_sphere(), np.zeros((2, 2)), NUMPY).tolist() == [0.125, 0.125]
        return
    with pytest.raises(ObjectiveError, match=name) as info:
        ev.evaluate(objective, indexed_population(8), NUMPY)
    err = info.value
    assert type(err.__cause__).__name__ == name.split(":")[0]
    if kind == "exit":
        assert err.__cause__.code == 3
    if pool_kind != "vectorized":
        assert err.index == 5 and "candidate 5" in str(err)
    if not local:
        assert "in objective" in err.traceback
        # the pool still works
        assert ev.evaluate(shifted_sphere(), np.zeros((2, 2)), NUMPY).tolist() == [0.125, 0.125]


@pytest.mark.parametrize("evaluator", ["serial", "executor"])
def test_system_exit_in_the_objective_does_not_end_the_program(evaluator):
    es = ES("cma_es", sigma0=0.1, max_generations=3, random_state=0, evaluator=evaluator,
            evaluator_options={"max_workers": 1} if evaluator == "executor" else None)
    with pytest.raises(ObjectiveError, match=r"candidate 0: SystemExit: 3"):
        es.fit(base_exception_on(0, "exit"), np.zeros(2))


def test_unpicklable_exception_still_reports_index_and_text(process_pool):
    def objective(x):
        class Local(Exception):  # a class the driver cannot unpickle
            pass

        raise Local("local failure")

    with pytest.raises(ObjectiveError, match="candidate 0: Local: local failure") as info:
        ExecutorEvaluator(process_pool).evaluate(objective, indexed_population(4), NUMPY)
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "local failure" in info.value.traceback


def test_invalid_return_value_names_candidate(process_pool):
    def objective(x):
        return "not a number" if int(x[0]) == 2 else 0.0

    with pytest.raises(InvalidTypeError, match="real number for candidate 2"):
        ExecutorEvaluator(process_pool).evaluate(objective, indexed_population(4), NUMPY)


def test_fit_propagates_objective_error(process_pool):
    def objective(x):
        import os

        raise RuntimeError(f"always, in process {os.getpid()}")

    with pytest.raises(ObjectiveError, match="candidate 0: RuntimeError: always") as info:
        ES("snes", max_generations=3, evaluator=ExecutorEvaluator(process_pool)).fit(
            objective, np.zeros(3)
        )
    worker_pid = int(str(info.value.__cause__).rsplit(" ", 1)[1])
    assert worker_pid in process_pool._processes  # raised in a worker, re-raised here


def test_timeout_names_the_candidate(process_pool):
    ev = ExecutorEvaluator(process_pool, timeout=0.5, chunksize=2)
    with pytest.raises(EvaluationTimeoutError, match="candidate 3 exceeded the timeout of 0.5 s") as info:
        ev.evaluate(sleeping_on(3, 60.0), indexed_population(6), NUMPY)
    assert info.value.index == 3 and isinstance(info.value, TimeoutError)
    # the pool is fine afterwards
    assert ev.evaluate(shifted_sphere(), np.zeros((2, 2)), NUMPY).tolist() == [0.125, 0.125]


def test_stuck_worker_hits_the_backstop_and_owned_pool_is_killed():
    ev = ExecutorEvaluator(max_workers=2, timeout=0.2, chunksize=2)
    # the backstop counts from submission: start the workers first and leave the healthy chunk
    # seconds, not milliseconds, so that a loaded machine does not time it out too
    ev.backstop_grace = 60.0  # the first generation starts the workers, however loaded the machine
    try:
        assert ev.evaluate(shifted_sphere(), np.zeros((4, 2)), NUMPY).tolist() == [0.125] * 4
        ev.backstop_grace = 5.0
        with pytest.raises(EvaluationTimeoutError, match="candidates 2-3 did not finish") as info:
            ev.evaluate(sleeping_on(2, 60.0, block_alarm=True), indexed_population(4), NUMPY)
        assert info.value.indices == (2, 3)
        assert ev._pool is None  # killed; the next generation gets a fresh pool
        ev.backstop_grace = 60.0  # whose workers start under whatever load the machine has
        assert ev.evaluate(shifted_sphere(), np.zeros((2, 2)), NUMPY).tolist() == [0.125, 0.125]
    finally:
        ev.close()


def test_given_executor_is_never_shut_down():
    with cf.ThreadPoolExecutor(2) as pool:
        ev = ExecutorEvaluator(pool)
        ES("snes", max_generations=2, random_state=0, evaluator=ev).fit(shifted_sphere(), np.ones(3))
        assert pool.submit(lambda: 42).result() == 42


def test_given_executor_that_refuses_work_is_a_clear_error():
    """A given pool that was shut down (or broken by a dead worker) names the candidates and the cure."""
    pool = cf.ThreadPoolExecutor(2)
    pool.shutdown()
    with pytest.raises(ObjectiveError, match=r"executor refused to run candidates 0-\d+: RuntimeError: .*"
                                             r"pass a new executor") as info:
        ES("snes", max_generations=2, random_state=0,
           evaluator=ExecutorEvaluator(pool)).fit(shifted_sphere(), np.ones(3))
    assert isinstance(info.value.__cause__, RuntimeError) and info.value.indices[0] == 0


# -- options --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"max_workers": 0}, InvalidArgumentError, "max_workers must be a positive int"),
        ({"chunksize": 1.5}, InvalidArgumentError, "chunksize must be a positive int"),
        ({"timeout": -1}, InvalidArgumentError, "timeout must be a positive number of seconds"),
        ({"seeded": "yes"}, InvalidArgumentError, "seeded must be True, False, 'auto', 'seed' or 'replay'"),
        ({"arrays": "lists"}, InvalidArgumentError, "arrays must be 'backend' or 'numpy'"),
        ({"executor": "pool"}, InvalidTypeError, "executor must be a concurrent.futures.Executor"),
        ({"mp_context": "teleport"}, InvalidArgumentError, "mp_context must be one of"),
        ({"mp_context": 5}, InvalidTypeError, "mp_context must be None, one of .* got int"),
        ({"worker_threads": 0}, InvalidArgumentError, "worker_threads must be a positive int or None, got 0"),
    ],
)
def test_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        ExecutorEvaluator(**kwargs)


def test_evaluator_options_errors():
    with pytest.raises(InvalidArgumentError, match="has no option 'workers' .*; valid: .*max_workers"):
        ES(evaluator="executor", evaluator_options={"workers": 2}).fit(
            shifted_sphere(), np.zeros(2)
        )
    with pytest.raises(InvalidArgumentError, match="pass the options to the ExecutorEvaluator"):
        ES(evaluator=ExecutorEvaluator(), evaluator_options={"max_workers": 2}).fit(
            shifted_sphere(), np.zeros(2)
        )
    with pytest.raises(InvalidTypeError, match="evaluator_options must be a dict"):
        ES(evaluator="serial", evaluator_options=[1]).fit(shifted_sphere(), np.zeros(2))
    with pytest.raises(UnknownNameError, match="evaluator must be one of"):
        ES(evaluator="mpi").fit(shifted_sphere(), np.zeros(2))


def test_unpicklable_objective_is_a_clear_error():
    import threading

    lock = threading.Lock()

    def objective(x):
        with lock:
            return 0.0

    ev = ExecutorEvaluator(max_workers=1)
    with pytest.raises(InvalidTypeError, match="objective must be serialisable"):
        ev.evaluate(objective, np.zeros((2, 2)), NUMPY)
    ev.close()


# -- Dask ----------------------------------------------------------------------------------
def test_dask_executor_same_run():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(  # two worker processes, scheduler on loopback
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None,
    ) as cluster, distributed.Client(cluster) as client:
        reference = ES("snes", max_generations=5, random_state=1, evaluator="serial")
        reference.fit(shifted_sphere(), np.ones(3))
        es = ES("snes", max_generations=5, random_state=1,
                evaluator=ExecutorEvaluator(client.get_executor(), max_workers=2, seeded=True))
        es.fit(shifted_sphere(), np.ones(3))
        assert np.array_equal(es.x_, reference.x_)


class _LoadsNowhere:
    """An objective that pickles but cannot be rebuilt in another process."""

    def __call__(self, x):
        return 0.0

    def __reduce__(self):
        return (_refuse, ("No module named 'only_on_the_driver'",))


def _refuse(message):
    raise ModuleNotFoundError(message)


def test_objective_that_cannot_load_on_workers():
    ev = ExecutorEvaluator(max_workers=1)  # its own pool: a failed un-serialisation breaks it
    with pytest.raises(ObjectiveError, match="the executor failed to evaluate candidates 0-3: "
                       ".*must be able to import the objective's module") as info:
        ev.evaluate(_LoadsNowhere(), indexed_population(4), NUMPY)
    chain, err = [], info.value
    while err is not None:
        chain.append(f"{err}")
        err = err.__cause__
    assert any("only_on_the_driver" in text for text in chain), chain
    assert ev._pool is None  # the broken pool was dropped
    assert ev.evaluate(shifted_sphere(), np.zeros((2, 2)), NUMPY).tolist() == [0.125, 0.125]
    ev.close()


def test_standard_library_process_pool():
    """Any Executor: the standard ProcessPoolExecutor (pickle by reference) works too."""
    reference = ES("snes", max_generations=4, random_state=2, evaluator="serial")
    reference.fit(module_level_sphere, np.ones(3))
    ev = ExecutorEvaluator(max_workers=1, mp_context="forkserver", seeded=True)
    es = ES("snes", max_generations=4, random_state=2, evaluator=ev).fit(module_level_sphere, np.ones(3))
    assert np.array_equal(es.x_, reference.x_) and ev._pool is None
    with pytest.raises(InvalidTypeError, match="pickles by reference: use a module-level function"):
        ev.evaluate(lambda x: 0.0, np.zeros((2, 2)), NUMPY)
    ev.close()


def test_owned_pool_workers_run_one_intra_op_thread_unless_configured(process_pool):
    """The pools evostrat starts run each worker with ``worker_threads`` torch/OpenMP/BLAS threads
    (default 1: no oversubscription); ``None`` and a given pool keep the libraries' defaults."""
    pytest.importorskip("torch")
    def fresh_threads(**env: str) -> int:  # torch's threads in a fresh process with this environment
        return int(subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                                  capture_output=True, text=True, check=True, env={**os.environ, **env}).stdout)

    # the default follows the environment; two threads asked for are what torch takes in a fresh
    # process given the variables the workers get (thread_env(2): OMP, MKL, ... = 2; at most a thread per core)
    X, default, two = np.zeros((2, 2)), fresh_threads(), fresh_threads(**thread_env(2))
    for options, want in (({}, 1), ({"worker_threads": 2}, two), ({"worker_threads": None}, default),
                          ({"mp_context": "forkserver"}, 1), ({"mp_context": "forkserver", "worker_threads": 2}, two)):
        ev = ExecutorEvaluator(max_workers=1, **options)  # one worker: each imports torch (seconds)
        try:
            assert ev.evaluate(worker_torch_threads, X, NUMPY).tolist() == [want, want], options
        finally:
            ev.close()
    given = ExecutorEvaluator(process_pool)  # worker_threads=1, but the pool is the user's
    assert given.evaluate(worker_torch_threads, X, NUMPY).tolist() == [default, default]
    es = ES("snes", max_generations=2, random_state=0, evaluator="executor",
            evaluator_options={"max_workers": 1, "worker_threads": 2})
    assert es.fit(worker_torch_threads, np.zeros(2)).fun_ == two


def test_torch_objective_same_run_with_one_thread_per_worker():
    torch = pytest.importorskip("torch")
    weights = torch.linspace(-1.0, 1.0, 64 * 8, dtype=torch.float64).reshape(64, 8)

    def policy_cost(x):
        h = torch.tanh(weights @ torch.as_tensor(x, dtype=torch.float64))
        return float((h - 0.1).pow(2).sum())

    reference = ES("snes", max_generations=5, random_state=4, evaluator="serial").fit(policy_cost, np.ones(8))
    for threads in (1, None):
        es = ES("snes", max_generations=5, random_state=4, evaluator="executor",
                evaluator_options={"max_workers": 2, "worker_threads": threads}).fit(policy_cost, np.ones(8))
        assert np.array_equal(es.x_, reference.x_) and es.fun_ == reference.fun_


class _NeedsTwoArguments(Exception):
    def __init__(self, what, where):
        super().__init__(f"{what} at {where}")


def test_exception_that_cannot_be_rebuilt_travels_as_text(process_pool):
    def objective(x):
        raise _NeedsTwoArguments("overflow", "step 3")

    with pytest.raises(ObjectiveError, match="candidate 0: _NeedsTwoArguments: overflow at step 3") as info:
        ExecutorEvaluator(process_pool).evaluate(objective, indexed_population(2), NUMPY)
    assert isinstance(info.value.__cause__, RemoteTraceback) and info.value.index == 0


def test_auto_ships_seeds_for_large_populations_to_processes(process_pool):
    from evostrat.run.asktell import AskTell
    from evostrat.evaluators.seeded import population_seed

    runner = AskTell(registry("strategies")["snes"](popsize=6), np.zeros(5), random_state=0)
    seed = population_seed(runner)
    X = runner.ask()
    expected = [float(np.sum((x - 0.25) ** 2)) for x in X]
    ev = ExecutorEvaluator(process_pool)  # seeded="auto"
    assert ev.evaluate(shifted_sphere(), X, NUMPY, seed=seed).tolist() == expected
    assert ev.last_shipped_["seeded"] is False  # 240 bytes: cheaper to send
    ev.seed_min_bytes = X.nbytes
    assert ev.evaluate(shifted_sphere(), X, NUMPY, seed=seed).tolist() == expected
    assert ev.last_shipped_["seeded"] is True
    assert ev.last_shipped_["population_bytes"] == seed.nbytes
    threads = ExecutorEvaluator(cf.ThreadPoolExecutor(1))
    threads.seed_min_bytes = 0
    threads.evaluate(shifted_sphere(), X, NUMPY, seed=seed)
    assert threads.last_shipped_["seeded"] is False  # same process: nothing to compress


@pytest.mark.skipif("maxvar_es" not in registry("strategies"), reason="no behaviour strategy")
@pytest.mark.parametrize("form", ["vector", "with fitness", "vectorised"])
def test_behaviour_outputs_are_stacked_like_serial(form, process_pool):
    def per_candidate(x):
        b = np.array([np.sin(3 * x[0]), x[1] ** 2])
        return (float(x @ x), b) if form == "with fitness" else b

    def population(X):
        return np.stack([np.sin(3 * X[:, 0]), X[:, 1] ** 2], axis=1)

    population.vectorized = True
    objective = population if form == "vectorised" else per_candidate
    local = "vectorized" if form == "vectorised" else "serial"
    reference = ES("maxvar_es", max_generations=4, random_state=0, evaluator=local)
    reference.fit(objective, np.ones(3))
    es = ES("maxvar_es", max_generations=4, random_state=0,
            evaluator=ExecutorEvaluator(process_pool, chunksize=3))
    es.fit(objective, np.ones(3))
    assert np.array_equal(es.x_, reference.x_) and es.fun_ == reference.fun_
    assert es.history_[-1]["behaviour_dims"] == 2


def test_nonfinite_values_follow_the_strategy_policy(process_pool):
    from evostrat.errors import NonFiniteFitnessWarning

    def objective(x):
        return float("nan") if x[0] > 0 else float(np.sum(x * x))

    ev = ExecutorEvaluator(process_pool)
    with pytest.warns(NonFiniteFitnessWarning, match="NaN ranks worst"):
        es = ES("snes", max_generations=3, random_state=0, evaluator=ev).fit(objective, np.zeros(3))
    assert np.isfinite(es.fun_) and es.x_[0] <= 0  # NaN candidates never become x_
    with pytest.raises(InvalidArgumentError, match="NaN or infinite"):
        ES("snes", max_generations=3, random_state=0, nonfinite="raise", evaluator=ev).fit(
            objective, np.zeros(3)
        )
