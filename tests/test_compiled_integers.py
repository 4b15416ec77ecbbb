"""Integer variables on the compiled JAX loop (:mod:`evostrat.run.integers_device`).

A traceable JAX objective with ``integer=`` took the host loop; the compiled chunk now encodes
the integer coordinates (box, rounding, clipping, fixed values) and, for the CMA family, applies
the margin correction before each ask inside its program. Its run is the host loop's
(``compiled_loop=False``): the same generations, stop reason and integer coordinates, continuous
values to float32 rounding (the host corrects in float64).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from evostrat import ES  # noqa: E402
from evostrat.checkpoint import Checkpointer  # noqa: E402
from same_run import assert_same_run  # noqa: E402

INTEGER = [0, 1, 4]


def _weighted(X: Any) -> Any:
    """Optimum 0.3 everywhere: 0 on the integer coordinates, where it costs (1 + 2 + 5) 0.09 = 0.72."""
    return jnp.sum((X - 0.3) ** 2 * jnp.arange(1.0, 7.0, dtype=X.dtype), axis=1)


def _fit(strategy: str, compiled: Any, **options: Any) -> ES:
    options = dict(dict(integer=INTEGER, sigma0=1.0, random_state=0), **options)
    return ES(strategy, compiled_loop=compiled, **options).fit(_weighted, jnp.full(6, 2.0))


CASES = [("cma_es", None, None), ("cma_es", (-2.0, 2.5), {2: 1.0}), ("snes", None, {2: 1.0}),
         ("snes", (-2.0, 2.5), None)]
SLOW = [("cma_es", (-2.0, 2.5), None), ("cma_es", None, {2: 1.0}), ("snes", None, None),
        ("snes", (-2.0, 2.5), {2: 1.0})]


@pytest.mark.parametrize("strategy, bounds, fixed", CASES + [pytest.param(*c, marks=pytest.mark.slow) for c in SLOW])
def test_integer_runs_on_the_compiled_loop_match_the_host_loop(strategy: str, bounds: Any, fixed: Any) -> None:
    """compiled_loop=True raised for integers ("handled on the host"); now the compiled run stops at the
    host run's generation (ftarget), with its integer coordinates and its values to rounding. In float64:
    in float32 a rounding apart can move a coordinate across an integer's edge, and the runs part (seeds
    0-4 of CMA-ES with bounds and a fixed variable: 2 of 5 stopped 17 and 18 generations apart)."""
    fstar = 0.72 + (3 * 0.7**2 if fixed else 0.0)
    options = dict(bounds=bounds, fixed_variables=fixed, ftarget=fstar + 1e-4, max_generations=300, dtype="float64")
    with jax.enable_x64(True):
        fast, slow = _fit(strategy, True, **options), _fit(strategy, False, **options)
    assert (fast.fast_path_, slow.fast_path_) == ("compiled_loop", None) and fast.x_.dtype == jnp.float64
    assert (fast.stop_reason_, fast.n_generations_, fast.n_evals_) == (slow.stop_reason_, slow.n_generations_,
                                                                       slow.n_evals_)
    assert fast.stop_reason_ == "ftarget" and fast.fun_ <= fstar + 1e-4
    x, expected = np.asarray(fast.x_), np.asarray(slow.x_)
    assert x[INTEGER].tolist() == expected[INTEGER].tolist() == [0.0, 0.0, 0.0]
    assert not np.signbit(x[INTEGER]).any()  # no -0.0, as on the host
    np.testing.assert_allclose(x, expected, rtol=1e-12, atol=1e-15)
    assert fast.fun_ == pytest.approx(slow.fun_, rel=1e-12)
    np.testing.assert_allclose([h["best"] for h in fast.history_], [h["best"] for h in slow.history_], rtol=1e-12)
    if fixed:
        assert x[2] == 1.0
    if bounds:
        assert ((-2.0 <= x) & (x <= 2.5)).all()


@pytest.mark.parametrize("strategy", ["cma_es", "sep_cma_es"])
def test_the_margin_is_corrected_inside_the_program_as_on_the_host(strategy: str) -> None:
    """After 40 generations the margin's scaling A of the integer coordinates has grown (the correction
    ran: without it A stays 1) to the host run's, and the run's mean, its last correction and the
    generation it was made at are the host's."""
    fast, slow = _fit(strategy, True, max_generations=40), _fit(strategy, False, max_generations=40)
    assert fast.fast_path_ == "compiled_loop"
    A, host = fast.run_.integers.A, slow.run_.integers.A
    assert (host[INTEGER] > 2).all() and (host[[2, 3, 5]] == 1).all()
    np.testing.assert_allclose(A, host, rtol=1e-4)
    assert A.dtype == np.float64 and fast.run_.integers.corrected == slow.run_.integers.corrected == 39
    np.testing.assert_allclose(np.asarray(fast.mean_), np.asarray(slow.mean_), atol=1e-5)


