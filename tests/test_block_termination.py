"""The compiled chunk's block checks (issue 15) give the generation by generation answers.

:func:`~evostrat.run.block_termination.check_block` over blocks of rows, each block ended
after a generation where :func:`~evostrat.run.block_termination.may_stop` holds, must stop
at the generation, with the reason and the criteria's progress, of
:func:`~evostrat.run.device_termination.check` (and the stagnation median test) applied
one generation at a time, on fitness sequences made to trip each criterion.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from evostrat.run.block_termination import (block_progress, check_block, may_stop,  # noqa: E402
                                             watch)
from evostrat.run.device_termination import (REASONS, Rules, check,  # noqa: E402
                                             initial_progress, stagnation_holds)
from evostrat.run.order_statistics import COUNTING_WIDTH, order_statistics  # noqa: E402
from evostrat.run.termination import Termination  # noqa: E402

POP, DIM, G = 6, 2, 620  # pycma's stagnation test needs more than 100 records, one every 5th generation
STAGNATION = REASONS.index("tolstagnation")


def _termination(maximize: bool = False, **criteria: Any) -> Termination:
    settings = dict(tolfun=None, tolx=None, max_generations=G)
    settings.update(criteria)
    return Termination(dim=DIM, popsize=POP, maximize=maximize, history_length=12, **settings)


def _rules(maximize: bool = False, **criteria: Any) -> Rules:
    return Rules.from_termination(_termination(maximize, **criteria), POP, capacity=G + 1)


def _values(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(values (G, POP), sigmas (G,))`` float32 of one scenario."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((G, POP))
    decay = 0.8 ** np.arange(G)[:, None]
    sigmas = 0.97 ** np.arange(G)
    if kind == "noise":  # no trend: the run stagnates
        values = noise
    elif kind == "plateau":  # ties between the best and the 75th percentile, now and then
        values = np.floor(np.abs(noise) * 1.5 + np.arange(G)[:, None] * 0.0)
        values[: G // 3] += np.arange(POP)  # no ties at first
    else:  # "converge": geometric decrease, some NaN and inf rows and entries
        values = 1.0 + decay * np.exp(0.5 * noise)
        values[rng.random((G, POP)) < 0.03] = np.nan
        values[rng.random(G) < 0.05] = np.nan
        values[rng.random((G, POP)) < 0.01] = np.inf
    return values.astype(np.float32), sigmas.astype(np.float32)


@partial(jax.jit, static_argnums=0)
def _check(rules: Rules, p: Any, values: Any, g: Any, evals: Any, best: Any, sigma: Any) -> Any:
    p, code, due = check(rules, p, values, g, evals, best, sigma)
    if rules.tolstagnation is not None:
        holds = due & stagnation_holds(rules, p, g)
        code = jnp.where(holds & ((code == 0) | (code > STAGNATION)), STAGNATION, code)
    return p, code


def _bests(rules: Rules, values: np.ndarray) -> np.ndarray:
    """The run's best after each generation, as the chunk tracks it (NaN ranks worst)."""
    if rules.maximize:
        return np.maximum.accumulate(np.nanmax(np.where(np.isnan(values), -np.inf, values), axis=1))
    return np.minimum.accumulate(np.nanmin(np.where(np.isnan(values), np.inf, values), axis=1))


def _one_by_one(rules: Rules, values: np.ndarray, sigmas: np.ndarray) -> tuple[int, int, Any]:
    p = initial_progress(rules, "float32")
    bests = _bests(rules, values)
    for j in range(G):
        p, code = _check(rules, p, values[j], j + 1, (j + 1) * POP, bests[j], sigmas[j])
        if int(code):
            return j + 1, int(code), p
    raise AssertionError("no criterion held")


@partial(jax.jit, static_argnums=0)
def _may_stop(rules: Rules, w: Any, values: Any, best: Any, g: Any, sigma: Any) -> Any:
    bad = -jnp.inf if rules.maximize else jnp.inf
    finite = jnp.where(jnp.isnan(values), bad, values)
    top = jnp.max(finite) if rules.maximize else jnp.min(finite)
    return may_stop(rules, w, values, top, best, g, g * POP, sigma)


_check_block = jax.jit(check_block, static_argnums=0)
_block_progress = jax.jit(block_progress, static_argnums=0)


def _assert_same(got: Any, want: Any) -> None:
    assert (int(got[1]), int(got[2])) == (int(want[1]), int(want[2]))
    for name, value in want[0]._asdict().items():
        np.testing.assert_array_equal(np.asarray(getattr(got[0], name)), np.asarray(value), err_msg=name)


