"""``evaluator="ray"``: chunks of candidates as Ray tasks, retried when a worker dies.

Needs the ``ray`` extra (``pip install evostrat[ray]``), imported when a
generation is first evaluated. Per generation the population (or its seed or
replay message) is ``ray.put`` once, the objective once per run (per generation for an
objective of the generation protocol, :mod:`evostrat.evaluators.sync`, whose state changes). A chunk whose
worker process dies (killed, out of memory, node lost) is re-run on another
worker up to ``max_retries`` times; past that, or when the objective raises
(never retried), the error names the chunk's candidates. In replay mode a
retried chunk that lands on a fresh worker is resent with the full state.

Examples
--------
>>> import numpy as np                                                # doctest: +SKIP
>>> from evostrat import ES                                           # doctest: +SKIP
>>> from evostrat.evaluators import RayEvaluator                      # doctest: +SKIP
>>> es = ES("snes", max_generations=20, random_state=0,               # doctest: +SKIP
...         evaluator=RayEvaluator(num_cpus=2)).fit(lambda x: float(x @ x), np.ones(3))
>>> es.n_generations_                                                 # doctest: +SKIP
20
"""

from __future__ import annotations

import ipaddress
import os
import warnings
from numbers import Integral
from typing import Any, Callable, Sequence

from evostrat.errors import InvalidArgumentError, InvalidTypeError, ObjectiveError
from evostrat.evaluators.remote import ChunkedEvaluator, describe_candidates, positive_int
from evostrat.evaluators.sync import syncs
from evostrat.params import Interval
from evostrat.evaluators.worker import ChunkResult, WorkerOptions, run_chunk

__all__ = ["RayEvaluator", "start_local_cluster"]


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise ImportError("evaluator='ray' needs Ray: pip install 'evostrat[ray]'") from err
    return ray


#: Ray's variable for the niceness of its worker processes (Ray's own default: 15).
WORKER_NICENESS_VARIABLE = "RAY_worker_niceness"


def start_local_cluster(num_cpus: int, worker_niceness: int | None = 0, **init_options: Any) -> Any:
    """``ray.init`` a local cluster whose servers listen on 127.0.0.1 only; returns the ``ray`` module.

    On Linux Ray binds its servers to the outward interface even when asked for
    127.0.0.1; its single-machine mode (macOS/Windows) takes the loopback address,
    so it is switched on during ``ray.init``. A warning says if another address is advertised.

    ``worker_niceness``: the ``nice`` value of the cluster's worker processes, which evaluate
    the objective. 0 (the default) runs them at the priority of the process that waits for
    them; Ray's own 15 lets any other busy process on the machine starve them (a torch run's
    first generation, whose workers import torch, on a 2-CPU machine with two other busy
    processes: 66 s at 15, 4.7 s at 0; 2.4 s when the machine is idle). ``None`` leaves Ray's
    setting, as does a ``RAY_worker_niceness`` variable in the environment.
    """
    ray = _import_ray()
    if worker_niceness is not None and not isinstance(worker_niceness, Integral):
        raise InvalidTypeError(f"worker_niceness must be an int or None, got {type(worker_niceness).__name__}")
    try:
        from ray._private import ray_constants
    except ImportError:  # pragma: no cover - Ray's layout changed
        ray_constants = None
    saved = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    if saved is not None:
        ray_constants.ENABLE_RAY_CLUSTER = False
    options = {"include_dashboard": False, "_node_ip_address": "127.0.0.1", **init_options}
    # Ray's servers read the niceness from the environment they start with
    niceness_set = worker_niceness is not None and WORKER_NICENESS_VARIABLE not in os.environ
    if niceness_set:
        os.environ[WORKER_NICENESS_VARIABLE] = str(int(worker_niceness))
    try:
        ray.init(num_cpus=int(num_cpus), **options)
    finally:
        if niceness_set:
            del os.environ[WORKER_NICENESS_VARIABLE]
        if saved is not None:
            ray_constants.ENABLE_RAY_CLUSTER = saved
    host = cluster_host(ray)
    if host is not None and not _is_loopback(host):
        warnings.warn(f"the local Ray cluster advertises {host}, not 127.0.0.1: its servers may be "
                      "reachable from the network", RuntimeWarning, stacklevel=2)
    return ray


