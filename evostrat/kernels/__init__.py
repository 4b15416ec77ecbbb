"""Backend-specific fast paths of strategies, chosen by the ``evostrat_kernel`` hook.

A strategy is written once over the Array API namespace. A *kernel* is a
faster ``ask``/``tell`` pair for one strategy on one backend, offered by a
plugin through :func:`evostrat.hookspecs.evostrat_kernel` (first result wins;
evostrat's own kernels are ``trylast``). Strategies call :func:`resolve_kernel`
once per instance and array type and fall back to their generic code when it
returns ``None``.

Built-in kernels:

- :mod:`evostrat.kernels.cma_numpy`: CMA-ES on numpy arrays, bit-identical to
  the generic steps of :mod:`evostrat.strategies.cma_base`.
- :mod:`evostrat.kernels.sep_cma_numpy`: sep-CMA-ES on numpy arrays, likewise.
- :mod:`evostrat.kernels.cma_torch`: the criteria (``stop``) and a history row's sigma of
  CMA-ES and sep-CMA-ES on torch tensors, decided on the host (``ask`` and ``tell`` generic).

A *stack kernel* (``evostrat_stack_kernel`` hook, :func:`resolve_stack_kernel`) computes
a strategy's ``ask``, ``tell`` and read-outs for the stacked states of a batch of runs
at once (:mod:`evostrat.kernels.cma_torch_stack`: CMA-ES and sep-CMA-ES on torch).

Examples
--------
>>> import numpy as np
>>> from evostrat.backends import get_backend
>>> from evostrat.strategies.cma_es import CMAES
>>> from evostrat.strategies.snes import SNES
>>> resolve_kernel(CMAES(), get_backend("numpy")) is not None
True
>>> resolve_kernel(SNES(), get_backend("numpy")) is None
True
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from evostrat.backends.trees import field_names
from evostrat.errors import PluginError
from evostrat.plugins import answering_plugin, get_plugin_manager

__all__ = ["Kernel", "StackKernel", "dispatches", "kernel_program", "resolve_kernel", "resolve_stack_kernel",
           "row_sigma"]


class Kernel(NamedTuple):
    """A kernel: ``ask(state) -> (X, state)`` and ``tell(state, X, fitness) -> state``,
    optionally the read-outs ``sigma(state)`` and ``stop(state)`` (``None``: the strategy's own)
    and ``host_sigma(state)``: ``float(sigma(state))`` read directly (the run's history rows).
    ``sigma_parts(state)`` and ``host_sigmas(parts)`` defer that read: what ``sigma`` needs of
    a state (arrays never changed in place), then the floats of many, in order, as
    ``host_sigma`` would give them (an ask/tell loop reads its rows' sigmas when they are
    signed, not each generation).

    All are bound to one strategy instance (e.g. ``functools.partial``) and must
    give what the strategy's generic methods give.
    """

    ask: Callable[[Any], tuple[Any, Any]]
    tell: Callable[[Any, Any, Any], Any]
    sigma: Callable[[Any], Any] | None = None
    stop: Callable[[Any], dict[str, Any]] | None = None
    host_sigma: Callable[[Any], float] | None = None
    sigma_parts: Callable[[Any], Any] | None = None
    host_sigmas: Callable[[list[Any]], list[float]] | None = None


class StackKernel(NamedTuple):
    """A stack kernel: ``ask(state) -> (X, state)``, ``tell(state, X, fitness) -> state`` and
    ``read(state) -> (sigma, {name: flags})`` over a *stacked state* (every array leaf with a
    leading runs axis, the key a ``(runs, 2)`` array of host keys; see
    :func:`evostrat.hookspecs.evostrat_stack_kernel`), bound to one strategy instance."""

    ask: Callable[[Any], tuple[Any, Any]]
    tell: Callable[[Any, Any, Any], Any]
    read: Callable[[Any], tuple[Any, dict[str, Any]]]


def resolve_stack_kernel(strategy: Any, backend: Any) -> Any | None:
    """The stack kernel plugins offer for ``strategy`` on ``backend``, or ``None`` (the
    ``evostrat_stack_kernel`` hook; :class:`~evostrat.run.batch_stack.StackedMethods` then maps
    the strategy's own methods).

    Examples
    --------
    >>> from evostrat.backends import get_backend
    >>> from evostrat.strategies.snes import SNES
    >>> resolve_stack_kernel(SNES(), get_backend("numpy")) is None
    True
    """
    answer = get_plugin_manager().hook.evostrat_stack_kernel(strategy=strategy, backend=backend)
    return None if answer is None else _as(StackKernel, answer, "evostrat_stack_kernel", strategy, backend)


def resolve_kernel(strategy: Any, backend: Any) -> Any | None:
    """The kernel (``ask`` and ``tell``) plugins offer for ``strategy`` on ``backend``, or ``None``.

    Calls the ``evostrat_kernel`` hook; the caller keeps the answer (see
    :meth:`evostrat.strategies.cma_base.CMABase.kernel`). An answer that is not a
    :class:`Kernel` but has ``ask`` and ``tell`` (and any of its optional read-outs) is taken
    as one; an answer without them is a :class:`~evostrat.errors.PluginError` naming the plugin.
    """
    answer = get_plugin_manager().hook.evostrat_kernel(strategy=strategy, backend=backend)
    return None if answer is None else _as(Kernel, answer, "evostrat_kernel", strategy, backend)


def _as(kind: Any, answer: Any, hook_name: str, strategy: Any, backend: Any) -> Any:
    """``answer`` of ``hook_name`` as a ``kind`` (:class:`Kernel` or :class:`StackKernel`): itself,
    or its attributes of the fields' names; missing or uncallable required ones are refused."""
    if isinstance(answer, kind):
        return answer
    required = ["ask", "tell"] + (["read"] if kind is StackKernel else [])  # the fields without default
    missing = [f for f in required if not callable(getattr(answer, f, None))]
    fields = {f: getattr(answer, f, None) for f in field_names(kind)}
    wrong = [f for f, v in fields.items() if v is not None and not callable(v) and f not in missing]
    if missing or wrong:
        who = answering_plugin(hook_name, strategy=strategy, backend=backend)
        problem = (f"no method {' and no method '.join(missing)}" if missing
                   else f"{', '.join(wrong)} that is not callable")
        raise PluginError(
            f"{who}: {hook_name}() answered for strategy {strategy.name!r} on {backend.name} with a "
            f"{type(answer).__name__}, which has {problem}; return "
            f"evostrat.kernels.{kind.__name__}({', '.join(f'{f}=...' for f in required)}) or None")
    return kind(**fields)


def row_sigma(kernel: Kernel | None, sigma_of: Callable[[Any], float]) -> tuple[
        Callable[[Any], Any], Callable[[list[Any]], list[float]] | None]:
    """``(keep, read)``: how a run's history row gets a state's sigma as a Python float.

    With a kernel's ``sigma_parts`` and ``host_sigmas``, ``keep`` is ``sigma_parts`` and
    ``read`` turns the kept parts of many rows into their sigmas at once; otherwise ``keep``
    reads the float now (the kernel's ``host_sigma``, else ``sigma_of``) and ``read`` is ``None``.

    Examples
    --------
    >>> keep, read = row_sigma(None, float)
    >>> keep(2), read
    (2.0, None)
    """
    if kernel is not None and kernel.sigma_parts is not None and kernel.host_sigmas is not None:
        return kernel.sigma_parts, kernel.host_sigmas
    return (None if kernel is None else kernel.host_sigma) or sigma_of, None


def dispatches(method: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a strategy's ``ask`` or ``tell`` that runs the state's kernel (``self.kernel(state)``)
    when there is one, that kernel's ``ask(state)`` or ``tell(state, X, fitness)`` and nothing
    else (:meth:`CMABase.ask <evostrat.strategies.cma_base.CMABase.ask>`): :func:`kernel_program`
    may then hand out the kernel's function itself. A subclass that overrides the method is not marked."""
    method.dispatches_to_kernel = True  # type: ignore[attr-defined]
    return method


def kernel_program(strategy: Any, method: Callable[..., Any], state: Any) -> Callable[..., Any]:
    """What the bound ``method`` of ``strategy`` (its ``ask``, or its ``tell`` without the shape
    check, :func:`~evostrat.strategies.told.unchecked_tell`) runs on states like ``state``: its
    kernel's function when ``method`` is marked by :func:`dispatches` and ``strategy.kernel(state)``
    gives one (the same results, without the per-call kernel look-up), else ``method``.

    The kernel is the one of this moment: a caller keeps the answer only while nothing changes the
    strategy's hyper-parameters (a strategy made for one run, as the driver's are).

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat.strategies.cma_es import CMAES
    >>> from evostrat.strategies.snes import SNES
    >>> s = CMAES()
    >>> state = s.init(np.ones(3), random_state=0)
    >>> kernel_program(s, s.ask, state) is s.kernel(state).ask
    True
    >>> kernel_program(s, s.tell, state) == s.tell  # the shape-checked tell stays itself
    True
    >>> snes = SNES()
    >>> kernel_program(snes, snes.ask, snes.init(np.ones(3), random_state=0)) == snes.ask
    True
    """
    func = getattr(method, "__func__", None)
    if not getattr(func, "dispatches_to_kernel", False) or getattr(func, "__told_checked__", False):
        return method
    kernel = strategy.kernel(state)
    return method if kernel is None else getattr(kernel, func.__name__)
