"""TensorBoard and MLflow loggers against the real libraries, writing to temporary folders
(issue 18, item 8): what they write reads back with the libraries' own readers."""

from __future__ import annotations

import numpy as np
import pytest

from evostrat import ES
from evostrat.callbacks import DistributionRecorder, MLflowLogger, TensorBoardLogger
from evostrat.errors import InvalidArgumentError, InvalidTypeError


def sphere(X):
    return (X**2).sum(axis=1)


class Writer:
    """A TensorBoard ``SummaryWriter`` stand-in recording its ``add_scalar`` calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float, int]] = []

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.calls.append((tag, value, step))


def test_tensorboard_event_file_reads_back(tmp_path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path / "tb", extra={"mean0": lambda es: float(es.strategy_.mean[0])})
    es = ES("cma_es", max_generations=12, random_state=0).fit(
        sphere, np.ones(4), callbacks=[DistributionRecorder(every=1), logger])
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"evostrat/best", "evostrat/median", "evostrat/sigma", "evostrat/n_evals", "evostrat/axis_ratio",
            "evostrat/mean0"} <= set(tags)
    best = events.Scalars("evostrat/best")
    assert [e.step for e in best] == list(range(1, 13))
    np.testing.assert_allclose([e.value for e in best], [r["best"] for r in es.history_], rtol=1e-6)
    assert events.Scalars("evostrat/mean0")[-1].value == pytest.approx(float(es.strategy_.mean[0]), rel=1e-6)


def test_tensorboard_every_and_a_given_writer(tmp_path) -> None:
    writer = Writer()
    ES("snes", max_generations=7, random_state=0).fit(sphere, np.ones(3), callbacks=[TensorBoardLogger(
        writer=writer, prefix="run1/", every=3)])
    assert sorted({step for tag, _, step in writer.calls}) == [3, 6, 7]  # every 3rd and the last
    assert all(tag.startswith("run1/") for tag, _, _ in writer.calls)


def test_tensorboard_every_logs_the_last_generation_when_a_later_callback_stops_the_run() -> None:
    class Writer:
        def __init__(self) -> None:
            self.best: dict[int, float] = {}

        def add_scalar(self, tag: str, value: float, step: int) -> None:
            if tag == "evostrat/best":
                self.best[step] = value

    for stop in ("callback", "raise"):
        writer = Writer()

        def stopper(es, stop=stop):
            if es.n_generations_ == 13:
                if stop == "raise":
                    raise KeyboardInterrupt
                return True

        es = ES("snes", max_generations=50, random_state=0)
        try:
            es.fit(sphere, np.ones(3), callbacks=[TensorBoardLogger(writer=writer, every=5), stopper])
        except KeyboardInterrupt:
            pass
        assert sorted(writer.best) == [5, 10, 13]  # the run's last generation, although not a 5th
        assert writer.best[13] == es.history_[-1]["best"]


def test_tensorboard_through_torch_summary_writer(tmp_path) -> None:
    pytest.importorskip("tensorboard")
    torch_tb = pytest.importorskip("torch.utils.tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    writer = torch_tb.SummaryWriter(str(tmp_path / "torch"))
    ES("snes", max_generations=4, random_state=0).fit(sphere, np.ones(3), callbacks=[TensorBoardLogger(writer=writer)])
    writer.close()
    events = EventAccumulator(str(tmp_path / "torch"))
    events.Reload()
    assert [e.step for e in events.Scalars("evostrat/sigma")] == [1, 2, 3, 4]


def test_mlflow_file_store_run_reads_back(tmp_path, monkeypatch) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3's file store is opt-in
    uri = (tmp_path / "mlruns").as_uri()
    logger = MLflowLogger(uri, experiment="sphere", run_name="cma")
    es = ES("cma_es", sigma0=0.7, max_generations=9, random_state=3).fit(sphere, np.ones(4), callbacks=[logger])
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(logger.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "cma"
    assert run.data.params["strategy"] == "cma_es" and run.data.params["sigma0"] == "0.7"
    assert run.data.tags["stop_reason"] == "maxiter"
    assert run.data.metrics["fun"] == pytest.approx(es.fun_)
    history = client.get_metric_history(logger.run_id, "best")
    assert [m.step for m in history] == list(range(1, 10))
    np.testing.assert_allclose([m.value for m in history], [r["best"] for r in es.history_])
    experiment = client.get_experiment_by_name("sphere")
    assert experiment is not None and run.info.experiment_id == experiment.experiment_id
    # a second fit in the same experiment is a second run
    second = MLflowLogger(uri, experiment="sphere")
    ES("snes", max_generations=2, random_state=0).fit(sphere, np.ones(2), callbacks=[second])
    assert second.run_id != logger.run_id
    assert len(client.search_runs([experiment.experiment_id])) == 2


def test_bad_arguments_name_the_argument() -> None:
    with pytest.raises(InvalidTypeError, match="log_dir"):
        TensorBoardLogger()
    with pytest.raises(InvalidTypeError, match="add_scalar"):
        TensorBoardLogger(writer=object())
    with pytest.raises(InvalidArgumentError, match="every must be a positive int"):
        TensorBoardLogger("x", every=0)
    with pytest.raises(InvalidArgumentError, match="experiment"):
        MLflowLogger(experiment="")
    with pytest.raises(InvalidTypeError, match="extra"):
        MLflowLogger(extra={"a": 1})


def test_tensorboard_logs_the_recorders_final_axis_ratio_after_a_callback_stop() -> None:
    """A callback stopping the run: the DistributionRecorder records the last generation when the fit
    ends, after the logger wrote it; its axis_ratio is logged then (was: missing), the rest not twice."""

    writer = Writer()
    es = ES("cma_es", max_generations=20, random_state=0).fit(sphere, np.ones(3), callbacks=[
        DistributionRecorder(every=10), TensorBoardLogger(writer=writer), lambda es: es.n_generations_ >= 4])
    axes = es.history_[-1]["axes"]
    last = [(tag, value) for tag, value, step in writer.calls if step == 4]
    assert ("evostrat/axis_ratio", pytest.approx(max(axes) / min(axes))) in last
    assert len(last) == len({tag for tag, _ in last})  # each number of generation 4 once
    assert [step for tag, _, step in writer.calls if tag == "evostrat/axis_ratio"] == [1, 4]


def test_tensorboard_refuses_a_link_at_log_dir_and_writes_nothing_through_it(tmp_path) -> None:
    """A symbolic link planted at ``log_dir`` was followed: the event file went into its target."""
    pytest.importorskip("tensorboard")
    victim = tmp_path / "victim"
    victim.mkdir()
    (tmp_path / "tb").symlink_to(victim)
    with pytest.raises(InvalidArgumentError, match=r"log_dir .*tb' is a symbolic link"):
        ES("snes", max_generations=3, random_state=0).fit(sphere, np.ones(3),
                                                          callbacks=[TensorBoardLogger(tmp_path / "tb")])
    assert list(victim.iterdir()) == []


def test_tensorboard_event_file_is_new_never_a_planted_link(tmp_path, monkeypatch) -> None:
    """The event file was opened with ``open(name, "wb")``: a link planted under its (predictable) name
    was written through. Now it is created with ``O_EXCL``: refused, the link's target untouched."""
    pytest.importorskip("tensorboard")
    import itertools
    import os
    import socket

    import evostrat.callbacks.tracking as tracking

    monkeypatch.setattr(tracking.time, "time", lambda: 1234567890.5)
    monkeypatch.setattr(tracking, "_FILES", itertools.count())
    target = tmp_path / "target.txt"
    target.write_text("keep")
    (tmp_path / "tb").mkdir()
    name = f"events.out.tfevents.1234567890.{socket.gethostname()}.{os.getpid()}.0"
    (tmp_path / "tb" / name).symlink_to(target)
    with pytest.raises(InvalidArgumentError, match=r"log_dir .* already holds .*events\.out\.tfevents"):
        ES("snes", max_generations=2, random_state=0).fit(sphere, np.ones(3),
                                                          callbacks=[TensorBoardLogger(tmp_path / "tb")])
    assert target.read_text() == "keep"


