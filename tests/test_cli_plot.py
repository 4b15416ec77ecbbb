"""``evostrat plot RUN_DIR`` and the distribution records ``evostrat run`` writes (issue 18, item 6)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from evostrat.cli import main

pytest.importorskip("matplotlib")


def _run(out: Path, *extra: str) -> None:
    assert main(["run", "-s", "cma_es", "-p", "ellipsoid", "--dim", "5", "--max-evals", "600", "--seed", "2",
                 "-o", str(out), "--no-progress", *extra]) == 0


def test_plot_draws_the_run_folder_with_the_distribution_records(tmp_path: Path, capsys) -> None:
    from evostrat.plot import plot_run_folder, read_history_csv
    from evostrat.plotting.files import merge_records

    out = tmp_path / "run"
    _run(out)
    records = [json.loads(line) for line in (out / "distribution.jsonl").read_text().splitlines()]
    history = read_history_csv(out / "history.csv")
    assert records[0]["generation"] == 1 and records[-1]["generation"] == int(history[-1]["generation"])
    assert all(len(r["mean"]) == len(r["stds"]) == len(r["axes"]) == len(r["correlations"]) == 5 for r in records)
    assert "mean" not in history[0]  # history.csv keeps its columns
    merged = merge_records(history, records)
    assert sum("mean" in row for row in merged) == len(records)

    capsys.readouterr()
    assert main(["plot", str(out)]) == 0
    assert "diagnostics.png, convergence.png" in capsys.readouterr().out
    for name in ("diagnostics.png", "convergence.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"

    import matplotlib

    matplotlib.use("Agg")
    from evostrat.plotting.diagnostics import plot_diagnostics

    fig = plot_diagnostics(merged, title="t")
    axes_panel = fig.axes[3]
    assert len(axes_panel.get_lines()) == 5
    np.testing.assert_allclose(axes_panel.get_lines()[4].get_ydata(), [r["axes"][4] for r in records])
    assert plot_run_folder(out) == ["diagnostics.png", "convergence.png"]


def test_run_with_plot_writes_the_diagnostics(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(out, "--plot")
    assert (out / "diagnostics.png").read_bytes()[:4] == b"\x89PNG"


def test_plot_of_a_folder_without_history_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["plot", str(tmp_path)]) == 2
    assert "has no history.csv" in capsys.readouterr().err


@pytest.mark.parametrize("csv, message", [
    ("a,b\n1,2\n", "line 2 has no 'generation'"),
    ("generation,n_evals,best\n1,6,x\n", "line 2, column 'best' is not a number: 'x'"),
])
def test_plot_of_a_malformed_history_is_a_clear_error(tmp_path: Path, capsys, csv: str, message: str) -> None:
    """A foreign or damaged history.csv ended in a KeyError or ValueError traceback."""
    pytest.importorskip("matplotlib")
    (tmp_path / "history.csv").write_text(csv)
    assert main(["plot", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_plot_skips_records_and_configs_of_the_wrong_shape(tmp_path: Path, capsys) -> None:
    pytest.importorskip("matplotlib")
    (tmp_path / "history.csv").write_text("generation,n_evals,best\n1,6,2.5\n2,12,1.5\n")
    (tmp_path / "distribution.jsonl").write_text('7\n[1]\n{"generation": "2"}\n{"n_evals": 3}\n')
    (tmp_path / "config.json").write_text("[1, 2]")
    assert main(["plot", str(tmp_path)]) == 0
    assert (tmp_path / "convergence.png").exists()


def test_a_resumed_run_keeps_the_records_up_to_where_it_resumed(tmp_path: Path) -> None:
    from evostrat import ES
    from evostrat.callbacks import DistributionRecorder

    path = tmp_path / "d.jsonl"
    ck = tmp_path / "c.ckpt"
    f = lambda X: (X**2).sum(axis=1)  # noqa: E731
    ES("snes", max_generations=6, random_state=0).fit(
        f, np.ones(3), callbacks=[DistributionRecorder(every=1, path=path)], checkpoint=str(ck))
    with open(path, "a") as file:
        file.write('{"generation": 99, "n_evals": 1, "mean": [0, 0, 0]}\n{"gener')  # a later generation, a cut line
    rec = DistributionRecorder(every=2, path=path)
    ES.resume(str(ck), f, callbacks=[rec], max_generations=10)
    generations = [json.loads(line)["generation"] for line in path.read_text().splitlines()]
    assert generations == [1, 2, 3, 4, 5, 6, 8, 10]  # no extra record of the resumed fit's first generation (7)


def test_save_run_plots_replaces_links_instead_of_writing_through_them(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from evostrat import ES
    from evostrat.callbacks import DistributionRecorder, SearchRecorder
    from evostrat.plotting.files import save_run_plots
    from evostrat.problems import sphere

    (tmp_path / "out").mkdir()
    victims = {}
    for name in ("convergence.png", "diagnostics.png", "search.png"):
        victims[name] = tmp_path / f"victim-{name}.txt"
        victims[name].write_text("keep")
        (tmp_path / "out" / name).symlink_to(victims[name])
    rec = SearchRecorder()
    es = ES("snes", max_generations=5, random_state=0).fit(sphere, np.ones(2), callbacks=[DistributionRecorder(), rec])
    assert save_run_plots(tmp_path / "out", es, sphere, rec) == ["convergence.png", "diagnostics.png", "search.png"]
    for name, victim in victims.items():
        assert victim.read_text() == "keep"
        assert not (tmp_path / "out" / name).is_symlink() and (tmp_path / "out" / name).read_bytes()[:4] == b"\x89PNG"


_HISTORY = "generation,n_evals,best\n1,6,2.5\n2,12,1.5\n"


@pytest.mark.parametrize("name, content", [
    ("config.json", "[" * 100_000 + "]" * 100_000),  # a RecursionError traceback
    ("config.json", "{not json"),  # a JSONDecodeError traceback
    ("result.json", "[1]"),  # an AttributeError traceback ('list' object has no attribute 'get')
    ("result.json", ""),
    ("distribution.jsonl", "[" * 100_000 + "]" * 100_000 + "\n"),  # a RecursionError traceback
    ("config.json", '{"strategy": 7, "problem": ["x"], "dim": "huge"}'),
])
def test_plot_of_a_folder_with_hostile_side_files_draws_the_history(tmp_path: Path, capsys, name: str,
                                                                     content: str) -> None:
    """config.json, result.json and distribution.jsonl only add titles and panels: damaged ones are skipped."""
    (tmp_path / "history.csv").write_text(_HISTORY)
    (tmp_path / name).write_text(content)
    assert main(["plot", str(tmp_path)]) == 0
    assert (tmp_path / "convergence.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("csv, message", [
    ("generation,n_evals,best\n1,6," + "9" * 200_000 + "\n", "not the history.csv of 'evostrat run' (Error: field"),
    ("generation,n_evals,best\n1,6,2,7\n2,12,1\n", "line 2 has another number of cells than the header"),
    ("generation,n_evals,best\n1\n2,12,1\n", "line 2 has another number of cells than the header"),
    ("generation,n_evals,best\nnan,6,2\n", "line 2, column 'generation' is not a count: nan"),
    ("generation,n_evals,best\n1,inf,2\n", "line 2, column 'n_evals' is not a count: inf"),
    ("generation,n_evals,best\n1,-6,2\n", "line 2, column 'n_evals' is not a count: -6.0"),
    ('generation,n_evals,best\n1,6,"[1.0]"\n', "line 2, column 'best' is not a number: [1.0]"),
    ('generation,n_evals,mean\n1,6,"[1.0, 2.0]"\n2,12,"[1.0]"\n', "line 3, column 'mean' holds 1 numbers"),
    ('generation,n_evals,mean\n1,6,"[1.0, x]"\n', "not the history.csv of 'evostrat run' (ValueError"),
])
def test_plot_of_a_hostile_history_is_a_clear_error(tmp_path: Path, capsys, csv: str, message: str) -> None:
    """Each ended in a traceback (csv.Error, AttributeError, ValueError, OverflowError) or drew nonsense."""
    (tmp_path / "history.csv").write_text(csv)
    assert main(["plot", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_plot_of_a_binary_history_is_a_clear_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "history.csv").write_bytes(b"generation,n_evals\n1,2\xff\n")
    assert main(["plot", str(tmp_path)]) == 2
    assert "(UnicodeDecodeError:" in capsys.readouterr().err


def test_plot_drops_a_last_row_cut_by_a_kill(tmp_path: Path) -> None:
    from evostrat.plotting.files import read_history_csv

    (tmp_path / "history.csv").write_text(_HISTORY + "3,1")
    assert [row["generation"] for row in read_history_csv(tmp_path / "history.csv")] == [1.0, 2.0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_plot_replaces_a_planted_fifo_instead_of_blocking_on_it(tmp_path: Path) -> None:
    """``fig.savefig`` opened a FIFO planted at diagnostics.png for writing and waited for a reader forever."""
    import signal

    (tmp_path / "history.csv").write_text(_HISTORY)
    os.mkfifo(tmp_path / "diagnostics.png")

    def _blocked(*_: object) -> None:
        raise TimeoutError("the plot blocked on the FIFO")

    previous = signal.signal(signal.SIGALRM, _blocked)
    signal.alarm(60)
    try:
        assert main(["plot", str(tmp_path)]) == 0
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert (tmp_path / "diagnostics.png").read_bytes()[:4] == b"\x89PNG"


def test_plot_onto_a_folder_of_the_figure_name_is_a_clear_error(tmp_path: Path, capsys) -> None:
    """A folder at convergence.png was an IsADirectoryError traceback."""
    (tmp_path / "history.csv").write_text(_HISTORY)
    (tmp_path / "convergence.png").mkdir()
    assert main(["plot", str(tmp_path)]) == 2
    assert "convergence.png' is a folder" in capsys.readouterr().err
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temporary file left


def test_a_link_planted_after_any_check_is_still_not_written_through(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The figure was written through a link that appeared after the ``islink`` check (a race)."""
    (tmp_path / "history.csv").write_text(_HISTORY)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / "convergence.png").symlink_to(victim)
    monkeypatch.setattr(os.path, "islink", lambda path: False)  # as if planted just after a check
    assert main(["plot", str(tmp_path)]) == 0
    assert victim.read_text() == "keep"
    assert (tmp_path / "convergence.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("values", [("1e308", "1e308"), ("1e308", "-1e308"), ("-1e308", "inf"), ("1e308", "nan")])
@pytest.mark.parametrize("where", ["history.csv", "distribution.jsonl"])
def test_plot_of_huge_or_non_finite_mean_coordinates_draws_them(tmp_path: Path, capsys, values: tuple[str, str],
                                                                where: str) -> None:
    """Mean coordinates near the largest float (1e308 in two rows) ended in matplotlib's
    ``ValueError: arange: cannot compute length`` traceback: the linear panel's ticks overflowed.
    The panel switches to a symmetric log axis; inf and NaN are gaps."""
    import matplotlib

    matplotlib.use("Agg")
    from evostrat.plot import read_history_csv
    from evostrat.plotting.diagnostics import plot_diagnostics
    from evostrat.plotting.files import merge_records

    rows = [(1, "1.0", "2.0"), (2, values[0], "2.5"), (3, values[1], values[0]), (4, "0.5", "1.0")]
    if where == "history.csv":
        (tmp_path / "history.csv").write_text("generation,n_evals,best,sigma,mean\n" + "".join(
            f'{g},{6 * g},1.0,0.5,"[{a}, {b}]"\n' for g, a, b in rows))
    else:
        (tmp_path / "history.csv").write_text("generation,n_evals,best,sigma\n" + "".join(
            f"{g},{6 * g},1.0,0.5\n" for g, _, _ in rows))
        (tmp_path / "distribution.jsonl").write_text("".join(json.dumps(
            {"generation": g, "mean": [float(a), float(b)], "stds": [float(a), 0.1]}) + "\n" for g, a, b in rows))
    assert main(["plot", str(tmp_path)]) == 0
    assert "diagnostics.png, convergence.png" in capsys.readouterr().out
    assert (tmp_path / "diagnostics.png").read_bytes()[:4] == b"\x89PNG"

    history = read_history_csv(tmp_path / "history.csv")
    if where == "distribution.jsonl":
        history = merge_records(history, [json.loads(line) for line in
                                          (tmp_path / "distribution.jsonl").read_text().splitlines()])
    panel = plot_diagnostics(history, title="t").axes[2]
    assert panel.get_yscale() == "symlog"
    drawn = np.asarray(panel.get_lines()[0].get_ydata(), dtype=float)
    want = np.array([float(a) for _, a, _ in rows])
    np.testing.assert_array_equal(drawn, np.where(np.isfinite(want), want, np.nan))
    assert np.isfinite(panel.get_ylim()).all()


@pytest.mark.parametrize("records", [
    ['{"generation": 1, "mean": ["x", "y"]}'],  # a ValueError traceback (could not convert string to float)
    ['{"generation": 1, "correlations": ["a"]}'],
    ['{"generation": 1, "mean": [1, 2]}', '{"generation": 2, "mean": [1, 2, 3]}'],  # np.stack: a ValueError
    ['{"generation": 1, "mean": [1, 1' + "0" * 400 + ']}', '{"generation": 2, "mean": [true, null]}'],
])
def test_plot_skips_record_fields_that_are_no_vectors_of_one_length(tmp_path: Path, capsys,
                                                                    records: list[str]) -> None:
    """distribution.jsonl is a side file: a field of strings or of another length than its first record
    costs that field, not the figure (a ValueError traceback before)."""
    (tmp_path / "history.csv").write_text("generation,n_evals,best,sigma\n1,6,1.0,0.5\n2,12,0.5,0.4\n")
    (tmp_path / "distribution.jsonl").write_text("\n".join(records) + "\n")
    assert main(["plot", str(tmp_path)]) == 0
    assert "diagnostics.png, convergence.png" in capsys.readouterr().out
    assert (tmp_path / "diagnostics.png").read_bytes()[:4] == b"\x89PNG"
