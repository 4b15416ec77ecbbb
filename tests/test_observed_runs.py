"""Observing a run never changes it (issue 16, item 11).

On JAX the compiled driver runs callbacks, the progress bar and checkpoints
between compiled chunks of one and the same program, so ``fit()`` and
``fit(callbacks=..., progress=True, checkpoint=...)`` give the same run bit for
bit, and a run resumed from a checkpoint continues it exactly, termination
criteria included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evostrat import ES
from evostrat.checkpoint import checkpoint_info
from evostrat.problems import rosenbrock
from evostrat.run.device_termination import Rules, progress_from_host, progress_to_host
from evostrat.run.termination import HIST_KEEP, Termination

jax = pytest.importorskip("jax")
jnp = jax.numpy


def rugged(X: Any) -> Any:
    """A deterministic, noise-like landscape: CMA-ES stagnates on it (tolstagnation)."""
    return jnp.sum(X**2, axis=1) + 10.0 * jnp.sin(1e4 * X[:, 0] * X[:, 1])


def _run(es: ES) -> tuple[Any, ...]:
    rows = [{k: v for k, v in row.items() if k != "time"} for row in es.history_]
    return (rows, es.fun_, np.asarray(es.x_).tobytes(), np.asarray(es.strategy_.mean).tobytes(),
            es.n_generations_, es.n_evals_, es.stop_reason_)


class Watcher:
    """A callback that records what it sees after every generation."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, float]] = []

    def __call__(self, es: ES) -> None:
        self.seen.append((es.n_generations_, len(es.history_), es.history_[-1]["best"]))


#: CMA-ES on :func:`rugged` with its own criteria off: it stops on tolstagnation (from x0 = 0.5 and
#: seed 4 at generation 600 on an Intel Xeon, 535 on an AMD EPYC: the sine's argument amplifies the
#: last bits in which the two CPUs' compiled programs differ)
STAGNATES = dict(sigma0=1.0, tolfun=None, tolx=None, tolfunhist=None, max_generations=3000,
                 strategy_options=dict(tolconditioncov=None, tolupsigma=None, tolfacupx=None, noeffectaxis=False,
                                       noeffectcoord=False))

CASES = [
    ("snes", dict(sigma0=1.0, max_generations=60), rosenbrock, 5),
    ("cma_es", dict(tolfun=1e-3), rosenbrock, 4),  # stops on a criterion, not a budget
    ("cma_es", dict(STAGNATES, random_state=4), rugged, 4),
]


@pytest.mark.parametrize("name,options,objective,dim", CASES, ids=["snes-budget", "cma-tolfun", "cma-stagnation"])
def test_observers_do_not_change_the_compiled_run(tmp_path: Path, name: str, options: dict, objective: Any,
                                                  dim: int) -> None:
    x0 = jnp.full(dim, 0.5)
    options = {"random_state": 3, **options}
    plain = ES(name, **options).fit(objective, x0)
    watcher = Watcher()
    observed = ES(name, **options).fit(objective, x0, callbacks=[watcher], progress=True,
                                                     checkpoint=tmp_path / "run.ckpt", checkpoint_every=7)
    assert plain.fast_path_ == observed.fast_path_ == "compiled_loop"
    assert _run(observed) == _run(plain)
    if name == "cma_es" and objective is rugged:  # stopped by the criteria the chunks carry, past their warm-up
        assert plain.stop_reason_ == "tolstagnation" and plain.n_generations_ >= 505
    # the callback saw every generation, with the history up to it
    n = plain.n_generations_
    assert [g for g, _, _ in watcher.seen] == list(range(1, n + 1))
    assert [length for _, length, _ in watcher.seen] == list(range(1, n + 1))
    assert [b for _, _, b in watcher.seen] == [row["best"] for row in plain.history_]
    assert checkpoint_info(tmp_path / "run.ckpt")["n_generations"] == n


def test_a_callback_stops_the_compiled_run_at_its_generation() -> None:
    es = ES("snes", max_generations=100, random_state=0).fit(rosenbrock, jnp.zeros(3),
                                                             callbacks=[lambda es: es.n_generations_ == 17])
    assert es.fast_path_ == "compiled_loop"
    assert (es.n_generations_, es.stop_reason_, len(es.history_)) == (17, "callback", 17)


@pytest.mark.parametrize("at", [40, 550])  # 550: past 100 stagnation records (505), before any stop (1005)
def test_a_resumed_compiled_run_continues_it_exactly(tmp_path: Path, at: int) -> None:
    """The criteria's progress crosses to the checkpoint and back: the resumed run stops on
    tolstagnation at the generation of the uninterrupted one. With ``tolstagnation=1000`` it compares
    two windows of 100 records, which are full at generation 1005 at the earliest, so the run is still
    going at 550 whatever course the CPU's rounding gives it (default: 505 and later)."""
    make = lambda: ES("cma_es", random_state=4, **dict(STAGNATES, tolstagnation=1000))  # noqa: E731
    x0 = jnp.full(4, 0.5)
    path, kept = tmp_path / "run.ckpt", tmp_path / "kept.ckpt"

    def keep(es: ES) -> None:
        if es.n_generations_ == at:
            kept.write_bytes(path.read_bytes())

    full = make().fit(rugged, x0, checkpoint=path, callbacks=[keep])
    assert full.stop_reason_ == "tolstagnation" and full.n_generations_ > at
    resumed = ES.resume(kept, rugged, checkpoint=False)
    assert resumed.fast_path_ == "compiled_loop"
    assert _run(resumed) == _run(full)
    assert _run(full) == _run(make().fit(rugged, x0))


def test_the_criteria_progress_round_trips_between_host_and_device() -> None:
    rng = np.random.default_rng(0)
    t = Termination(max_generations=500, tolstagnation=50, tolflatfitness=1, dim=3, popsize=7, history_length=12)
    rules = Rules.from_termination(t, popsize=7, capacity=501)
    assert rules.capacity == 112  # a record every 5th generation (101), in steps of an eighth of 128
    generation = 300
    keep = generation // 5
    for n_recent in (0, 5, 12):
        values = {
            "recent": rng.standard_normal(n_recent).astype(np.float32).tolist(),
            "hist_best": rng.standard_normal(keep).astype(np.float32).tolist(),
            "hist_median": rng.standard_normal(keep).astype(np.float32).tolist(),
            "run_best": -1.5, "run_best_evals": 1477, "flat_generations": 2,
        }
        assert progress_to_host(rules, progress_from_host(rules, values, "float32")) == values
    # a full ring buffer comes back oldest first
    p = progress_from_host(rules, values, "float32")
    p = p._replace(recent=np.roll(p.recent, 4), n_recent=np.int32(12 + 4))
    assert progress_to_host(rules, p)["recent"] == values["recent"]
    # the stagnation history comes back trimmed to pycma's latest 20,000 records
    long = Rules.from_termination(t, popsize=7, capacity=5 * (HIST_KEEP + 9))
    p = progress_from_host(long, dict(values, hist_best=list(range(HIST_KEEP + 9)),
                                      hist_median=[0.0] * (HIST_KEEP + 9)), "float32")
    back = progress_to_host(long, p)
    assert back["hist_best"] == [float(v) for v in range(9, HIST_KEEP + 9)]
