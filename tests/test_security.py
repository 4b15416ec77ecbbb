"""Static scan: no unsafe deserialisation or dynamic code execution in the package.

Loading user-supplied files (checkpoints, state dicts, logs) must never go
through pickle, and the package must not evaluate strings as code. The scan
walks the syntax tree of every module under ``evostrat/`` (comments and
docstrings cannot trigger it) and flags:

- ``pickle``/``cPickle``/``dill``/``marshal``/``shelve``/``cloudpickle`` loads
  (``load``, ``loads``, ``Unpickler``), called or imported by name (shipping a
  function to a worker process with ``dumps`` is not loading a user's file),
  and the pickle-based loaders ``joblib.load`` and ``pandas.read_pickle``;
- ``torch.load`` without ``weights_only=True``;
- any call with ``allow_pickle=True`` (``numpy.load``, ``numpy.lib.format.read_array``, ...);
- calls of the built-ins ``eval``, ``exec`` and ``compile``; ``yaml.load``
  without a safe loader.

Names are resolved through the module's imports first, so aliases
(``import torch as th; th.load(f)``, ``from torch import load``,
``import pickle as p``) are caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "evostrat"
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "marshal", "shelve", "cloudpickle"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


PICKLE_LOADERS = {"joblib.load", "pandas.read_pickle", "sklearn.externals.joblib.load"}


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> the dotted name it was imported as (``th`` -> ``torch``, ``load`` -> ``torch.load``)."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    out[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                out[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return out


def _canonical(name: str, aliases: dict[str, str]) -> str:
    head, _, rest = name.partition(".")
    if head in aliases:
        head = aliases[head]
    name = f"{head}.{rest}" if rest else head
    return "numpy" + name[2:] if name == "np" or name.startswith("np.") else name


def scan(source: str, filename: str) -> list[str]:
    """Findings (``file:line: what``) in one module's source."""
    findings = []
    tree = ast.parse(source, filename)
    aliases = _aliases(tree)
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom):
            loaders = {a.name for a in node.names} & {"load", "loads", "Unpickler"}
            if (node.module or "").split(".")[0] in UNSAFE_MODULES and loaders:
                findings.append(f"{where}: imports {sorted(loaders)} from {node.module}")
        elif isinstance(node, ast.Call):
            written = _dotted(node.func)
            name = _canonical(written, aliases)
            last = name.rsplit(".", 1)[-1]
            if name in {"eval", "exec", "compile", "builtins.eval", "builtins.exec", "builtins.compile"}:
                findings.append(f"{where}: calls {written}()")
            elif name.split(".")[0] in UNSAFE_MODULES and last in {"load", "loads", "Unpickler"}:
                findings.append(f"{where}: calls {written}() ({name})")
            elif name in PICKLE_LOADERS:
                findings.append(f"{where}: calls {written}() ({name}, which unpickles)")
            elif name == "torch.load" and not _is_true(_keyword(node, "weights_only")):
                findings.append(f"{where}: torch.load without weights_only=True ({written})")
            elif _is_true(_keyword(node, "allow_pickle")):
                findings.append(f"{where}: {written} with allow_pickle=True")
            elif name == "yaml.load" and "Safe" not in ast.unparse(node):
                findings.append(f"{where}: yaml.load without a safe loader")
    return findings


def test_scanner_catches_each_unsafe_pattern() -> None:
    bad = """
import pickle
from dill import loads as undill
x = pickle.loads(b"")
torch.load("f.pt")
np.load("a.npz", allow_pickle=True)
eval("1 + 1")
exec("y = 2")
yaml.load(open("c.yml"))
"""
    found = scan(bad, "bad.py")
    for fragment in ("from dill", "pickle.loads", "torch.load",
                     "allow_pickle", "eval()", "exec()", "yaml.load"):
        assert any(fragment in f for f in found), (fragment, found)
    ok = 'torch.load("f.pt", weights_only=True)\nnp.load("a.npz")\n"""pickle.load in a docstring"""\n'
    assert scan(ok, "ok.py") == []


def test_scanner_resolves_import_aliases() -> None:
    bad = """
import pickle as pk
import torch as th
import numpy as onp
from torch import load as tload
from joblib import load
import pandas as pd
import builtins
pk.loads(b"")
th.load("f.pt")
tload("f.pt", weights_only=False)
onp.load("a.npy", allow_pickle=True)
onp.lib.format.read_array(f, allow_pickle=True)
load("model.joblib")
pd.read_pickle("frame.pkl")
builtins.eval("1")
"""
    found = scan(bad, "bad.py")
    for line, fragment in [(9, "pickle.loads"), (10, "torch.load"), (11, "torch.load"),
                           (12, "allow_pickle"), (13, "allow_pickle"), (14, "joblib.load"),
                           (15, "pandas.read_pickle"), (16, "builtins.eval")]:
        assert any(f.startswith(f"bad.py:{line}:") and fragment in f for f in found), (line, found)
    ok = """
import re
import torch as th
from re import compile
th.load("f.pt", weights_only=True)
re.compile("a+")
compile("a+")
self._torch.load(theta)
np.lib.format.read_array(f, allow_pickle=False)
"""
    assert scan(ok, "ok.py") == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_package_module_is_free_of_unsafe_loading(path: Path) -> None:
    assert scan(path.read_text(), str(path.relative_to(PACKAGE))) == []