def cluster_host(ray: Any) -> str | None:
    """Host part of the connected cluster's GCS address."""
    try:
        address = ray.get_runtime_context().gcs_address
    except Exception:  # noqa: BLE001 - not connected, or an old Ray
        return None
    return address.rsplit(":", 1)[0].strip("[]")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class RayEvaluator(ChunkedEvaluator):
    """Evaluate chunks of candidates as Ray tasks.

    Parameters
    ----------
    address : str, optional
        ``None``: the Ray instance already initialised in this process, else a
        new local cluster on 127.0.0.1. ``"auto"`` or ``"ray://..."``: join.
    num_cpus : int, optional
        CPUs of a local cluster started by this evaluator (default
        ``min(os.cpu_count(), 8)``).
    num_workers : int, optional
        Chunks per generation (default: the cluster's CPU count).
    max_retries : int
        Re-runs of a chunk whose worker process died (default 3).
    init_options : dict, optional
        Extra ``ray.init`` keyword arguments (``object_store_memory``, ...) of a local
        cluster started by this evaluator, and ``worker_niceness`` (default 0: its workers at
        this process's priority; see :func:`start_local_cluster`).
    chunksize, timeout, seeded, vectorized, arrays
        See :class:`~evostrat.evaluators.remote.ChunkedEvaluator`. ``timeout``
        interrupts a candidate inside the worker; a worker stuck beyond it is
        cancelled (its process killed) and the error names its candidates.
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None,
                 num_workers: int | None = None, max_retries: int = 3, init_options: dict | None = None,
                 chunksize: int | None = None, timeout: float | None = None, seeded: Any = "auto",
                 vectorized: bool | None = None, arrays: str = "backend") -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.num_workers = num_workers
        self.max_retries = max_retries
        self.init_options = init_options
        super().__init__(chunksize, timeout, seeded, vectorized, arrays)
        self._ray: Any = None
        self._owns_cluster = False
        self._task: Any = None
        self._workers = 1
        self._objective_ref: tuple[Callable, Any] | None = None

    def check_parameters(self) -> None:
        super().check_parameters()
        if self.address is not None and not isinstance(self.address, str):
            raise InvalidTypeError(
                f"address must be a Ray address string (\"auto\", \"ray://host:port\") or None, "
                f"got {type(self.address).__name__}"
            )
        positive_int("num_cpus", self.num_cpus)
        positive_int("num_workers", self.num_workers)
        if self.max_retries not in Interval(Integral, 0, None):
            raise InvalidArgumentError(f"max_retries must be an int >= 0, got {self.max_retries!r}")
        if self.init_options is not None and not isinstance(self.init_options, dict):
            raise InvalidTypeError(
                f"init_options must be a dict of ray.init arguments or None, got "
                f"{type(self.init_options).__name__}"
            )

    # -- the cluster -------------------------------------------------------------------
    def _connect(self) -> Any:
        if self._ray is not None and self._ray.is_initialized():
            return self._ray
        ray = _import_ray()
        if not ray.is_initialized():
            options = dict(self.init_options or {})
            if self.address is None:
                start_local_cluster(self.num_cpus or min(os.cpu_count() or 1, 8), **options)
            else:
                ray.init(address=self.address, **options)
            self._owns_cluster = True
        self._ray = ray
        self._task = ray.remote(run_chunk).options(
            num_cpus=1, max_retries=int(self.max_retries), retry_exceptions=False
        )
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self._workers = int(self.num_workers or max(1, cpus))
        self._objective_ref = None
        return ray

    def n_workers(self) -> int:
        self._connect()
        return self._workers

    def close(self) -> None:
        """Drop cached objects; shut Ray down if this evaluator started or joined it."""
        self._objective_ref = None
        ray, self._ray = self._ray, None
        if ray is not None and self._owns_cluster and ray.is_initialized():
            ray.shutdown()
        self._owns_cluster = False

    # -- chunks ------------------------------------------------------------------------
    def run_chunks(self, objective: Callable, source: Any, chunks: Sequence[tuple[int, int]],
                   options: WorkerOptions) -> list[ChunkResult]:
        ray = self._connect()
        if self._objective_ref is None or self._objective_ref[0] is not objective:
            self.serialised_size(objective, hint="; Ray serialises it with cloudpickle")  # fail early
            self._objective_ref = (objective, ray.put(objective))
        elif syncs(objective):  # its state changed with the last generation (evostrat.evaluators.sync)
            self._objective_ref = (objective, ray.put(objective))
        objective_ref = self._objective_ref[1]
        source_ref = ray.put(source)  # once per generation, whatever the number of chunks
        refs = [self._task.remote(objective_ref, source_ref, a, b, 0, options) for a, b in chunks]
        _, pending = ray.wait(refs, num_returns=len(refs), timeout=self.backstop(chunks))
        if pending:
            for ref in pending:
                ray.cancel(ref, force=True)  # kills the stuck worker processes
            raise self.timed_out(chunks, refs, pending)
        results = []
        for (start, stop), ref in zip(chunks, refs):
            try:
                results.append(ray.get(ref))
            except ray.exceptions.RayError as err:
                message = f"Ray could not evaluate {describe_candidates(start, stop)}: "
                if isinstance(err, ray.exceptions.WorkerCrashedError):
                    message += (
                        f"the worker process running them died {int(self.max_retries) + 1} "
                        f"times (max_retries={self.max_retries})"
                    )
                else:
                    lines = [line for line in str(err).splitlines() if line.strip()]
                    message += f"{type(err).__name__}: {lines[-1] if lines else ''}"
                    if "RaySystemError" in message or "ModuleNotFoundError" in message:
                        message += (
                            " (a worker must be able to import the module that defines the "
                            "objective: define it in an installed package or the main script, "
                            "or ship modules with init_options={'runtime_env': ...})"
                        )
                raise ObjectiveError(message, indices=tuple(range(start, stop))) from err
        return results
