"""A torch batch's strategy states as one stack, and the strategy's pure methods over all of it.

Used by :mod:`evostrat.run.batch_torch`. The runs of a group (one strategy, population
size, dimension, dtype and device) keep their states as a :class:`RunStack`: every
tensor leaf stacked along a leading runs axis, the runs' host keys as one array. :class:`StackedMethods`
calls the strategy's ``ask``, ``tell``, ``sigma`` and ``stop`` once for all the runs under
the backend's ``vmap`` (``torch.func.vmap``):

- ``ask``: the state's key is a :class:`~evostrat.backends.key_batch.KeyBatch`, so each run
  splits and draws from its own key exactly as alone (its candidates are the lone run's,
  to the rounding of the batched arithmetic that turns the draws into candidates);
- ``tell``: the stacked states, populations and values (the keys pass through unchanged);
- ``sigma`` and ``stop``: the read-outs each run's generation records.

A method that does not map (data-dependent control flow outside ``Backend.cond``, an op
without a batching rule, a value read on the host, a key used other than through the
backend) returns ``None`` from then on, and the caller does that step run by run.

Examples
--------
>>> import torch
>>> from evostrat.strategies.snes import SNES
>>> from evostrat.backends import get_backend
>>> s, be = SNES(popsize=4), get_backend(torch.zeros(3))
>>> states = [s.init(torch.zeros(3, dtype=torch.float64), random_state=i) for i in range(2)]
>>> X, asked = StackedMethods(s, be).ask(RunStack(states, be))
>>> bool(torch.equal(X[1], s.ask(states[1])[0]))
True
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from evostrat.backends.key_batch import KeyBatch
from evostrat.backends.trees import tree_leaves, tree_with_leaves
from evostrat.kernels import resolve_stack_kernel
from evostrat.strategies.checked import checked_ask, checked_first, checked_state

__all__ = ["RunStack", "StackedMethods", "StackedRun"]


class RunStack:
    """The states of a group's running runs: tensor leaves stacked (leading runs axis), host
    leaves by column (the runs' keys as one ``(runs, 2)`` uint64 array, another host leaf as
    a list of the runs' values).

    Parameters
    ----------
    states : sequence of NamedTuple
        One state per run, of one strategy (the same structure and shapes).
    backend : Backend
    """

    def __init__(self, states: Sequence[Any], backend: Any, *, _parts: Any = None, _state: Any = None) -> None:
        self.backend = backend
        self._state = _state  # the stack as one state (:meth:`as_state`), once built or given
        if _parts is not None:  # (template, tensor_at, tensors, hosts) of a new generation
            self.template, self.tensor_at, self._tensors, self._hosts = _parts
            return
        leaves = [tree_leaves(s) for s in states]
        self.template = states[0]
        self.tensor_at = tuple(backend.owns(v) for v in leaves[0])
        stack = backend.xp.stack
        self._tensors = tuple(stack([run[i] for run in leaves]) for i, t in enumerate(self.tensor_at) if t)
        self._hosts = [_host_column([run[i] for run in leaves], backend)
                       for i, t in enumerate(self.tensor_at) if not t]

    @property
    def tensors(self) -> tuple[Any, ...]:
        """The stacked tensor leaves, in the state's order (leading runs axis)."""
        if self._tensors is None:
            self._leaves_of_state()
        return self._tensors

    @property
    def hosts(self) -> list[Any]:
        """The host leaves by column (the keys a ``(runs, 2)`` array), in the state's order."""
        if self._hosts is None:
            self._leaves_of_state()
        return self._hosts

    def _leaves_of_state(self) -> None:
        """The tensor and host leaves of a stack made from a state (:meth:`with_state`), when first read."""
        leaves = tree_leaves(self._state)
        self._tensors = tuple(v for v, t in zip(leaves, self.tensor_at) if t)
        self._hosts = [v for v, t in zip(leaves, self.tensor_at) if not t]

    def __len__(self) -> int:
        return int(self.tensors[0].shape[0])

    def with_parts(self, tensors: tuple[Any, ...], hosts: list[Any]) -> "RunStack":
        """The same runs with new stacked tensor leaves and host columns."""
        return RunStack((), self.backend, _parts=(self.template, self.tensor_at, tuple(tensors), hosts))

    def state(self, tensors: Sequence[Any], hosts: Sequence[Any]) -> Any:
        """A state of the template's structure from tensor leaves and host leaves, in order."""
        t, h = iter(tensors), iter(hosts)
        return tree_with_leaves(self.template, [next(t) if is_tensor else next(h) for is_tensor in self.tensor_at])

    def as_state(self) -> Any:
        """The stack as one state of the template's structure: tensor leaves with the leading runs
        axis, host leaves by column (the keys a ``(runs, 2)`` array): a stack kernel's state
        (built once; a stack of :meth:`with_state` gives that state back)."""
        if self._state is None:
            self._state = self.state(self.tensors, self.hosts)
        return self._state

    def with_state(self, state: Any) -> "RunStack":
        """The stack of :meth:`as_state`'s structure ``state`` (a stack kernel's result): held as it
        is, its leaves taken apart only when :attr:`tensors` or :attr:`hosts` is read (a stack
        kernel's generation reads neither)."""
        return RunStack((), self.backend, _parts=(self.template, self.tensor_at, None, None), _state=state)

    def host_row(self, index: int, copy: bool = False) -> list[Any]:
        """Run ``index``'s host leaves (a key as a view of its column; ``copy``: its own array)."""
        return [(c[index].copy() if copy else c[index]) if isinstance(c, np.ndarray) else c[index]
                for c in self.hosts]

    def run_state(self, index: int, copy: bool = False) -> Any:
        """Run ``index``'s state (views into the stack; ``copy``: its own memory)."""
        return self.state([(x[index].clone() if copy else x[index]) for x in self.tensors],
                          self.host_row(index, copy))

    def keep(self, rows: Sequence[int]) -> "RunStack":
        """The stack of runs ``rows`` only, in that order."""
        be = self.backend
        index = be.asarray(list(rows), dtype=be.xp.int64, device=be.device(self.tensors[0]))
        return self.with_parts(tuple(be.xp.take(x, index, axis=0) for x in self.tensors),
                               [c[list(rows)] if isinstance(c, np.ndarray) else [c[i] for i in rows]
                                for c in self.hosts])

    def split(self) -> list[Any]:
        """Every run's state (views into the stack)."""
        columns = [x.unbind(0) if hasattr(x, "unbind") else list(x) for x in self.tensors]
        return [self.state([c[i] for c in columns], self.host_row(i)) for i in range(len(self))]


def _host_column(values: list[Any], backend: Any) -> Any:
    """The runs' values of one host leaf: keys as one ``(runs, 2)`` array, anything else as a list."""
    return np.stack(values) if all(backend.is_key(v) for v in values) else values


class StackedRun:
    """Run ``index``'s state in a :class:`RunStack`, for :meth:`AskTell.advance
    <evostrat.run.asktell.AskTell.advance>`: split out when the runner's ``state`` is read."""

    def __init__(self, stack: RunStack, index: int) -> None:
        self.stack, self.index = stack, index

    def resolve(self) -> Any:
        """The run's state, in its own memory (not a view that keeps the whole stack alive)."""
        return self.stack.run_state(self.index, copy=True)


class StackedMethods:
    """The strategy's pure ``ask``, ``tell``, ``sigma`` and ``stop`` over a :class:`RunStack`.

    A stack kernel a plugin offers for the strategy (``evostrat_stack_kernel``, e.g. CMA-ES and
    sep-CMA-ES on torch) computes the three for all the runs directly instead of under ``vmap``. Each
    returns ``None`` when the strategy's method does not map (and from then on).

    :meth:`ask_one` and :meth:`tell_one` are the strategy's ``ask`` and ``tell`` of one run (mapped
    or run by run), their first results checked against the strategy contract (``shape``:
    ``(popsize, dim)``, ``None`` for no check of ``X``'s shape; ``dtype``: the runs'), as a lone run's
    (:mod:`evostrat.strategies.checked`): a broken result fails the mapped call, and the same
    generation run by run raises :class:`~evostrat.errors.InvalidTypeError` naming it."""

    def __init__(self, strategy: Any, backend: Any, shape: tuple[int, int] | None = None,
                 dtype: Any = None) -> None:
        self.strategy, self.backend = strategy, backend
        self.maps = {"ask": True, "tell": True, "read": True}  # False: that step runs run by run
        self.kernel = resolve_stack_kernel(strategy, backend)
        slots = vars(self)  # each replaced by the strategy's method itself once a result passes
        self.ask_one: Any = checked_first(slots, "ask_one", strategy.ask, lambda out: out if shape is None else
                                          checked_ask(strategy, out, shape, dtype=dtype))
        self.tell_one: Any = checked_first(slots, "tell_one", strategy.tell,
                                           lambda state: checked_state(strategy, state, "tell"))

    def _call(self, method: str, fn: Any, *args: Any) -> Any:
        if not self.maps[method]:
            return None
        try:
            return self.backend.vmap(fn, keyed_draws=method == "ask")(*args)
        except Exception:  # noqa: BLE001 - control flow on values, no batching rule, ...: run by run
            self.maps[method] = False
            return None

    def ask(self, stack: RunStack) -> tuple[Any, RunStack] | tuple[None, None]:
        """``(X, stack after ask)``: ``X`` of shape ``(runs, popsize, dim)``, each run's from its own key."""
        if self.kernel is not None and self.maps["ask"]:
            X, state = self.kernel.ask(stack.as_state())
            return X, stack.with_state(state)
        be, n = self.backend, len(stack)
        is_key = [isinstance(c, np.ndarray) for c in stack.hosts]
        new_hosts: list[Any] = []

        def ask(index: Any, tensors: tuple[Any, ...]) -> tuple[Any, ...]:
            hosts = [KeyBatch(c, index) if k else c[0] for c, k in zip(stack.hosts, is_key)]
            X, new = self.ask_one(stack.state(tensors, hosts))
            out = tree_leaves(new)
            new_hosts[:] = [v for v, t in zip(out, stack.tensor_at) if not t]
            if len(out) != len(stack.tensor_at) or any(isinstance(v, KeyBatch) != k for v, k in zip(new_hosts, is_key)):
                raise TypeError("ask changed the state's structure")
            return (X,) + tuple(v for v, t in zip(out, stack.tensor_at) if t)

        index = be.xp.arange(n, device=be.device(stack.tensors[0]))
        out = self._call("ask", ask, index, stack.tensors)
        if out is None:
            return None, None
        return out[0], stack.with_parts(out[1:], [v.keys if k else [v] * n for v, k in zip(new_hosts, is_key)])

    def tell(self, stack: RunStack, X: Any, values: Any) -> tuple[RunStack | None, Any]:
        """The stack after ``tell`` of ``X`` ``(runs, popsize, dim)`` and ``values`` ``(runs, popsize)``
        (``None`` if ``tell`` does not map), and its :meth:`read` (``None`` if that does not map)."""
        if self.kernel is not None and self.maps["tell"]:
            told = stack.with_state(self.kernel.tell(stack.as_state(), X, values))
            return told, self.read(told)
        template_hosts = stack.host_row(0)
        names: list[str] = []
        also_read = self.maps["read"]

        def tell(tensors: tuple[Any, ...], x: Any, f: Any) -> tuple[Any, ...]:
            out = tree_leaves(self.tell_one(stack.state(tensors, template_hosts), x, f))
            hosts = [v for v, t in zip(out, stack.tensor_at) if not t]
            if len(out) != len(stack.tensor_at) or any(a is not b for a, b in zip(hosts, template_hosts)):
                raise TypeError("tell changed a host leaf")  # e.g. a key: not batched
            told = tuple(v for v, t in zip(out, stack.tensor_at) if t)
            return told + (self._read_outs(stack.state(told, template_hosts), names) if also_read else ())

        out = self._call("tell", tell, stack.tensors, X, values)
        if out is None and also_read:  # perhaps the read-outs: tell alone, then read run by run
            self.maps["tell"], also_read = True, False
            out = self._call("tell", tell, stack.tensors, X, values)
            self.maps["read"] = out is None  # tell maps alone: the read-outs did not
        if out is None:
            return None, None
        k = len(out) - (len(names) + 1 if also_read else 0)
        told = stack.with_parts(out[:k], stack.hosts)
        return told, self._host_read_outs(out[k:], names) if also_read else self.read(told)

    def read(self, stack: RunStack) -> tuple[list[float], list[dict[str, Any]]] | None:
        """Each run's ``sigma`` (floats) and strategy criteria (``{name: bool}``), or ``None``."""
        if self.kernel is not None and self.maps["read"]:
            sigma, stops = self.kernel.read(stack.as_state())
            return self._host_read_outs((sigma, *stops.values()), list(stops), flags_are_bool=True)
        hosts = stack.host_row(0)
        names: list[str] = []
        out = self._call("read", lambda tensors: self._read_outs(stack.state(tensors, hosts), names), stack.tensors)
        return None if out is None else self._host_read_outs(out, names)

    def _read_outs(self, state: Any, names: list[str]) -> tuple[Any, ...]:
        """Sigma (a tensor) and the strategy criteria's values of one (mapped) state."""
        stops = self.strategy.stop(state)
        names[:] = list(stops)
        return (self.strategy.sigma(state) + self.backend.xp.zeros_like(state.mean[0]),) + tuple(stops.values())

    def _host_read_outs(self, out: tuple[Any, ...], names: list[str],
                        flags_are_bool: bool = False) -> tuple[list[float], list[dict[str, Any]]]:
        be, xp = self.backend, self.backend.xp
        sigmas = be.to_numpy(out[0]).tolist()
        if not names:
            return sigmas, [{} for _ in sigmas]
        flags = out[1:] if flags_are_bool else [xp.astype(v, xp.bool) for v in out[1:]]
        same = all(v is flags[0] for v in flags)  # (e.g. a kernel's one tensor for all the criteria that are off)
        hits = be.to_numpy(flags[0] if same else xp.stack(flags, axis=1))
        if not hits.any():  # the usual generation: one dict of no hits, shared (the driver only reads it)
            return sigmas, [dict.fromkeys(names, False)] * len(sigmas)
        if same:
            hits = np.repeat(hits[:, None], len(flags), axis=1)
        return sigmas, [dict(zip(names, row)) for row in hits.tolist()]
