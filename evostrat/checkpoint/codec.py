"""Plain data <-> JSON with a few tagged types, arrays set aside.

:func:`encode` turns run bookkeeping (numbers, strings, lists, tuples, dicts,
``deque``, numpy arrays and scalars, backend arrays, numpy ``Generator``\\ s,
restart plans) into JSON-serialisable data, moving every array into a
separate ``arrays`` dict under a generated name. :func:`decode` is its inverse.
Only the tags listed here are recognised; a tag never names a class to import,
so decoding builds nothing but plain data, numpy arrays and numpy's PCG64
generator.

Examples
--------
>>> from collections import deque
>>> import numpy as np
>>> from evostrat.checkpoint.codec import decode, encode
>>> arrays = {}
>>> data = encode({"window": deque([1.0, 2.0], maxlen=3), "pair": (1, "a")}, arrays, "x")
>>> back = decode(data, arrays)
>>> back["window"], back["pair"]
(deque([1.0, 2.0], maxlen=3), (1, 'a'))
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Any, Callable

import numpy as np

from evostrat.backends import array_backend
from evostrat.errors import CheckpointError, InvalidTypeError
from evostrat.backends.trees import field_names
from evostrat.run.restarts import RunPlan
from evostrat.run.state import is_int, is_real

__all__ = ["encode", "decode", "encode_metadata", "Unencodable"]

_TAGS = ("__tuple__", "__deque__", "__array__", "__rng__", "__dict__", "__runplan__")


class Unencodable(CheckpointError):
    """A value of a type the checkpoint format does not store."""


def encode(value: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    """``value`` as JSON data; arrays go to ``arrays`` under names starting with ``path``.

    Raises
    ------
    Unencodable
        For any other type (named in the message with ``path``).
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":
            raise Unencodable(f"{path} is an array of dtype {value.dtype}; only numeric arrays are saved")
        arrays[path] = np.array(value, copy=True)
        return {"__array__": path}
    backend = array_backend(value)
    if backend is not None:  # a torch/JAX array (numpy's and Python scalars are handled above)
        arrays[path] = np.array(backend.to_numpy(value), copy=True)
        return {"__array__": path, "backend": backend.name}
    if isinstance(value, (deque, list)) or (isinstance(value, tuple) and not field_names(value)):
        items = [encode(v, arrays, f"{path}.{i}") for i, v in enumerate(value)]
        if isinstance(value, deque):
            return {"__deque__": items, "maxlen": value.maxlen}
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if isinstance(value, dict):
        keys = list(value)
        items = {str(k): encode(v, arrays, f"{path}.{k}") for k, v in value.items()}
        plain = all(isinstance(k, str) and not k.startswith("__") for k in keys)
        return items if plain else {"__dict__": [[encode(k, arrays, f"{path}.key"), v] for k, v in
                                                 zip(keys, items.values())]}
    if isinstance(value, np.random.Generator):
        state = value.bit_generator.state
        if state.get("bit_generator") != "PCG64":
            raise Unencodable(f"{path} is a {state.get('bit_generator')} generator; only PCG64 is saved")
        return {"__rng__": {"state": str(state["state"]["state"]), "inc": str(state["state"]["inc"]),
                            "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"])}}
    if dataclasses.is_dataclass(value) and type(value).__name__ == "RunPlan":
        return {"__runplan__": encode(dataclasses.asdict(value), arrays, path)}
    raise Unencodable(
        f"{path} has type {type(value).__module__}.{type(value).__name__}, which a checkpoint "
        "cannot store (plain numbers, strings, lists, dicts and arrays only)"
    )


def encode_metadata(user: dict[str, Any] | None) -> Any:
    """The user's checkpoint ``metadata`` as JSON data: a dict of plain values, arrays refused.

    Raises
    ------
    InvalidTypeError
        For a ``metadata`` that is not a dict, or that holds an array.
    Unencodable
        For a value of another type.
    """
    if user is not None and not isinstance(user, dict):
        raise InvalidTypeError(f"checkpoint metadata must be a dict of plain JSON data, got {type(user).__name__}")
    found: dict[str, np.ndarray] = {}
    data = encode(user or {}, found, "metadata")
    if found:
        raise InvalidTypeError(f"checkpoint metadata must be plain JSON data; {min(found)} is an array "
                               "(store it as a list: .tolist())")
    return data


def decode(data: Any, arrays: dict[str, np.ndarray], to_backend: Callable[[np.ndarray, str], Any] | None = None) -> Any:
    """Inverse of :func:`encode`; ``to_backend(array, name)`` rebuilds torch/JAX arrays."""

    def dec(value: Any) -> Any:
        return decode(value, arrays, to_backend)

    if data is None or isinstance(data, (bool, str, int, float)):
        return data
    if isinstance(data, list):
        return [dec(v) for v in data]
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint holds an unexpected value of type {type(data).__name__}")
    tag = next((k for k in data if k in _TAGS), None)
    if tag is None:
        return {k: dec(v) for k, v in data.items()}
    if tag == "__array__":
        name, backend = data["__array__"], data.get("backend")
        if name not in arrays:
            raise CheckpointError(f"checkpoint metadata refers to a missing array {name!r}")
        if backend is not None and to_backend is None:
            raise CheckpointError(f"checkpoint array {name!r} needs the {backend!r} backend")
        return arrays[name] if backend is None else to_backend(arrays[name], backend)
    if tag == "__tuple__":
        return tuple(dec(v) for v in _list(data, tag))
    if tag == "__deque__":
        maxlen = data.get("maxlen")
        if maxlen is not None and (not isinstance(maxlen, int) or maxlen < 0):
            raise CheckpointError(f"checkpoint deque has an invalid maxlen {maxlen!r}")
        return deque((dec(v) for v in _list(data, tag)), maxlen=maxlen)
    if tag == "__dict__":
        pairs = _list(data, tag)
        if not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise CheckpointError("checkpoint holds a malformed mapping")
        return {_hashable(dec(k)): dec(v) for k, v in pairs}
    if tag == "__rng__":
        spec = data["__rng__"]
        try:
            bitgen = np.random.PCG64()
            bitgen.state = {"bit_generator": "PCG64", "state": {"state": int(spec["state"]), "inc": int(spec["inc"])},
                             "has_uint32": int(spec["has_uint32"]), "uinteger": int(spec["uinteger"])}
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"checkpoint holds a malformed generator state: {err}") from err
        return np.random.Generator(bitgen)
    if tag == "__runplan__":
        fields, types = dec(data["__runplan__"]), {"int": is_int, "float": is_real, "str": lambda v: isinstance(v, str)}
        spec = {f.name: types[f.type] for f in dataclasses.fields(RunPlan)}
        if not isinstance(fields, dict) or set(fields) != set(spec) or not all(ok(fields[k]) for k, ok in spec.items()):
            raise CheckpointError(f"checkpoint holds a malformed restart plan: {fields!r}")
        return RunPlan(**fields)
    raise CheckpointError(f"checkpoint holds an unknown tag {tag!r}")  # pragma: no cover


def _list(data: dict, tag: str) -> list:
    value = data[tag]
    if not isinstance(value, list):
        raise CheckpointError(f"checkpoint {tag} is not a list")
    return value


def _hashable(key: Any) -> Any:
    try:
        hash(key)
    except TypeError as err:
        raise CheckpointError(f"checkpoint mapping key {key!r} is not hashable") from err
    return key
