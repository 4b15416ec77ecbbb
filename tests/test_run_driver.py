"""The one driver: it alone tells the strategy during a fit, once per generation.

A counting strategy (a subclass whose ``tell`` counts its calls; on JAX through
``jax.debug.callback``, so executions inside compiled chunks count, not traces)
proves that ``fit`` tells the strategy exactly once per recorded generation on
the host path, the compiled JAX path, with restarts and with behaviour
strategies: no second bookkeeping loop, no chunk re-run, no replay.
"""

from __future__ import annotations

import numpy as np
import pytest

from evostrat import ES
from evostrat.problems import rastrigin, sphere
from evostrat.run.state import RUN_SCHEMA, RunState, check_schema
from evostrat.strategies.cma_es import CMAES
from evostrat.strategies.evolvability import MaxVarES
from evostrat.strategies.snes import SNES
from evostrat.errors import CheckpointError

CALLS = {"tell": 0}


def _count() -> None:
    CALLS["tell"] += 1


class CountingSNES(SNES):
    name = "snes"

    def tell(self, state, X, fitness):
        if self_is_traced(X):
            import jax

            jax.debug.callback(_count)
        else:
            _count()
        return super().tell(state, X, fitness)


class CountingCMAES(CMAES):
    name = "cma_es"

    def tell(self, state, X, fitness):
        _count()
        return super().tell(state, X, fitness)


class CountingMaxVar(MaxVarES):
    name = "maxvar_es"

    def tell(self, state, X, behaviours):
        _count()
        return super().tell(state, X, behaviours)


def self_is_traced(X) -> bool:
    return type(X).__module__.startswith("jax")


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS["tell"] = 0


def test_host_fit_tells_once_per_generation() -> None:
    es = ES(CountingSNES(sigma0=1.0), max_generations=37, random_state=0).fit(sphere, np.ones(4))
    assert es.fast_path_ is None and es.n_generations_ == 37
    assert CALLS["tell"] == 37 == len(es.history_)


def test_restarts_tell_once_per_generation_over_all_runs() -> None:
    es = ES(CountingCMAES(sigma0=2.0), restarts=dict(kind="ipop", max_restarts=2), max_evals=6000,
            random_state=1).fit(rastrigin, np.full(3, 3.0))
    assert len(es.restarts_) >= 2  # at least one restart ran
    assert CALLS["tell"] == es.n_generations_ == len(es.history_)


def test_behaviour_strategy_tells_once_per_generation() -> None:
    es = ES(CountingMaxVar(popsize=8, sigma0=0.5), max_generations=12, random_state=0).fit(
        lambda X: np.stack([X[:, 0], X[:, 1] ** 2], axis=1), np.zeros(3))
    assert CALLS["tell"] == 12 == es.n_generations_


def test_compiled_fit_tells_once_per_generation() -> None:
    jnp = pytest.importorskip("jax.numpy")
    es = ES(CountingSNES(sigma0=1.0), ftarget=1e-6, max_evals=20000, random_state=0).fit(
        sphere, jnp.full(6, 2.0))
    assert es.fast_path_ == "compiled_loop" and es.stop_reason_ == "ftarget"
    # the run stopped inside a chunk: no generation was told twice (no re-run)
    assert CALLS["tell"] == es.n_generations_ == len(es.history_) == es.strategy_.generation


def test_compiled_restarts_tell_once_per_generation_over_all_runs() -> None:
    jnp = pytest.importorskip("jax.numpy")
    es = ES(CountingSNES(sigma0=0.5), restarts="ipop", tolfun=1e-6, max_evals=3000, random_state=3).fit(
        sphere, jnp.full(4, 2.0))
    assert es.fast_path_ == "compiled_loop" and len(es.restarts_) >= 3
    assert CALLS["tell"] == es.n_generations_ == len(es.history_)


def test_run_schema_refuses_wrong_types() -> None:
    values = RunState.empty(maximize=False).schema_values()
    assert check_schema(values, RUN_SCHEMA, "run") is values
    with pytest.raises(CheckpointError, match="'n_evals' must be an int"):
        check_schema({**values, "n_evals": 1.5}, RUN_SCHEMA, "run")
    with pytest.raises(CheckpointError, match="another evostrat version"):
        check_schema({**values, "strategy_": 1}, RUN_SCHEMA, "run")


def test_checkpoints_of_the_old_format_are_refused_naming_the_version(tmp_path) -> None:
    """Version-1 files (ES attributes by name) are refused, not loaded half-way."""
    import json
    import zipfile

    from evostrat.checkpoint import VERSION, load_checkpoint, save_checkpoint

    es = ES("snes", max_generations=5, random_state=0).initialize(np.ones(3))
    X = es.ask()
    es.tell(X, sphere(X))
    good, old = tmp_path / "new.ckpt", tmp_path / "old.ckpt"
    save_checkpoint(es, good)
    assert load_checkpoint(good).n_generations_ == 1
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(old, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "metadata.json":
                meta = json.loads(data)
                meta["version"] = 1
                meta["estimator"] = {"fun_": 1.0, "_run": "overwritten?"}
                data = json.dumps(meta).encode()
            zout.writestr(info, data)
    with pytest.raises(CheckpointError, match=f"format version 1; this evostrat reads version {VERSION}"):
        load_checkpoint(old)