def test_tensorboard_event_file_is_readable_while_the_run_goes_on(tmp_path) -> None:
    """Each logged generation is flushed: TensorBoard watching a long run sees it at once."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    seen = []

    def look(es) -> None:
        events = EventAccumulator(str(tmp_path / "tb"))
        events.Reload()
        seen.append(len(events.Scalars("evostrat/best")) if "evostrat/best" in events.Tags()["scalars"] else 0)

    ES("snes", max_generations=3, random_state=0).fit(sphere, np.ones(3),
                                                      callbacks=[TensorBoardLogger(tmp_path / "tb"), look])
    assert seen == [1, 2, 3]


def test_tensorboard_log_dir_that_cannot_be_written_names_log_dir_before_the_first_evaluation(tmp_path) -> None:
    """``log_dir`` inside a file raised a bare FileExistsError from os.makedirs."""
    pytest.importorskip("tensorboard")
    from evostrat.errors import OutputError

    (tmp_path / "notes.txt").write_text("x")
    calls = []
    with pytest.raises(OutputError, match=r"log_dir '.*notes\.txt/tb' cannot be written \((File exists|Not a dir)"):
        ES("snes", max_generations=3, random_state=0).fit(lambda X: calls.append(1) or sphere(X), np.ones(3),
                                                          callbacks=[TensorBoardLogger(tmp_path / "notes.txt" / "tb")])
    assert calls == []
