"""A fit interrupted in the middle of a generation (KeyboardInterrupt or an error raised by the
objective) leaves the estimator at its last finished generation: its counters and ``history_``
agree, ``x_`` is the best evaluated point, a checkpoint can be written at once, and resuming
from it (or asking on) repeats the interrupted generation, so the run equals the uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from evostrat import ES
from same_run import assert_same_run, ones_on
from evostrat.checkpoint import save_checkpoint
from evostrat.errors import ObjectiveError

pytestmark = pytest.mark.filterwarnings("ignore::evostrat.errors.PerCandidateWarning")


def _f(x: Any) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.sum((x - 0.3) ** 2) + np.sum(np.cos(3.0 * x)))



def _cut_at(evaluation: int, error: BaseException, seen: list) -> Callable[[Any], float]:
    """The objective, raising ``error`` at its ``evaluation``-th call; ``seen`` gets the values it returned."""
    calls = [0]

    def objective(x: Any) -> float:
        calls[0] += 1
        if calls[0] == evaluation:
            raise error
        seen.append(_f(x))
        return seen[-1]

    return objective


CASES = {
    "plain": dict(max_generations=12),
    "ipop": dict(restarts="ipop", max_evals=900, tolfun=1e-3),
    "bounds": dict(max_generations=12, bounds=(-2.0, 2.0)),
    "integer": dict(max_generations=12, bounds=(-3.0, 3.0), integer=[0, 2]),
    "noise_handling": dict(max_generations=12, noise_handling=True),
}


@pytest.mark.parametrize("backend, case", [("numpy", case) for case in sorted(CASES)] + [
    ("torch", "plain"), ("torch", "ipop"), ("jax", "plain"), ("jax", "integer")])
def test_keyboard_interrupt_mid_generation_then_checkpoint_resumes_exactly(tmp_path: Path, backend: str,
                                                                          case: str) -> None:
    options = dict(CASES[case], random_state=2)
    full = ES("cma_es", **options).fit(_f, ones_on(backend))
    cut = full.n_evals_ * 2 // 3 + 3  # inside a generation (of a later restart run with ipop)
    seen: list = []
    es = ES("cma_es", **options)
    with pytest.raises(KeyboardInterrupt):
        es.fit(_cut_at(cut, KeyboardInterrupt(), seen), ones_on(backend))
    # the estimator is that of its last finished generation
    assert es.n_generations_ == len(es.history_) and es.history_[-1]["n_evals"] == es.n_evals_
    assert es.n_evals_ < cut - 1 and es.stop_reason_ is None
    assert float(es.fun_) == pytest.approx(min(seen[:es.n_evals_]), rel=1e-6)  # the best evaluated point kept
    save_checkpoint(es, tmp_path / "cut.ckpt")  # was: StateError, the interrupted population pending
    assert_same_run(ES.resume(tmp_path / "cut.ckpt", _f), full)


def test_ask_after_an_interrupt_repeats_the_interrupted_population() -> None:
    asked: list = []
    cut = [0]

    def objective(X: np.ndarray) -> np.ndarray:
        asked.append(X.copy())
        if len(asked) == cut[0]:
            raise KeyboardInterrupt
        return np.array([_f(x) for x in X])

    objective.vectorized = True
    full = ES("snes", max_generations=8, random_state=0).fit(objective, np.ones(3))
    asked.clear()
    cut[0] = 4
    es = ES("snes", max_generations=8, random_state=0)
    with pytest.raises(KeyboardInterrupt):
        es.fit(objective, np.ones(3))
    assert es.n_generations_ == 3
    X = es.ask()
    assert np.array_equal(X, asked[3])  # was: a new population, the interrupted one's key spent
    es.tell(X, np.array([_f(x) for x in X]))
    while not es.stop():
        X = es.ask()
        es.tell(X, np.array([_f(x) for x in X]))
    assert_same_run(es, full)


def test_an_error_in_the_objective_leaves_the_last_generation(tmp_path: Path) -> None:
    es = ES("cma_es", max_generations=10, random_state=5)
    with pytest.raises(ObjectiveError, match="candidate 4: ValueError: simulator diverged"):
        es.fit(_cut_at(8 * 3 + 5, ValueError("simulator diverged"), []), np.ones(4))
    assert (es.n_generations_, es.n_evals_) == (3, 24)
    save_checkpoint(es, tmp_path / "err.ckpt")
    assert_same_run(ES.resume(tmp_path / "err.ckpt", _f), ES("cma_es", max_generations=10, random_state=5).fit(_f, np.ones(4)))


def test_a_wrong_return_value_leaves_the_last_generation() -> None:
    calls = [0]

    def objective(X: np.ndarray) -> np.ndarray:
        calls[0] += 1
        return np.arange(len(X) - (calls[0] == 3)) * calls[0]  # one value missing at generation 3

    objective.vectorized = True
    es = ES("snes", max_generations=10, random_state=0)
    with pytest.raises(Exception, match="shape"):
        es.fit(objective, np.ones(3))
    assert es.n_generations_ == 2 and es.strategy_.pending is None


def test_noise_handling_interrupted_while_reevaluating_resumes_exactly(tmp_path: Path) -> None:
    options = dict(max_generations=8, noise_handling=True, random_state=4)
    full = ES("cma_es", **options).fit(_f, np.ones(4))
    first = full.history_[4]["n_evals"]  # generation 6: 8 candidates, then a few reevaluated
    for cut in range(first + 1, full.history_[5]["n_evals"] + 1):
        es = ES("cma_es", **options)
        with pytest.raises(KeyboardInterrupt):
            es.fit(_cut_at(cut, KeyboardInterrupt(), []), np.ones(4))
        assert es.n_generations_ == 5
        save_checkpoint(es, tmp_path / "noise.ckpt")  # with the reevaluations' generator unspent
        assert_same_run(ES.resume(tmp_path / "noise.ckpt", _f), full)


def test_injected_candidates_of_an_interrupted_generation_are_queued_again(tmp_path: Path) -> None:
    def inject(es: ES) -> None:
        if es.n_generations_ == 3:
            es.inject(np.full((10, 4), 0.25))  # the next population's 8 rows, and 2 of the one after

    options = dict(max_generations=10, bounds=(-3.0, 3.0), integer=[0], random_state=0)
    full = ES("cma_es", **options).fit(_f, np.ones(4), callbacks=[inject])
    es = ES("cma_es", **options)
    with pytest.raises(KeyboardInterrupt):
        es.fit(_cut_at(8 * 3 + 2, KeyboardInterrupt(), []), np.ones(4), callbacks=[inject])
    assert es.n_generations_ == 3 and len(es.strategy_.injections) == 10  # was 2: 8 placed and lost
    save_checkpoint(es, tmp_path / "inject.ckpt")
    assert_same_run(ES.resume(tmp_path / "inject.ckpt", _f, callbacks=[inject]), full)