def test_an_observed_and_a_resumed_compiled_run_are_the_run(tmp_path: Path) -> None:
    """Callbacks run the compiled loop one generation a chunk, the margin state crossing to the host
    after each: the same run bit for bit; a checkpoint of generation 12 resumes to it too."""
    full = _fit("cma_es", "auto", max_generations=30)
    path = tmp_path / "run.ckpt"

    def crash(es: ES) -> None:
        if es.n_generations_ == 12:
            raise RuntimeError("power cut")

    es = ES("cma_es", integer=INTEGER, sigma0=1.0, random_state=0, max_generations=30)
    with pytest.raises(RuntimeError, match="power cut"):
        es.fit(_weighted, jnp.full(6, 2.0), callbacks=[crash, Checkpointer(path, every=5)])
    assert es.run_.fast_path == "compiled_loop" and es.n_generations_ == 12
    resumed = ES.resume(path, _weighted)
    assert resumed.fast_path_ == "compiled_loop"
    assert_same_run(resumed, full)


# -- exactness over long runs on flat fitness (float32) ---------------------------------------------
QUIET = dict(tolfun=None, tolx=None, tolfunhist=None, tolstagnation=None, tolflatfitness=None)
CMA_QUIET = dict(tolconditioncov=None, tolupsigma=None, tolfacupx=None, noeffectaxis=False, noeffectcoord=False)


def _flat_in_integers(X: Any) -> Any:
    """A sphere of the continuous coordinates 3 and 5 alone: flat along every integer coordinate."""
    return (X[:, 3] - 0.3) ** 2 + (X[:, 5] - 0.3) ** 2


def _constant(X: Any) -> Any:
    return jnp.zeros(X.shape[0], X.dtype)


EXACT = [("cma_es", _flat_in_integers, True, 0), ("cma_es", _constant, False, 3)]
EXACT_SLOW = [("cma_es", _flat_in_integers, False, 1), ("cma_es", _constant, True, 2),
              ("sep_cma_es", _flat_in_integers, True, 4), ("snes", _flat_in_integers, False, 5)]


@pytest.mark.parametrize("strategy, objective, boxed, seed",
                         EXACT + [pytest.param(*c, marks=pytest.mark.slow) for c in EXACT_SLOW])
def test_every_candidate_of_a_long_flat_float32_run_is_exactly_integral_and_fixed(
        strategy: str, objective: Any, boxed: bool, seed: int) -> None:
    """300 generations on fitness flat along the integer coordinates (or everywhere), no criterion
    stopping the run (CMA-ES's sigma shrinks to 1e-6 .. 1e-20 and the margin's A grows as it does, to
    1e5 .. 1e19 on the integer coordinates; snes rounds alone): every candidate the
    objective saw on the compiled float32 loop, and ``x_``, hold exactly integral values on the
    integer coordinates (inside the box) and exactly float32(0.1) at the fixed coordinate, as on the
    host loop (the same run: same candidates to float32 rounding of the correction)."""
    fixed = {2: 0.1} if boxed else None
    options = dict(integer=INTEGER, bounds=(-3.0, 3.5) if boxed else None, fixed_variables=fixed, sigma0=1.0,
                   random_state=seed, max_generations=300, strategy_options=CMA_QUIET if "cma" in strategy else None,
                   **QUIET)
    x0 = jnp.array([2.5, 2.3, 7.0, 1.0, -1.5, 0.7])  # 2.5 and -1.5: ties of the rounding
    for compiled in (True, False):
        seen: list[np.ndarray] = []

        def f(X: Any) -> Any:
            jax.debug.callback(lambda rows: seen.append(np.atleast_2d(np.asarray(rows))), X)
            return objective(X)

        es = ES(strategy, compiled_loop=compiled, **options).fit(f, x0)
        assert es.fast_path_ == ("compiled_loop" if compiled else None) and es.n_generations_ == 300
        X = np.concatenate(seen)
        assert X.dtype == np.float32 and X.shape[0] >= 300 * es.strategy_.popsize
        rows = np.concatenate([X, np.asarray(es.x_)[None]])
        ints = rows[:, INTEGER]
        assert np.isfinite(ints).all() and (ints == np.round(ints)).all()
        integers = es.run_.integers
        assert not integers.with_margin or integers.A[integers.mask].max() > 1e4  # the regime of a flat run
        if boxed:
            assert ((-3 <= ints) & (ints <= 3)).all() and (rows[:, 2] == np.float32(0.1)).all()
