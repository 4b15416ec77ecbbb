"""The suite's shared JAX compilation cache (``tests/conftest.py``): where it goes, who prunes it."""

from __future__ import annotations

import os

from conftest import (
    JAX_CACHE_OWNER_VARIABLE,
    JAX_CACHE_VARIABLE,
    prune_jax_compilations,
    share_jax_compilations,
)


def test_the_first_process_chooses_the_folder_and_its_workers_inherit_it(tmp_path):
    environ = {"XDG_CACHE_HOME": str(tmp_path)}
    folder = share_jax_compilations(environ)
    assert folder == os.path.join(str(tmp_path), "evostrat", "jax-test-compilations")
    assert environ["JAX_COMPILATION_CACHE_DIR"] == folder
    assert environ[JAX_CACHE_OWNER_VARIABLE] == str(os.getpid())
    assert "JAX_COMPILATION_CACHE_MAX_SIZE" not in environ  # JAX's size limit locks every lookup
    worker = {k: v for k, v in environ.items() if k != JAX_CACHE_OWNER_VARIABLE}
    worker["XDG_CACHE_HOME"] = str(tmp_path / "elsewhere")
    assert share_jax_compilations(worker) == folder  # inherited, not chosen again
    assert JAX_CACHE_OWNER_VARIABLE not in worker  # so a worker never prunes


def test_a_named_folder_or_off(tmp_path):
    environ = {JAX_CACHE_VARIABLE: str(tmp_path / "mine")}
    assert share_jax_compilations(environ) == str(tmp_path / "mine")
    off = {JAX_CACHE_VARIABLE: "off"}
    assert share_jax_compilations(off) is None and "JAX_COMPILATION_CACHE_DIR" not in off


def test_pruning_deletes_the_oldest_programs_once_the_folder_has_doubled(tmp_path):
    def program(name: str, size: int, age: int) -> None:
        path = tmp_path / f"jit_{name}-cache"
        path.write_bytes(b"x" * size)
        os.utime(path, (1_000_000 - age, 1_000_000 - age))

    for i in range(4):
        program(f"p{i}", 100, age=i)  # p3 oldest
    (tmp_path / "jit_p0-atime").write_bytes(b"12345678")
    (tmp_path / "notes.txt").write_text("not the cache's")
    assert prune_jax_compilations(str(tmp_path), keep_bytes=200) == 1  # 400 bytes: not past 2 x 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jit_p0-cache", "jit_p1-cache", "jit_p2-cache",
                                                          "jit_p3-cache", "notes.txt"]
    program("p4", 100, age=10)  # 500 bytes: past 400, down to 200, oldest first
    assert prune_jax_compilations(str(tmp_path), keep_bytes=200) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jit_p0-cache", "jit_p1-cache", "notes.txt"]
    assert prune_jax_compilations(str(tmp_path / "missing")) == 0
