"""The torch batch's batched record (:mod:`evostrat.run.batch_record`, issue 19) gives every run
exactly what its driver's own record (:meth:`Driver.record`) gives: the same history rows (every
column but ``time``, bit for bit), best so far, stop generation and reason, and criteria progress."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from batch_records import every_run_on_its_driver
from evostrat import ES
from evostrat.run import batch_record
from evostrat.run.batch import fit_batch

torch = pytest.importorskip("torch")

X0 = torch.full((6,), 2.0, dtype=torch.float64)


def _sphere(X):
    return (X * X).sum(axis=1)


def _steps(X):  # plateaus: ties in a generation, flat generations, stagnation
    return torch.floor((X * X).sum(axis=1) * 4.0)


def _holes(X):  # NaN (and inf) for some candidates of some generations of some runs
    f = (X * X).sum(axis=1)
    return torch.where(f > 40.0, torch.nan, torch.where(f > 30.0, torch.inf, f))


def _zero_first(X):  # every population's first candidate 0: tolfun waits for the generation's range
    f = (X * X).sum(axis=1)
    f[::10] = 0.0
    return f


def _bits(value):
    """A number as its exact bits (float.hex: -0.0 apart from 0.0, NaN equal to NaN)."""
    return value.hex() if isinstance(value, float) else value


def _run(d):
    """Everything a run's record decides, as comparable plain data."""
    s, t = d.state, d.termination
    rows = [{k: _bits(v) for k, v in row.items() if k != "time"} for row in s.history]
    progress = {k: [_bits(v) for v in val] if isinstance(val, list) else _bits(val)
                for k, val in t.progress_values().items()}
    return dict(rows=rows, progress=progress, best_f=_bits(float(s.best_f)), best_evals=s.best_evals,
                best_x=s.best_x.tolist(), n_evals=s.n_evals, n_generations=s.n_generations,
                stop=s.stop_reason, generation=d.runner.generation, runner_evals=d.runner.n_evals,
                mean=d.runner.state.mean.tolist())


def _both(monkeypatch, es, objective, x0=X0, **kw):
    batched = fit_batch(es, objective, x0, **kw)
    with monkeypatch.context() as m:
        m.setattr(batch_record.BatchRecord, "_fast_generation", every_run_on_its_driver)
        alone = fit_batch(es, objective, x0, **kw)
    assert batched.fast_path == alone.fast_path == "batched"
    return [_run(e.run_) for e in batched.estimators], [_run(e.run_) for e in alone.estimators]


CASES = {
    # runs stop on different criteria at different generations: tolfun (at many thresholds), maxiter,
    # ftarget, maxfevals, tolfunhist and the strategy's tolfacupx (sigma0 far too small)
    "cma_es criteria": (ES("cma_es", popsize=16, max_generations=400), _sphere,
                        dict(seeds=2, grid=[{"ftarget": [1e-6, 1e-9]}, {"max_generations": [30, 55]},
                                            {"tolfun": [1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6]},
                                            {"max_evals": [16 * 47]}, {"tolfun": [None], "tolfunhist": [1e-3]},
                                            {"sigma0": [1e-6]}])),
    "tolfun by the range": (ES("cma_es", max_generations=300, tolfunhist=None), _zero_first,
                            dict(seeds=2, grid={"tolfun": [1.0, 0.3, 0.1, 0.03]})),
    "sep_cma_es default": (ES("sep_cma_es", max_generations=300), _sphere, dict(seeds=3)),
    "maximize": (ES("snes", maximize=True, max_generations=80), lambda X: -_sphere(X),
                 dict(seeds=2, grid={"ftarget": [-1e-3, None]})),
    "non-finite values": (ES("snes", max_generations=30, sigma0=2.0), _holes, dict(seeds=3)),
    "flat fitness": (ES("cma_es", max_generations=200, tolflatfitness=3), _steps, dict(seeds=3)),
    "float32 maximize ties": (ES("cma_es", maximize=True, max_generations=60), lambda X: -_steps(X),
                              dict(seeds=3, x0=torch.full((6,), 2.0, dtype=torch.float32))),
    # bfloat16: the best candidates kept as tensors (as on a GPU), not numpy arrays
    "bfloat16": (ES("cma_es", max_generations=40), _sphere,
                 dict(seeds=2, x0=torch.full((6,), 2.0, dtype=torch.bfloat16))),
    # the stagnation test becomes due (more than 100 records, no improvement for tolstagnation / 2)
    "tolstagnation": (ES("snes", max_generations=560, tolstagnation=20, tolfun=None, tolx=None,
                         tolflatfitness=None, tolfunhist=None), _steps, dict(seeds=2)),
}


@pytest.mark.filterwarnings("ignore::evostrat.errors.NonFiniteFitnessWarning")
@pytest.mark.parametrize("case", list(CASES))
def test_batched_record_equals_the_drivers_record(monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    es, objective, kw = CASES[case]
    kw = dict(kw)
    batched, per_run = _both(monkeypatch, es, objective, kw.pop("x0", X0), **kw)
    for mine, theirs in zip(batched, per_run):
        assert mine == theirs
    if case == "cma_es criteria":
        assert {r["stop"] for r in batched} == {"tolfun", "maxiter", "ftarget", "maxfevals", "tolfunhist",
                                                "tolfacupx"}
        assert len({r["n_generations"] for r in batched}) > 10
    if case == "tolstagnation":
        assert {r["stop"] for r in batched} == {"tolstagnation"}


def test_the_usual_generation_stays_on_the_batched_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # the driver's record runs only for the generation a run stops at (maxiter: the last)
    from evostrat.run.driver import Driver

    calls = []
    record = Driver.record
    monkeypatch.setattr(Driver, "record", lambda self, *a, **k: calls.append(self) or record(self, *a, **k))
    res = fit_batch(ES("cma_es", max_generations=25), _sphere, X0, seeds=4)
    assert len(calls) == 4 and (res.n_generations == 25).all()
    twin = pickle.loads(pickle.dumps(res.estimators[2]))  # the rows not built yet travel as arrays
    rows = res.estimators[2].history_
    assert twin.history_ == rows
    assert [r["generation"] for r in rows] == list(range(1, 26))
    assert all(type(r["best"]) is float and type(r["n_evals"]) is int for r in rows)
    assert all(b >= a for a, b in zip([r["time"] for r in rows], [r["time"] for r in rows][1:]))
    assert math.isclose(rows[-1]["best"], res.fun[2])
