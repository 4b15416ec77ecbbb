"""The compiled JAX driver's stages (issue 15): a chunk runs its generations in stages whose
rows fit XLA's sequential-execution threshold on the CPU, and checks the run's criteria for a
block of stages; the runs are those of one stage per block, bit for bit."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

import evostrat.run.compiled as compiled  # noqa: E402
from evostrat import ES  # noqa: E402
from evostrat.plugins.factories import make_strategy  # noqa: E402
from evostrat.problems import rosenbrock  # noqa: E402


def _run_value(name: str, dim: int) -> compiled.DeviceRun:
    state = make_strategy(name, None).init(jnp.ones(dim), random_state=0)
    return compiled.DeviceRun(state, jnp.float32(jnp.inf), jnp.ones(dim), None, 0, 0, 0)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="stages apply on the CPU")
def test_small_generations_run_in_stages_within_the_threshold() -> None:
    stage, block = compiled.stage_sizes(_run_value("cma_es", 10), popsize=10)
    assert (stage, block) == (11, 33)  # 11 rows of 11 float32 values: 484 bytes
    assert stage * (10 + 1) * 4 <= compiled.SEQUENTIAL_BYTES
    # a state with an array past the threshold (SNES at d = 100: its population is 17 x 100)
    assert compiled.stage_sizes(_run_value("snes", 100), popsize=17) == (compiled.BLOCK, compiled.BLOCK)


def _rugged(X: Any) -> Any:
    return jnp.sum(X**2, axis=1) + 10.0 * jnp.sin(1e4 * X[:, 0] * X[:, 1])


def _plateau(X: Any) -> Any:
    return jnp.floor(jnp.sum(X**2, axis=1) * 4.0)


CASES: dict[str, tuple[int, Callable, dict[str, Any]]] = {
    "stagnation": (4, _rugged, {"tolfun": None, "tolx": None, "tolfunhist": None, "max_generations": 3000}),
    "flat": (4, _plateau, {"tolflatfitness": 3}),
    "maxiter": (10, rosenbrock, {"max_generations": 100}),
}


def _fit(dim: int, objective: Callable, params: dict[str, Any]) -> ES:
    # a new function each time: a program of its own (the compile cache keys by the objective)
    es = ES("cma_es", random_state=0, **params).fit(lambda X: objective(X), jnp.full(dim, 1.0))
    assert es.fast_path_ == "compiled_loop"
    return es


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="stages apply on the CPU")
@pytest.mark.parametrize("case", sorted(CASES))
def test_stages_give_the_run_of_one_stage_per_block(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    dim, objective, params = CASES[case]
    staged = _fit(dim, objective, params)
    monkeypatch.setattr(compiled, "SEQUENTIAL_BYTES", 0)  # every array past it: one stage per block
    blocks = _fit(dim, objective, params)
    assert (staged.n_generations_, staged.stop_reason_) == (blocks.n_generations_, blocks.stop_reason_)
    assert staged.history_ and len(staged.history_) == len(blocks.history_)
    for a, b in zip(staged.history_, blocks.history_):
        assert {k: v for k, v in a.items() if k != "time"} == {k: v for k, v in b.items() if k != "time"}
    assert np.array_equal(np.asarray(staged.x_), np.asarray(blocks.x_)) and staged.fun_ == blocks.fun_


def test_the_chunk_counts_its_nonfinite_values_for_the_warning() -> None:
    """The count of NaN/inf values a chunk reports (computed on the device) is the sum of the
    counts of its generations run one chunk each (a run with an observer)."""
    import re
    import warnings

    from evostrat.errors import NonFiniteFitnessWarning

    def objective(X: Any) -> Any:
        return jnp.where(X[:, 0] > 1.2, jnp.nan, jnp.sum(X ** 2, axis=1))

    counts = []
    for callbacks in (None, [lambda es: None]):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            es = ES("snes", max_generations=30, random_state=0).fit(objective, jnp.ones(3), callbacks=callbacks)
        assert es.fast_path_ == "compiled_loop"
        found = [re.match(r"(\d+) fitness values", str(w.message)) for w in caught
                 if issubclass(w.category, NonFiniteFitnessWarning)]
        counts.append([int(m.group(1)) for m in found])
    assert len(counts[0]) == 1 and counts[0][0] == sum(counts[1]) > 0
