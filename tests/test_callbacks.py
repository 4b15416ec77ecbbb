"""Callbacks of ``fit``: loggers (CSV, JSON lines, DataFrame), early stopping, the
search recorder, the progress bar, and the order and error handling of the hooks."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evostrat import ES
from evostrat.callbacks import (
    Callback,
    CSVLogger,
    DataFrameLogger,
    DistributionRecorder,
    EarlyStopping,
    JSONLinesLogger,
    SearchRecorder,
    history_frame,
)
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.problems import rosenbrock, sphere
from evostrat.callbacks.progress import ProgressBar, make_progress


def _fit(callbacks: list[Any], generations: int = 15, **kw: Any) -> ES:
    return ES("snes", max_generations=generations, random_state=0, **kw).fit(
        rosenbrock, np.zeros(3), callbacks=callbacks)


def test_csv_logger_writes_every_generation_exactly(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "run.csv"  # the folder is created
    es = _fit([CSVLogger(path, extra={"mean0": lambda es: float(es.strategy_.mean[0])})])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == es.n_generations_ == 15
    assert list(rows[0]) == list(es.history_[0]) + ["mean0"]
    for row, entry in zip(rows, es.history_):
        assert int(row["generation"]) == entry["generation"]
        assert float(row["best"]) == entry["best"]  # repr round-trips bit for bit
        assert float(row["sigma"]) == entry["sigma"]
    assert float(rows[-1]["mean0"]) == float(es.strategy_.mean[0])


def test_jsonl_logger_is_strict_json_with_null_for_nonfinite(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"

    def f(X: Any) -> Any:
        out = sphere(X)
        out[0] = np.nan
        return out

    es = ES("snes", max_generations=5, random_state=0, nonfinite="ignore").fit(
        f, np.ones(2), callbacks=[JSONLinesLogger(path, extra={"mean": lambda es: es.strategy_.mean})])
    lines = path.read_text().splitlines()
    rows = [json.loads(line, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}")) for line in lines]
    assert [r["generation"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[-1]["best"] == es.fun_ and len(rows[-1]["mean"]) == 2


def test_dataframe_logger_and_history_frame() -> None:
    pd = pytest.importorskip("pandas")
    logger = DataFrameLogger(extra={"evals_x2": lambda es: 2 * es.n_evals_})
    es = _fit([logger], generations=8)
    frame = logger.frame
    assert isinstance(frame, pd.DataFrame) and len(frame) == 8
    assert frame["evals_x2"].tolist() == [2 * r["n_evals"] for r in es.history_]
    assert history_frame(es)["best"].tolist() == [r["best"] for r in es.history_]
    with pytest.raises(InvalidTypeError, match="fitted ES or a list of dicts"):
        history_frame(42)


def test_history_needs_no_pandas(monkeypatch: Any) -> None:
    import builtins

    real = builtins.__import__

    def no_pandas(name: str, *args: Any, **kw: Any) -> Any:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("No module named 'pandas'")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    logger = DataFrameLogger()
    es = _fit([logger], generations=4)
    assert len(es.history_) == len(logger.rows) == 4
    with pytest.raises(ImportError, match="pip install pandas"):
        logger.frame


def _clock(sign: float) -> Any:
    """An objective whose every value is ``sign * (number of calls)``: the best value
    changes by exactly 1 per generation (a generation is flat: ``tolfun=None`` keeps the run)."""
    calls = [0]

    def f(X: Any) -> Any:
        calls[0] += 1
        return np.full(len(X), sign * calls[0], dtype=float)

    return f


def test_early_stopping_patience_and_min_delta() -> None:
    flat = lambda X: np.ones(len(X))  # noqa: E731
    es = ES("snes", tolfun=None, random_state=0).fit(  # tolfun would stop the flat run after one generation
        flat, np.zeros(3), callbacks=[stop := EarlyStopping(patience=4)])
    assert es.stop_reason_ == "callback" and es.n_generations_ == 5 and stop.stopped_generation == 5
    # the best improves by 1 per generation: by 3 over a patience of 3
    for min_delta, generations, reason in [(0.0, 30, "maxiter"), (2.99, 30, "maxiter"), (3.0, 4, "callback")]:
        es = ES("snes", max_generations=30, tolfun=None, random_state=0).fit(
            _clock(-1.0), np.zeros(2), callbacks=[EarlyStopping(patience=3, min_delta=min_delta)])
        assert (es.n_generations_, es.stop_reason_) == (generations, reason), min_delta


def test_early_stopping_when_maximizing() -> None:
    rising = ES("snes", maximize=True, max_generations=20, tolfun=None, random_state=0).fit(
        _clock(+1.0), np.zeros(2), callbacks=[EarlyStopping(patience=2, min_delta=0.5)])
    assert rising.stop_reason_ == "maxiter"  # improving in the user's sense: never stopped
    falling = ES("snes", maximize=True, max_generations=20, tolfun=None, random_state=0).fit(
        _clock(-1.0), np.zeros(2), callbacks=[EarlyStopping(patience=2)])
    assert (falling.stop_reason_, falling.n_generations_) == ("callback", 3)


def test_early_stopping_validates_arguments() -> None:
    with pytest.raises(InvalidArgumentError, match="patience must be a positive int"):
        EarlyStopping(patience=0)
    with pytest.raises(InvalidTypeError, match="patience"):
        EarlyStopping(patience=2.5)
    with pytest.raises(InvalidArgumentError, match="min_delta"):
        EarlyStopping(min_delta=-1)
    with pytest.raises(InvalidArgumentError, match="not a history_ column"):
        _fit([EarlyStopping(patience=1, monitor="loss")])


def test_search_recorder_does_not_change_the_run() -> None:
    plain = _fit([], generations=20)
    rec = SearchRecorder(every=5, n_samples=30)
    recorded = _fit([rec], generations=20)
    assert [r["best"] for r in recorded.history_] == [r["best"] for r in plain.history_]
    assert [s["generation"] for s in rec.snapshots] == [0, 5, 10, 15, 20]
    assert rec.snapshots[-1]["samples"].shape == (30, 3)
    assert np.allclose(rec.snapshots[-1]["mean"], plain.strategy_.mean)


def test_stopping_callback_and_hook_order() -> None:
    calls: list[str] = []

    class Tracer(Callback):
        def on_fit_start(self, es: ES) -> None:
            calls.append("start")

        def __call__(self, es: ES) -> bool:
            calls.append(f"gen{es.n_generations_}")
            return es.n_generations_ == 3

        def on_fit_end(self, es: ES) -> None:
            calls.append(f"end:{es.stop_reason_}")

    es = _fit([Tracer()])
    assert calls == ["start", "gen1", "gen2", "gen3", "end:callback"]
    assert es.n_generations_ == 3


def test_on_fit_end_runs_when_the_objective_fails(tmp_path: Path) -> None:
    def failing(X: Any) -> Any:
        raise RuntimeError("objective failed")

    logger = CSVLogger(tmp_path / "run.csv")
    with pytest.raises(Exception, match="objective failed"):
        ES("snes", random_state=0).fit(failing, np.zeros(2), callbacks=[logger])
    assert logger._file is None  # closed


def test_on_fit_end_runs_when_closing_the_evaluator_fails(tmp_path: Path) -> None:
    # the evaluator was closed before the observers ended: a failing close (or a second Ctrl-C
    # while an owned pool shut down) skipped on_fit_end, so loggers stayed open
    from evostrat.evaluators.local import VectorizedEvaluator

    class FailingClose(VectorizedEvaluator):
        def close(self) -> None:
            raise RuntimeError("close failed")

    logger = CSVLogger(tmp_path / "run.csv")
    with pytest.raises(RuntimeError, match="close failed"):
        ES("snes", max_generations=3, random_state=0, evaluator=FailingClose()).fit(
            lambda X: (X ** 2).sum(axis=1), np.zeros(2), callbacks=[logger])
    assert logger._file is None  # closed by on_fit_end
    assert len((tmp_path / "run.csv").read_text().splitlines()) == 4  # the header and 3 generations


def test_callbacks_argument_is_validated() -> None:
    es = ES("snes", max_generations=2)
    with pytest.raises(InvalidTypeError, match="wrap it in a list"):
        es.fit(sphere, np.zeros(2), callbacks=print)
    with pytest.raises(InvalidTypeError, match=r"callbacks\[1\] must be callable"):
        es.fit(sphere, np.zeros(2), callbacks=[print, 3])


# -- progress -------------------------------------------------------------------------------
class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_silent_when_not_a_terminal() -> None:
    out = io.StringIO()
    _fit([], generations=5)  # default: no progress at all
    es = ES("snes", max_generations=5, random_state=0).fit(
        sphere, np.ones(2), progress=ProgressBar("auto", file=out))
    assert out.getvalue() == "" and es.n_generations_ == 5


def test_progress_always_writes_plain_lines_off_terminal() -> None:
    out = io.StringIO()
    es = ES("snes", max_evals=70, random_state=0).fit(
        sphere, np.ones(3), progress=ProgressBar("always", file=out))
    last = out.getvalue().splitlines()[-1]
    assert last.startswith(f"gen {es.n_generations_} | evals {es.n_evals_}/70 | best {es.fun_:.4e}")
    assert f"current {es.history_[-1]['generation_best']:.4e}" in last
    assert f"sigma {es.history_[-1]['sigma']:.4e}" in last and "\r" not in out.getvalue()


@pytest.mark.parametrize("style", ["plain", "rich"])
def test_progress_on_a_terminal(style: str) -> None:
    if style == "rich":
        pytest.importorskip("rich")
    out = _Tty()
    es = ES("snes", max_generations=12, random_state=0).fit(
        sphere, np.ones(2), progress=ProgressBar("auto", file=out, style=style, interval=0))
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # without terminal codes
    assert "gen 12" in text and f"evals {es.n_evals_}" in text
    assert f"best {es.fun_:.4e}" in text and "sigma" in text
    if style == "plain":
        assert "\r" in text and text.endswith("\n")


def test_progress_argument_is_validated() -> None:
    assert make_progress(False) is None and make_progress(None) is None
    assert make_progress(True).when == "auto" and make_progress("always").when == "always"
    with pytest.raises(InvalidArgumentError, match="progress must be"):
        make_progress("sometimes")
    with pytest.raises(InvalidTypeError, match="progress must be"):
        ES("snes").fit(sphere, np.ones(2), progress=3)


def test_progress_without_a_budget_shows_evaluations_and_time_only() -> None:
    out = io.StringIO()  # neither max_evals nor max_generations: the default limit is no budget
    es = ES("snes", ftarget=1e-3, random_state=0).fit(sphere, np.ones(2), progress=ProgressBar("always", file=out))
    last = out.getvalue().splitlines()[-1]
    assert re.fullmatch(rf"gen {es.n_generations_} \| evals {es.n_evals_} \| best .* \| \d+:\d\d:\d\d", last), last
    assert "/" not in last and "%" not in last
    assert ProgressBar.budget(es) == (None, es.n_evals_, "evals")


def test_progress_counts_against_the_budget_the_user_set() -> None:
    es = ES("snes", max_generations=30, random_state=0).fit(sphere, np.ones(2))
    assert ProgressBar.budget(es) == (30, 30, "generations")
    es.set_params(max_evals=1000)  # max_evals, when given, is the budget shown
    assert ProgressBar.budget(es) == (1000, es.n_evals_, "evals")


@pytest.mark.parametrize("budget", [dict(max_generations=12), dict(ftarget=1e-3)], ids=["set", "none"])
def test_rich_progress_shows_a_percentage_only_against_a_set_budget(budget: dict) -> None:
    pytest.importorskip("rich")
    out = _Tty()
    es = ES("snes", random_state=0, **budget).fit(
        sphere, np.ones(2), progress=ProgressBar("auto", file=out, style="rich", interval=0))
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    assert f"evals {es.n_evals_}" in text
    assert ("100%" in text) is ("max_generations" in budget) and ("%" in text) is ("max_generations" in budget)


def test_cli_progress_has_no_percentage_without_a_budget(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from evostrat.cli import main

    base = ["run", "-s", "snes", "-p", "sphere", "-d", "3", "--ftarget", "1e-6", "--no-checkpoint", "--progress"]
    assert main([*base, "-o", str(tmp_path / "a")]) == 0
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.match(r"gen \d+ \| evals \d+ \| best", last) and "/" not in last, last
    assert main([*base, "--max-evals", "5000", "-o", str(tmp_path / "b")]) == 0
    assert re.match(r"gen \d+ \| evals \d+/5000 \| best", capsys.readouterr().err.strip().splitlines()[-1])

@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_csv_logger_writes_array_and_scalar_extras_exactly(tmp_path: Path, backend: str) -> None:
    pytest.importorskip(backend)
    from evostrat.plotting.files import read_history_csv

    path = tmp_path / "run.csv"
    seen: dict[str, Any] = {}

    def mean(es: Any) -> Any:
        seen["mean"] = np.asarray(es.strategy_.backend.to_numpy(es.strategy_.mean), dtype=np.float64)
        return es.strategy_.mean

    ES("snes", max_generations=3, random_state=0, backend=backend).fit(
        sphere, np.ones(2), callbacks=[CSVLogger(path, extra={"mean": mean, "mean0": lambda es: es.strategy_.mean[0],
                                                              "f64": lambda es: np.float64(0.1)})])
    last = read_history_csv(path)[-1]
    assert last["mean"] == seen["mean"].tolist() and last["mean0"] == seen["mean"][0]
    assert last["f64"] == 0.1


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_a_callback_returning_an_array_boolean_stops_the_run(backend: str) -> None:
    pytest.importorskip(backend)

    def close_enough(es: Any) -> Any:  # an array comparison: a 0-d boolean of the backend
        return es.strategy_.backend.asarray(es.n_generations_) >= 4

    es = ES("snes", max_generations=20, random_state=0, backend=backend).fit(sphere, np.ones(2), callbacks=[close_enough])
    assert es.stop_reason_ == "callback" and es.n_generations_ == 4
    es = ES("snes", max_generations=5, random_state=0, backend=backend).fit(
        sphere, np.ones(2), callbacks=[lambda es: np.float64(1.0), lambda es: np.ones(2, dtype=bool)])
    assert es.stop_reason_ == "maxiter"  # only booleans stop a run


@pytest.mark.parametrize("backend", ["numpy", "jax"])
@pytest.mark.parametrize("stopper_first", [False, True])
def test_loggers_write_the_recorders_last_record_after_a_callback_stop(tmp_path, backend, stopper_first):
    """A callback stopping the run: the recorder records the last generation when the fit ends, and the
    loggers' last row is that generation with its fields, equal to history_ (host and compiled loops)."""
    pytest.importorskip(backend)
    frame = DataFrameLogger()
    loggers = [CSVLogger(tmp_path / "log.csv"), JSONLinesLogger(tmp_path / "log.jsonl"), frame]
    stop = lambda es: es.n_generations_ >= 4  # noqa: E731
    callbacks = [DistributionRecorder(every=10)] + ([stop] + loggers if stopper_first else loggers + [stop])
    es = ES("cma_es", backend=backend, max_generations=20, random_state=0).fit(
        lambda X: (X ** 2).sum(axis=1), np.ones(3), callbacks=callbacks)
    assert es.stop_reason_ == "callback" and es.fast_path_ == ("compiled_loop" if backend == "jax" else None)
    last = es.history_[-1]
    assert last["generation"] == 4 and len(last["mean"]) == 3
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and lines[-1] == json.loads(json.dumps(last))
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert len(rows) == 4 and rows[-1]["generation"] == "4"
    assert rows[-1]["mean"] == "[" + ", ".join(repr(v) for v in last["mean"]) + "]"
    assert rows[-1]["sigma"] == repr(last["sigma"])
    assert len(frame.rows) == 4 and frame.rows[-1] == last


