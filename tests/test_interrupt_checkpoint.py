"""An interrupted run writes a final checkpoint of its last finished generation (nothing is lost).

A ``fit(checkpoint=..., checkpoint_every=N)`` (or a :class:`Checkpointer`, or ``evostrat run``)
that Ctrl-C, an error of the objective or of a callback, or SIGTERM interrupts goes back to its
last finished generation and checkpoints *that*, not only the last periodic checkpoint up to
``N - 1`` generations older; resuming from it equals the uninterrupted run bit for bit. An
interrupt that lands while a generation is being recorded (the run then half-advanced) writes
nothing, keeping the last periodic checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from evostrat import ES
from same_run import assert_same_run, ones_on
from evostrat.checkpoint import Checkpointer, checkpoint_info
from evostrat.cli import main
from evostrat.errors import ObjectiveError

pytestmark = pytest.mark.filterwarnings("ignore::evostrat.errors.PerCandidateWarning")

EVERY = 5  # periodic checkpoints far apart: the final one must be newer


def _f(x: Any) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.sum((x - 0.3) ** 2) + np.sum(np.cos(3.0 * x)))


def _cut_at(evaluation: int, error: BaseException) -> Callable[[Any], float]:
    """``_f``, raising ``error`` at its ``evaluation``-th call."""
    calls = [0]

    def objective(x: Any) -> float:
        calls[0] += 1
        if calls[0] == evaluation:
            raise error
        return _f(x)

    return objective


CASES = {
    "plain": dict(max_generations=14),
    "ipop": dict(restarts="ipop", max_evals=900, tolfun=1e-3),
    "bounds": dict(max_generations=14, bounds=(-2.0, 2.0)),
    "integer": dict(max_generations=14, bounds=(-3.0, 3.0), integer=[0, 2]),
    "noise_handling": dict(max_generations=14, noise_handling=True),
}


def _cut(full: ES) -> int:
    """An evaluation inside a generation that is not a multiple of EVERY (a restart run's with ipop)."""
    rows = [row for row in full.history_ if row["generation"] % EVERY not in (0, EVERY - 1)]
    row = rows[len(rows) * 2 // 3]
    return row["n_evals"] + 2  # the generation after it, its second candidate


@pytest.mark.parametrize("backend, case, error", [("numpy", case, "interrupt") for case in sorted(CASES)] + [
    ("torch", "plain", "interrupt"), ("torch", "ipop", "interrupt"), ("jax", "plain", "interrupt"),
    ("jax", "ipop", "interrupt"), ("numpy", "plain", "objective"), ("numpy", "ipop", "objective")])
def test_an_interrupted_fit_checkpoints_its_last_generation(tmp_path: Path, backend: str, case: str,
                                                            error: str) -> None:
    options = dict(CASES[case], random_state=2)
    full = ES("cma_es", **options).fit(_f, ones_on(backend))
    path = tmp_path / "run.ckpt"
    raised = KeyboardInterrupt() if error == "interrupt" else ValueError("simulator diverged")
    es = ES("cma_es", **options)
    with pytest.raises(KeyboardInterrupt if error == "interrupt" else ObjectiveError):
        es.fit(_cut_at(_cut(full), raised), ones_on(backend), checkpoint=path, checkpoint_every=EVERY)
    assert es.n_generations_ % EVERY != 0
    # was: the last periodic checkpoint, up to EVERY - 1 generations older
    info = checkpoint_info(path)
    assert (info["n_generations"], info["n_evals"], info["stop_reason"]) == (es.n_generations_, es.n_evals_, None)
    assert_same_run(ES.resume(path, _f), full)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_a_callback_error_checkpoints_the_generation_it_saw(tmp_path: Path, backend: str) -> None:
    """A callback raising after generation 12; with JAX and a traceable objective the compiled path."""
    if backend == "jax":
        pytest.importorskip("jax")
        import jax.numpy as jnp

        x0, objective = jnp.ones(3), lambda X: (X ** 2).sum(axis=1) + jnp.cos(3.0 * X).sum(axis=1)
    else:
        x0, objective = np.ones(3), lambda X: (X ** 2).sum(axis=1) + np.cos(3.0 * X).sum(axis=1)
    options = dict(max_generations=30, random_state=1)
    full = ES("cma_es", **options).fit(objective, x0)

    def crash(es: ES) -> None:
        if es.n_generations_ == 12:
            raise RuntimeError("power cut")

    path = tmp_path / "run.ckpt"
    checkpointer = Checkpointer(path, every=EVERY)
    es = ES("cma_es", **options)
    with pytest.raises(RuntimeError, match="power cut"):
        es.fit(objective, x0, callbacks=[crash, checkpointer])
    assert (es.n_generations_, checkpoint_info(path)["n_generations"]) == (12, 12)  # was: 10
    assert checkpointer.n_written == 3
    if backend == "jax":
        assert es.run_.fast_path == "compiled_loop"
    assert_same_run(ES.resume(path, objective), full)


def test_an_interrupt_while_a_generation_is_recorded_keeps_the_periodic_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The values were told, the record is half-written: no final checkpoint of a half-advanced run."""
    from evostrat.run.state import RunState

    options = dict(max_generations=14, random_state=2)
    full = ES("cma_es", **options).fit(_f, np.ones(4))
    add_generation = RunState.add_generation

    def interrupted(self: RunState, host: Any, X: Any, runner: Any) -> None:
        if runner.generation == 8:  # told: the strategy is at generation 8, the run at 7
            raise KeyboardInterrupt
        add_generation(self, host, X, runner)

    monkeypatch.setattr(RunState, "add_generation", interrupted)
    path = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        ES("cma_es", **options).fit(_f, np.ones(4), checkpoint=path, checkpoint_every=EVERY)
    monkeypatch.setattr(RunState, "add_generation", add_generation)
    assert checkpoint_info(path)["n_generations"] == 5
    assert_same_run(ES.resume(path, _f), full)


def test_a_second_interrupt_while_the_final_checkpoint_is_written_keeps_the_periodic_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C twice: the final write is cut, the file stays the last periodic checkpoint, whole."""
    options = dict(max_generations=14, random_state=2)
    full = ES("cma_es", **options).fit(_f, np.ones(4))
    calls = [0]

    def power_cut(src: Any, dst: Any) -> None:
        raise KeyboardInterrupt("the second Ctrl-C")

    def objective(x: Any) -> float:
        calls[0] += 1
        if calls[0] == 8 * 7 + 3:
            monkeypatch.setattr(os, "replace", power_cut)  # the next write (the final one) is cut
            raise KeyboardInterrupt("the first Ctrl-C")
        return _f(x)

    path = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt, match="the second Ctrl-C"):
        ES("cma_es", **options).fit(objective, np.ones(4), checkpoint=path, checkpoint_every=EVERY)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]  # no temporary file left
    assert checkpoint_info(path)["n_generations"] == 5
    assert_same_run(ES.resume(path, _f), full)


