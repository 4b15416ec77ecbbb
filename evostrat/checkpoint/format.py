"""The checkpoint file format: a zip of JSON metadata and ``.npy`` arrays, never pickle.

``metadata.json`` holds the format tag and ``version``, an index of the arrays
(name, dtype, shape), everything that is not an array, and ``sha256``, a digest of
the canonical metadata and of every array; each ``arrays/<name>.npy`` holds one
numeric array, uncompressed. Reading checks the tag, the version, the members
against the index, each array's dtype and shape and the digest, with
``allow_pickle=False``: nothing in a checkpoint is ever code (the digest detects
corruption and edits; an attacker could recompute it). Writing is atomic (a
temporary file, flushed, then :func:`os.replace`): a crash never leaves a torn file.

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
import os
import re
import tempfile
import zipfile
from typing import Any

import numpy as np

from evostrat.errors import CheckpointError

__all__ = ["FORMAT", "VERSION", "write_checkpoint", "read_checkpoint", "payload_digest"]

FORMAT = "evostrat-checkpoint"
VERSION = 2
METADATA = "metadata.json"
_NAME = re.compile(r"^[A-Za-z0-9_.\-/]{1,200}$")
_KINDS = "biufc"  # bool, signed/unsigned int, float, complex
_MAX_METADATA = 1 << 30  # bytes of JSON, uncompressed


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


def write_checkpoint(path: str | os.PathLike, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write ``meta`` (JSON-serialisable) and ``arrays`` to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Target file; its folder must exist (replaced atomically, see above).
    meta : dict
        Plain data (``dict``/``list``/``str``/numbers/``None``); the keys
        ``format``, ``version``, ``arrays`` and ``sha256`` are set here.
    arrays : dict of str to ndarray
        Numeric arrays (bool, int, float, complex).
    """
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
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as raw:
            with zipfile.ZipFile(raw, "w") as zf:
                zf.writestr(METADATA, text, compress_type=zipfile.ZIP_DEFLATED)
                for name, a in arrays.items():
                    buf = io.BytesIO()
                    np.lib.format.write_array(buf, _contiguous(a), allow_pickle=False)
                    zf.writestr(f"arrays/{name}.npy", buf.getvalue(), compress_type=zipfile.ZIP_STORED)
            raw.flush()
            os.fsync(raw.fileno())
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


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and verify a checkpoint; returns ``(metadata, arrays)``.

    Raises
    ------
    CheckpointError
        When the file is missing, not a checkpoint, of another format version,
        has unexpected members or arrays, or fails the SHA-256 check.
    """
    where = os.fspath(path)
    if not os.path.isfile(where):
        raise CheckpointError(f"checkpoint {where!r} does not exist or is not a file")
    try:
        zf = zipfile.ZipFile(where, "r")
    except (zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(f"{where!r} is not an evostrat checkpoint (not a zip archive: {err})") from err
    with zf:
        infos = {info.filename: info for info in zf.infolist()}
        if METADATA not in infos:
            raise CheckpointError(f"{where!r} is not an evostrat checkpoint (no {METADATA})")
        if infos[METADATA].file_size > _MAX_METADATA:
            raise CheckpointError(f"checkpoint {where!r} has an oversized {METADATA}")
        try:
            meta = json.loads(zf.read(METADATA).decode("utf-8"))
        except (ValueError, UnicodeDecodeError, zipfile.BadZipFile) as err:
            raise CheckpointError(f"checkpoint {where!r} has unreadable metadata: {err}") from err
        _check_header(meta, where)
        index = meta["arrays"]
        expected = {METADATA} | {f"arrays/{name}.npy" for name in index}
        extra = sorted(set(infos) - expected)
        missing = sorted(expected - set(infos))
        if extra or missing:
            raise CheckpointError(
                f"checkpoint {where!r} does not match its index: unexpected members {extra}, "
                f"missing members {missing}"
            )
        arrays = {}
        for name, spec in index.items():
            _check_name(name)
            info = infos[f"arrays/{name}.npy"]
            if info.compress_type != zipfile.ZIP_STORED:
                raise CheckpointError(f"checkpoint array {name!r} must be stored uncompressed")
            try:
                with zf.open(info) as f:
                    a = np.lib.format.read_array(f, allow_pickle=False)
            except (ValueError, OSError, zipfile.BadZipFile) as err:
                raise CheckpointError(f"checkpoint array {name!r} is unreadable: {err}") from err
            if a.dtype.kind not in _KINDS or a.dtype.str != spec.get("dtype") or list(a.shape) != spec.get("shape"):
                raise CheckpointError(
                    f"checkpoint array {name!r} has dtype {a.dtype.str} and shape {list(a.shape)}; "
                    f"its index says {spec.get('dtype')} and {spec.get('shape')}"
                )
            arrays[name] = a
    digest = payload_digest(meta, arrays)
    if meta.get("sha256") != digest:
        raise CheckpointError(
            f"checkpoint {where!r} failed its integrity check (SHA-256 mismatch): the file was "
            "modified or corrupted after it was written"
        )
    return meta, arrays


def _check_header(meta: Any, where: str) -> None:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{where!r} is not an evostrat checkpoint (format tag is "
            f"{meta.get('format') if isinstance(meta, dict) else None!r}, expected {FORMAT!r})"
        )
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {where!r} has format version {meta.get('version')!r}; this evostrat "
            f"reads version {VERSION}"
        )
    index = meta.get("arrays")
    if not isinstance(index, dict) or not all(isinstance(v, dict) for v in index.values()):
        raise CheckpointError(f"checkpoint {where!r} has a malformed array index")
    if not isinstance(meta.get("sha256"), str):
        raise CheckpointError(f"checkpoint {where!r} has no SHA-256 digest")
