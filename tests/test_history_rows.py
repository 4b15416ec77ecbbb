"""History rows of the ask/tell fast path (issue 15): a numpy generation told finite values
keeps its row as a list until ``history_`` is read; the rows users see equal those of the
generic path (values told as a list), key for key and value for value, in generation order."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evostrat import ES
from evostrat.problems import rosenbrock, sphere
from evostrat.run.state import ROW_KEYS


def _run(generations: int, as_list, maximize: bool = False, read_every: int = 0, nan_at=(), **params):
    """An ask/tell run; ``as_list(g)`` says whether generation ``g`` tells a list (generic path)."""
    es = ES("cma_es", random_state=5, max_generations=10**6, maximize=maximize, nonfinite="ignore",
            **params).initialize(np.full(5, 1.5))
    sign = -1.0 if maximize else 1.0
    for g in range(1, generations + 1):
        X = es.ask()
        values = sign * rosenbrock(X)
        if g in nan_at:
            values[1] = math.nan
        es.tell(X, values.tolist() if as_list(g) else values)
        if read_every and g % read_every == 0:
            assert len(es.history_) == g
    return es


def _rows(es: ES) -> list[list]:
    return [[(k, v) for k, v in row.items() if k != "time"] for row in es.history_]


@pytest.mark.parametrize("maximize", [False, True])
def test_fast_rows_equal_the_generic_rows(maximize):
    generic = _run(150, lambda g: True, maximize)
    fast = _run(150, lambda g: False, maximize)
    mixed = _run(150, lambda g: g % 7 == 0, maximize, read_every=11, nan_at=(5, 40))
    assert _rows(fast) == _rows(generic)
    assert len(_rows(mixed)) == 150 and [r["generation"] for r in mixed.history_] == list(range(1, 151))
    assert all(tuple(row) == ROW_KEYS for row in fast.history_)
    assert (fast.fun_, fast.stop_reason_) == (generic.fun_, generic.stop_reason_)
    assert np.array_equal(fast.x_, generic.x_)
    times = [row["time"] for row in fast.history_]
    assert times == sorted(times) and all(isinstance(row["sigma"], float) for row in fast.history_)


def test_a_nan_generation_between_fast_ones_keeps_the_order():
    mixed = _run(60, lambda g: False, nan_at=(3, 30, 31))
    rows = mixed.history_
    assert [r["generation"] for r in rows] == list(range(1, 61))
    assert [r["n_evals"] for r in rows] == [g * mixed.strategy_.popsize for g in range(1, 61)]
    best = [r["best"] for r in rows]
    assert best == sorted(best, reverse=True)  # best so far never worsens


def test_rows_read_before_more_generations_are_kept():
    es = ES("snes", random_state=0, max_generations=10**6).initialize(np.ones(3))
    for _ in range(5):
        X = es.ask()
        es.tell(X, sphere(X))
    first = [dict(r) for r in es.history_]
    for _ in range(5):
        X = es.ask()
        es.tell(X, sphere(X))
    assert es.history_[:5] == first and len(es.history_) == 10
    assert not es.run_.state.raw and not es.run_.state.unsigned


@pytest.mark.parametrize("maximize", [False, True])
def test_torch_generations_take_the_fast_path_with_the_generic_rows(maximize, monkeypatch):
    """A torch generation told a tensor of the run's dtype and device is checked and recorded
    from one host list (as numpy's): no ``check_values`` (an ``isfinite``, an ``all`` and a
    device read of their own), rows, best and state equal to the generic path's (a list told)."""
    torch = pytest.importorskip("torch")
    from evostrat.run.asktell import AskTell

    checked = []
    original = AskTell.check_values
    monkeypatch.setattr(AskTell, "check_values", lambda self, *a: checked.append(1) or original(self, *a))
    sign = -1.0 if maximize else 1.0

    def run(as_list):
        es = ES("snes", random_state=5, max_generations=10**6, maximize=maximize,
                nonfinite="ignore").initialize(torch.full((5,), 1.5, dtype=torch.float64))
        for g in range(1, 81):
            X = es.ask()
            values = sign * ((X - 0.5) ** 2).sum(1)
            if g == 40:
                values[1] = math.nan  # the generic path, between fast generations
            es.tell(X, values.tolist() if as_list else values)
        return es

    generic = run(True)
    del checked[:]
    fast = run(False)
    assert len(checked) == 1  # generation 40 only
    assert _rows(fast) == _rows(generic)
    assert (fast.fun_, fast.stop_reason_) == (generic.fun_, generic.stop_reason_)
    assert torch.equal(torch.as_tensor(fast.x_), torch.as_tensor(generic.x_))
    assert torch.equal(fast.run_.runner.state.mean, generic.run_.runner.state.mean)
