"""Checkpoints written by an older evostrat: parameters added since take their defaults.

A file written before a parameter existed (``integer``, ``warm_start``, ...) holds no
entry for it; loading gives it its default (the behaviour the old version had), and the
resumed run continues exactly as the uninterrupted one. A parameter this evostrat does not
know (a newer or a forged file) is refused with a ``CheckpointError`` naming it and the
version that wrote the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evostrat import ES
from evostrat.checkpoint import load_checkpoint
from evostrat.checkpoint.format import read_checkpoint, write_checkpoint
from evostrat.errors import CheckpointError
from evostrat.problems import rosenbrock

NEWER_PARAMETERS = ("integer", "noise_handling", "reevaluations", "warm_start")


def _rewrite(path: Path, edit: Any) -> None:
    meta, arrays = read_checkpoint(path)
    for key in ("format", "version", "arrays", "sha256"):  # write_checkpoint sets these again
        meta.pop(key, None)
    edit(meta["params"])
    write_checkpoint(path, meta, arrays)


class Crash(Exception):
    pass


def _crash_at(generation: int) -> Any:
    def callback(es: ES) -> None:
        if es.n_generations_ == generation:
            raise Crash(f"simulated crash at generation {generation}")

    return callback


def test_a_checkpoint_without_newer_parameters_loads_with_their_defaults(tmp_path: Path) -> None:
    path = tmp_path / "old.ckpt"
    full = ES("cma_es", max_generations=30, random_state=4).fit(rosenbrock, np.zeros(4))
    with pytest.raises(Crash):
        ES("cma_es", max_generations=30, random_state=4).fit(rosenbrock, np.zeros(4), checkpoint=path,
                                                             callbacks=[_crash_at(12)])
    present = [name for name in NEWER_PARAMETERS if name in read_checkpoint(path)[0]["params"]]
    assert present, "the test needs parameters to drop"
    _rewrite(path, lambda params: [params.pop(name) for name in present])

    es = load_checkpoint(path)
    defaults = ES().get_params(deep=False)
    assert all(es.get_params(deep=False)[name] == defaults[name] for name in present)
    resumed = ES.resume(path, rosenbrock)
    assert (resumed.n_generations_, resumed.n_evals_) == (full.n_generations_, full.n_evals_) == (30, 30 * 8)
    assert resumed.fun_ == full.fun_
    np.testing.assert_array_equal(resumed.x_, full.x_)


def test_an_unknown_parameter_is_refused_naming_it_and_the_version(tmp_path: Path) -> None:
    path = tmp_path / "newer.ckpt"
    ES("snes", max_generations=3, random_state=0).fit(rosenbrock, np.zeros(3), checkpoint=path)
    _rewrite(path, lambda params: params.update(frobnicate={"value": 1}))
    with pytest.raises(CheckpointError, match=r"'frobnicate'.*evostrat '"):
        load_checkpoint(path)
