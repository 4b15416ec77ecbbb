"""evaluator="ray" on a local cluster the tests start on 127.0.0.1 (2 CPUs).

One cluster for the module, shut down at its end. Checks:

- the cluster's servers listen on the loopback address;
- the same seed gives the same ``x_`` with ``serial`` and ``ray`` (seeded and
  plain, numpy and torch);
- a worker process killed mid-generation (the objective SIGKILLs its own
  process once, guarded by a marker file) does not end the run: the chunk is
  retried and ``x_`` equals the undisturbed run's;
- ``seeded="replay"`` (workers replay the strategy's updates) gives the same
  ``x_`` as serial for openai_es, snes and pgpe, also when a worker is killed
  mid-generation (a fresh worker asks for the state and gets it);
- a chunk whose worker dies more than ``max_retries`` times raises
  ``ObjectiveError`` naming its candidates;
- objective errors and timeouts name the candidate;
- an evaluator that joined a running cluster leaves it running;
- the cluster's workers run at the niceness asked for (0 by default, not Ray's 15).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import to_numpy

from evostrat import ES
from evostrat.backends import get_backend
from evostrat.errors import EvaluationTimeoutError, ObjectiveError
from evostrat.evaluators.ray import RayEvaluator, cluster_host, start_local_cluster

ray = pytest.importorskip("ray")

NUMPY = get_backend("numpy")
# Ray starts its servers with subprocess (fork + exec), which JAX warns about needlessly.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")
QUIET = {"log_to_driver": False, "configure_logging": False}


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():  # pragma: no cover - another module left one running
        ray.shutdown()
    start_local_cluster(2, object_store_memory=128 * 2**20, **QUIET)
    try:
        yield ray
    finally:
        ray.shutdown()


def shifted_sphere():
    def objective(x):
        x = np.asarray(x.detach() if hasattr(x, "detach") else x, dtype=np.float64)
        return float(np.sum((x - 0.25) ** 2))

    return objective


def indexed_population(n: int, dim: int = 3) -> np.ndarray:
    return np.repeat(np.arange(n, dtype=np.float64)[:, None], dim, axis=1)


def killing_once(marker: str, calls: str, after: int):
    """Deterministic values; the call number ``after`` (over all workers) kills its process once."""

    def objective(x):
        import signal

        with open(calls, "ab") as f:  # appends are atomic: a global call count
            f.write(b".")
        if os.path.getsize(calls) >= after:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return float(np.sum((np.asarray(x, dtype=np.float64) - 0.25) ** 2))

    return objective


def test_evaluator_starts_and_stops_its_own_local_cluster():
    """Runs first, before the module's cluster: no Ray yet, so the evaluator starts one."""
    if ray.is_initialized():  # pragma: no cover - another module left one running
        pytest.skip("a Ray instance is already running in this process")
    ev = RayEvaluator(num_cpus=1, init_options={**QUIET, "object_store_memory": 80 * 2**20, "worker_niceness": 3})
    try:
        values = ev.evaluate(niceness_and_sphere(), np.zeros((3, 2)), NUMPY)
        assert values.tolist() == [3.125] * 3  # its workers run at the niceness asked for
        assert "RAY_worker_niceness" not in os.environ
        assert ray.is_initialized() and cluster_host(ray) == "127.0.0.1"
        assert int(ray.cluster_resources()["CPU"]) == 1 and ev.n_workers() == 1
    finally:
        ev.close()
    assert not ray.is_initialized()  # it started the cluster, so it shut it down


def niceness_and_sphere():
    """The worker's niceness plus the shifted sphere (defined here: Ray pickles it by value)."""
    sphere = shifted_sphere()

    def objective(x):
        return os.nice(0) + sphere(x)

    return objective


def test_cluster_listens_on_loopback(cluster):
    assert cluster_host(cluster) == "127.0.0.1"
    assert int(cluster.cluster_resources()["CPU"]) == 2


def test_cluster_workers_run_at_the_drivers_priority(cluster):
    # Ray's default niceness (15) let any busy process starve the workers: the first torch
    # generation took 66 s beside two busy processes on 2 CPUs, 4.7 s at niceness 0
    values = RayEvaluator().evaluate(niceness_and_sphere(), np.zeros((4, 2)), NUMPY)
    assert values.tolist() == [os.nice(0) + 0.125] * 4
    assert "RAY_worker_niceness" not in os.environ  # set only while the cluster started


def test_worker_niceness_must_be_an_int():
    from evostrat.errors import InvalidTypeError

    with pytest.raises(InvalidTypeError, match="worker_niceness"):
        start_local_cluster(1, worker_niceness="low")