def test_csv_logger_rewrites_a_single_generation_with_its_header(tmp_path):
    """The last row written again is also the first: the header comes back, from the final row."""

    class Note(Callback):
        def __call__(self, es: Any) -> None:
            return None

        def on_fit_end(self, es: Any) -> None:
            es.history_[-1]["note"] = "end"

    ES("cma_es", max_generations=1, random_state=0).fit(
        lambda X: (X ** 2).sum(axis=1), np.ones(2), callbacks=[Note(), CSVLogger(tmp_path / "log.csv")])
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert len(lines) == 2 and lines[0].endswith(",note") and lines[1].endswith(",end")


@pytest.mark.parametrize("style", ["auto", "rich", "plain"])
def test_progress_off_a_terminal_writes_plain_lines_without_terminal_codes(style: str) -> None:
    """A file or a pipe gets plain lines (at most one a second by default, and the final one), never
    terminal control codes, whatever the style (style='rich' used to force them in)."""
    if style == "rich":
        pytest.importorskip("rich")
    out = io.StringIO()
    es = ES("snes", max_generations=40, random_state=0).fit(
        sphere, np.ones(2), progress=ProgressBar("always", file=out, style=style))
    text = out.getvalue()
    assert "\x1b" not in text and "\r" not in text
    lines = text.splitlines()
    assert 2 <= len(lines) < 40 and all(line.startswith("gen ") for line in lines)
    assert lines[-1].startswith(f"gen 40/40 | evals {es.n_evals_} | best {es.fun_:.4e}")


def test_loggers_write_the_generation_a_callback_before_them_interrupted(tmp_path: Path) -> None:
    """Ctrl-C in a callback listed before the logger: generation 4 is in history_, and in the file too
    (was: the file ended at generation 3)."""

    def interrupt(es: Any) -> None:
        if es.n_generations_ == 4:
            raise KeyboardInterrupt

    es = ES("snes", max_generations=20, random_state=0)
    with pytest.raises(KeyboardInterrupt):
        es.fit(sphere, np.ones(2), callbacks=[interrupt, JSONLinesLogger(tmp_path / "log.jsonl")])
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [row["generation"] for row in lines] == [1, 2, 3, 4] == [row["generation"] for row in es.history_]
    assert lines[-1]["best"] == es.history_[-1]["best"]
