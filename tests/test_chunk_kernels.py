"""The compiled chunk's XLA kernels (issue 15): each costs its first call ~10-15 ms of compilation on
the CPU, whatever its size, so their count is the chunk's compile time, measured without a clock.
And the variadic reductions that cut it give the numbers of the reductions they replace, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from evostrat import ES  # noqa: E402
from evostrat.problems import rosenbrock  # noqa: E402
from evostrat.run.chunk_host import chunk_length, packed_run, run_rules  # noqa: E402
from evostrat.run.chunk_kernels import kernel_count, optimized_hlo  # noqa: E402
from evostrat.run.compiled import chunk_program  # noqa: E402
from evostrat.run.device_termination import device_constant  # noqa: E402
from evostrat.run.row_reductions import extremes, latest, prefix, row_summary  # noqa: E402

#: the JAX the counts were taken with (XLA's fusion decisions change between versions)
COUNTED_WITH = "0.10.2"


@pytest.mark.skipif(jax.__version__ != COUNTED_WITH or jax.default_backend() != "cpu",
                    reason=f"kernels counted with JAX {COUNTED_WITH} on the CPU")
def test_cma_chunk_compiles_to_few_kernels() -> None:
    # CMA-ES at d = 10 with every default criterion: 179 kernels before issue 15's pass, 128 after it,
    # 107 after the second (the run's counters kept in its packed vectors; a lax.scan of its ask and tell
    # alone: 70)
    driver = ES("cma_es", max_generations=320, random_state=0).initialize(jnp.ones(10)).run_
    runner = driver.runner
    rules, stop_names = run_rules(driver)
    program = chunk_program(runner.strategy, rosenbrock, runner.backend, rules, stop_names)
    hlo = optimized_hlo(program, *packed_run(driver, rules), device_constant(chunk_length(runner.popsize), "int32"))
    assert kernel_count(hlo) <= 111, kernel_count(hlo)


def _rows() -> np.ndarray:
    rng = np.random.default_rng(0)
    v = rng.integers(-3, 4, size=(37, 9)).astype(np.float32)  # ties, and a block longer than 32 rows
    v[rng.random(v.shape) < 0.1] = np.nan
    v[rng.random(v.shape) < 0.05] = np.inf
    v[rng.random(v.shape) < 0.05] = -np.inf
    v[rng.random(v.shape) < 0.05] = -0.0
    v[5] = np.nan  # a row without a finite value
    return v


def test_row_summary_is_counts_ranges_and_argmin() -> None:
    v = jnp.asarray(_rows())
    signed = jnp.where(jnp.isnan(v), jnp.inf, v)
    n, lo, hi, low, at = jax.jit(row_summary)(v, signed)
    finite = jnp.isfinite(v)
    np.testing.assert_array_equal(n, jnp.sum(finite, axis=1))
    np.testing.assert_array_equal(lo, jnp.min(jnp.where(finite, v, jnp.inf), axis=1))
    np.testing.assert_array_equal(hi, jnp.max(jnp.where(finite, v, -jnp.inf), axis=1))
    np.testing.assert_array_equal(at, jnp.argmin(signed, axis=1))
    np.testing.assert_array_equal(low, jnp.min(signed, axis=1))


def test_prefix_is_cumsum_cummin_cummax_and_latest_the_last_index() -> None:
    v = jnp.asarray(_rows())
    x, flag = jnp.where(jnp.isnan(v[:, 0]), jnp.inf, v[:, 0]), v[:, 1] > 0
    ints = jnp.where(flag, -1, jnp.arange(37))
    s, lo, hi = jax.jit(lambda a, b, c: prefix((a, "sum"), (b, "min"), (c, "max")))(flag.astype(jnp.int32), x, ints)
    np.testing.assert_array_equal(s, jnp.cumsum(flag.astype(jnp.int32)))
    np.testing.assert_array_equal(lo, jax.lax.cummin(x))
    np.testing.assert_array_equal(hi, jax.lax.cummax(ints))
    mask = jnp.asarray(np.random.default_rng(1).random((6, 37)) < 0.2).at[2].set(False)
    index, value = jax.jit(latest)(mask, x)
    want = jnp.max(jnp.where(mask, jnp.arange(37), -1), axis=1)
    np.testing.assert_array_equal(index, want)
    np.testing.assert_array_equal(jnp.where(want >= 0, value, 0), jnp.where(want >= 0, x[jnp.maximum(want, 0)], 0))
    top, bottom = jax.jit(extremes)(x, flag)
    assert top == jnp.max(jnp.where(flag, x, -jnp.inf)) and bottom == jnp.min(jnp.where(flag, x, jnp.inf))
