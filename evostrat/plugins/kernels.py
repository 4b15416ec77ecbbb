"""Built-in kernel plugin: CMA-ES and sep-CMA-ES on numpy arrays (:mod:`evostrat.kernels.cma_numpy`,
:mod:`evostrat.kernels.sep_cma_numpy`), and CMA-ES and sep-CMA-ES over a torch batch's stacked runs
(:mod:`evostrat.kernels.cma_torch_stack`), and the host read-outs of a torch run of either
(:mod:`evostrat.kernels.cma_torch`)."""

from __future__ import annotations

from typing import Any

from evostrat.hookspecs import hookimpl


@hookimpl(trylast=True)
def evostrat_kernel(strategy: Any, backend: Any) -> Any | None:
    from evostrat.strategies.cma_es import CMAES

    if backend.host_arrays and isinstance(strategy, CMAES) and strategy.numpy_kernel:
        from evostrat.kernels import cma_numpy

        return cma_numpy.kernel(strategy)
    from evostrat.strategies.sep_cma_es import SepCMAES

    if backend.host_arrays and isinstance(strategy, SepCMAES) and strategy.numpy_kernel:
        from evostrat.kernels import sep_cma_numpy

        return sep_cma_numpy.kernel(strategy)
    if backend.torch_tensors and isinstance(strategy, (CMAES, SepCMAES)):
        from evostrat.kernels import cma_torch

        if cma_torch.applies(strategy):  # read-outs on the host, the generic ask and tell
            return cma_torch.kernel(strategy)
    return None


@hookimpl(trylast=True)
def evostrat_stack_kernel(strategy: Any, backend: Any) -> Any | None:
    if backend.torch_tensors:
        from evostrat.kernels import cma_torch_stack

        if cma_torch_stack.applies(strategy):  # a CMAES or SepCMAES overriding none of its steps
            return cma_torch_stack.kernel(strategy, backend)
    return None
