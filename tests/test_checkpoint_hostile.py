"""Damaged, hostile and tampered checkpoints (issue 16, items 3, 4 and 5).

- Damage: flipping bits anywhere in a checkpoint (every byte at least once, plus a
  random sample; deterministic seed) ends in a ``CheckpointError`` naming the file or,
  for a bit the format ignores, in a successful load of the very same state; never in
  ``zlib.error``, ``EOFError``, ``NotImplementedError``, ``RuntimeError`` or ``OSError``.
- Resource bounds: ``.npy`` headers declaring huge shapes, zip directories declaring
  more data than the file holds, metadata that inflates beyond the bound and deeply
  nested JSON are refused before anything big is allocated.
- Tampering with a recomputed digest: every field is checked by a schema (wrong type,
  shape or dtype, unknown or missing fields), naming the field, and loading never sets
  anything the schema does not name.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from evostrat import ES
from evostrat.checkpoint import load_checkpoint, save_checkpoint
from evostrat.checkpoint.format import MAX_DEPTH, MAX_ITEMS, MAX_METADATA_BYTES, read_checkpoint, write_checkpoint
from evostrat.checkpoint.state import capture
from evostrat.errors import CheckpointError
from evostrat.problems import sphere


def _run(strategy: str = "snes", **params: Any) -> ES:
    es = ES(strategy, max_generations=50, random_state=0, **params).initialize(np.full(3, 2.0))
    for _ in range(4):
        X = es.ask()
        es.tell(X, sphere(X))
    return es


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small checkpoint with a byte layout that does not depend on the clock."""
    meta, arrays = capture(_run())
    meta.update(created="2026-01-01T00:00:00+0000", elapsed=1.0)
    path = tmp_path_factory.mktemp("hostile") / "good.ckpt"
    write_checkpoint(path, meta, arrays)
    return path


def _same_state(es: ES, ref: ES) -> bool:
    return (es.n_generations_, es.n_evals_, es.fun_) == (ref.n_generations_, ref.n_evals_, ref.fun_) and bool(
        (es.ask() == ref.ask()).all())


# -- item 3: damage --------------------------------------------------------------------------
def test_bit_flips_anywhere_end_in_checkpoint_error_or_the_same_state(good: Path, tmp_path: Path) -> None:
    data = good.read_bytes()
    rng = np.random.default_rng(16)
    every_byte = [8 * i + int(b) for i, b in enumerate(rng.integers(0, 8, len(data)))]
    bits = sorted(set(every_byte) | set(rng.choice(8 * len(data), 1500, replace=False).tolist()))
    bad, causes, loaded = tmp_path / "flipped.ckpt", set(), 0
    for bit in bits:
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        bad.write_bytes(flipped)
        try:
            es = load_checkpoint(bad)
        except CheckpointError as err:
            assert str(bad) in str(err), err
            causes.add(type(err.__cause__))
            continue
        loaded += 1  # a bit the format ignores (zip timestamps, ...): the state is intact
        assert es.n_generations_ == 4 and es.n_evals_ == 4 * es.strategy_.popsize
    ref = load_checkpoint(good)
    assert _same_state(load_checkpoint(good), ref)
    assert 0 < loaded < len(bits) // 2
    # the classes that used to escape raw are among the causes now wrapped
    assert {zlib.error, zipfile.BadZipFile} <= causes, causes
    assert causes & {NotImplementedError, RuntimeError, EOFError, OSError}, causes


def _member_offsets(path: Path, name: str) -> tuple[int, int, int]:
    """(local header offset, data offset, central directory entry offset) of member ``name``."""
    data = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    local = info.header_offset
    n_name, n_extra = struct.unpack("<HH", data[local + 26:local + 30])
    central = data.index(b"PK\x01\x02")
    while data[central + 46:central + 46 + struct.unpack("<H", data[central + 28:central + 30])[0]] != name.encode():
        central = data.index(b"PK\x01\x02", central + 4)
    return local, local + 30 + n_name + n_extra, central


def _patch(path: Path, out: Path, edits: list[tuple[int, bytes]]) -> Path:
    data = bytearray(path.read_bytes())
    for offset, value in edits:
        data[offset:offset + len(value)] = value
    out.write_bytes(bytes(data))
    return out


