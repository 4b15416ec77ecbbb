"""Candidates queued by ``inject()`` across a restart (:mod:`evostrat.run.restarts`).

A restart run used to start with an empty queue: candidates injected but not yet placed
when the run ended (more than one population injected, or injected between ``ask`` and the
``tell`` that ended the run) were dropped, never evaluated. The next run now takes them
over, on the host loop and on the compiled JAX loop, and a checkpoint holding them resumes
exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evostrat import ES

TARGET = np.array([0.7, -0.4, 0.9])


def plateau(X: Any) -> Any:
    """1 everywhere except at ``TARGET`` exactly (0): every run ends flat after one generation."""
    X = np.asarray(X)
    return np.where(np.all(X == TARGET, axis=1), 0.0, 1.0)


def rows(k: int) -> np.ndarray:
    """``k`` candidates on the plateau, the last one ``TARGET``."""
    out = np.tile(np.array([0.1, 0.2, 0.3]), (k, 1)) + 0.01 * np.arange(k)[:, None]
    out[-1] = TARGET
    return out


def inject_at(generation: int, k: int) -> Any:
    def callback(es: ES) -> None:
        if es.n_generations_ == generation:
            es.inject(rows(k))

    return callback


def test_ask_tell_queue_outlives_the_run_it_was_injected_in() -> None:
    es = ES("cma_es", restarts="ipop", random_state=0).initialize(np.zeros(3))
    X = es.ask()
    es.inject(rows(10))  # between ask and the tell that ends the run
    es.tell(X, np.ones(len(X)))
    assert es.restarts_[-1]["run"] == 1  # the flat generation ended run 0
    np.testing.assert_array_equal(es.ask()[:10], rows(10))
    assert es.run_.runner.injected_rows == tuple(range(10))


@pytest.mark.parametrize("options", [{}, {"bounds": (-1.0, 1.0)}])
def test_fit_evaluates_candidates_still_queued_when_a_run_ends(options: dict) -> None:
    es = ES("cma_es", restarts="ipop", max_generations=4, random_state=0, **options)
    es.fit(plateau, np.zeros(3), callbacks=[inject_at(1, 30)])  # run 1 places 14, run 2 the other 16
    assert [r["popsize"] for r in es.restarts_[:3]] == [7, 14, 29]  # pycma: int(7.2958 * 2^k)
    assert es.fun_ == 0.0  # TARGET, the 30th row, was evaluated in run 2 (before: dropped, fun_ 1.0)
    np.testing.assert_allclose(es.x_, TARGET, atol=1e-12)
    assert es.restarts_[2]["best"] == 0.0


def test_a_checkpoint_between_runs_holds_the_carried_queue(tmp_path: Path) -> None:
    path, kept = tmp_path / "run.ckpt", tmp_path / "kept.ckpt"

    def keep(es: ES) -> None:
        if es.n_generations_ == 3:
            kept.write_bytes(path.read_bytes())  # saved after generation 2: run 2 begun, 16 rows queued

    make = lambda: ES("cma_es", restarts="ipop", max_generations=6, random_state=0)  # noqa: E731
    full = make().fit(plateau, np.zeros(3), callbacks=[inject_at(1, 30), keep], checkpoint=path)
    resumed = ES.resume(kept, plateau, checkpoint=False)
    strip = lambda h: [{k: v for k, v in row.items() if k != "time"} for row in h]  # noqa: E731
    assert strip(resumed.history_) == strip(full.history_)
    assert resumed.fun_ == full.fun_ == 0.0 and resumed.restarts_ == full.restarts_
    np.testing.assert_array_equal(resumed.x_, full.x_)


def test_compiled_loop_carries_the_queue_into_the_next_run(tmp_path: Path) -> None:
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    def traced(X: Any) -> Any:
        return jnp.where(jnp.all(X == jnp.asarray(TARGET, dtype=X.dtype), axis=-1), 0.0, 1.0)

    path, kept = tmp_path / "run.ckpt", tmp_path / "kept.ckpt"

    def keep(es: ES) -> None:
        if es.n_generations_ == 3:
            kept.write_bytes(path.read_bytes())

    make = lambda: ES("cma_es", restarts="ipop", max_generations=6, random_state=0)  # noqa: E731
    full = make().fit(traced, jnp.zeros(3), callbacks=[inject_at(1, 30), keep], checkpoint=path)
    assert full.fast_path_ == "compiled_loop"
    assert full.fun_ == 0.0  # before: 1.0, the 16 rows left for run 2 dropped
    np.testing.assert_allclose(np.asarray(full.x_), TARGET, atol=1e-6)
    resumed = ES.resume(kept, traced, checkpoint=False)
    strip = lambda h: [{k: v for k, v in row.items() if k != "time"} for row in h]  # noqa: E731
    assert strip(resumed.history_) == strip(full.history_)
    assert resumed.fun_ == full.fun_ and resumed.fast_path_ == "compiled_loop"
