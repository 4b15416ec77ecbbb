"""Checkpoint files at the edges of what they may hold: each documented bound is reached exactly
and passed by one, hostile names and shapes are refused with the documented error naming the
cause, and writes never go through a folder or a link (issue 16).

Written from mutating ``evostrat/checkpoint/format.py`` and ``codec.py`` one operator or constant
at a time: every test here fails for at least one such change that the checkpoint tests let pass.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evostrat.checkpoint.codec import Unencodable, decode, encode
from evostrat.checkpoint.format import (MAX_DEPTH, MAX_ITEMS, MAX_METADATA_BYTES, atomic_file, check_writable,
                                        read_checkpoint, write_checkpoint)
from evostrat.errors import CheckpointError, InvalidArgumentError, OutputError
from test_checkpoint_hostile import _meta, _tampered, _zip

DOCS = Path(__file__).resolve().parents[1] / "docs" / "guides" / "checkpoints.md"


def _metadata_text(path: Path) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read("metadata.json")


def _items(text: bytes) -> int:
    """The items the reader counts (docs/guides/checkpoints.md): ``,`` and ``:`` and strings."""
    return text.count(b",") + text.count(b":") + text.count(b'"') // 2


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _nested(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


def test_the_bounds_are_the_documented_ones() -> None:
    text = " ".join(DOCS.read_text().split())
    assert f"{MAX_METADATA_BYTES >> 20} MiB inflated, {MAX_DEPTH} levels of nesting and about a million items" in text
    assert (MAX_METADATA_BYTES, MAX_DEPTH, MAX_ITEMS) == (64 << 20, 64, 1 << 20)


def test_metadata_nested_to_the_bound_is_written_and_read_one_level_more_is_not(tmp_path: Path) -> None:
    path = tmp_path / "deep.ckpt"
    write_checkpoint(path, {"deep": _nested(MAX_DEPTH - 1)}, {})  # the outer object is a level
    meta, _ = read_checkpoint(path)
    assert _depth(json.loads(_metadata_text(path))) == MAX_DEPTH and meta["deep"] == _nested(MAX_DEPTH - 1)
    with pytest.raises(CheckpointError, match=f"not written .* nested more than {MAX_DEPTH} levels"):
        write_checkpoint(tmp_path / "deeper.ckpt", {"deep": _nested(MAX_DEPTH)}, {})


def test_metadata_of_exactly_the_most_items_is_written_and_read_one_more_is_not(tmp_path: Path) -> None:
    probe = tmp_path / "probe.ckpt"
    write_checkpoint(probe, {"pad": [0]}, {})
    fill = 1 + MAX_ITEMS - _items(_metadata_text(probe))  # each further element adds one ","
    path = tmp_path / "full.ckpt"
    write_checkpoint(path, {"pad": [0] * fill}, {})
    assert _items(_metadata_text(path)) == MAX_ITEMS
    assert len(read_checkpoint(path)[0]["pad"]) == fill
    with pytest.raises(CheckpointError, match=f"not written .* more than {MAX_ITEMS} items"):
        write_checkpoint(tmp_path / "over.ckpt", {"pad": [0] * (fill + 1)}, {})


def test_metadata_of_exactly_the_most_bytes_is_written_and_read_one_more_is_not(tmp_path: Path) -> None:
    probe = tmp_path / "probe.ckpt"
    write_checkpoint(probe, {"pad": ""}, {})
    fill = MAX_METADATA_BYTES - len(_metadata_text(probe))
    path = tmp_path / "full.ckpt"
    write_checkpoint(path, {"pad": "x" * fill}, {})
    assert len(_metadata_text(path)) == MAX_METADATA_BYTES
    assert len(read_checkpoint(path)[0]["pad"]) == fill
    with pytest.raises(CheckpointError, match=f"not written .* inflates to more than {MAX_METADATA_BYTES} bytes"):
        write_checkpoint(tmp_path / "over.ckpt", {"pad": "x" * (fill + 1)}, {})


# array names: relative, plain, never a way out of the archive's folder


@pytest.mark.parametrize("name", ["../escape", "a/../../b", "/absolute", "with space", "x" * 201, "", 5])
def test_array_names_that_are_not_plain_relative_names_are_not_written(tmp_path: Path, name: Any) -> None:
    with pytest.raises(CheckpointError, match="is not a plain relative name"):
        write_checkpoint(tmp_path / "names.ckpt", {}, {name: np.zeros(2)})
    assert list(tmp_path.iterdir()) == []


def test_a_plain_relative_array_name_round_trips(tmp_path: Path) -> None:
    name = "state/mean-0_x.1"
    write_checkpoint(tmp_path / "ok.ckpt", {}, {name: np.arange(3.0)})
    assert read_checkpoint(tmp_path / "ok.ckpt")[1][name].tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("index, cause", [
    ({"../evil": {"dtype": "<f8", "shape": [1]}}, "array name '../evil' is not a plain relative name"),
    ({"/etc/passwd": {"dtype": "<f8", "shape": [1]}}, "is not a plain relative name"),
    ([], "malformed array index"),
    ({"a": 3}, "malformed array index"),
])
def test_a_read_index_naming_a_way_out_or_malformed_is_refused(tmp_path: Path, index: Any, cause: str) -> None:
    path = _zip(tmp_path / "index.ckpt", _meta(index), {})
    with pytest.raises(CheckpointError, match=cause):
        read_checkpoint(path)


# where files go: never into a folder, never through a link, with the usual permissions


def test_a_folder_is_not_replaced_but_a_link_to_one_is(tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    (folder / "keep").mkdir(parents=True)
    with pytest.raises(InvalidArgumentError, match="is a folder"):
        write_checkpoint(folder, {}, {})
    with pytest.raises(InvalidArgumentError, match="is a folder"), atomic_file(folder) as f:
        f.write(b"never")
    link = tmp_path / "link.ckpt"
    link.symlink_to(folder, target_is_directory=True)
    write_checkpoint(link, {"n": 1}, {})
    assert not link.is_symlink() and read_checkpoint(link)[0]["n"] == 1
    assert [p.name for p in folder.iterdir()] == ["keep"]


def test_a_checkpoint_gets_the_mode_of_a_new_file(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_checkpoint(tmp_path / "mode.ckpt", {}, {})
    finally:
        os.umask(old)
    assert (tmp_path / "mode.ckpt").stat().st_mode & 0o777 == 0o644  # 0o666 less the umask, no x bits


def test_check_writable_walks_up_missing_folders_and_refuses_a_file_on_the_way(tmp_path: Path) -> None:
    check_writable(tmp_path / "a" / "b" / "c" / "run.ckpt", "checkpoint")  # folders made later
    assert list(tmp_path.iterdir()) == []  # the probe removed, nothing made
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="is not a folder") as info:
        check_writable(tmp_path / "file" / "b" / "run.ckpt", "checkpoint")
    assert repr(str(tmp_path / "file")) in str(info.value)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutputError, match="is not a folder"):
        check_writable(tmp_path / "dangling" / "run.ckpt", "checkpoint")


# the tagged values of the metadata


@pytest.mark.parametrize("maxlen", [-1, "3", 2.0])
def test_a_deque_with_an_invalid_maxlen_is_refused(maxlen: Any) -> None:
    with pytest.raises(CheckpointError, match="invalid maxlen"):
        decode({"__deque__": [1, 2], "maxlen": maxlen}, {})


@pytest.mark.parametrize("maxlen", [None, 0, 3])
def test_a_deque_keeps_its_maxlen(maxlen: Any) -> None:
    arrays: dict[str, np.ndarray] = {}
    back = decode(encode(deque([1.0, 2.0], maxlen=maxlen), arrays, "window"), arrays)
    assert back == deque([1.0, 2.0], maxlen=maxlen) and back.maxlen == maxlen


@pytest.mark.parametrize("pairs", [[[1, 2, 3]], [[1]], ["ab"], [{"k": 1, "v": 2}]])
def test_a_mapping_whose_items_are_not_pairs_is_refused(pairs: list) -> None:
    with pytest.raises(CheckpointError, match="malformed mapping"):
        decode({"__dict__": pairs}, {})


def test_a_dataclass_other_than_a_restart_plan_is_not_encoded() -> None:
    @dataclasses.dataclass
    class Settings:
        rate: float = 0.5

    with pytest.raises(Unencodable, match="Settings, which a checkpoint cannot store"):
        encode({"settings": Settings()}, {}, "metadata")


@pytest.mark.parametrize("saved", [{"state": 1, "extra": 2}, {}, ["state"], "state"])
def test_a_malformed_objective_state_is_refused_before_the_objective_sees_it(saved: Any) -> None:
    from evostrat.checkpoint.features import restore_objective

    class Objective:
        loaded: list = []

        def load_checkpoint_state(self, state: Any) -> None:
            self.loaded.append(state)

    objective = Objective()
    with pytest.raises(CheckpointError, match="objective state is malformed"):
        restore_objective(objective, saved, {})
    restore_objective(objective, {"state": {"seen": 3}}, {})
    assert objective.loaded == [{"seen": 3}]


def _noisy_run(noise_handling: Any) -> Any:
    from evostrat import ES, vectorized

    es = ES("cma_es", reevaluations=2, noise_handling=noise_handling, max_generations=3, random_state=0)
    return es.fit(vectorized(lambda X: np.sum(X * X, axis=1)), np.ones(3))


def test_a_noise_handling_state_for_a_run_without_noise_handling_is_refused(tmp_path: Path) -> None:
    from evostrat.checkpoint import load_checkpoint

    def forge(meta: dict, arrays: dict) -> None:  # digest recomputed: only the loader can refuse it
        meta["params"]["noise_handling"] = {"value": False}

    with pytest.raises(CheckpointError, match="holds a noise handling state, but its run has no noise_handling"):
        load_checkpoint(_tampered(tmp_path, _noisy_run(True), forge))


def test_a_checkpoint_without_its_aggregate_whose_run_names_one_is_refused(tmp_path: Path) -> None:
    # before the aggregate was recorded, noise_handling could not name one (it was the mean): a run that
    # names it wrote its aggregate, so a checkpoint of it without one is not an old file but a damaged one
    from evostrat.checkpoint import load_checkpoint

    def strip(meta: dict, arrays: dict) -> None:
        del meta["features"]["aggregate"]

    with pytest.raises(CheckpointError, match="aggregate None does not match its run's"):
        load_checkpoint(_tampered(tmp_path, _noisy_run({"aggregate": "median"}), strip))