def _flag(path: Path, out: Path, name: str, bit: int) -> Path:
    local, _, central = _member_offsets(path, name)
    data = path.read_bytes()
    flags = lambda at: struct.pack("<H", struct.unpack("<H", data[at:at + 2])[0] | bit)  # noqa: E731
    return _patch(path, out, [(local + 6, flags(local + 6)), (central + 8, flags(central + 8))])


@pytest.mark.parametrize("damage, cause", [
    ("deflate", "error"),            # zlib.error
    ("encrypted", "RuntimeError"),   # "encrypted, password required"
    ("patched", "NotImplementedError"),
    ("truncated", "BadZipFile"),
    ("utf8", "UnicodeDecodeError"),
    ("not-json", "JSONDecodeError"),
])
def test_each_class_of_damage_is_a_checkpoint_error_naming_file_and_cause(
        good: Path, tmp_path: Path, damage: str, cause: str) -> None:
    bad = tmp_path / f"{damage}.ckpt"
    if damage == "deflate":
        _, start, _ = _member_offsets(good, "metadata.json")
        _patch(good, bad, [(start, b"\xff\xff\xff")])
    elif damage in ("encrypted", "patched"):
        _flag(good, bad, "metadata.json", 0x1 if damage == "encrypted" else 0x20)
    elif damage == "truncated":
        bad.write_bytes(good.read_bytes()[:-30])
    else:
        text = b"\xff\xfe{" if damage == "utf8" else b'{"format": "evostrat-checkpoint", '
        with zipfile.ZipFile(bad, "w") as zf:
            zf.writestr("metadata.json", text)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(bad)
    assert str(bad) in str(info.value) and cause in str(info.value)
    assert type(info.value.__cause__).__name__ == cause


# -- item 4: resource bounds ------------------------------------------------------------------
def _zip(path: Path, meta: Any, members: dict[str, bytes]) -> Path:
    text = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", text, compress_type=zipfile.ZIP_DEFLATED)
        for name, data in members.items():
            zf.writestr(name, data, compress_type=zipfile.ZIP_STORED)
    return path