def test_same_seed_same_run_serial_and_ray(cluster):
    reference = ES("snes", max_generations=10, random_state=5, evaluator="serial")
    reference.fit(shifted_sphere(), np.linspace(-1, 1, 5))
    for options in ({"seeded": True}, {"seeded": False}, {"chunksize": 3}):
        ev = RayEvaluator(**options)
        es = ES("snes", max_generations=10, random_state=5, evaluator=ev)
        es.fit(shifted_sphere(), np.linspace(-1, 1, 5))
        assert np.array_equal(es.x_, reference.x_), options
        assert ev.last_shipped_["seeded"] is (options.get("seeded") is True)
    assert ray.is_initialized()  # joined, not owned: still running


def test_torch_population_same_run(cluster):
    torch = pytest.importorskip("torch")
    x0 = torch.linspace(-1, 1, 4)
    reference = ES("openai_es", max_generations=6, random_state=2, evaluator="serial")
    reference.fit(shifted_sphere(), x0)
    es = ES("openai_es", max_generations=6, random_state=2, evaluator="ray",
            evaluator_options={"seeded": True}).fit(shifted_sphere(), x0)
    assert isinstance(es.x_, torch.Tensor) and torch.equal(es.x_, reference.x_)


def test_killed_worker_is_retried_and_run_unchanged(cluster, tmp_path):
    marker, calls = str(tmp_path / "killed"), str(tmp_path / "calls")
    popsize, generations = 8, 6
    reference = ES("snes", popsize=popsize, max_generations=generations, random_state=9,
                   evaluator="serial").fit(shifted_sphere(), np.ones(4))
    # the kill happens in the 4th generation (call 30 of 48), in the middle of a chunk
    ev = RayEvaluator(max_retries=2, seeded=True)
    es = ES("snes", popsize=popsize, max_generations=generations, random_state=9, evaluator=ev)
    es.fit(killing_once(marker, calls, after=30), np.ones(4))
    assert os.path.exists(marker)  # a worker really died
    assert es.n_generations_ == generations
    assert np.array_equal(es.x_, reference.x_) and es.fun_ == reference.fun_
    assert os.path.getsize(calls) > popsize * generations  # the killed chunk ran again


@pytest.mark.parametrize("name", ["openai_es", "snes", "pgpe"])
def test_replay_same_run_as_serial(cluster, name):
    """seeded="replay": Ray workers keep the state and replay each update from the told fitness."""
    x0 = np.linspace(-1, 1, 5)
    reference = ES(name, popsize=8, max_generations=8, random_state=4, evaluator="serial")
    reference.fit(shifted_sphere(), x0)
    ev = RayEvaluator(seeded="replay", chunksize=3)
    shipped = []
    es = ES(name, popsize=8, max_generations=8, random_state=4, evaluator=ev)
    es.fit(shifted_sphere(), x0, callbacks=[lambda e: shipped.append(dict(ev.last_shipped_))])
    assert np.array_equal(es.x_, reference.x_) and es.fun_ == reference.fun_
    assert [s["mode"] for s in shipped] == ["replay"] * 8
    assert shipped[0]["state_chunks"] == 3  # the first generation installs the state
    assert sum(s["state_chunks"] == 0 for s in shipped[1:]) >= 4  # later: messages only
    assert all(s["population_bytes"] < 400 for s in shipped[1:])


def test_torch_replay_same_run(cluster):
    torch = pytest.importorskip("torch")
    x0 = torch.linspace(-1, 1, 4, dtype=torch.float64)
    reference = ES("pgpe", max_generations=6, random_state=2, evaluator="serial")
    reference.fit(shifted_sphere(), x0)
    es = ES("pgpe", max_generations=6, random_state=2, evaluator="ray",
            evaluator_options={"seeded": "replay"}).fit(shifted_sphere(), x0)
    assert isinstance(es.x_, torch.Tensor) and torch.equal(es.x_, reference.x_)


def test_killed_worker_in_replay_mode_run_unchanged(cluster, tmp_path):
    """The retried chunk may land on a fresh worker (no cached state): it asks for the
    state, the driver resends it, and the run equals the undisturbed one."""
    marker, calls = str(tmp_path / "killed"), str(tmp_path / "calls")
    popsize, generations = 8, 6
    reference = ES("snes", popsize=popsize, max_generations=generations, random_state=9,
                   evaluator="serial").fit(shifted_sphere(), np.ones(4))
    ev = RayEvaluator(max_retries=2, seeded="replay")
    shipped = []
    es = ES("snes", popsize=popsize, max_generations=generations, random_state=9, evaluator=ev)
    es.fit(killing_once(marker, calls, after=30), np.ones(4),
           callbacks=[lambda e: shipped.append(dict(ev.last_shipped_))])
    assert os.path.exists(marker)  # a worker really died, in the 4th generation
    assert es.n_generations_ == generations
    assert np.array_equal(es.x_, reference.x_) and es.fun_ == reference.fun_
    assert os.path.getsize(calls) > popsize * generations  # the killed chunk ran again
    assert all(s["mode"] == "replay" for s in shipped)


