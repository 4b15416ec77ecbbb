"""Static scan: no unsafe deserialisation or dynamic code execution in the package.

Loading user-supplied files (checkpoints, state dicts, logs) must never go
through pickle, and the package must not evaluate strings as code. The scan
walks the syntax tree of every module under ``evostrat/`` (comments and
docstrings cannot trigger it) and flags:

- ``pickle``/``cPickle``/``dill``/``marshal``/``shelve``/``cloudpickle`` loads
  (``load``, ``loads``, ``Unpickler``), called or imported by name (shipping a
  function to a worker process with ``dumps`` is not loading a user's file);
- ``torch.load`` without ``weights_only=True``;
- ``numpy.load`` with ``allow_pickle=True``;
- calls of the built-ins ``eval``, ``exec`` and ``compile``; ``yaml.load``
  without a safe loader.
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


def scan(source: str, filename: str) -> list[str]:
    """Findings (``file:line: what``) in one module's source."""
    findings = []
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom):
            loaders = {a.name for a in node.names} & {"load", "loads", "Unpickler"}
            if (node.module or "").split(".")[0] in UNSAFE_MODULES and loaders:
                findings.append(f"{where}: imports {sorted(loaders)} from {node.module}")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            last = name.rsplit(".", 1)[-1]
            if name in {"eval", "exec", "compile"}:
                findings.append(f"{where}: calls {name}()")
            elif name.split(".")[0] in UNSAFE_MODULES and last in {"load", "loads", "Unpickler"}:
                findings.append(f"{where}: calls {name}()")
            elif name == "torch.load" and not _is_true(_keyword(node, "weights_only")):
                findings.append(f"{where}: torch.load without weights_only=True")
            elif name in {"np.load", "numpy.load"} and _is_true(_keyword(node, "allow_pickle")):
                findings.append(f"{where}: {name} with allow_pickle=True")
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


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_package_module_is_free_of_unsafe_loading(path: Path) -> None:
    assert scan(path.read_text(), str(path.relative_to(PACKAGE))) == []