def test_a_keyboard_interrupt_in_an_executor_worker_interrupts_the_run(tmp_path: Path) -> None:
    """Raised by the objective in a thread pool's worker: was an ObjectiveError; now as on the serial path."""
    from concurrent.futures import ThreadPoolExecutor

    from evostrat.evaluators import ExecutorEvaluator

    options = dict(max_generations=14, random_state=2)
    full = ES("cma_es", **options).fit(_f, np.ones(4))
    path = tmp_path / "run.ckpt"
    with ThreadPoolExecutor(2) as pool:
        es = ES("cma_es", evaluator=ExecutorEvaluator(pool), **options)
        with pytest.raises(KeyboardInterrupt) as info:
            es.fit(_cut_at(8 * 7 + 3, KeyboardInterrupt()), np.ones(4), checkpoint=path, checkpoint_every=EVERY)
    assert type(info.value) is KeyboardInterrupt
    assert (es.n_generations_, es.n_evals_, es.strategy_.pending) == (7, 56, None)  # generation 8 undone
    assert checkpoint_info(path)["n_generations"] == 7
    assert_same_run(ES.resume(path, _f, evaluator="serial"), full)


# -- evostrat run -----------------------------------------------------------------------------

USER_MODULE = textwrap.dedent('''
    import os, signal
    import numpy as np
    CALLS = [0]
    CUT = {"at": 0, "signal": None}
    def bumpy(x):
        CALLS[0] += 1
        if CALLS[0] == CUT["at"]:
            if CUT["signal"] is None:
                raise KeyboardInterrupt
            os.kill(os.getpid(), CUT["signal"])
        x = np.asarray(x, dtype=np.float64)
        return float(np.sum((x - 0.3) ** 2) + np.sum(np.cos(3.0 * x)))
''')

