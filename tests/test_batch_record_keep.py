"""The torch batch's record hands a run back to its driver once the stagnation history would pass
``HIST_KEEP`` records (pycma keeps the latest 20,000: :mod:`evostrat.run.termination`), and the run
then goes on exactly as it would have on its driver's record from the first generation.

``HIST_KEEP`` is lowered for the test (20,000 records are 100,000 generations)."""

from __future__ import annotations

import pytest

from batch_records import every_run_on_its_driver
from evostrat import ES
from evostrat.run import batch_record, termination
from evostrat.run.batch import fit_batch

torch = pytest.importorskip("torch")

X0 = torch.full((5,), 2.0, dtype=torch.float64)


def _steps(X):  # plateaus: the run stagnates, its history grows
    return torch.floor((X * X).sum(axis=1) * 4.0)


def _runs(result):
    out = []
    for e in result.estimators:
        d = e.run_
        rows = [{k: v for k, v in row.items() if k != "time"} for row in d.state.history]
        out.append(dict(rows=rows, progress=d.termination.progress_values(), stop=d.state.stop_reason,
                        n_generations=d.state.n_generations, best=float(d.state.best_f),
                        mean=d.runner.state.mean.tolist()))
    return out


@pytest.mark.parametrize("keep", [3, 8])
def test_a_run_past_the_kept_history_continues_on_its_driver(monkeypatch: pytest.MonkeyPatch, keep: int) -> None:
    monkeypatch.setattr(termination, "HIST_KEEP", keep)
    monkeypatch.setattr(batch_record, "HIST_KEEP", keep)
    es = ES("snes", max_generations=90, tolstagnation=20, tolfun=None, tolx=None, tolflatfitness=None,
            tolfunhist=None)
    handed = []
    general = batch_record.BatchRecord._fast_generation

    def spy(self, *args):
        slow, stops = general(self, *args)
        handed.append(int(slow.sum()))
        return slow, stops

    monkeypatch.setattr(batch_record.BatchRecord, "_fast_generation", spy)
    batched = fit_batch(es, _steps, X0, seeds=3)
    monkeypatch.setattr(batch_record.BatchRecord, "_fast_generation", every_run_on_its_driver)
    alone = fit_batch(es, _steps, X0, seeds=3)
    assert batched.fast_path == alone.fast_path == "batched"
    mine, theirs = _runs(batched), _runs(alone)
    assert mine == theirs
    # the runs went back to their drivers once their history passed `keep` records (every 5th
    # generation: after generation 5 * (keep + 1)), not from the first generation
    assert handed[0] == 0 and max(handed) == 3
    first = next(i for i, n in enumerate(handed) if n)
    assert first == 5 * (keep + 1) - 1
    for run in mine:
        assert len(run["progress"]["hist_best"]) == keep and run["n_generations"] == 90