def _in_blocks(rules: Rules, values: np.ndarray, sigmas: np.ndarray, size: int) -> tuple[int, int, Any]:
    p = initial_progress(rules, "float32")
    bests = _bests(rules, values)
    start = 0
    while start < G:
        w, end = watch(rules, p), start
        while end < min(start + size, G):
            w, maybe = _may_stop(rules, w, values[end], bests[end], end + 1, sigmas[end])
            end += 1
            if bool(maybe):
                break
        rows = np.zeros((size, POP), np.float32)
        rows[: end - start] = values[start:end]
        block_sigmas = np.zeros(size, np.float32)
        block_sigmas[: end - start] = sigmas[start:end]
        before, best = p, bests[end - 1]  # the run's best after the block, as the chunk passes it
        p, m, code = _check_block(rules, p, jnp.asarray(rows), jnp.asarray(block_sigmas), end - start, start,
                                  start * POP, best, 0)
        if not bool(maybe):  # no criterion can hold: the answer read off gives check_block's
            for last_code in (0, len(REASONS) + 1):  # none, or the strategy's own stop at the last row
                want = (p, m, code) if last_code == 0 else _check_block(
                    rules, before, jnp.asarray(rows), jnp.asarray(block_sigmas), end - start, start, start * POP,
                    best, last_code)
                _assert_same(_block_progress(rules, before, jnp.asarray(rows), jnp.asarray(block_sigmas), end - start,
                                             start, start * POP, best, last_code, False), want)
        # the chunk's call: check_block's answer where may_stop held, read off otherwise
        _assert_same(_block_progress(rules, before, jnp.asarray(rows), jnp.asarray(block_sigmas), end - start, start,
                                     start * POP, best, 0, maybe), (p, m, code))
        if int(code):
            assert int(m) == end - start  # the first stop is the block's last generation
            return end, int(code), p
        start = end
    raise AssertionError("no criterion held")


SCENARIOS = [
    ("noise", dict(tolstagnation=30)),
    ("noise", dict(tolstagnation=30, maximize=True)),
    ("plateau", dict(tolflatfitness=2)),
    ("converge", dict(tolfun=1e-6)),
    ("converge", dict(tolfunhist=1e-6, tolflatfitness=3)),
    ("converge", dict(tolfun=1e-6, maximize=True)),
    ("converge", dict(ftarget=1.0 + 1e-4)),
    ("converge", dict(tolx=0.3, tolfunhist=1e-7)),
    ("noise", dict(max_evals=POP * 77 + 1)),
]


@pytest.mark.parametrize("kind,criteria", [
    s if s[1] == {"tolfun": 1e-6} else pytest.param(*s, marks=pytest.mark.slow) for s in SCENARIOS])
def test_blocks_stop_where_the_generation_by_generation_check_stops(kind: str, criteria: dict) -> None:
    rules = _rules(**criteria)
    values, sigmas = _values(kind, seed=len(kind))
    generation, code, progress = _one_by_one(rules, values, sigmas)
    host = _termination(**criteria)  # the host's criteria on the same rows stop there too
    bests = _bests(rules, values)
    assert next((j + 1, r) for j in range(G) if (r := host.check(j + 1, (j + 1) * POP, float(bests[j]),
                                                                 values[j].tolist(), float(sigmas[j])))
                ) == (generation, REASONS[code])
    for size in (5, 32):
        got_generation, got_code, got = _in_blocks(rules, values, sigmas, size)
        assert (got_generation, REASONS[min(got_code, len(REASONS) - 1)]) == (generation, REASONS[code])
        for name, want in progress._asdict().items():
            np.testing.assert_array_equal(np.asarray(getattr(got, name)), np.asarray(want), err_msg=name)


@pytest.mark.parametrize("width", [1, 2, 3, 10, 40, COUNTING_WIDTH + 1])
def test_order_statistics_are_the_sorted_rows_bit_for_bit(width: int) -> None:
    # counting (up to COUNTING_WIDTH) or sorting: the values of jnp.sort's ranks, signs of zero included
    rng = np.random.default_rng(width)
    rows = rng.choice(np.float32([-np.inf, -2.5, -0.0, 0.0, 1.0, 1.0, 3.25, np.inf]), size=(24, width))
    rows[:8] = rng.standard_normal((8, width)).astype(np.float32)
    rows[8] = -0.0
    rows[9, ::2] = 0.0
    rows[9, 1::2] = -0.0
    ranks = tuple(sorted({0, width // 2, int(0.75 * width), width - 1}))
    got = np.asarray(jax.jit(lambda a: order_statistics(a, ranks))(jnp.asarray(rows)))
    want = np.asarray(jnp.sort(jnp.asarray(rows), axis=-1))[:, list(ranks)]
    assert got.dtype == want.dtype and got.view(np.uint32).tolist() == want.view(np.uint32).tolist()
    one = np.asarray(order_statistics(jnp.asarray(rows[9]), ranks))  # a single row
    assert one.view(np.uint32).tolist() == want[9].view(np.uint32).tolist()