CONFIG = ["-s", "cma_es", "-p", "user_interrupts_t1:bumpy", "--x0", "1,1,1,1", "--max-generations", "40",
          "--seed", "3", "--checkpoint-every", "10", "--no-progress"]


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "user_interrupts_t1.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the CLI puts the current folder first
    yield tmp_path
    sys.modules.pop("user_interrupts_t1", None)


def _result(out: Path) -> dict:
    return json.loads((out / "result.json").read_text())


def _csv(path: Path) -> list[list[str]]:
    rows = [line.split(",") for line in path.read_text().splitlines()]
    at = rows[0].index("time")
    return [row[:at] + row[at + 1:] for row in rows]


def test_ctrl_c_in_evostrat_run_checkpoints_the_last_generation(user_dir: Path) -> None:
    assert main(["run", *CONFIG, "-o", "whole"]) == 0
    module = sys.modules["user_interrupts_t1"]
    module.CALLS[0], module.CUT["at"] = 0, 8 * 23 + 3  # inside generation 24 (8 candidates each)
    assert main(["run", *CONFIG, "-o", "cut"]) == 130
    info = checkpoint_info(user_dir / "cut" / "checkpoint.ckpt")
    assert info["n_generations"] == 23  # was: 20, the last periodic checkpoint
    module.CUT["at"] = 0
    assert main(["run", "--resume", "-p", "user_interrupts_t1:bumpy", "-o", "cut"]) == 0
    expected, got = _result(user_dir / "whole"), _result(user_dir / "cut")
    for key in ("fun", "x", "n_evals", "n_generations", "stop_reason"):
        assert got[key] == expected[key], key
    assert _csv(user_dir / "cut" / "history.csv") == _csv(user_dir / "whole" / "history.csv")


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or sys.platform == "win32", reason="POSIX signals")
def test_sigterm_ends_evostrat_run_with_its_final_checkpoint(user_dir: Path) -> None:
    """A ``kill`` (a scheduler's time limit) was the default action: the process died at once."""
    script = user_dir / "run_cut.py"
    script.write_text(textwrap.dedent('''
        import signal, sys
        sys.path.insert(0, ".")
        import user_interrupts_t1
        from evostrat.cli import main
        user_interrupts_t1.CUT.update(at=int(sys.argv[1]), signal=signal.SIGTERM)
        sys.exit(main(["run", *sys.argv[2:]]))
    '''))
    whole = subprocess.run([sys.executable, str(script), "0", *CONFIG, "-o", "whole"], cwd=user_dir,
                           capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    cut = subprocess.run([sys.executable, str(script), str(8 * 33 + 5), *CONFIG, "-o", "cut"], cwd=user_dir,
                         capture_output=True, text=True, timeout=300)
    assert cut.returncode == 128 + signal.SIGTERM, cut.stderr  # was: -15, killed by the signal
    assert "terminated by SIGTERM" in cut.stderr
    assert checkpoint_info(user_dir / "cut" / "checkpoint.ckpt")["n_generations"] == 33  # was: 30
    assert not [p for p in os.listdir(user_dir / "cut") if p.endswith(".tmp")]
    resumed = subprocess.run([sys.executable, str(script), "0", "--resume", "-p", "user_interrupts_t1:bumpy", "-o", "cut"], cwd=user_dir,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed at generation 33" in resumed.stdout
    expected, got = _result(user_dir / "whole"), _result(user_dir / "cut")
    for key in ("fun", "x", "n_evals", "n_generations", "stop_reason"):
        assert got[key] == expected[key], key


def test_terminate_as_interrupt_restores_the_handlers_and_spares_ignored_signals() -> None:
    from evostrat.cli.signals import Terminated, terminate_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with pytest.raises(Terminated) as info:
            with terminate_as_interrupt():
                assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN  # ignored stays ignored
                os.kill(os.getpid(), signal.SIGTERM)
        assert isinstance(info.value, KeyboardInterrupt) and info.value.exit_status == 143
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        signal.signal(signal.SIGHUP, hup)
