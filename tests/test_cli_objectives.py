"""``evostrat run`` on a user's objective (``-p module:function``, ``-p file.py:function``),
a vector or file ``--x0``, and ``--resume --max-evals N`` extending a finished run's budget.

Each run is checked against the same run made in Python with ``ES(...).fit``: the CLI must
optimise the user's function from the user's point, not a benchmark from ``3.0``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evostrat import ES
from evostrat.cli import main
from evostrat.errors import InvalidArgumentError

#: The user objectives here take one candidate, as a CLI user writes them: the Python runs they are
#: compared with fall back to one call per candidate, with a PerCandidateWarning (by design).
pytestmark = pytest.mark.filterwarnings("ignore::evostrat.errors.PerCandidateWarning")

SCRIPT = Path(sys.executable).with_name("evostrat")
BASE = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "evostrat"]
USER_MODULE = '''
import numpy as np
CALLS = []
def shifted(x):
    """Per candidate: a 1-D point in, a float out."""
    x = np.asarray(x)
    assert x.ndim == 1
    return float(((x - 1.5) ** 2).sum())
class Problems:
    @staticmethod
    def tilted(X):
        return ((np.asarray(X) - 0.5) ** 2).sum(axis=1)
not_callable = 3
class Returns:
    """Per candidate, to maximise, as GymProblem (negate=False)."""
    negate = False
    def __call__(self, x):
        return float(-((np.asarray(x) - 1.5) ** 2).sum())
returns = Returns()
'''


def _shifted(x: np.ndarray) -> float:
    return float(((np.asarray(x) - 1.5) ** 2).sum())


def _run(*args: str) -> int:
    return main(["run", "--no-progress", *args])


def _status(*args: str) -> int:
    try:
        return _run(*args)
    except SystemExit as exit:
        return int(exit.code)


def _result(out: Path) -> dict:
    return json.loads((out / "result.json").read_text())


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "user_objectives_t18.py").write_text(USER_MODULE)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "my-problem.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the CLI puts the current folder first
    yield tmp_path
    sys.modules.pop("user_objectives_t18", None)


@pytest.mark.parametrize("spec", ["user_objectives_t18:shifted", "sub/my-problem.py:shifted"])
def test_user_objective_and_vector_x0_match_the_python_run(user_dir: Path, spec: str) -> None:
    assert _run("-p", spec, "-s", "snes", "--x0", "0,1,-2", "--max-evals", "600", "--seed", "4", "-o", "out") == 0
    got = _result(user_dir / "out")
    want = ES("snes", max_evals=600, random_state=4).fit(_shifted, np.array([0.0, 1.0, -2.0]))
    assert (got["dim"], got["n_evals"], got["fun"], got["x"]) == (3, want.n_evals_, want.fun_, want.x_.tolist())
    config = json.loads((user_dir / "out" / "config.json").read_text())
    assert config["x0"] == [0.0, 1.0, -2.0] and config["problem"].endswith(spec.rpartition("/")[2])


def test_dotted_attribute_and_default_folder_name(user_dir: Path) -> None:
    assert _run("-p", "user_objectives_t18:Problems.tilted", "-d", "2", "--max-generations", "5") == 0
    assert _result(user_dir / "runs" / "cma_es-tilted-2d-seed0")["n_generations"] == 5


@pytest.mark.parametrize("name, content", [
    ("x0.npy", None), ("x0.json", "[0.0, 1.0, -2.0]\n"), ("x0.txt", "0.0\n1.0\n-2.0\n"), ("x0.csv", "0, 1, -2\n"),
])
def test_x0_from_a_file(user_dir: Path, name: str, content: str | None) -> None:
    if content is None:
        np.save(user_dir / name, np.array([0.0, 1.0, -2.0]))
    else:
        (user_dir / name).write_text(content)
    assert _run("-p", "user_objectives_t18:shifted", "-s", "snes", "--x0", f"@{name}", "--max-evals", "60",
                "--seed", "4", "-o", "out") == 0
    want = ES("snes", max_evals=60, random_state=4).fit(_shifted, np.array([0.0, 1.0, -2.0]))
    assert _result(user_dir / "out")["x"] == want.x_.tolist()
    assert json.loads((user_dir / "out" / "config.json").read_text())["x0"] == "@" + str(user_dir / name)


@pytest.mark.parametrize("args, message", [
    (["-p", "no_such_module_t18:f"], "--problem 'no_such_module_t18:f': no module named 'no_such_module_t18'"),
    (["-p", "user_objectives_t18:missing"], "module 'user_objectives_t18' has no attribute 'missing'"),
    (["-p", "user_objectives_t18:not_callable"], "'not_callable' in module 'user_objectives_t18' is of type int"),
    (["-p", "sub/none.py:f"], "/sub/none.py'"),
    (["-p", "spherical"], "'spherical' is neither a benchmark"),
    (["--x0", "1,x,3"], "--x0 '1,x,3': expected a number"),
    (["--x0", "[1, 2"], "--x0 '[1, 2'"),
    (["--x0", "1,nan"], "--x0 '1,nan': expected finite numbers"),
    (["--x0", "@missing.npy"], "--x0 '@missing.npy': cannot read 'missing.npy'"),
    (["--x0", "1,2,3", "--dim", "4"], "--x0 has 3 coordinates but --dim is 4"),
])
def test_wrong_problem_or_x0_exits_2_naming_it(user_dir: Path, capsys: pytest.CaptureFixture, args: list,
                                               message: str) -> None:
    status = _status(*args, "-o", "never")  # usage errors exit through argparse
    assert status == 2
    assert message in capsys.readouterr().err
    assert not (user_dir / "never").exists()


def test_a_2d_npy_is_refused(user_dir: Path, capsys: pytest.CaptureFixture) -> None:
    np.save(user_dir / "m.npy", np.ones((2, 2)))
    assert _run("--x0", "@m.npy", "-o", "never") == 2
    assert "got shape (2, 2)" in capsys.readouterr().err


def test_resume_extends_the_budget_as_the_longer_run(user_dir: Path) -> None:
    common = ["-p", "sub/my-problem.py:shifted", "-s", "cma_es", "--x0", "[0, 0, 0, 0]", "--seed", "2"]
    assert _run(*common, "--max-evals", "200", "-o", "short") == 0
    assert _result(user_dir / "short")["stop_reason"] == "maxfevals"
    assert _run(*common, "--max-evals", "900", "-o", "long") == 0
    assert _run("--resume", "-o", "short", "--max-evals", "900", "-p", "sub/my-problem.py:shifted") == 0
    short, full = _result(user_dir / "short"), _result(user_dir / "long")
    for key in ("fun", "x", "n_evals", "n_generations", "stop_reason"):
        assert short[key] == full[key], key
    strip = lambda p: [line.rsplit(",", 1)[0] for line in p.read_text().splitlines()]  # noqa: E731 - no time
    assert strip(user_dir / "short" / "history.csv") == strip(user_dir / "long" / "history.csv")
    assert json.loads((user_dir / "short" / "config.json").read_text())["max_evals"] == 900


def test_resume_refuses_a_budget_below_what_was_spent(user_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert _run("-s", "snes", "-d", "2", "--max-generations", "20", "-o", "out") == 0
    assert _run("--resume", "-o", "out", "--max-generations", "10") == 2  # named as typed (was resume(max_generations=10))
    assert "error: --max-generations 10 is below the 20 generations the run has already made" in capsys.readouterr().err
    assert _run("--resume", "-o", "out", "--max-evals", "5") == 2
    assert "error: --max-evals 5 is below the 120 evaluations the run has already made" in capsys.readouterr().err
    with pytest.raises(InvalidArgumentError, match=r"^resume\(max_evals=5\) is below the 120 evaluations"):
        ES.resume(str(user_dir / "out" / "checkpoint.ckpt"), _shifted, max_evals=5)  # Python names the parameter
    assert _status("--resume", "-o", "out", "--max-generations", "30", "--seed", "1") == 2
    assert "drop --seed" in capsys.readouterr().err


def test_resume_imports_a_saved_function_only_when_named_again(user_dir: Path, capsys: pytest.CaptureFixture) -> None:
    """A checkpoint (which may come from elsewhere) names the code to import: --resume asks for it."""
    assert _run("-p", "user_objectives_t18:shifted", "-d", "2", "--max-generations", "5", "-o", "out") == 0
    sys.modules.pop("user_objectives_t18", None)
    assert _status("--resume", "-o", "out", "--max-generations", "9") == 2
    assert "give -p user_objectives_t18:shifted" in capsys.readouterr().err
    assert "user_objectives_t18" not in sys.modules
    assert _status("--resume", "-o", "out", "--max-generations", "9", "-p", "user_objectives_t18:tilted") == 2
    assert _run("--resume", "-o", "out", "--max-generations", "9", "-p", "user_objectives_t18:shifted") == 0
    assert _result(user_dir / "out")["n_generations"] == 9


def test_console_script_finds_a_module_in_the_current_folder(user_dir: Path) -> None:
    proc = subprocess.run(BASE + ["run", "-p", "user_objectives_t18:shifted", "--x0", "1,2", "--max-evals", "50",
                                  "--no-progress", "-o", "out"], capture_output=True, text=True, cwd=user_dir,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "on 2-D shifted" in proc.stdout
    help_text = subprocess.run(BASE + ["run", "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "module:function" in help_text and "@FILE" in help_text


def test_maximize_runs_as_the_python_maximising_run_and_is_kept_on_resume(
        user_dir: Path, capsys: pytest.CaptureFixture) -> None:
    """--maximize (there was no way to maximise a return on the command line: a GymProblem's returns were
    minimised without a word); an objective with negate=False run without it is warned about."""
    common = ["-p", "user_objectives_t18:returns", "-s", "snes", "--x0", "[0, 0, 0]", "--seed", "1"]
    assert _run(*common, "--max-generations", "5", "-o", "low") == 0
    assert "returns episode returns, to maximise" in capsys.readouterr().err
    assert _run(*common, "--maximize", "--max-generations", "5", "-o", "high") == 0
    assert _run(*common, "--maximize", "--max-generations", "9", "-o", "long") == 0
    assert "to maximise" not in capsys.readouterr().err
    import user_objectives_t18 as user

    want = ES("snes", maximize=True, max_generations=9, random_state=1).fit(user.returns, np.zeros(3))
    assert _result(user_dir / "long")["fun"] == want.fun_ > _result(user_dir / "low")["fun"]
    assert json.loads((user_dir / "high" / "config.json").read_text())["maximize"] is True
    assert _run("--resume", "-o", "high", "--max-generations", "9", "-p", "user_objectives_t18:returns") == 0
    assert _result(user_dir / "high")["fun"] == want.fun_
    assert _status("--resume", "-o", "high", "--maximize", "-p", "user_objectives_t18:returns") == 2
    assert "drop --maximize" in capsys.readouterr().err


def _forged_npy(path: Path, shape: tuple[int, ...]) -> None:
    """A ``.npy`` whose header declares ``shape`` over 8 bytes of data."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": shape})
        f.write(b"\0" * 8)


