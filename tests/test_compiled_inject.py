"""``inject()`` from a callback on the compiled JAX driver (:mod:`evostrat.run.compiled`).

The compiled chunk samples its populations inside the program, so the candidates a callback
queued were never placed: they were silently dropped (never evaluated, never learnt from).
A generation with queued candidates now runs on the host, as the host loop runs it, and the
chunks go on from its state; a checkpoint holding queued candidates resumes exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from evostrat import ES  # noqa: E402

TARGET = np.array([0.7, -0.4, 0.9, 0.1])


def bumpy(X: Any) -> Any:  # also takes one candidate (axis=-1): the host generation must not probe it
    return jnp.sum((X - jnp.asarray(TARGET, dtype=X.dtype)) ** 2, axis=-1) + 1.0


def inject_at(*generations: int) -> Any:
    def callback(es: ES) -> None:
        if es.n_generations_ in generations:
            es.inject(TARGET)

    return callback


@pytest.mark.filterwarnings("error::evostrat.errors.PerCandidateWarning")
@pytest.mark.parametrize("strategy", ["cma_es", "snes"])
@pytest.mark.parametrize("options", [{}, {"bounds": (-1.0, 1.0)}, {"restarts": "ipop", "tolfun": 1e-1}])
def test_injected_candidates_are_evaluated_on_the_compiled_loop(strategy: str, options: dict) -> None:
    seen = []

    def watch(es: ES) -> None:
        seen.append(es.fun_)

    es = ES(strategy, max_generations=6, random_state=0, **options).fit(bumpy, jnp.zeros(4),
                                                                       callbacks=[inject_at(2), watch])
    assert es.fast_path_ == "compiled_loop"
    assert seen[1] > 1.0 + 1e-3  # not found before the injection (the old runs ended above it)
    assert es.fun_ == pytest.approx(1.0, abs=1e-6)  # the injected optimum, evaluated at generation 3
    np.testing.assert_allclose(np.asarray(es.x_), TARGET, atol=1e-6)
    if not options:
        assert es.n_evals_ == 6 * es.strategy_.popsize


@pytest.mark.parametrize("strategy", ["cma_es", "snes"])
def test_a_checkpoint_with_queued_candidates_resumes_exactly(tmp_path: Any, strategy: str) -> None:
    path, kept = tmp_path / "run.ckpt", tmp_path / "kept.ckpt"

    def keep(es: ES) -> None:
        if es.n_generations_ == 6:
            kept.write_bytes(path.read_bytes())  # the checkpoint of generation 5, its candidates queued

    options = dict(max_generations=20, random_state=1, bounds=(-1.0, 1.0))
    full = ES(strategy, **options).fit(bumpy, jnp.zeros(4), callbacks=[inject_at(5), keep], checkpoint=path)
    resumed = ES.resume(kept, bumpy, checkpoint=False)  # no observers: chunks of many generations
    strip = lambda h: [{k: v for k, v in row.items() if k != "time"} for row in h]  # noqa: E731
    assert strip(resumed.history_) == strip(full.history_)
    assert resumed.fun_ == full.fun_ and np.array_equal(np.asarray(resumed.x_), np.asarray(full.x_))
    assert resumed.fast_path_ == full.fast_path_ == "compiled_loop"
