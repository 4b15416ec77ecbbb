"""A fitted estimator and its run are freed by reference counting alone (no reference cycle).

The run used to hold its estimator (``Driver.settings``) while the estimator held the run
(``ES.run_``), and the termination criteria held the run state's ``sign`` while the state held
the criteria: every fitted ``ES``, with its arrays (device memory on a GPU), waited for the
cyclic garbage collector. Each test here fits with that collector off, drops the estimator and
checks that a weak reference to it, its run, run state, criteria and runner died at once.
That the criteria still sign the state's deferred rows through the weak call before they check
is ``tests/test_run_deferred.py``'s (its sparse reads fail when the call does nothing).
"""

from __future__ import annotations

import copy
import gc
import pickle
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from evostrat import ES
from evostrat.problems import sphere


@pytest.fixture
def no_cycle_collection() -> Iterator[None]:
    """The cyclic garbage collector off for the test (what is freed is freed by reference counting)."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _freed(make: Callable[[], ES]) -> list[str]:
    """Fit with ``make``, drop the estimator: the names of what is still alive (weakly referenced)."""
    es = make()
    refs = {"estimator": weakref.ref(es), "run": weakref.ref(es.run_), "state": weakref.ref(es.run_.state),
            "termination": weakref.ref(es.run_.termination), "runner": weakref.ref(es.run_.runner)}
    del es
    return [name for name, ref in refs.items() if ref() is not None]


def _negative_sphere(X: Any) -> Any:
    """The sphere, negated (maximised), on a population."""
    return -sphere(X)


_negative_sphere.vectorized = True  # type: ignore[attr-defined]


def _callback(es: Any) -> None:
    """A callback that reads the estimator (as a logger would)."""
    assert es.n_generations_ >= 1


CASES: dict[str, Callable[[], ES]] = {
    "numpy cma_es": lambda: ES("cma_es", max_generations=30, random_state=0).fit(sphere, np.ones(4)),
    "ipop restarts, bounds": lambda: ES("cma_es", restarts="ipop", max_evals=600, bounds=(-3, 3),
                                        random_state=0).fit(sphere, np.ones(3)),
    "callbacks, progress": lambda: ES("snes", max_generations=20, random_state=0).fit(
        sphere, np.ones(3), callbacks=[_callback], progress=False),
    "maximize, integers": lambda: ES("cma_es", max_generations=20, maximize=True, integer=[0],
                                     bounds=(-5, 5), random_state=0).fit(_negative_sphere, np.ones(3)),
    "noise handling": lambda: ES("cma_es", max_generations=15, noise_handling=True, random_state=0).fit(
        sphere, np.ones(3)),
    "behaviours (MaxVar)": lambda: ES("maxvar_es", max_generations=10, random_state=0).fit(
        lambda X: np.asarray(X)[:, :2], np.ones(3)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fitted_estimator_freed_without_the_cycle_collector(no_cycle_collection: None, case: str) -> None:
    assert _freed(CASES[case]) == []


def test_ask_tell_run_freed(no_cycle_collection: None) -> None:
    def make() -> ES:
        es = ES("cma_es", random_state=0).initialize(np.ones(3))
        for _ in range(12):
            X = es.ask()
            es.tell(X, sphere(X))
            es.stop()  # the criteria sign the state's deferred rows first (through the weak call)
        assert es.n_generations_ == 12 and len(es.history_) == 12
        return es

    assert _freed(make) == []


def test_checkpointed_run_freed(no_cycle_collection: None, tmp_path: Any) -> None:
    path = tmp_path / "run.ckpt"
    assert _freed(lambda: ES("snes", max_generations=8, random_state=0).fit(sphere, np.ones(3),
                                                                            checkpoint=path)) == []
    assert _freed(lambda: ES.resume(path, sphere)) == []


def test_compiled_jax_run_freed(no_cycle_collection: None) -> None:
    jnp = pytest.importorskip("jax.numpy")

    def make() -> ES:
        es = ES("cma_es", max_generations=40, random_state=0).fit(sphere, jnp.ones(4))
        assert es.fast_path_ == "compiled_loop"
        return es

    assert _freed(make) == []


def test_torch_run_freed(no_cycle_collection: None) -> None:
    torch = pytest.importorskip("torch")
    assert _freed(lambda: ES("cma_es", max_generations=20, random_state=0).fit(
        sphere, torch.ones(3, dtype=torch.float64))) == []


def _pickled(es: ES) -> ES:
    return pickle.loads(pickle.dumps(es))


@pytest.mark.parametrize("copy_of", [_pickled, copy.deepcopy], ids=["pickle", "deepcopy"])
def test_a_copy_refers_back_to_its_own_run(no_cycle_collection: None, copy_of: Callable[[ES], ES]) -> None:
    """The weak references back pickle and deep-copy as strong ones: the copy's criteria sign the
    copy's state, its integer space and noise evaluator read the copy's driver, the copy continues
    as the original does, and the copy too is freed with its last reference."""
    es = ES("cma_es", integer=[0], bounds=(-5, 5), noise_handling=True, max_generations=6,
            random_state=0).fit(_negative_sphere, np.ones(3))
    twin = copy_of(es)
    run = twin.run_
    assert run.bounds.driver() is run and run.noise.driver is run
    assert run.termination.before_flush.__reduce__()[1] == (run.state.sign,)  # the copy's own state
    assert twin.history_ == es.history_

    asking = ES("cma_es", integer=[0], bounds=(-5, 5), random_state=1).initialize(np.ones(3))
    X = asking.ask()
    asking.tell(X, _negative_sphere(X))
    other = copy_of(asking)
    for _ in range(3):
        X, Y = asking.ask(), other.ask()
        np.testing.assert_array_equal(np.asarray(Y), np.asarray(X))
        asking.tell(X, _negative_sphere(X))
        other.tell(Y, _negative_sphere(Y))
    assert _freed(lambda: copy_of(es)) == []
