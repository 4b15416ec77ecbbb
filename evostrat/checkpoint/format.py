"""The checkpoint file format: a zip of JSON metadata and ``.npy`` arrays, never pickle.

``metadata.json`` holds the format tag and ``version``, an index of the arrays
(name, dtype, shape), everything that is not an array, and ``sha256``, a digest of
the canonical metadata and of every array; each ``arrays/<name>.npy`` holds one
numeric array, uncompressed. Reading checks the tag, the version, the members
against the index, each array's dtype and shape and the digest, with
``allow_pickle=False``: nothing in a checkpoint is ever code (the digest detects
corruption and edits; an attacker could recompute it). Sizes are bounded before
anything is read: the zip's declared sizes against the file's, each ``.npy``
header against the index and its member, ``metadata.json`` to
:data:`MAX_METADATA_BYTES` inflated, :data:`MAX_DEPTH` levels of nesting and
:data:`MAX_ITEMS` items, so memory stays within the file's size plus those bounds. Every failure to read is a
:class:`~evostrat.errors.CheckpointError` naming the file and the cause. Writing
is atomic (:func:`atomic_file`): a crash never leaves a torn file.

Examples
--------
>>> import os, tempfile
>>> import numpy as np
>>> from evostrat.checkpoint.format import read_checkpoint, write_checkpoint
>>> path = os.path.join(tempfile.mkdtemp(), "demo.ckpt")
>>> write_checkpoint(path, {"kind": "demo"}, {"mean": np.arange(3.0)})
>>> meta, arrays = read_checkpoint(path)
>>> meta["kind"], arrays["mean"].tolist()
('demo', [0.0, 1.0, 2.0])
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import secrets
import zipfile
from typing import Any, BinaryIO, Iterator

import numpy as np

from evostrat.errors import CheckpointError, InvalidArgumentError, InvalidTypeError, OutputError

__all__ = ["FORMAT", "VERSION", "MAX_METADATA_BYTES", "MAX_DEPTH", "MAX_ITEMS", "write_checkpoint", "read_checkpoint",
           "payload_digest", "atomic_file", "remove_stale_temps", "check_writable"]

FORMAT = "evostrat-checkpoint"
VERSION = 2
METADATA = "metadata.json"
#: Largest ``metadata.json`` read (bytes, inflated), deepest nesting of its JSON and most items
#: in it (``,``, ``:`` and strings, counted also inside strings): 64 MiB of ``0,`` would be 32
#: million Python objects (half a gigabyte and half a minute from a 60 kB file).
MAX_METADATA_BYTES = 64 << 20
MAX_DEPTH = 64
MAX_ITEMS = 1 << 20
_NAME = re.compile(r"^[A-Za-z0-9_.\-/]{1,200}$")
_KINDS = "biufc"  # bool, signed/unsigned int, float, complex
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name or name.startswith("/"):
        raise CheckpointError(f"checkpoint array name {name!r} is not a plain relative name")


def _contiguous(a: np.ndarray) -> np.ndarray:
    """``a`` itself when C- or Fortran-contiguous (the ``.npy`` header records which:
    a restored torch tensor keeps the strides, so matrix products round alike), else a
    C copy; 0-d arrays stay 0-d."""
    return a if (a.flags.c_contiguous or a.flags.f_contiguous) else np.array(a, order="C")


def payload_digest(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 (hex) of the metadata (without ``sha256``) and of every array."""
    h = hashlib.sha256()
    canonical = {k: v for k, v in meta.items() if k != "sha256"}
    h.update(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    for name in sorted(arrays):
        a = _contiguous(np.asarray(arrays[name]))
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _as_path(path: Any) -> str:
    """``path`` as a string; :class:`~evostrat.errors.InvalidTypeError` naming it for a non-path."""
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidTypeError(f"checkpoint path must be a str or os.PathLike, got {type(path).__name__}")
    return os.fsdecode(path)


def _temp_pattern(path: str | os.PathLike, prefix: str) -> tuple[str, str]:
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    return folder, f"{prefix}{name[:64]}-"


def remove_stale_temps(path: str | os.PathLike, prefix: str = ".ckpt-") -> None:
    """Remove the temporary files that killed writes of ``path`` left next to it.

    Only regular files named as :func:`atomic_file` names them for ``path``
    (``<prefix><name>-<12 hex digits>.tmp``) go; links and anything else stay.
    """
    folder, stem = _temp_pattern(path, prefix)
    ours = re.compile(re.escape(stem) + r"[0-9a-f]{12}\.tmp")
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if ours.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def check_writable(path: str | os.PathLike, what: str) -> None:
    """Refuse, before a run starts, a file ``path`` that could not be written: the deepest of its
    folders that exists is not a folder, or no file can be created in it (read-only, not ours).

    Parameters
    ----------
    path : str or os.PathLike
        The file a run will write (its missing folders will be created).
    what : str
        The argument and path as the error names them (``"checkpoint '/x/run.ckpt'"``).

    Raises
    ------
    OutputError
        Naming ``what`` and the cause. A file is created and removed to tell (as root, a
        read-only mode does not stop writes; a read-only file system does).
    """
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    while not os.path.lexists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise OutputError(f"{what} cannot be written: {folder!r} is not a folder")
    probe = os.path.join(folder, f".evostrat-probe-{secrets.token_hex(6)}.tmp")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600))
    except OSError as err:
        raise OutputError.from_os_error(f"{what} (in {folder!r})", err) from err
    with contextlib.suppress(OSError):
        os.unlink(probe)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, prefix: str = ".ckpt-") -> Iterator[BinaryIO]:
    """A new binary file that atomically replaces ``path`` when the block ends without error.

    The file is created next to ``path`` under a fresh random name with ``O_EXCL``
    (a file or link planted there is never opened), flushed to disk and renamed over
    ``path`` with :func:`os.replace`, which replaces a link at ``path`` instead of
    writing through it; on an error it is removed. Leftovers of killed writes are
    removed first (:func:`remove_stale_temps`). A folder at ``path`` (not a link to one) is an
    :class:`~evostrat.errors.InvalidArgumentError` naming it, before anything is written.
    """
    if os.path.isdir(path) and not os.path.islink(path):
        raise InvalidArgumentError(f"{os.fspath(path)!r} is a folder; it cannot be replaced by a file")
    folder, stem = _temp_pattern(path, prefix)
    remove_stale_temps(path, prefix)
    tmp = os.path.join(folder, f"{stem}{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the platform allows
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def write_checkpoint(path: str | os.PathLike, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write ``meta`` (JSON-serialisable) and ``arrays`` to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Target file; its folder must exist (replaced atomically, see :func:`atomic_file`).
    meta : dict
        Plain data (``dict``/``list``/``str``/numbers/``None``); the keys
        ``format``, ``version``, ``arrays`` and ``sha256`` are set here.
    arrays : dict of str to ndarray
        Numeric arrays (bool, int, float, complex).

    Raises
    ------
    InvalidTypeError, InvalidArgumentError
        For a ``path`` that is not a path, is a folder, or whose folder does not exist.
    OutputError
        For a write that fails (a full disk, a read-only folder), naming ``path``; the file
        there before (a previous checkpoint) is left as it was.
    CheckpointError
        For metadata that is not plain JSON data, or past a bound of :func:`read_checkpoint`
        (:data:`MAX_METADATA_BYTES`, :data:`MAX_DEPTH`, :data:`MAX_ITEMS`): nothing is written that
        would not load.
    """
    where = _as_path(path)
    if os.path.isdir(where) and not os.path.islink(where):  # a link is replaced, never followed
        raise InvalidArgumentError(f"checkpoint path {where!r} is a folder; name a file (e.g. in that folder)")
    if not os.path.isdir(os.path.dirname(os.path.abspath(where))):
        raise InvalidArgumentError(f"checkpoint path {where!r}: its folder does not exist")
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    index = {}
    for name, a in arrays.items():
        _check_name(name)
        if a.dtype.kind not in _KINDS:
            raise CheckpointError(f"checkpoint array {name!r} has dtype {a.dtype}; only numeric arrays are saved")
        index[name] = {"dtype": a.dtype.str, "shape": list(a.shape)}
    meta = {**meta, "format": FORMAT, "version": VERSION, "arrays": index}
    meta["sha256"] = payload_digest(meta, arrays)
    try:
        text = json.dumps(meta, allow_nan=True).encode("utf-8")
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint metadata is not plain JSON data: {err}") from err
    unreadable = _metadata_limit(text)  # a file read_checkpoint would refuse is never written
    if unreadable:
        raise CheckpointError(f"checkpoint not written to {where!r}: {unreadable}")
    try:
        with atomic_file(where) as raw, zipfile.ZipFile(raw, "w") as zf:
            zf.writestr(METADATA, text, compress_type=zipfile.ZIP_DEFLATED)
            for name, a in arrays.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, _contiguous(a), allow_pickle=False)
                zf.writestr(f"arrays/{name}.npy", buf.getvalue(), compress_type=zipfile.ZIP_STORED)
    except OSError as err:  # a full disk, a read-only folder: the file there (the previous checkpoint) is kept
        raise OutputError.from_os_error(f"checkpoint {where!r}", err, "; the file there, if any, is unchanged") from err


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and verify a checkpoint; returns ``(metadata, arrays)``.

    Raises
    ------
    InvalidTypeError
        For a ``path`` that is not a str or os.PathLike.
    CheckpointError
        Naming the file and the cause, whatever fails: a missing file, not a
        checkpoint, damaged bytes, another format version, oversized or
        unexpected members or arrays, or a failed SHA-256 check.
    """
    where = _as_path(path)
    if not os.path.isfile(where):
        raise CheckpointError(f"checkpoint {where!r} does not exist or is not a file")
    try:
        with open(where, "rb") as raw, zipfile.ZipFile(raw) as zf:
            meta, arrays = _read(zf, os.fstat(raw.fileno()).st_size)
        if meta["sha256"] != payload_digest(meta, arrays):
            raise CheckpointError("it failed its integrity check (SHA-256 mismatch): the file was "
                                  "modified or corrupted after it was written")
    except Exception as err:  # zlib.error, EOFError, "encrypted", MemoryError, ...: all mean a bad file
        cause = err if isinstance(err, CheckpointError) else (
            f"not an evostrat checkpoint or damaged ({type(err).__name__}: {err})")
        raise CheckpointError(f"checkpoint {where!r}: {cause}") from err
    return meta, arrays


def _metadata_limit(text: bytes) -> str | None:
    """Which bound of :data:`MAX_METADATA_BYTES`, :data:`MAX_DEPTH` and :data:`MAX_ITEMS` the JSON
    ``text`` of ``metadata.json`` passes (``None``: none), as the reader's refusal says it."""
    if len(text) > MAX_METADATA_BYTES:
        return f"its {METADATA} inflates to more than {MAX_METADATA_BYTES} bytes"
    # items: "," and ":" (also inside strings: an upper bound) and strings; first, before any copy of the text
    if text.count(b",") + text.count(b":") + text.count(b'"') // 2 > MAX_ITEMS:
        return f"its {METADATA} holds more than {MAX_ITEMS} items; store large data as arrays"
    codes = np.frombuffer(_STRING.sub(b"", text), np.uint8)  # nesting depth outside strings
    steps = np.isin(codes, (91, 123)).astype(np.int8) - np.isin(codes, (93, 125))
    if codes.size and np.cumsum(steps, dtype=np.int32).max() > MAX_DEPTH:
        return f"its {METADATA} is nested more than {MAX_DEPTH} levels deep"
    return None


def _read(zf: zipfile.ZipFile, size: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    members = zf.infolist()
    infos = {info.filename: info for info in members}
    if len(infos) < len(members) or sum(info.compress_size for info in members) > size:
        raise CheckpointError("its zip directory has duplicate members or declares more data than the file holds")
    if METADATA not in infos:
        raise CheckpointError(f"not an evostrat checkpoint (no {METADATA})")
    with zf.open(METADATA) as f:
        text = f.read(MAX_METADATA_BYTES + 1)
    unreadable = _metadata_limit(text)
    if unreadable:
        raise CheckpointError(unreadable)
    meta = json.loads(text.decode("utf-8"))
    _check_header(meta)
    expected = {METADATA} | {f"arrays/{name}.npy" for name in meta["arrays"]}
    extra, missing = sorted(set(infos) - expected), sorted(expected - set(infos))
    if extra or missing:
        raise CheckpointError(f"it does not match its index: unexpected members {extra}, missing members {missing}")
    return meta, {name: _read_array(zf, infos[f"arrays/{name}.npy"], name, spec)
                  for name, spec in meta["arrays"].items()}


def _read_array(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, spec: dict[str, Any]) -> np.ndarray:
    """One ``.npy`` member, its header checked against the index and the member's size before the read."""
    if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
        raise CheckpointError(f"checkpoint array {name!r} must be stored uncompressed")
    with zf.open(info) as f:
        major, _ = np.lib.format.read_magic(f)
        header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = header(f)
        nbytes = math.prod(shape) * dtype.itemsize
        if (dtype.kind not in _KINDS or dtype.str != spec.get("dtype") or list(shape) != spec.get("shape")
                or f.tell() + nbytes != info.file_size):
            raise CheckpointError(
                f"checkpoint array {name!r} has dtype {dtype.str}, shape {list(shape)} and "
                f"{info.file_size} bytes; its index says {spec.get('dtype')} and {spec.get('shape')}")
        data = bytearray(f.read(nbytes))
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")


def _check_header(meta: Any) -> None:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        tag = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"not an evostrat checkpoint (format tag is {tag!r}, expected {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"it has format version {meta.get('version')!r}; this evostrat reads version {VERSION}")
    index = meta.get("arrays")
    if not isinstance(index, dict) or not all(isinstance(v, dict) for v in index.values()):
        raise CheckpointError("it has a malformed array index")
    for name in index:
        _check_name(name)
    if not isinstance(meta.get("sha256"), str):
        raise CheckpointError("it has no SHA-256 digest")
