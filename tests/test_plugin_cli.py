"""``evostrat run -O NAME=VALUE``: a strategy's hyper-parameters from the command line, so a plugin's
search distribution (``-s nes -O distribution=cauchy``) is reachable there too.

The distribution is registered in-process, as an installed package's entry point would register it,
and the command runs in-process (``evostrat.cli.main``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plugin_fixtures import module_plugin
from test_plugin_distribution_kit import CauchyPlugin

from evostrat.cli import main
from evostrat.cli.types import strategy_option


plugin = module_plugin(CauchyPlugin, "cauchy-cli-plugin")


def test_a_plugin_distribution_is_searched_from_the_command_line_and_resumed(tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    args = ["run", "-s", "nes", "-O", "distribution=cauchy", "-O", "lr_mean=0.8", "-d", "4", "--ftarget", "1e-8",
            "--no-progress", "-o", str(out)]
    assert main([*args, "--max-generations", "30"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["strategy_options"] == {"distribution": "cauchy", "lr_mean": 0.8}
    assert main(["run", "--resume", "-o", str(out), "--max-generations", "2000", "--no-progress"]) == 0
    resumed = json.loads((out / "result.json").read_text())
    alone = tmp_path / "alone"
    assert main([*args[:-1], str(alone), "--max-generations", "2000"]) == 0
    uninterrupted = json.loads((alone / "result.json").read_text())
    assert resumed["stop_reason"] == "ftarget" and resumed["resumed_from_generation"] == 30
    assert (resumed["fun"], resumed["n_evals"]) == (uninterrupted["fun"], uninterrupted["n_evals"])


@pytest.mark.parametrize("option, message", [
    ("foo=1", "argument -O/--strategy-option: NES has no parameter 'foo'; valid: ['distribution'"),
    ("lr_mean=-1", "argument -O/--strategy-option: NES: lr_mean must be a positive number or None, got -1"),
    ("distribution=cauhcy", "-O distribution must be one of ['cauchy', 'diag_normal'"),
    ("lr_mean", "argument -O/--strategy-option: expected NAME=VALUE with NAME a hyper-parameter's name, got 'lr_mean'"),
])
def test_a_wrong_strategy_option_exits_2_naming_the_option(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                           option: str, message: str) -> None:
    try:
        status = main(["run", "-s", "nes", "-O", option, "-d", "3", "--no-progress", "-o", str(tmp_path / "r")])
    except SystemExit as exit:  # argparse's own errors
        status = exit.code
    assert status == 2 and message in capsys.readouterr().err


def test_resume_refuses_new_strategy_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["run", "-s", "nes", "-d", "3", "--max-generations", "5", "--no-progress", "-o", str(out)]) == 0
    with pytest.raises(SystemExit) as exit:
        main(["run", "--resume", "-O", "lr_mean=0.5", "--seed", "3", "-o", str(out), "--no-progress"])
    assert exit.value.code == 2 and "drop --seed, --strategy-option\n" in capsys.readouterr().err


def test_values_are_read_as_json_else_as_strings() -> None:
    assert strategy_option("distribution_options={\"df\": 3}") == ("distribution_options", {"df": 3})
    assert strategy_option("gradient=natural") == ("gradient", "natural")
    assert strategy_option("lr_scale=null") == ("lr_scale", None)


def test_a_strategy_option_nested_past_the_recursion_limit_is_a_usage_error() -> None:
    """json.loads raised RecursionError out of the argument parser: a traceback instead of a usage error."""
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="expected a value nested less deeply"):
        strategy_option("lr_mean=" + "[" * 100_000 + "]" * 100_000)
