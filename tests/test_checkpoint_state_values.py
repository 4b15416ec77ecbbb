"""Checkpoints whose strategy state or best candidate holds NaN/inf or an inconsistent CMA model.

Forged with a recomputed digest (only the loader's value checks can refuse them). Before
these checks, a CMA-ES checkpoint with a NaN covariance behind a finite cached diagonal
loaded and failed at the next eigendecomposition (numpy's ``LinAlgError``); NaN in any other
state array, or in the best candidate, loaded silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from evostrat import ES
from evostrat.checkpoint import load_checkpoint, save_checkpoint
from evostrat.checkpoint.format import write_checkpoint
from evostrat.checkpoint.state import capture
from evostrat.errors import CheckpointError
from evostrat.plugins import registry
from evostrat.problems import ellipsoid


def _run(strategy: str, dim: int = 4, generations: int = 6, **params: Any) -> ES:
    es = ES(strategy, max_generations=100, random_state=0, **params).initialize(np.full(dim, 2.0))
    for _ in range(generations):
        X = es.ask()
        es.tell(X, ellipsoid(X))
    return es


def _forged(tmp_path: Path, es: ES, edit: Callable[[dict[str, np.ndarray]], None]) -> Path:
    meta, arrays = capture(es)
    edit(arrays)
    path = tmp_path / "forged.ckpt"
    write_checkpoint(path, meta, arrays)  # index and digest recomputed
    return path


def _set(name: str, change: Callable[[np.ndarray], np.ndarray]) -> Callable[[dict[str, np.ndarray]], None]:
    return lambda a: a.__setitem__(name, change(a[name].copy()))


def _put(index: Any, value: float) -> Callable[[np.ndarray], np.ndarray]:
    def change(a: np.ndarray) -> np.ndarray:
        a[index] = value
        return a
    return change


def _asym(C: np.ndarray) -> np.ndarray:
    C[0, 1] += 0.5
    return C


def _sym_shift(C: np.ndarray) -> np.ndarray:  # symmetric, same diagonal: only B and D disagree
    C[0, 1] += 0.5
    C[1, 0] += 0.5
    return C


def _rotate(B: np.ndarray) -> np.ndarray:
    return B * 1.5


FORGERIES = [
    # the reported case: NaN in C, whose cached diagonal (what sigma is read from) stays finite
    ("cma_es", "C nan", _set("state/C", _put((0, 1), np.nan)), r"state array 'C' holds 1 NaN or infinite value"),
    ("cma_es", "C inf", _set("state/C", _put((2, 2), np.inf)), r"state array 'C' holds 1 NaN or infinite value"),
    ("cma_es", "pc nan", _set("state/pc", _put(0, np.nan)), r"state array 'pc' holds 1 NaN"),
    ("cma_es", "queue inf", _set("state/queue", _put((0, 0, 0), np.inf)), r"state array 'queue' holds 1 NaN"),
    ("cma_es", "C asymmetric", _set("state/C", _asym), r"state array 'C' \(the covariance matrix\) is not symmetric"),
    ("cma_es", "diag_C", _set("state/diag_C", lambda d: d * 2.0), r"state array 'diag_C' .* disagrees with diag\(C\)"),
    ("cma_es", "D negative", _set("state/D", lambda d: -d), r"state array 'D' .* holds values <= 0"),
    ("cma_es", "D zero", _set("state/D", _put(1, 0.0)), r"state array 'D' .* holds values <= 0"),
    ("cma_es", "B not orthonormal", _set("state/B", _rotate), r"state array 'B' .* is not orthonormal"),
    ("cma_es", "C not B D^2 B^T", _set("state/C", _sym_shift),
     r"state array 'C' .* is not B diag\(D\)\^2 B\^T, its cached decomposition"),
    ("sep_cma_es", "sep C negative", _set("state/C", _put(1, -0.5)), r"state array 'C' \(the diagonal covariance\) holds values <= 0"),
    ("sep_cma_es", "sep ps nan", _set("state/ps", _put(0, np.nan)), r"state array 'ps' holds 1 NaN"),
    ("openai_es", "adam moment nan", _set("state/opt.v", _put(0, np.nan)), r"state array 'opt.v' holds 1 NaN"),
    ("vkd_cma", "vkd buffer inf", _set("state/drift", _put(0, -np.inf)), r"state array 'drift' holds 1 NaN"),
    ("lm_ma_es", "lm_ma_es M nan", _set("state/M", _put((0, 0), np.nan)), r"state array 'M' holds 1 NaN"),
    ("snes", "best_x nan", _set("best_x", _put(1, np.nan)), r"field 'best_x' \(the best candidate\) holds NaN"),
]


@pytest.mark.parametrize("strategy, edit, message", [(f[0], *f[2:]) for f in FORGERIES], ids=[f[1] for f in FORGERIES])
def test_nonfinite_or_inconsistent_state_is_refused_naming_the_array(
        tmp_path: Path, strategy: str, edit: Callable, message: str) -> None:
    path = _forged(tmp_path, _run(strategy), edit)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_nan_covariance_was_what_failed_the_resumed_run(tmp_path: Path) -> None:
    """The message names the array, where the load used to succeed and the next tell raise LinAlgError."""
    path = _forged(tmp_path, _run("cma_es", strategy_options={"lazy_eigen": False}), _set("state/C", _put((0, 1), np.nan)))
    with pytest.raises(CheckpointError, match=r"not a valid cma_es state: state array 'C' holds 1 NaN or infinite "
                                              r"value\(s\) of 16; a strategy state must be finite"):
        load_checkpoint(path)


FACTOR_DIM = 256


@pytest.mark.parametrize("edit, message", [
    (_set("state/A_inv", lambda a: a * 1.01), r"state array 'A_inv' \(the inverse of A\) is not A's inverse"),
    (_set("state/diag_C", lambda d: d * 1.5), r"state array 'diag_C' .* disagrees with scale\^2 diag\(A A\^T\)"),
    (_set("state/scale", lambda s: -s), r"state array 'scale' .* must be > 0"),
    (_set("state/A", _put((3, 3), np.nan)), r"state array 'A' holds 1 NaN"),
], ids=["A_inv", "diag_C", "scale", "A nan"])
def test_inconsistent_factor_model_is_refused(tmp_path: Path, edit: Callable, message: str) -> None:
    es = _run("cma_es", dim=FACTOR_DIM, generations=2)
    assert "A" in es.run_.runner.state_dict()["arrays"]  # covariance="auto": the factor model at this dim
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(_forged(tmp_path, es, edit))


def test_factor_model_before_its_first_ask_loads_with_its_nan_population(tmp_path: Path) -> None:
    """``asked`` is NaN until the first ask (nonfinite_state_fields): that checkpoint is valid."""
    es = _run("cma_es", dim=FACTOR_DIM, generations=0)
    assert np.isnan(es.run_.runner.state_dict()["arrays"]["asked"]).all()
    save_checkpoint(es, tmp_path / "fresh.ckpt")
    back = load_checkpoint(tmp_path / "fresh.ckpt")
    assert np.array_equal(back.ask(), es.ask())


@pytest.mark.parametrize("backend", ["numpy", "torch", pytest.param("jax", marks=pytest.mark.slow)])  # jax: 50 s
def test_every_strategy_checkpoint_still_loads_and_resumes_exactly(tmp_path: Path, backend: str) -> None:
    if backend != "numpy":
        pytest.importorskip(backend)
    for strategy in sorted(registry("strategies")):
        for generations in (0, 5):
            es = ES(strategy, max_generations=100, random_state=3, backend=backend).initialize(np.full(5, 2.0))
            for _ in range(generations):
                X = es.ask()
                es.tell(X, ellipsoid(np.asarray(X.tolist())))
            path = tmp_path / f"{strategy}-{generations}.ckpt"
            save_checkpoint(es, path)
            back = load_checkpoint(path)
            assert back.n_generations_ == generations, strategy
            assert np.array_equal(np.asarray(back.ask().tolist()), np.asarray(es.ask().tolist())), strategy
