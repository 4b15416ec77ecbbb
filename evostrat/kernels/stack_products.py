"""Products of many runs' operands summed as each run's single product, on the CPU.

The torch stack kernel (:mod:`evostrat.kernels.cma_torch_stack`) multiplies every run's operands at
once, and each run must get the bits its lone run's ``a @ b`` gives. torch sums a tiny batched
product (``k m n`` below :data:`BLAS_SIZE`) in its own loop and a single one in the BLAS, which on
some CPUs sums in another order or rounds its products apart (fused or not). :func:`product` takes
the first way that sums as the single product for the operands' layout (:func:`way`, found once per
layout on :data:`PROBE_RUNS` runs of random operands): one batched product, one batched product
padded to the BLAS's size, or run by run. Elsewhere than the CPU it is always one batched product.

Examples
--------
>>> import torch
>>> a, b = torch.ones(3, 2, 4, dtype=torch.float64), torch.ones(3, 4, dtype=torch.float64)
>>> product(a, b).tolist() == [[4.0, 4.0]] * 3
True
"""

from __future__ import annotations

import threading
from typing import Any

import torch

__all__ = ["BLAS_SIZE", "PROBE_RUNS", "batched", "padded", "probe_like", "product", "run_by_run", "way"]


def product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a[r] @ b[r]`` for every run ``r`` (each a matrix or a vector, as the lone run's operands),
    summed as the lone run's product is, in the first way of :func:`way` that does so: one
    batched product, one batched product padded to the BLAS's size, or run by run. On the CPU
    only: elsewhere always one batched product."""
    if not a.is_cpu:
        return batched(a, b)
    chosen = way(a, b)
    if chosen == "batched":
        return batched(a, b)
    return padded(a, b) if chosen == "padded" else run_by_run(a, b)


def run_by_run(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a[r] @ b[r]`` for every run ``r``, each the lone run's single product."""
    return torch.stack([x @ y for x, y in zip(a, b)])


def batched(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a[r] @ b[r]`` for every run ``r`` in one batched product."""
    if a.ndim == 2:
        return (a.unsqueeze(1) @ b).select(1, 0)
    return (a @ b.unsqueeze(2)).select(2, 0) if b.ndim == 2 else a @ b


#: torch sums a batched product of ``k m n`` below this in its own loop, above it in the BLAS (ATen's ``bmm``).
BLAS_SIZE = 400


def padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """:func:`batched` with zero rows added to ``a`` (zero columns to a vector ``b``), each
    operand in its own layout, so that torch sums the product in the BLAS, as a single one."""
    if b.ndim == 2:  # matrix @ vector: the vector a column of zeros
        cols = -(-BLAS_SIZE // (a.shape[1] * a.shape[2]))
        V = _zeros(b, (b.shape[0], cols, b.shape[1])).mT
        V.select(2, 0).copy_(b)
        return (a @ V).select(2, 0)
    if a.ndim == 2:  # vector @ matrix: the vector a row of zeros
        P = _zeros(a, (a.shape[0], -(-BLAS_SIZE // (a.shape[1] * b.shape[2])), a.shape[1]))
        P.select(1, 0).copy_(a)
        return (P @ b).select(1, 0)
    runs, rows, k = a.shape
    height = max(rows, -(-BLAS_SIZE // (k * b.shape[2])))
    column_major = rows > 1 and a.stride(1) == 1
    P = _zeros(a, (runs, k, height), rows).mT if column_major else _zeros(a, (runs, height, k), rows)
    P.narrow(1, 0, rows).copy_(a)
    return (P @ b).narrow(1, 0, rows)


#: This thread's zero buffers of :func:`padded` by shape and dtype (its operands are copied into
#: the same rows each time, the padding stays zero): not made and zeroed for every product.
_BUFFERS = threading.local()


def _zeros(like: torch.Tensor, shape: tuple[int, ...], rows: int = 1) -> torch.Tensor:
    """A zero tensor of ``shape`` of ``like``'s dtype on the CPU, this thread's own, kept from call
    to call for products that write the same ``rows`` of it (overwritten each time; the rest stays 0)."""
    buffers = getattr(_BUFFERS, "by_shape", None)
    if buffers is None or len(buffers) > 64:  # (a batch's runs dropping make new shapes)
        _BUFFERS.by_shape = buffers = {}
    key = (shape, like.dtype, rows)
    zeros = buffers.get(key)
    if zeros is None:
        buffers[key] = zeros = like.new_zeros(shape)
    return zeros


#: Operand layouts (shapes, strides, dtype) -> the first way of :func:`product` that sums as a single product.
_WAYS: dict[tuple[Any, ...], str] = {}


def way(a: torch.Tensor, b: torch.Tensor) -> str:
    """How :func:`product` multiplies operands laid out as ``a`` and ``b`` so that each run gets
    the single product's bits: ``"batched"``, ``"padded"`` or ``"run by run"``, found once per
    layout on :data:`PROBE_RUNS` runs of random operands. It depends on the CPU and the sizes: torch sums tiny batched
    products (``k m n`` below :data:`BLAS_SIZE`) in its own loop, single ones in the BLAS, which
    on some CPUs sums in another order (an AVX-512 Xeon with MKL 2024.2: the vector products at
    d = 10-20, every product at d = 4-6)."""
    key = (a.shape[1:], a.stride()[1:], b.shape[1:], b.stride()[1:], a.dtype)
    found = _WAYS.get(key)
    if found is None:
        draw = torch.Generator().manual_seed(0)
        x, y = (probe_like(v).normal_(generator=draw) for v in (a, b))  # the operands' layouts, PROBE_RUNS runs
        single = run_by_run(x, y)
        found = next((name for name, multiply in (("batched", batched), ("padded", padded))
                      if torch.equal(multiply(x, y), single)), "run by run")
        _WAYS[key] = found
    return found


#: Runs of random operands :func:`way` compares on, whatever the batch's size: two ways that sum alike
#: but round a product apart (fused or not) agree on a few values (at d = 5 on a third of them), so
#: four runs of a small batch once passed a product that is not the single one.
PROBE_RUNS = 64


def probe_like(v: torch.Tensor) -> torch.Tensor:
    """An uninitialised tensor of :data:`PROBE_RUNS` runs, each laid out as a run of ``v``."""
    span = 1 + sum((size - 1) * stride for size, stride in zip(v.shape[1:], v.stride()[1:]))
    step = v.stride(0) if v.shape[0] > 1 and v.stride(0) >= span else span
    return torch.empty_strided((PROBE_RUNS,) + tuple(v.shape[1:]), (step,) + tuple(v.stride()[1:]), dtype=v.dtype)
