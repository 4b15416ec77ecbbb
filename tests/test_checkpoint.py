"""Checkpoints: bit-identical resume on every backend, atomic writes, tampering rejected.

A run is "crashed" by a callback raising at some generation between periodic
checkpoints (its final checkpoint is that generation's); ``ES.resume`` must then reproduce the uninterrupted run exactly:
``history_`` (but its wall-clock ``time`` column), ``x_``, ``fun_``, counters
and stop reason. Hostile files (pickle payloads, object arrays, edited
metadata, foreign zips) must be rejected with ``CheckpointError`` and must
never run code.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evostrat import ES
from evostrat.checkpoint import Checkpointer, checkpoint_info, load_checkpoint, save_checkpoint
from evostrat.checkpoint.format import payload_digest, read_checkpoint, write_checkpoint
from evostrat.errors import CheckpointError, InvalidArgumentError, InvalidTypeError, StateError
from evostrat.evaluators.local import Evaluator
from evostrat.plugins import registry
from evostrat.problems import rastrigin, rosenbrock


class Crash(Exception):
    pass


def _crash_at(generation: int) -> Any:
    def callback(es: ES) -> None:
        if es.n_generations_ == generation:
            raise Crash(f"simulated crash at generation {generation}")

    return callback


def _strip(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time"} for row in history]


def _host(es: ES) -> np.ndarray:
    return np.asarray(es.strategy_.backend.to_numpy(es.x_))


def _assert_same_run(resumed: ES, full: ES) -> None:
    assert _strip(resumed.history_) == _strip(full.history_)
    assert resumed.fun_ == full.fun_
    assert np.array_equal(_host(resumed), _host(full))
    assert (resumed.n_evals_, resumed.n_generations_, resumed.stop_reason_) == (
        full.n_evals_, full.n_generations_, full.stop_reason_)
    assert resumed.restarts_ == full.restarts_


def _crash_and_resume(tmp_path: Path, make: Any, objective: Any, x0: Any, crash: int, every: int) -> ES:
    path = tmp_path / "run.ckpt"
    with pytest.raises(Crash):
        make().fit(objective, x0, checkpoint=path, checkpoint_every=every, callbacks=[_crash_at(crash)])
    saved = checkpoint_info(path)
    # the final checkpoint of the interrupted run: the generation the crashing callback saw (was the last
    # periodic one before it, every > 1 generations apart)
    assert saved["n_generations"] == crash
    assert saved["stop_reason"] is None
    return ES.resume(path, objective)


FITNESS_STRATEGIES = sorted(n for n, c in registry("strategies").items() if not c.needs_behaviours)


@pytest.mark.parametrize("strategy", FITNESS_STRATEGIES)
def test_resume_is_bit_identical_numpy(tmp_path: Path, strategy: str) -> None:
    make = lambda: ES(strategy, max_generations=40, random_state=5)  # noqa: E731
    full = make().fit(rosenbrock, np.zeros(4))
    resumed = _crash_and_resume(tmp_path, make, rosenbrock, np.zeros(4), crash=27, every=8)
    _assert_same_run(resumed, full)


def _resume_from_the_middle(tmp_path: Path, make: Any, objective: Any, x0: Any, at: int) -> tuple[ES, ES]:
    """An uninterrupted run that keeps a copy of its checkpoint at generation ``at``
    (what a run killed shortly after ``at`` leaves), and the run resumed from that copy:
    two fits instead of three (JAX compiles each strategy instance's ask/tell anew)."""
    path, kept = tmp_path / "run.ckpt", tmp_path / "kept.ckpt"

    def keep(es: ES) -> None:
        if es.n_generations_ == at + 1:
            kept.write_bytes(path.read_bytes())

    full = make().fit(objective, x0, checkpoint=path, checkpoint_every=at, callbacks=[keep])
    assert checkpoint_info(kept)["n_generations"] == at
    return ES.resume(kept, objective, checkpoint=False), full


@pytest.mark.parametrize("strategy", ["snes", "cma_es", "xnes", "pgpe"])
def test_resume_is_bit_identical_torch(tmp_path: Path, strategy: str) -> None:
    torch = pytest.importorskip("torch")
    make = lambda: ES(strategy, max_generations=60, random_state=2)  # noqa: E731
    x0 = torch.zeros(6, dtype=torch.float32)
    resumed, full = _resume_from_the_middle(tmp_path, make, rosenbrock, x0, at=37)
    assert isinstance(resumed.x_, torch.Tensor) and resumed.x_.dtype == torch.float32
    _assert_same_run(resumed, full)


@pytest.mark.parametrize("strategy", ["snes", pytest.param("cma_es", marks=pytest.mark.slow)])
def test_resume_is_bit_identical_jax(tmp_path: Path, strategy: str) -> None:
    jnp = pytest.importorskip("jax.numpy")
    make = lambda: ES(strategy, max_generations=16, random_state=4)  # noqa: E731
    resumed, full = _resume_from_the_middle(tmp_path, make, rosenbrock, jnp.zeros(5), at=8)
    assert type(resumed.x_) is type(full.x_)
    _assert_same_run(resumed, full)


@pytest.mark.parametrize("kind", ["ipop", "bipop"])
def test_resume_inside_a_later_restart_with_bounds(tmp_path: Path, kind: str) -> None:
    make = lambda: ES("cma_es", restarts=kind, tolfun=1e-4, max_evals=4000,  # noqa: E731
                      bounds=(-4.0, 4.0), random_state=7)
    x0 = np.full(3, 2.0)
    full = make().fit(rastrigin, x0)
    assert len(full.restarts_) >= 3
    second = full.restarts_[2]["start_evals"] // 1  # evaluations when run 2 started
    crash = next(r["generation"] for r in full.history_ if r["n_evals"] > second) + 7
    resumed = _crash_and_resume(tmp_path, make, rastrigin, x0, crash=crash, every=5)
    _assert_same_run(resumed, full)
    assert resumed.history_[-1]["run"] >= 2


def test_finished_checkpoint_resumes_without_evaluating(tmp_path: Path) -> None:
    path = tmp_path / "done.ckpt"
    es = ES("snes", max_generations=12, random_state=0).fit(rosenbrock, np.zeros(3), checkpoint=path,
                                                            checkpoint_every=5)
    assert checkpoint_info(path)["stop_reason"] == "maxiter"

    def never(X: Any) -> Any:
        raise AssertionError("a finished run must not evaluate")

    again = ES.resume(path, never)
    assert again.stop_reason_ == "maxiter" and again.fun_ == es.fun_
    assert _strip(again.history_) == _strip(es.history_)


def test_callback_stop_is_checkpointed_as_finished(tmp_path: Path) -> None:
    path = tmp_path / "stopped.ckpt"
    ES("snes", random_state=0).fit(rosenbrock, np.zeros(3), checkpoint=path,
                                   callbacks=[lambda es: es.n_generations_ == 9])
    info = checkpoint_info(path)
    assert (info["n_generations"], info["stop_reason"], info["checkpoint_every"]) == (9, "callback", 1)


def test_manual_ask_tell_save_and_load(tmp_path: Path) -> None:
    es = ES("cma_es", random_state=3).initialize(np.ones(4))
    for _ in range(6):
        X = es.ask()
        es.tell(X, rosenbrock(X))
    X = es.ask()
    with pytest.raises(StateError, match="between ask"):
        save_checkpoint(es, tmp_path / "pending.ckpt")
    es.tell(X, rosenbrock(X))
    save_checkpoint(es, tmp_path / "a.ckpt", metadata={"note": "manual"})
    copy = load_checkpoint(tmp_path / "a.ckpt")
    assert checkpoint_info(tmp_path / "a.ckpt")["user"] == {"note": "manual"}
    for _ in range(5):
        X1, X2 = es.ask(), copy.ask()
        assert np.array_equal(X1, X2)
        es.tell(X1, rosenbrock(X1))
        copy.tell(X2, rosenbrock(X2))
    assert np.array_equal(es.strategy_.mean, copy.strategy_.mean)


def test_candidates_injected_at_a_checkpointed_generation_survive_resume(tmp_path: Path) -> None:
    """A callback injecting at a generation the checkpointer then saves: the queued candidates
    are part of the run's state (they were dropped, and the resumed run went another way)."""
    def injector(es: ES) -> None:
        if es.n_generations_ % 5 == 0:
            es.inject([np.full(4, 0.5)])

    make = lambda: ES("cma_es", max_generations=30, bounds=(-2.0, 2.0), random_state=1)  # noqa: E731
    full = make().fit(rosenbrock, np.ones(4), callbacks=[injector])
    path = tmp_path / "run.ckpt"
    with pytest.raises(Crash):
        make().fit(rosenbrock, np.ones(4), checkpoint=path, checkpoint_every=10, callbacks=[injector, _crash_at(13)])
    _assert_same_run(ES.resume(path, rosenbrock, callbacks=[injector]), full)
    es = ES("snes", random_state=0).initialize(np.ones(3))  # by hand: queued, then saved
    es.inject(np.zeros((2, 3)))
    save_checkpoint(es, tmp_path / "manual.ckpt")
    assert np.array_equal(load_checkpoint(tmp_path / "manual.ckpt").ask(), es.ask())


def test_resume_overrides_only_runtime_parameters(tmp_path: Path) -> None:
    path = tmp_path / "r.ckpt"
    ES("snes", max_generations=20, random_state=0).fit(rosenbrock, np.zeros(3), checkpoint=path,
                                                       callbacks=[lambda es: es.n_generations_ == 10])
    with pytest.raises(InvalidArgumentError, match="random_state"):
        ES.resume(path, rosenbrock, random_state=1)
    ok = ES.resume(path, rosenbrock, evaluator="serial", checkpoint=False)
    assert ok.evaluator == "serial" and ok.stop_reason_ == "callback"


def test_unsaved_evaluator_instance_must_be_given_again(tmp_path: Path) -> None:
    class Mine(Evaluator):
        def evaluate(self, objective: Any, X: Any, backend: Any, **kw: Any) -> Any:
            return objective(X)

    path = tmp_path / "r.ckpt"
    with pytest.raises(Crash):
        ES("snes", max_generations=20, evaluator=Mine(), random_state=0).fit(
            rosenbrock, np.zeros(3), checkpoint=path, checkpoint_every=5, callbacks=[_crash_at(7)])
    with pytest.raises(InvalidArgumentError, match="evaluator"):
        ES.resume(path, rosenbrock)
    assert ES.resume(path, rosenbrock, evaluator=Mine()).n_generations_ == 20


def test_bad_checkpoint_arguments_are_clear(tmp_path: Path) -> None:
    es = ES("snes", max_generations=3)
    with pytest.raises(InvalidArgumentError, match="checkpoint_every needs checkpoint"):
        es.fit(rosenbrock, np.zeros(2), checkpoint_every=5)
    with pytest.raises(InvalidTypeError, match="checkpoint must be a path"):
        es.fit(rosenbrock, np.zeros(2), checkpoint=42)
    with pytest.raises(InvalidArgumentError, match="checkpoint_every must be a positive int"):
        es.fit(rosenbrock, np.zeros(2), checkpoint=tmp_path / "x.ckpt", checkpoint_every=0)
    with pytest.raises(CheckpointError, match="does not exist"):
        ES.resume(tmp_path / "missing.ckpt", rosenbrock)


def test_save_and_load_name_a_wrong_path(tmp_path: Path) -> None:
    """A non-path was a bare TypeError from os.fspath; a folder an IsADirectoryError naming the
    temporary file; a missing folder a FileNotFoundError naming it too."""
    es = ES("snes", random_state=0).initialize(np.ones(3))
    for call in (lambda: save_checkpoint(es, None), lambda: load_checkpoint(3), lambda: checkpoint_info(None)):
        with pytest.raises(InvalidTypeError, match="checkpoint path must be a str or os.PathLike"):
            call()
    (tmp_path / "folder").mkdir()
    with pytest.raises(InvalidArgumentError, match="is a folder"):
        save_checkpoint(es, tmp_path / "folder")
    with pytest.raises(InvalidArgumentError, match="its folder does not exist"):
        save_checkpoint(es, tmp_path / "missing" / "a.ckpt")
    assert os.listdir(tmp_path) == ["folder"] and not os.listdir(tmp_path / "folder")


# -- atomic writes ------------------------------------------------------------------------
def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / "r.ckpt"
    es = ES("snes", random_state=0).initialize(np.zeros(3))
    save_checkpoint(es, path)
    before = path.read_bytes()
    X = es.ask()
    es.tell(X, rosenbrock(X))

    def power_cut(src: Any, dst: Any) -> None:
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(os, "replace", power_cut)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(es, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.ckpt"]  # no temporary file left
    assert load_checkpoint(path).n_generations_ == 0


# -- hostile and damaged files --------------------------------------------------------------
@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.ckpt"
    es = ES("snes", max_generations=6, random_state=0).fit(rosenbrock, np.zeros(3))
    save_checkpoint(es, path)
    return path


def _rewrite(src: Path, dst: Path, edit: Any) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info, data)


def test_flipped_array_byte_fails_the_digest(good: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.ckpt"

    def flip(name: str, data: bytes) -> bytes:
        if name == "arrays/state/mean.npy":
            return data[:-1] + bytes([data[-1] ^ 1])
        return data

    _rewrite(good, bad, flip)
    with pytest.raises(CheckpointError, match="SHA-256 mismatch"):
        ES.resume(bad, rosenbrock)


def test_edited_metadata_fails_the_digest(good: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.ckpt"

    def edit(name: str, data: bytes) -> bytes:
        if name == "metadata.json":
            meta = json.loads(data)
            meta["run"]["best_f"] = -1.0
            return json.dumps(meta).encode()
        return data

    _rewrite(good, bad, edit)
    with pytest.raises(CheckpointError, match="integrity check"):
        load_checkpoint(bad)


class _Boom:
    """Unpickling this would create ``marker`` (code execution)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (open, (self.marker, "w"))


def test_pickle_file_is_rejected_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps(_Boom(str(marker))))
    with pytest.raises(CheckpointError, match="not an evostrat checkpoint"):
        ES.resume(evil, rosenbrock)
    assert not marker.exists()


def test_object_array_with_recomputed_digest_is_rejected(good: Path, tmp_path: Path) -> None:
    """A forger who recomputes the digest still cannot smuggle a pickled object array."""
    marker = tmp_path / "pwned"
    meta, arrays = read_checkpoint(good)
    payload = io.BytesIO()
    np.lib.format.write_array(payload, np.array([_Boom(str(marker))], dtype=object), allow_pickle=True)
    meta["arrays"]["state/mean"] = {"dtype": "|O", "shape": [1]}
    meta["sha256"] = payload_digest(meta, {k: v for k, v in arrays.items()})
    bad = tmp_path / "bad.ckpt"

    def swap(name: str, data: bytes) -> bytes:
        if name == "metadata.json":
            return json.dumps(meta).encode()
        return payload.getvalue() if name == "arrays/state/mean.npy" else data

    _rewrite(good, bad, swap)
    with pytest.raises(CheckpointError, match="unreadable|dtype"):
        load_checkpoint(bad)
    assert not marker.exists()


def test_foreign_files_are_rejected_with_clear_errors(good: Path, tmp_path: Path) -> None:
    npz = tmp_path / "plain.npz"
    np.savez(npz, a=np.ones(3))
    with pytest.raises(CheckpointError, match="no metadata.json"):
        load_checkpoint(npz)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a zip"):
        load_checkpoint(text)
    for field, value, message in [("format", "other-tool", "format tag"),
                                  ("version", 99, "format version 99")]:
        bad = tmp_path / f"{field}.ckpt"
        meta, arrays = read_checkpoint(good)
        meta[field] = value
        _rewrite(good, bad, lambda n, d, m=meta: json.dumps(m).encode() if n == "metadata.json" else d)
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(bad)
    extra = tmp_path / "extra.ckpt"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(extra, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, zin.read(info.filename))
        zout.writestr("arrays/../../evil.npy", b"x")
    with pytest.raises(CheckpointError, match="unexpected members"):
        load_checkpoint(extra)


def test_format_round_trip_keeps_dtypes_shapes_and_layout(tmp_path: Path) -> None:
    arrays = {"a": np.arange(6.0).reshape(2, 3), "f": np.asfortranarray(np.ones((3, 2))),
              "s": np.array(2.5), "k": np.array([1, 2], dtype=np.uint64), "b": np.array([True, False])}
    write_checkpoint(tmp_path / "x.ckpt", {"note": [1, "two", None]}, arrays)
    meta, back = read_checkpoint(tmp_path / "x.ckpt")
    assert meta["note"] == [1, "two", None]
    for name, a in arrays.items():
        assert back[name].dtype == a.dtype and back[name].shape == a.shape
        assert np.array_equal(back[name], a)
    assert back["f"].flags.f_contiguous and back["s"].ndim == 0
    with pytest.raises(CheckpointError, match="only numeric arrays"):
        write_checkpoint(tmp_path / "y.ckpt", {}, {"o": np.array(["text"])})


def test_checkpointer_validates_its_arguments() -> None:
    with pytest.raises(InvalidTypeError, match="checkpoint_every"):
        Checkpointer("a.ckpt", every=1.5)
    with pytest.raises(InvalidTypeError, match="metadata"):
        Checkpointer("a.ckpt", metadata=["x"])


def test_user_metadata_round_trips_through_resumes_and_arrays_are_refused(tmp_path: Path) -> None:
    """``checkpoint_info`` returned the encoded form ({"__tuple__": ...}), which each resume
    wrapped again; a list was written (and then refused on load), an array silently dropped."""
    path, user = tmp_path / "u.ckpt", {"pair": (1, 2), 3: "int key", "__private": [1.5]}
    with pytest.raises(Crash):
        ES("snes", max_generations=30, random_state=0).fit(
            rosenbrock, np.ones(3), checkpoint=Checkpointer(path, every=5, metadata=user), callbacks=[_crash_at(7)])
    assert checkpoint_info(path)["user"] == user
    with pytest.raises(Crash):
        ES.resume(path, rosenbrock, callbacks=[_crash_at(12)])
    assert checkpoint_info(path)["user"] == user
    es = ES("snes", random_state=0).initialize(np.ones(3))
    with pytest.raises(InvalidTypeError, match="metadata must be a dict"):
        save_checkpoint(es, tmp_path / "list.ckpt", metadata=["x"])
    with pytest.raises(InvalidTypeError, match=r"metadata\.a is an array"):
        save_checkpoint(es, tmp_path / "array.ckpt", metadata={"a": np.arange(3)})
    with pytest.raises(InvalidTypeError, match=r"metadata\.a is an array"):
        Checkpointer(tmp_path / "array.ckpt", metadata={"a": np.arange(3)})
    assert not (tmp_path / "list.ckpt").exists() and not (tmp_path / "array.ckpt").exists()


def test_relative_checkpoint_path_survives_a_change_of_directory(tmp_path: Path, monkeypatch: Any) -> None:
    """An objective or callback that changes the working directory (an external simulator's
    work folder) sent the later checkpoints of ``checkpoint="run.ckpt"`` to the new folder:
    the file named when the run began stayed at an old generation."""
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)

    def wander(es: ES) -> None:
        if es.n_generations_ == 2:
            os.chdir(tmp_path / "elsewhere")

    es = ES("snes", max_generations=6, random_state=0).fit(rosenbrock, np.ones(3), checkpoint="run.ckpt",
                                                           callbacks=[wander])
    assert checkpoint_info(tmp_path / "run.ckpt")["n_generations"] == 6 == es.n_generations_
    assert not (tmp_path / "elsewhere" / "run.ckpt").exists()