@pytest.mark.parametrize("shape", [(10**11,), (10**6, 10**6), (2,)])
def test_x0_npy_declaring_more_than_its_file_is_refused_before_allocating(tmp_path: Path, shape: tuple) -> None:
    """A header declaring 800 GB ended in a MemoryError traceback (numpy allocates the declared shape first)."""
    import tracemalloc

    from evostrat.cli.inputs import read_x0

    _forged_npy(tmp_path / "bomb.npy", shape)
    tracemalloc.start()
    try:
        with pytest.raises(InvalidArgumentError, match=r"--x0 '@.*bomb\.npy': cannot read .*header declares shape"):
            read_x0(f"@{tmp_path / 'bomb.npy'}")
        assert tracemalloc.get_traced_memory()[1] < 1 << 20
    finally:
        tracemalloc.stop()


def test_x0_text_file_past_the_bound_is_refused_reading_no_more(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A text ``@FILE`` was read whole (``@/dev/zero``, a mistaken multi-gigabyte file: memory without end)."""
    from evostrat.cli import inputs

    monkeypatch.setattr(inputs, "MAX_X0_TEXT", 1000)
    (tmp_path / "x0.txt").write_text("1.0, " * 201)
    with pytest.raises(InvalidArgumentError, match=r"--x0 '@.*x0\.txt': cannot read .*longer than 1000 characters"):
        inputs.read_x0(f"@{tmp_path / 'x0.txt'}")
    (tmp_path / "x0.txt").write_text("1.0, " * 199)
    assert inputs.read_x0(f"@{tmp_path / 'x0.txt'}") == [1.0] * 199
