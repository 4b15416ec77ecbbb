"""Box bounds on the compiled JAX driver: the objective sees the candidates mapped into the box.

The program maps each population with the bounds' transformation before evaluating it and
keeps the best so far in the box, as the host loop does (``evostrat.run.bounds``); the
strategy learns in its unbounded space. SNES ranks the same candidates on both paths, so
the runs stop at the same generation for the same reason; values agree to float32 rounding
(XLA fuses the transformation with the objective).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from evostrat import ES  # noqa: E402


def shifted(X: Any) -> Any:
    """The sphere around 1.7: inside the box [-1, 1] its optimum is the corner at 1."""
    return jnp.sum((X - 1.7) ** 2, axis=1)


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_bounded_runs_on_the_compiled_loop_match_the_host_loop(maximize: bool, seed: int) -> None:
    """In float64 the compiled run is the host loop's to rounding, so it stops at the same generation.
    (In float32 tolfun fires when a generation's values are all one float32 number, which rounding
    decides: the two loops stopped 1-3 generations apart for 4 of the seeds 0-5.)"""
    objective = (lambda X: -shifted(X)) if maximize else shifted
    kwargs = dict(bounds=(-1.0, 1.0), max_generations=300, random_state=seed, sigma0=0.5, maximize=maximize)
    with jax.enable_x64(True):
        x0 = jnp.zeros(5, dtype=jnp.float64)
        fast = ES("snes", **kwargs).fit(objective, x0)
        slow = ES("snes", compiled_loop=False, **kwargs).fit(objective, x0)
        value = float(objective(jnp.asarray(fast.x_)[None])[0])
    assert fast.fast_path_ == "compiled_loop" and slow.fast_path_ is None and fast.x_.dtype == jnp.float64
    # tolfun's window: floor(10 + 30 * 5 / 8) = 28 generations, as pycma's
    assert fast.stop_reason_ == slow.stop_reason_ == "tolfun"
    assert fast.n_generations_ == slow.n_generations_ > 150
    x = np.asarray(fast.x_)
    assert ((-1.0 <= x) & (x <= 1.0)).all()  # the best so far is a point of the box
    np.testing.assert_allclose(x, np.asarray(slow.x_), rtol=1e-12)
    np.testing.assert_allclose(x, 1.0, atol=1e-7)  # the corner
    assert fast.fun_ == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(fast.fun_, (-1 if maximize else 1) * 5 * 0.7**2, rtol=1e-12)
    np.testing.assert_allclose([h["best"] for h in fast.history_], [h["best"] for h in slow.history_], rtol=1e-12)


def test_bounds_with_restarts_on_the_compiled_loop() -> None:
    es = ES("cma_es", bounds=(-1.0, 1.0), restarts="ipop", max_evals=2500, sigma0=0.5, random_state=0,
            tolfun=1e-9).fit(shifted, jnp.zeros(4))
    assert es.fast_path_ == "compiled_loop" and len(es.restarts_) >= 2
    assert ((-1.0 <= np.asarray(es.x_)) & (np.asarray(es.x_) <= 1.0)).all()
    assert es.fun_ == pytest.approx(4 * 0.7**2, rel=1e-5)


def test_equal_bounds_share_a_program_and_other_bounds_do_not() -> None:
    from evostrat.run.chunk_host import run_rules
    from evostrat.run.compiled import chunk_program

    def program(bounds: Any) -> Any:
        driver = ES("snes", bounds=bounds, max_generations=5, random_state=0).initialize(jnp.zeros(3)).run_
        rules, stops = run_rules(driver)
        runner = driver.runner
        return chunk_program(runner.strategy, shifted, runner.backend, rules, stops, bounds=driver.bounds)

    assert program((-1.0, 1.0)) is program((-1.0, 1.0))
    assert program((-1.0, 1.0)) is not program((-1.0, 2.0))


def test_a_resumed_bounded_run_with_restarts_continues_it_exactly(tmp_path: Any) -> None:
    """A checkpoint taken in the second run of the schedule: the resumed run makes the same
    runs, generations and values as the uninterrupted one, bit for bit."""
    make = lambda: ES("snes", bounds=(-1.0, 1.0), restarts="ipop", tolfun=1e-6, max_evals=2500,  # noqa: E731
                      sigma0=0.5, random_state=0)
    path, kept = tmp_path / "run.ckpt", tmp_path / "kept.ckpt"

    def keep(es: ES) -> None:
        if len(es.restarts_) == 2 and not kept.exists():
            kept.write_bytes(path.read_bytes())

    def run(es: ES) -> tuple[Any, ...]:
        rows = [{k: v for k, v in row.items() if k != "time"} for row in es.history_]
        return rows, es.fun_, np.asarray(es.x_).tobytes(), es.n_evals_, es.stop_reason_, es.restarts_

    full = make().fit(shifted, jnp.zeros(4), checkpoint=path, callbacks=[keep])
    assert full.fast_path_ == "compiled_loop" and len(full.restarts_) >= 3 and kept.exists()
    resumed = ES.resume(kept, shifted, checkpoint=False)
    assert resumed.fast_path_ == "compiled_loop"
    assert run(resumed) == run(full) == run(make().fit(shifted, jnp.zeros(4)))
