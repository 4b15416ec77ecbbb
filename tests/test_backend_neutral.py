"""Issue 15 item 4: no module outside ``evostrat/backends/`` tests which array library it has.

Library-specific choices (numpy kernels, JAX's ``searchsorted`` method, torch's eager vmap) are
asked of the backend (:attr:`Backend.host_arrays`, :attr:`Backend.eager_vmap`,
:mod:`evostrat.backends.namespaces`). The adapters whose subject is one library's own objects
(a torch ``nn.Module``'s parameters, a gymnax environment) are the listed exceptions.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from evostrat.backends import get_backend

PACKAGE = Path(__file__).resolve().parents[1] / "evostrat"
LIBRARY_TEST = re.compile(
    r"is_(jax|torch|numpy)_(namespace|array)"  # array_api_compat's library tests
    r"|\.name\s*(==|!=)\s*[\"'](numpy|torch|jax)[\"']"  # a backend's registry name
    r"|isinstance\([^)]*(torch\.Tensor|jax\.Array)")  # an array type
#: module -> why it may: its subject is that library's own objects
ADAPTERS = {
    "params_flat.py": "flattens a torch nn.Module's parameters",
    "problems/gymnax.py": "steps gymnax (JAX) environments",
}


def test_no_module_outside_backends_tests_the_array_library() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("backends/") or rel in ADAPTERS:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if LIBRARY_TEST.search(line):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert found == []


def test_the_pattern_catches_what_it_forbids() -> None:
    for line in ('if backend.name == "numpy":', "array_api_compat.is_jax_namespace(xp)",
                 "isinstance(v, torch.Tensor)"):
        assert LIBRARY_TEST.search(line)
    assert not LIBRARY_TEST.search("if backend.host_arrays:")


def test_capabilities_of_the_built_in_backends() -> None:
    numpy = get_backend("numpy")
    assert numpy.host_arrays and not numpy.eager_vmap
    assert numpy.owns(np.zeros(2))
    try:
        torch_backend = get_backend("torch")
    except Exception:  # noqa: BLE001 - torch not installed
        return
    import torch

    assert torch_backend.eager_vmap and not torch_backend.host_arrays
    doubled = torch_backend.vmap(lambda v: 2 * v)(torch.ones(3, 2))
    assert torch.equal(doubled, torch.full((3, 2), 2.0))