def forgetting_after(marker: str):
    """Deterministic values; once ``marker`` exists, each call empties its worker's replay
    cache (after the chunk's rows were built), as a replaced worker's would be."""

    def objective(x):
        if os.path.exists(marker):
            from evostrat.evaluators.replay import _REPLAY_CACHE

            _REPLAY_CACHE.clear()
        return float(np.sum((np.asarray(x, dtype=np.float64) - 0.25) ** 2))

    return objective


def test_workers_without_the_state_get_it_and_run_unchanged(cluster, tmp_path):
    x0 = np.linspace(-1, 1, 5)
    reference = ES("snes", popsize=8, max_generations=6, random_state=6, evaluator="serial")
    reference.fit(shifted_sphere(), x0)
    marker = str(tmp_path / "forget")
    ev = RayEvaluator(seeded="replay")
    shipped = []

    def record(es):
        shipped.append(dict(ev.last_shipped_))
        if es.n_generations_ == 2:
            open(marker, "w").close()  # from the third generation on, workers forget

    es = ES("snes", popsize=8, max_generations=6, random_state=6, evaluator=ev)
    es.fit(forgetting_after(marker), x0, callbacks=[record])
    assert np.array_equal(es.x_, reference.x_) and es.fun_ == reference.fun_
    assert shipped[0]["state_chunks"] == 2
    # generations 4-6: every worker lost the state during the previous one and asked for it
    assert [s["state_chunks"] for s in shipped[3:]] == [2, 2, 2]


def test_worker_dying_past_max_retries_names_candidates(cluster, tmp_path):
    def always_dies(x):
        import signal

        if x[0] >= 2:  # candidates 2 and 3 (the second chunk)
            os.kill(os.getpid(), signal.SIGKILL)
        return 0.0

    ev = RayEvaluator(max_retries=1)
    with pytest.raises(ObjectiveError, match=r"Ray could not evaluate candidates 2-3: the worker process running them died 2 times") as info:
        ev.evaluate(always_dies, indexed_population(4), NUMPY)
    assert info.value.indices == (2, 3)
    assert isinstance(info.value.__cause__, ray.exceptions.RayError)


def test_objective_error_names_candidate(cluster):
    def objective(x):
        if int(x[0]) == 3:
            raise KeyError("missing 3")
        return 0.0

    with pytest.raises(ObjectiveError, match="objective raised on candidate 3: KeyError") as info:
        RayEvaluator().evaluate(objective, indexed_population(6), NUMPY)
    assert info.value.index == 3 and isinstance(info.value.__cause__, KeyError)
    assert "raise KeyError" in info.value.traceback


def test_timeout_names_candidate(cluster):
    def objective(x):
        import time

        if int(x[0]) == 4:
            time.sleep(60)
        return 0.0

    with pytest.raises(EvaluationTimeoutError, match="candidate 4 exceeded the timeout of 0.5 s"):
        RayEvaluator(timeout=0.5).evaluate(objective, indexed_population(6), NUMPY)


def test_vectorized_and_values_on_backend(cluster):
    torch = pytest.importorskip("torch")

    def rows_sum(X):
        return X.sum(dim=1)

    rows_sum.vectorized = True
    X = torch.arange(12, dtype=torch.float64).reshape(6, 2)
    values = RayEvaluator(chunksize=4).evaluate(rows_sum, X, get_backend("torch"))
    assert values.dtype == torch.float64
    assert to_numpy(values).tolist() == [1.0, 5.0, 9.0, 13.0, 17.0, 21.0]


def test_obs_norm_run_on_ray_equals_the_serial_run(cluster):
    # GymProblem's observation statistics (evostrat.evaluators.sync): before, the objective was put
    # once per run, every worker updated its own copy and the driver's stayed at count 0.01
    pytest.importorskip("gymnasium")
    from evostrat.problems.gym import GymProblem, MLPPolicy

    def run(evaluator, options=None):
        p = GymProblem("CartPole-v1", MLPPolicy(4, 2, hidden=()), episodes=2, max_steps=30, obs_norm=True)
        es = ES("snes", popsize=6, max_generations=4, maximize=True, random_state=0, evaluator=evaluator,
                evaluator_options=options or {}).fit(p, np.zeros(p.dim))
        return [row["median"] for row in es.history_], es.x_, p.obs_stat.moments()

    medians, x, (count, mean, m2) = run(RayEvaluator(num_workers=2))
    ref_medians, ref_x, (ref_count, ref_mean, ref_m2) = run("serial")
    assert medians == ref_medians and np.array_equal(x, ref_x)
    assert count == ref_count > 100 and np.array_equal(mean, ref_mean) and np.array_equal(m2, ref_m2)
