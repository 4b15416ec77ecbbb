"""pycma parity: ``fixed_variables``, ``stds_`` and ``evals_best_`` (evostrat.run.fixed, evostrat.run.result)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evostrat import ES, minimize
from evostrat.callbacks import DistributionRecorder
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.problems import rosenbrock, sphere

FIXED = {1: 1.0, 4: 0.5, 7: 1.2}
FREE = [i for i in range(10) if i not in FIXED]
#: min of rosenbrock(x) with x[1] = 1, x[4] = 0.5, x[7] = 1.2 (BFGS from 30 starts, 49.40001379788623)
CONSTRAINED_MIN = 49.40001379788546


def _full(z: np.ndarray) -> np.ndarray:
    x = np.empty(10)
    x[FREE], x[list(FIXED)] = z, list(FIXED.values())
    return x


class Seen:
    """A vectorised rosenbrock that keeps every candidate it was given."""

    vectorized = True

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        self.rows.append(X.copy())
        return np.array([rosenbrock(x) for x in X])


def test_rosenbrock_with_three_fixed_finds_the_constrained_optimum() -> None:
    f = Seen()
    es = ES("cma_es", fixed_variables=FIXED, sigma0=0.2, random_state=1, ftarget=CONSTRAINED_MIN + 1e-8,
            max_evals=30000).fit(f, np.ones(10))
    assert es.stop_reason_ == "ftarget" and es.strategy_.dim == 7
    assert CONSTRAINED_MIN - 1e-9 <= es.fun_ <= CONSTRAINED_MIN + 1e-8
    seen = np.concatenate(f.rows)
    assert seen.shape == (es.n_evals_, 10)
    for i, v in FIXED.items():  # the objective never sees another value there
        assert np.unique(seen[:, i]).tolist() == [v]
        assert es.x_[i] == v and es.mean_[i] == v
    assert rosenbrock(es.x_) == es.fun_
    # the same run as searching the free coordinates by hand (pycma's x0 entries at fixed indices: ignored)
    ref = ES("cma_es", sigma0=0.2, random_state=1, ftarget=CONSTRAINED_MIN + 1e-8, max_evals=30000,
             evaluator="serial").fit(lambda z: rosenbrock(_full(z)), np.ones(7))
    assert es.fun_ == ref.fun_ and np.array_equal(es.x_, _full(ref.x_)) and es.n_evals_ == ref.n_evals_


def test_x0_entries_at_fixed_indices_are_ignored_and_sigma0_is_full_space() -> None:
    es = ES("cma_es", fixed_variables={0: 0.75}, bounds=(-10, 10), sigma0=np.array([9.0, 0.01, 1.0]),
            random_state=0).initialize(np.array([50.0, 0.0, 0.0]))  # x0[0] outside the box: ignored
    X = np.asarray(es.ask())
    assert X.shape[1] == 3 and (X[:, 0] == 0.75).all()
    assert X[:, 1].std() < X[:, 2].std()  # sigma0[1:] reach the free coordinates
    assert es.stds_[0] == 0.0 and np.allclose(es.stds_[1:], [0.01, 1.0])


def test_fixed_with_bounds_and_integers() -> None:
    f = Seen()
    es = ES("cma_es", fixed_variables={2: 0.25, 5: -1.0}, integer=[0, 3, 5], bounds=([-2] * 6, [2, 2, 2, 3, 2, 2]),
            max_evals=3000, random_state=4).fit(f, np.zeros(6))
    seen = np.concatenate(f.rows)
    assert (seen[:, 2] == 0.25).all() and (seen[:, 5] == -1.0).all()  # a fixed integer index keeps its value
    assert (seen[:, [0, 3]] == np.round(seen[:, [0, 3]])).all()
    assert (seen >= -2).all() and (seen[:, 3] <= 3).all() and (np.delete(seen, 3, axis=1) <= 2).all()
    assert es.x_[2] == 0.25 and es.x_[5] == -1.0 and es.strategy_.dim == 4


def test_distribution_recorder_reports_full_vectors() -> None:
    es = ES("cma_es", fixed_variables={0: 0.5}, max_generations=3, random_state=0).fit(
        sphere, np.zeros(3), callbacks=[DistributionRecorder(every=1)])
    row = es.history_[-1]
    assert row["mean"][0] == 0.5 and row["stds"][0] == 0.0 and row["stds"] == es.stds_.tolist()


def test_inject_takes_full_vectors() -> None:
    es = ES("cma_es", fixed_variables={1: 0.5}, random_state=0).initialize(np.zeros(3))
    es.inject(np.array([0.1, 7.0, -0.2]))  # the fixed entry is the run's, whatever given
    X = np.asarray(es.ask())
    assert X[0].tolist() == [0.1, 0.5, -0.2]
    es.tell(X, [sphere(x) for x in X])
    with pytest.raises(InvalidArgumentError, match=r"shape \(3,\)"):
        es.inject(np.zeros(2))


def test_checkpoint_resume_is_bit_identical(tmp_path: Path) -> None:
    def make() -> ES:
        return ES("cma_es", fixed_variables={1: 1.0, 6: 0.5}, bounds=(-3, 3), integer=[0], max_generations=40,
                  random_state=3)

    full = make().fit(rosenbrock, np.zeros(8))

    class Crash(Exception):
        pass

    def crash(es: ES) -> None:
        if es.n_generations_ == 17:
            raise Crash

    path = tmp_path / "run.ckpt"
    with pytest.raises(Crash):
        make().fit(rosenbrock, np.zeros(8), checkpoint=path, callbacks=[crash])
    resumed = ES.resume(path, rosenbrock)
    strip = lambda h: [{k: v for k, v in r.items() if k != "time"} for r in h]  # noqa: E731
    assert strip(resumed.history_) == strip(full.history_)
    assert resumed.fun_ == full.fun_ and np.array_equal(resumed.x_, full.x_) and resumed.x_.shape == (8,)
    assert resumed.evals_best_ == full.evals_best_ and np.array_equal(resumed.stds_, full.stds_)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_other_backends_and_the_compiled_loop_refusal(backend: str) -> None:
    pytest.importorskip(backend)
    f = Seen()
    es = ES("cma_es", fixed_variables={0: 0.5}, backend=backend, max_generations=30, random_state=0).fit(f, np.zeros(4))
    assert es.fast_path_ is None  # a host (numpy) objective: the host loop
    assert (np.concatenate(f.rows)[:, 0] == 0.5).all()
    x = np.asarray(es.x_)
    assert x.shape == (4,) and x[0] == 0.5 and es.stds_[0] == 0.0
    plain = ES("cma_es", backend=backend, max_generations=30, random_state=0, evaluator="serial").fit(
        lambda z: rosenbrock(np.concatenate([[0.5], np.asarray(z, dtype=np.float64)])), np.zeros(3))
    assert np.array_equal(x[1:], np.asarray(plain.x_)) and es.fun_ == plain.fun_


def test_minimize_option_and_batched_fits() -> None:
    res = minimize(rosenbrock, np.zeros(4), method="cma_es", options={"fixed_variables": {3: 1.0}, "seed": 0,
                                                                     "sigma0": 0.3})
    ref = ES("cma_es", random_state=0, sigma0=0.3, evaluator="serial").fit(
        lambda z: rosenbrock(np.concatenate([z, [1.0]])), np.zeros(3))
    assert res.x[3] == 1.0 and np.array_equal(res.x[:3], ref.x_) and res.fun == ref.fun_
    from evostrat import fit_batch

    out = fit_batch(ES("cma_es", fixed_variables={0: 2.0}, max_generations=5), sphere, np.zeros(3), seeds=2)
    assert all(np.asarray(e.x_)[0] == 2.0 for e in out.estimators)


@pytest.mark.parametrize("fixed, error, match", [
    ({5: 1.0}, InvalidArgumentError, r"fixed_variables index 5 is out of range for x0 of dimension 3"),
    ({-1: 1.0}, InvalidArgumentError, r"fixed_variables index -1 is out of range"),
    ({0: np.nan}, InvalidArgumentError, r"fixed_variables value of index 0 must be finite, got nan"),
    ({0: np.inf}, InvalidArgumentError, r"fixed_variables value of index 0 must be finite"),
    ({0: 1.0, 1: 1.0, 2: 1.0}, InvalidArgumentError, r"fixed_variables fixes all 3 coordinates"),
    ({1.0: 1.0}, InvalidTypeError, r"fixed_variables indices must be ints, got 1.0"),
    ({True: 1.0}, InvalidTypeError, r"fixed_variables indices must be ints"),
    ({0: "a"}, InvalidTypeError, r"fixed_variables value of index 0 must be a real number"),
    ({0: [1.0, 2.0]}, InvalidTypeError, r"fixed_variables value of index 0 must be a real number"),
    ([(0, 1.0)], InvalidTypeError, r"fixed_variables must be .*dict"),
])
def test_bad_fixed_variables_are_named(fixed: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ES("cma_es", fixed_variables=fixed).initialize(np.zeros(3))


def test_fixed_value_outside_bounds_and_structured_x0_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"fixed_variables value 5.0 of index 1 is outside bounds"):
        ES("cma_es", fixed_variables={1: 5.0}, bounds=(-1, 1)).initialize(np.zeros(3))
    with pytest.raises(InvalidArgumentError, match="fixed_variables takes a flat x0"):
        ES("cma_es", fixed_variables={0: 1.0}).initialize({"w": np.zeros(2), "b": np.zeros(1)})


# -- stds_ ------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["cma_es", "sep_cma_es", "snes", "xnes", "vkd_cma", "openai_es", "pgpe"])
def test_stds_match_the_distribution_recorder(strategy: str) -> None:
    es = ES(strategy, max_generations=12, random_state=0).fit(rosenbrock, np.zeros(4),
                                                               callbacks=[DistributionRecorder(every=1)])
    assert es.stds_.shape == (4,)
    np.testing.assert_allclose(es.stds_, es.history_[-1]["stds"], rtol=1e-10)


def test_cma_stds_are_sigma_sqrt_diag_c() -> None:
    es = ES("cma_es", max_generations=25, random_state=2).fit(rosenbrock, np.zeros(5))
    state = es.strategy_.state
    expected = float(state.sigma) * np.sqrt(np.diag(np.asarray(state.C)))
    np.testing.assert_allclose(es.stds_, expected, rtol=1e-12)


# -- evals_best_ --------------------------------------------------------------------------------


def _first_count(f: Seen, best: float) -> int:
    seen = np.concatenate([np.array([rosenbrock(x) for x in X]) for X in f.rows])
    return int(np.flatnonzero(seen == best)[0]) + 1


@pytest.mark.parametrize("options", [{}, {"restarts": dict(kind="ipop", max_restarts=2), "tolfun": 1e-3},
                                     {"bounds": (-1, 3)}, {"fixed_variables": {0: 1.0}}])
def test_evals_best_is_the_evaluation_that_found_x(options: dict) -> None:
    f = Seen()
    es = ES("cma_es", max_evals=3000, random_state=0, **options).fit(f, np.zeros(4))
    assert es.evals_best_ == _first_count(f, es.fun_)
    assert es.evals_best_ < es.n_evals_ or es.n_evals_ == es.evals_best_


def test_evals_best_on_the_compiled_jax_loop_equals_the_host_loop() -> None:
    jnp = pytest.importorskip("jax.numpy")

    def f(X):
        return jnp.sum((X - 0.3) ** 2, axis=-1)

    runs = [ES("cma_es", backend="jax", max_generations=60, random_state=1, compiled_loop=c).fit(f, np.zeros(3))
            for c in ("auto", False)]
    assert runs[0].fast_path_ == "compiled_loop" and runs[1].fast_path_ is None
    assert runs[0].fun_ == runs[1].fun_ and runs[0].evals_best_ == runs[1].evals_best_
    assert 0 < runs[0].evals_best_ <= runs[0].n_evals_
    from evostrat import fit_batch

    batch = fit_batch(ES("cma_es", backend="jax", max_generations=60), f, jnp.zeros(3), seeds=[1])
    assert batch.estimators[0].fast_path_ == "batched" and batch.estimators[0].evals_best_ == runs[0].evals_best_


def test_evals_best_of_a_checkpoint_without_it() -> None:
    from evostrat.checkpoint.state import capture, restore

    es = ES("cma_es", max_generations=20, random_state=0).fit(rosenbrock, np.zeros(3))
    meta, arrays = capture(es)
    assert meta["evals_best"] == es.evals_best_
    assert restore(meta, arrays).evals_best_ == es.evals_best_
    del meta["evals_best"]  # written before evostrat recorded it: the end of the best's generation
    old = restore(meta, arrays).evals_best_
    row = next(r for r in es.history_ if r["best"] == es.fun_)
    assert old == row["n_evals"] and es.evals_best_ <= old < es.evals_best_ + es.strategy_.popsize


def test_callable_x0_draws_full_vectors_for_each_restart() -> None:
    draws: list[int] = []

    def x0() -> np.ndarray:
        draws.append(1)
        return np.array([0.0, 0.5, 9.0, 0.0])  # the fixed entry is ignored, also outside the box

    f = Seen()
    es = ES("cma_es", fixed_variables={2: -0.5}, bounds=(-10, 1), restarts=dict(kind="ipop", max_restarts=2),
            tolfun=1e-3, random_state=0).fit(f, x0)
    assert len(es.restarts_) == 3 and len(draws) == 3
    assert (np.concatenate(f.rows)[:, 2] == -0.5).all() and es.x_.shape == (4,)


def test_warm_start_with_fixed_variables() -> None:
    from evostrat.run.warm_start import WarmStart

    a = ES("cma_es", fixed_variables={1: 0.5}, max_generations=20, random_state=0).fit(rosenbrock, np.zeros(4))
    b = ES("cma_es", fixed_variables={1: 0.5}, max_generations=1, random_state=1, warm_start=a).initialize(np.zeros(4))
    assert np.array_equal(b.mean_, a.mean_) and b.mean_[1] == 0.5
    with pytest.raises(InvalidArgumentError, match=r"warm_start run has fixed_variables \{1: 0.5\}, this run \{2: 0.7\}"):
        ES("cma_es", fixed_variables={2: 0.7}, warm_start=a).initialize(np.zeros(4))
    X = np.random.default_rng(0).normal(size=(30, 4))
    c = ES("cma_es", fixed_variables={0: 1.0}, warm_start=WarmStart(X, [sphere(x) for x in X])).initialize(np.zeros(4))
    assert c.strategy_.dim == 3 and np.asarray(c.ask())[:, 0].tolist() == [1.0] * c.strategy_.popsize


def test_a_fixed_integer_coordinate_takes_an_integer() -> None:
    """integer=[0] with fixed_variables={0: 2.5} used to run and return x_[0] = 2.5 on an integer
    coordinate; an integral value is kept."""
    with pytest.raises(InvalidArgumentError, match=r"fixed_variables value 2.5 of index 0 must be an integer: "
                                                   r"coordinate 0 is an integer coordinate \(integer=\[0\]\)"):
        ES("cma_es", integer=[0], fixed_variables={0: 2.5}).initialize(np.zeros(3))
    es = ES("cma_es", integer=[0, 2], fixed_variables={0: 2.0}, max_generations=5, random_state=0).fit(sphere, np.ones(3))
    assert es.x_[0] == 2.0 and es.x_[2] == round(es.x_[2])


def test_integer_range_errors_name_the_users_coordinate() -> None:
    """With coordinate 0 fixed, a too narrow integer range of coordinate 2 was reported as coordinate 1
    (its place among the free coordinates)."""
    with pytest.raises(InvalidArgumentError, match=r"integer coordinate 2 must have at least two integer values "
                                                   r"inside bounds, but \[0.5, 1.5\] holds only the integer value 1; "
                                                   r"fix it with fixed_variables=\{2: 1\}"):
        ES("cma_es", integer=[2], fixed_variables={0: 1.0},
           bounds=([0, 0, 0.5], [2, 2, 1.5])).initialize(np.ones(3))


def _weighted(X):  # traces for full vectors only (its weights have the full dimension, 6)
    import jax.numpy as jnp

    return jnp.sum((X - 1.7) ** 2 * jnp.arange(1.0, 7.0, dtype=X.dtype), axis=1)


@pytest.mark.parametrize("bounds", [None, (-1.0, 1.0)], ids=["free", "bounded"])
def test_fixed_variables_run_on_the_compiled_jax_loop_as_on_the_host_loop(bounds: object) -> None:
    """A traceable JAX objective with fixed variables runs on the compiled loop (it ran on the host
    loop, ~50x slower a generation): the strategy searches the free coordinates, the objective
    sees full vectors (its weights have the full dimension), and the run is the host loop's run
    up to float32 rounding, with the fixed values in ``x_``, bounds included."""
    jnp = pytest.importorskip("jax.numpy")
    fixed = {1: 0.5, 4: -0.25}
    runs = [ES("cma_es", fixed_variables=fixed, bounds=bounds, max_generations=60, sigma0=0.5, random_state=0,
               compiled_loop=c).fit(_weighted, jnp.zeros(6)) for c in ("auto", False)]
    fast, slow = runs
    assert (fast.fast_path_, slow.fast_path_) == ("compiled_loop", None)
    assert fast.n_generations_ == slow.n_generations_ == 60 and fast.n_evals_ == slow.n_evals_
    x = np.asarray(fast.x_)
    assert x.shape == (6,) and x[1] == 0.5 and x[4] == -0.25
    assert fast.stds_[1] == fast.stds_[4] == 0.0 and np.asarray(fast.mean_)[1] == 0.5
    np.testing.assert_allclose(x, np.asarray(slow.x_), atol=1e-5)
    assert fast.fun_ == pytest.approx(slow.fun_, rel=1e-6)
    assert fast.fun_ == pytest.approx(float(_weighted(jnp.asarray(x)[None])[0]), rel=1e-6)
    np.testing.assert_allclose([h["best"] for h in fast.history_], [h["best"] for h in slow.history_], rtol=1e-5)
    if bounds is not None:
        assert ((-1.0 <= x) & (x <= 1.0)).all()
        assert fast.fun_ == pytest.approx(1 * 0.7**2 + 3 * 0.7**2 + 4 * 0.7**2 + 6 * 0.7**2 + 2 * 1.2**2
                                          + 5 * 1.95**2, rel=1e-4)


def test_other_fixed_values_get_their_own_compiled_chunk() -> None:
    """The fixed values are constants of the compiled chunk, so they are part of its key: a fit with
    other values (the same box, the same free coordinates) evaluates its own values."""
    jnp = pytest.importorskip("jax.numpy")
    for value in (0.5, 0.75, 0.5):
        es = ES("snes", fixed_variables={2: value}, max_generations=5, random_state=0).fit(_weighted, jnp.zeros(6))
        assert es.fast_path_ == "compiled_loop" and np.asarray(es.x_)[2] == value
        assert es.fun_ == pytest.approx(float(_weighted(jnp.asarray(es.x_)[None])[0]), rel=1e-6)