def _npy_header(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _meta(index: dict[str, Any]) -> dict[str, Any]:
    return {"format": "evostrat-checkpoint", "version": 2, "arrays": index, "sha256": "0" * 64}


@pytest.mark.parametrize("declared, indexed", [
    ((10 ** 12,), [10 ** 12]),   # header and index agree on a huge shape the member does not hold
    ((10 ** 12,), [2]),          # header lies about the index
    ((2,), [2]),                 # shape agrees but the member holds more bytes than declared
])
def test_npy_header_sizes_are_checked_before_the_read(tmp_path: Path, declared: tuple[int, ...],
                                                       indexed: list[int]) -> None:
    payload = _npy_header(declared) + np.arange(2.0).tobytes() + (b"\0" * 8 if declared == (2,) else b"")
    bad = _zip(tmp_path / "huge.ckpt", _meta({"a": {"dtype": "<f8", "shape": indexed}}), {"arrays/a.npy": payload})
    with pytest.raises(CheckpointError, match=r"array 'a' has dtype <f8, shape \[\d+\] and \d+ bytes"):
        read_checkpoint(bad)


def test_zip_directory_declaring_more_than_the_file_holds_is_refused(good: Path, tmp_path: Path) -> None:
    _, _, central = _member_offsets(good, "arrays/state/mean.npy")
    bad = _patch(good, tmp_path / "sizes.ckpt", [(central + 20, struct.pack("<II", 2 ** 32 - 1, 2 ** 32 - 1))])
    with pytest.raises(CheckpointError, match="declares more data than the file holds"):
        read_checkpoint(bad)


def test_metadata_inflating_beyond_the_bound_is_refused_reading_no_more(tmp_path: Path) -> None:
    bomb = b'{"pad": "' + b" " * MAX_METADATA_BYTES + b'"}'
    bad = _zip(tmp_path / "bomb.ckpt", bomb, {})
    assert bad.stat().st_size < MAX_METADATA_BYTES // 500  # small on disk
    with pytest.raises(CheckpointError, match="inflates to more than"):
        read_checkpoint(bad)


def test_metadata_lying_about_its_inflated_size_is_refused(tmp_path: Path) -> None:
    bad = _zip(tmp_path / "liar.ckpt", b'{"pad": "' + b" " * 100_000 + b'"}', {})
    _, _, central = _member_offsets(bad, "metadata.json")
    _patch(bad, bad, [(central + 24, struct.pack("<I", 10))])  # "file size: 10 bytes"
    with pytest.raises(CheckpointError, match="BadZipFile|JSONDecodeError"):
        read_checkpoint(bad)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
def test_deep_json_nesting_is_refused_before_parsing(tmp_path: Path, depth: int) -> None:
    bad = _zip(tmp_path / "deep.ckpt", b"[" * depth + b"]" * depth, {})
    with pytest.raises(CheckpointError, match=f"nested more than {MAX_DEPTH} levels") as info:
        read_checkpoint(bad)
    assert info.value.__cause__.__cause__ is None  # refused by the bound, not after a RecursionError


def test_metadata_too_deep_to_read_back_is_refused_before_a_file_is_written(tmp_path: Path) -> None:
    es = ES("snes", max_generations=2, random_state=0).fit(sphere, np.ones(3))
    deep: Any = "leaf"
    for _ in range(MAX_DEPTH):
        deep = [deep]
    with pytest.raises(CheckpointError, match=f"not written .* nested more than {MAX_DEPTH} levels"):
        save_checkpoint(es, tmp_path / "deep.ckpt", metadata={"deep": deep})
    assert list(tmp_path.iterdir()) == []  # nothing saved that load_checkpoint would refuse
    save_checkpoint(es, tmp_path / "ok.ckpt", metadata={"deep": deep[0][0][0][0][0][0][0][0][0][0]})
    assert load_checkpoint(tmp_path / "ok.ckpt").n_generations_ == 2


@pytest.mark.parametrize("junk", [b"[" + b"0," * (3 << 20) + b"0]",  # up to 64 MiB: 32 million objects
                                  b"{" + b'"k":0,' * (3 << 19) + b'"k":0}'])  # many keys
def test_metadata_of_too_many_items_is_refused_before_parsing(tmp_path: Path, junk: bytes,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Such a file was parsed (and its digest computed) before anything refused it: 64 MiB of ``0,`` (a 60 kB
    checkpoint) took half a minute and half a gigabyte of Python objects. The JSON parser is never
    called (a spy counts its calls: no wall clock), and memory stays at the text's size."""
    import tracemalloc

    import evostrat.checkpoint.format as checkpoint_format

    parsed: list[int] = []

    class SpiedJSON:
        dumps = staticmethod(json.dumps)

        @staticmethod
        def loads(text: str) -> Any:
            parsed.append(len(text))
            return json.loads(text)

    monkeypatch.setattr(checkpoint_format, "json", SpiedJSON)
    bad = _zip(tmp_path / "wide.ckpt", b'{"format": "evostrat-checkpoint", "version": 2, "junk": ' + junk + b"}", {})
    assert bad.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=f"holds more than {MAX_ITEMS} items"):
            read_checkpoint(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert parsed == [] and peak < 4 * len(junk)  # the text, not objects per item


def test_metadata_of_too_many_items_is_never_written(tmp_path: Path) -> None:
    es = ES("snes", max_generations=2, random_state=0).fit(sphere, np.ones(3))
    with pytest.raises(CheckpointError, match=f"not written .* more than {MAX_ITEMS} items"):
        save_checkpoint(es, tmp_path / "wide.ckpt", metadata={"losses": [0.5] * MAX_ITEMS})
    assert list(tmp_path.iterdir()) == []
    save_checkpoint(es, tmp_path / "ok.ckpt", metadata={"losses": [0.5] * 100_000})
    assert load_checkpoint(tmp_path / "ok.ckpt").n_generations_ == 2


def test_brackets_inside_strings_do_not_count_as_nesting(tmp_path: Path) -> None:
    meta = {**_meta({}), "note": "[{" * 10_000 + '\\"' + "]}" * 10}
    meta["sha256"] = "x"
    with pytest.raises(CheckpointError, match="SHA-256 mismatch"):  # got past the depth bound
        read_checkpoint(_zip(tmp_path / "strings.ckpt", meta, {}))


# -- item 5: tampering with a recomputed digest ----------------------------------------------
def _tampered(tmp_path: Path, es: ES, edit: Callable[[dict, dict], None]) -> Path:
    meta, arrays = capture(es)
    edit(meta, arrays)
    path = tmp_path / "tampered.ckpt"
    write_checkpoint(path, meta, arrays)  # index and digest recomputed: only the schemas can refuse it
    return path


def _drop(d: dict, key: str) -> None:
    del d[key]


def _set_array(name: str, value: np.ndarray) -> Callable[[dict, dict], None]:
    return lambda m, a: a.__setitem__(name, value)


TAMPERS: list[tuple[str, Callable[[dict, dict], None], str]] = [
    # wrong types, named
    ("run n_generations str", lambda m, a: m["run"].__setitem__("n_generations", "abc"), "'n_generations' must be an int"),
    ("run best_f str", lambda m, a: m["run"].__setitem__("best_f", "0.1"), "'best_f' must be a real number"),
    ("run restarts", lambda m, a: m["run"].__setitem__("restarts", "all"), "'restarts' must be a list of dicts"),
    ("state generation float", lambda m, a: m["state"].__setitem__("generation", 2.5), "'generation' must be an int"),
    ("state dim str", lambda m, a: m["state"].__setitem__("dim", "3"), "'dim' must be an int"),
    # negative counters and a NaN best value: were loaded, and the resumed run reported them
    ("run n_evals negative", lambda m, a: m["run"].__setitem__("n_evals", -5), "'n_evals' must be an int >= 0"),
    ("run n_generations negative", lambda m, a: m["run"].__setitem__("n_generations", -5),
     "'n_generations' must be an int >= 0"),
    ("run run_start negative", lambda m, a: m["run"].__setitem__("run_start", [-1, 0]),
     "'run_start' must be a pair of ints >= 0"),
    ("run best_f nan", lambda m, a: m["run"].__setitem__("best_f", float("nan")), r"'best_f' must be a real number \(not NaN\)"),
    ("state generation negative", lambda m, a: m["state"].__setitem__("generation", -1), "'generation' must be an int >= 0"),
    ("state n_evals negative", lambda m, a: m["state"].__setitem__("n_evals", -7), "'n_evals' must be an int >= 0"),
    # counters past int64: an OverflowError traceback when the resumed run's history was saved (np.int64)
    ("state generation 2**63", lambda m, a: m["state"].__setitem__("generation", 2**63),
     r"'generation' must be an int >= 0 and < 2\*\*63"),
    ("state n_evals 10**30", lambda m, a: m["state"].__setitem__("n_evals", 10**30),
     r"'n_evals' must be an int >= 0 and < 2\*\*63"),
    ("run n_evals 2**63", lambda m, a: m["run"].__setitem__("n_evals", 2**63), r"'n_evals' must be an int >= 0 and <"),
    ("state arrays", lambda m, a: m["state"].__setitem__("arrays", "mean"), "'arrays' must be a list of names"),
    ("elapsed", lambda m, a: m.__setitem__("elapsed", "long"), "'elapsed' must be a finite number"),
    ("elapsed nan", lambda m, a: m.__setitem__("elapsed", float("nan")), "'elapsed' must be a finite number"),
    ("x0_type", lambda m, a: m.__setitem__("x0_type", "dict"), "'x0_type' must be 'list' or 'array'"),
    ("params not dicts", lambda m, a: m["params"].__setitem__("popsize", 7), "'params' must be a dict of dicts"),
    ("param value", lambda m, a: m["params"].__setitem__("max_generations", {"value": "abc"}), "max_generations"),
    ("param spec", lambda m, a: m["params"].__setitem__("tolx", {"value": 1, "code": "x"}), "parameter 'tolx' is malformed"),
    ("strategy name", lambda m, a: m["params"].__setitem__("strategy", {"strategy": 3, "params": {}}),
     "parameter 'strategy' is malformed"),
    ("termination", lambda m, a: m["termination"].__setitem__(next(iter(m["termination"])), "x"),
     "termination field"),
    ("history length", lambda m, a: m["history"].__setitem__("length", 2.5), "history is malformed"),
    ("history kind", lambda m, a: m["history"]["columns"][0].__setitem__(1, "str"), "history is malformed"),
    ("user", lambda m, a: m.__setitem__("user", ["x"]), "'user' must be a dict"),
    # unknown extra fields: never set on the estimator
    ("extra top-level", lambda m, a: m.__setitem__("fit", {"value": 1}), "metadata state has fields"),
    ("extra run field", lambda m, a: m["run"].__setitem__("_run", 1), "run state has fields"),
    ("extra state field", lambda m, a: m["state"].__setitem__("ask", 1), "strategy state state has fields"),
    ("extra parameter", lambda m, a: m["params"].__setitem__("_run", {"value": 1}), "ES with parameters"),
    # missing fields
    ("missing top-level", lambda m, a: _drop(m, "termination"), "metadata state has fields"),
    ("missing run field", lambda m, a: _drop(m["run"], "n_evals"), "run state has fields"),
    ("missing state field", lambda m, a: _drop(m["state"], "popsize"), "strategy state state has fields"),
    ("missing parameter", lambda m, a: _drop(m["params"], "tolx"), "ES with parameters"),
    ("missing state array", lambda m, a: _drop(a, "state/mean"), "missing array|missing the state array"),
    # wrong shapes and dtypes of arrays
    ("state shape", _set_array("state/mean", np.zeros(5)), "state/mean|'mean'"),
    ("state dtype", _set_array("state/mean", np.zeros(3, np.float32)), "dtype float32"),
    ("x0 shape", _set_array("x0_init", np.zeros((3, 3))), "initial point"),
    ("x0 dtype", _set_array("x0_init", np.zeros(3, np.int64)), "initial point"),
    ("best_x shape", _set_array("best_x", np.zeros(4)), "best candidate"),
    ("history dtype", _set_array("history/best", np.zeros(4, complex)), "history is malformed"),
    ("history length", _set_array("history/best", np.zeros(9)), "history is malformed"),
    ("injections type", lambda m, a: m.__setitem__("injections", [1.0]), "'injections' must be a dict or null"),
    ("injections shape", lambda m, a: (m.__setitem__("injections", {"__array__": "injections"}),
                                       a.__setitem__("injections", np.zeros((1, 5)))), "injected candidates"),
    ("injections nan", lambda m, a: (m.__setitem__("injections", {"__array__": "injections"}),
                                     a.__setitem__("injections", np.full((1, 3), np.nan))), "injected candidates"),
    # non-finite model arrays: were loaded (a resumed CMA-ES with a NaN C raised numpy's LinAlgError)
    ("state mean inf", _set_array("state/mean", np.array([0.0, np.inf, 1.0])), "not a search distribution"),
    ("state sigma nan", _set_array("state/sigma", np.full(3, np.nan)), "not a search distribution"),
]


@pytest.mark.parametrize("edit, message", [t[1:] for t in TAMPERS], ids=[t[0] for t in TAMPERS])
def test_tampered_fields_with_a_recomputed_digest_are_refused_by_name(
        tmp_path: Path, edit: Callable[[dict, dict], None], message: str) -> None:
    path = _tampered(tmp_path, _run(), edit)
    read_checkpoint(path)  # the digest is valid
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_tampered_restart_plan_and_schedule_are_refused(tmp_path: Path) -> None:
    es = _run("cma_es", restarts="ipop")
    edits = [
        (lambda m, a: m["plan"]["__runplan__"].__setitem__("popsize", "7"), "malformed restart plan"),
        (lambda m, a: m["plan"]["__runplan__"].__setitem__("popsize", 10 ** 9), "does not match the strategy state"),
        (lambda m, a: m["plan"]["__runplan__"].__setitem__("exec", 1), "malformed restart plan"),
        (lambda m, a: m["schedule"].__setitem__("dim", [3]), "restarts field 'dim'"),
        # loaded, then the next restart raised ValueError (int(nan)) / OverflowError, or made a population of 1
        (lambda m, a: m["schedule"].__setitem__("popsize0", float("nan")), "restarts field 'popsize0' must be a finite"),
        (lambda m, a: m["schedule"].__setitem__("popsize0", float("inf")), "restarts field 'popsize0' must be a finite"),
        (lambda m, a: m["schedule"].__setitem__("popsize0", -5.0), r"restarts field 'popsize0' must be a finite number >= 1"),
        (lambda m, a: m["schedule"].__setitem__("large_runs", -3), r"restarts field 'large_runs' must be an int >= 0"),
        (lambda m, a: m["schedule"]["evals"].__setitem__("small", -100), r"restarts field 'evals' must be .* ints >= 0"),
        (lambda m, a: m["schedule"].__setitem__("dim", 0), r"restarts field 'dim' must be an int >= 1"),
        (lambda m, a: m.__setitem__("schedule", None), "restart state does not match"),
    ]
    for edit, message in edits:
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(_tampered(tmp_path, es, edit))


def test_loading_sets_nothing_the_schema_does_not_name(tmp_path: Path) -> None:
    """A valid checkpoint restores the run; the estimator's methods and attributes are its own."""
    es = _run()
    path = tmp_path / "ok.ckpt"
    save_checkpoint(es, path)
    back = load_checkpoint(path)
    assert _same_state(back, es)
    assert sorted(k for k in vars(back) if k.endswith("_") or k.startswith("_")) == sorted(
        k for k in vars(ES(**back.get_params()).initialize(np.zeros(3))) if k.endswith("_") or k.startswith("_"))
    assert callable(back.ask) and callable(back.tell) and type(back) is ES


@pytest.mark.parametrize("strategy", ["cma_es", "xnes"])  # O(dim^2) states; O(dim) ones are bounded by x0
def test_a_forged_dim_is_refused_before_its_state_is_built(tmp_path: Path, strategy: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A CMA-ES state holds O(dim^2) values: a checkpoint declaring dim 200,000 (with an x0 of
    that size, 1.6 MB) would allocate hundreds of GB before the saved arrays were compared."""
    from evostrat.run.asktell import AskTell

    dim = 200_000

    def forge(m: dict, a: dict) -> None:
        m["state"]["dim"] = dim
        a["x0_init"] = np.zeros(dim)
        a["best_x"] = np.zeros(dim)

    path = _tampered(tmp_path, _run(strategy), forge)
    built: list[int] = []
    original = AskTell.__init__

    def spy(self: Any, strategy_: Any, x0: Any, *args: Any, **kwargs: Any) -> None:
        built.append(int(np.shape(x0)[0]))
        original(self, strategy_, x0, *args, **kwargs)

    monkeypatch.setattr(AskTell, "__init__", spy)
    with pytest.raises(CheckpointError, match=rf"state of the saved dim {dim} holds"):
        load_checkpoint(path)
    assert max(built) <= 4  # only the three small probes were built


# -- forged hyper-parameters sizing the state: refused before the allocation ----------------------
FORGED_SIZES = [
    ("cma_es", {"lazy_eigen": 2}, lambda p, s: p["strategy_options"]["value"].__setitem__("lazy_eigen", 10**7),
     r"lazy_eigen=10000000.*more than the .* GiB the checkpoint's saved strategy state allows"),
    ("lm_ma_es", {"memory": 2}, lambda p, s: p["strategy_options"]["value"].__setitem__("memory", 10**8),
     r"memory=100000000 makes a state.*the checkpoint's saved strategy state allows"),
    ("snes", {}, lambda p, s: (p["popsize"].__setitem__("value", 10**8), s.__setitem__("popsize", 10**8)),
     r"checkpoint popsize 100000000 exceeds both 2\*\*20 and 4x its saved strategy state"),
    ("cma_es", {}, lambda p, s: p["popsize"].__setitem__("value", 10**8), r"checkpoint popsize 100000000"),
]


@pytest.mark.parametrize("strategy, options, forge, message", FORGED_SIZES,
                         ids=["lazy_eigen", "memory", "popsize", "param-popsize"])
def test_forged_state_sizing_parameters_are_refused_without_allocating(
        tmp_path: Path, strategy: str, options: dict, forge: Callable, message: str) -> None:
    """An 8 KB file declaring lazy_eigen=10**7 (a queue of 10**7 x (popsize + 1) x dim values) or a
    popsize of 10**8 allocated gigabytes (2.2 to 3.9 GB peak) before being refused."""
    import tracemalloc

    es = ES(strategy, strategy_options=options, popsize=8, max_generations=3, random_state=0).fit(sphere, np.ones(3))
    path = _tampered(tmp_path, es, lambda m, a: forge(m["params"], m["state"]))
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20



# -- termination progress values: the ranges Termination writes -----------------------------
def _progress(field: str, value: Any) -> Callable[[dict, dict], None]:
    return lambda m, a: m["termination"].__setitem__(field, value)


NAN, INF = float("nan"), float("inf")
PROGRESS_TAMPERS = [  # each was loaded, and the resumed run ran on it
    ("run_best", NAN, r"termination field 'run_best' must be a real number \(not NaN\)"),
    ("recent", [1.0, NAN], "termination field 'recent' must be a list of finite numbers"),
    ("recent", [INF, 1.0], "termination field 'recent' must be a list of finite numbers"),
    ("run_best_evals", -3, r"termination field 'run_best_evals' must be an int >= 0"),
    ("flat_generations", -1, r"termination field 'flat_generations' must be an int >= 0"),
    ("hist_best", [NAN], r"termination field 'hist_best' must be a list of at most 20000 numbers \(not NaN\)"),
    ("hist_best", [1.0] * 20_001, "termination field 'hist_best' must be a list of at most 20000"),
    ("hist_median", [1.0], "'hist_best' and 'hist_median' differ in length"),  # the stagnation test: IndexError
]


@pytest.mark.parametrize("field, value, message", PROGRESS_TAMPERS, ids=[f"{t[0]}={str(t[1])[:12]}" for t in PROGRESS_TAMPERS])
def test_termination_progress_out_of_its_range_is_refused_by_name(tmp_path: Path, field: str, value: Any,
                                                                   message: str) -> None:
    path = _tampered(tmp_path, _run(tolflatfitness=3), _progress(field, value))
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def _wild(X: Any) -> np.ndarray:
    """The sphere with NaN, +inf and -inf values: a run's progress at the edges of its range."""
    f = sphere(X)
    f[::3], f[1::5] = np.nan, np.inf
    f[2::7] = -np.inf
    return f


@pytest.mark.parametrize("case", ["plain", "constraints", "ipop", "maximize"])
def test_progress_at_the_edges_of_its_range_still_loads_and_resumes_exactly(tmp_path: Path, case: str) -> None:
    """NaN and infinite objective values leave inf/-inf bests, a NaN median (of -inf and inf) and only
    finite ``recent`` values: such a checkpoint loads, and the resumed run equals the uninterrupted one."""
    params = {"ipop": dict(restarts="ipop"), "maximize": dict(maximize=True)}.get(case, {})

    def make() -> ES:
        return ES("cma_es", max_generations=40, tolstagnation=5, tolflatfitness=2, tolfunhist=1e-12, random_state=3,
                  nonfinite="ignore", **params).initialize(np.full(4, 2.0))

    def step(run: ES) -> np.ndarray:
        X = run.ask()
        F = -_wild(X) if case == "maximize" else _wild(X)
        run.tell(X, F, **({"constraints": X[:, :1] - 1.0} if case == "constraints" else {}))
        return X

    es, ref = make(), make()
    for _ in range(11):
        step(es), step(ref)
    path = tmp_path / "edge.ckpt"
    save_checkpoint(es, path)
    progress = capture(es)[0]["termination"]
    assert progress["hist_best"] and all(np.isfinite(progress["recent"]))
    back = load_checkpoint(path)
    for _ in range(8):
        np.testing.assert_array_equal(step(back), step(ref))
    assert _same_state(back, ref)
