"""Fused torch programs: a strategy's ``tell`` through ``torch.compile``.

Eager torch runs one kernel per array operation: on a GPU a CMA-ES generation at
d = 100 is a few hundred launches, each a few microseconds of host time, so small
problems are bound by launches rather than arithmetic. ``torch.compile`` (inductor)
fuses the element-wise chains into a few kernels; with ``mode="reduce-overhead"`` it
also replays the whole program as a CUDA graph.

:meth:`TorchBackend.compile <evostrat.backends.torch.TorchBackend.compile>` wraps the
methods a strategy lists in ``fusable_methods`` (the built-in CMA-ES, sep-CMA-ES, SNES,
xNES, OpenAI-ES and PGPE list ``tell``) in a :class:`FusedProgram`. When it compiles:

- ``"auto"`` (the default): for arguments on a CUDA device only (on the CPU eager
  torch is as fast), and only from the :data:`AUTO_EAGER_CALLS`-th call of a program
  on (a compile costs seconds per shape: a short run stays eager and never pays it);
- ``"always"``: on any device (the tests compile on the CPU);
- ``"never"``: never (eager, as before).

The setting is :class:`~evostrat.backends.torch.TorchBackend`'s ``fused`` argument, by
default the environment variable ``EVOSTRAT_TORCH_FUSED`` (``auto``, ``always``/``1``,
``never``/``0``); ``EVOSTRAT_TORCH_FUSED_MODE`` picks the ``torch.compile`` mode
(``default``, ``reduce-overhead`` for CUDA graphs, ``max-autotune``). A program's first
call runs eagerly (it fills the host-side constant caches, which the compiled program
then reads as constants); a program that fails to compile warns once and stays eager.

Examples
--------
>>> import torch
>>> from evostrat.backends.torch import TorchBackend
>>> from evostrat.strategies.snes import SNES
>>> run = SNES().initialize(torch.zeros(4), random_state=0,
...                         backend=TorchBackend(fused="always", compiler="eager"))
>>> for _ in range(3):
...     X = run.ask()
...     run.tell(X, (X ** 2).sum(1))
>>> run.generation
3
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import Any, Callable

import torch

from evostrat.backends.trees import iter_leaves, map_tree
from evostrat.errors import EvostratWarning, InvalidArgumentError

__all__ = ["AUTO_EAGER_CALLS", "FUSED_ENV", "FUSED_MODE_ENV", "FusedProgram", "fusable",
           "fused_setting"]

#: Under ``fused="auto"``, a program's calls that run eagerly before it is compiled: a
#: compile costs seconds (tens of seconds for CMA-ES on a GPU), an eager launch-bound
#: generation about a millisecond, so only a run that has already lasted this long is
#: likely to last long enough to repay it.
AUTO_EAGER_CALLS = 200

#: Environment variable with the default ``fused`` setting of the torch backend.
FUSED_ENV = "EVOSTRAT_TORCH_FUSED"
#: Environment variable with the default ``torch.compile`` mode of fused programs.
FUSED_MODE_ENV = "EVOSTRAT_TORCH_FUSED_MODE"
_WORDS = {"auto": "auto", "always": "always", "on": "always", "1": "always", "true": "always",
          "yes": "always", "never": "never", "off": "never", "0": "never", "false": "never",
          "no": "never"}


def fused_setting(value: Any = None) -> str:
    """``"auto"``, ``"always"`` or ``"never"`` from a bool, a word or (``None``) the environment.

    >>> fused_setting(True), fused_setting("off"), fused_setting("auto")
    ('always', 'never', 'auto')
    """
    if value is None:
        value = os.environ.get(FUSED_ENV, "auto")
    if isinstance(value, bool):
        return "always" if value else "never"
    word = _WORDS.get(str(value).strip().lower())
    if word is None:
        raise InvalidArgumentError(
            f"fused must be 'auto', 'always', 'never' or a bool (also from ${FUSED_ENV}), "
            f"got {value!r}")
    return word


def fusable(fn: Callable) -> bool:
    """Whether ``fn`` is a method its strategy lists in ``fusable_methods``.

    The method must be the one the listing class defines or inherits: a subclass that
    overrides it without listing it again is not fused (its code may read the host).
    """
    owner = getattr(fn, "__self__", None)
    name = getattr(fn, "__name__", None)
    if owner is None or name is None:
        return False
    cls = type(owner)
    declaring = next((k for k in cls.__mro__ if "fusable_methods" in vars(k)), None)
    if declaring is None or name not in getattr(declaring, "fusable_methods", ()):
        return False
    return getattr(cls, name, None) is getattr(declaring, name, None)


def _device_type(args: tuple) -> str | None:
    """The device type of the first tensor among ``args``' leaves (``None`` if none)."""
    head = args[0] if args else None
    if isinstance(head, tuple) and head:  # a tell's state (a NamedTuple)...
        head = head[0]
    if isinstance(head, torch.Tensor):  # ...whose first field is a tensor: the first leaf, without a walk
        return head.device.type
    for leaf in iter_leaves(args):  # a tell's state has a tensor first: no walk of the rest
        if isinstance(leaf, torch.Tensor):
            return leaf.device.type
    return None


class FusedProgram:
    """``fn`` compiled by ``torch.compile`` where ``when`` says so, else ``fn`` itself.

    Parameters
    ----------
    fn : callable
        A pure function of tensors and trees of them (a strategy's ``tell``).
    when : {"auto", "always", "never"}
        See the module docstring.
    mode : str or None
        ``torch.compile``'s ``mode`` (``None``: its default; ``"reduce-overhead"``: CUDA
        graphs, whose outputs are then copied, as the next replay overwrites them).
    compiler : str
        ``torch.compile``'s ``backend`` (``"inductor"``; ``"aot_eager"`` or ``"eager"`` to
        check tracing without code generation).

    Examples
    --------
    >>> import torch
    >>> double = FusedProgram(lambda x: 2 * x, when="always", compiler="eager")
    >>> [double(torch.ones(2)).tolist() for _ in range(2)]
    [[2.0, 2.0], [2.0, 2.0]]
    """

    def __init__(self, fn: Callable, when: str = "auto", mode: str | None = None,
                 compiler: str = "inductor") -> None:
        self.fn, self.when, self.mode, self.compiler = fn, fused_setting(when), mode, compiler
        self.calls = 0  # calls on the fused path (the first runs eagerly)
        self.waited = 0  # "auto": eager calls on a CUDA device before compiling
        self.failure: str | None = None  # why it fell back to eager for good
        self._compiled: Callable | None = None
        self._lock = threading.Lock()

    def applies(self, args: tuple) -> bool:
        """Whether a call with ``args`` runs compiled."""
        if self.when == "never" or self.failure is not None:
            return False
        return self.when == "always" or _device_type(args) == "cuda"

    def _program(self) -> Callable:
        with self._lock:
            if self._compiled is None:
                self._compiled = torch.compile(self.fn, mode=self.mode, backend=self.compiler)
            return self._compiled

    def __call__(self, *args: Any) -> Any:
        if not self.applies(args):
            return self.fn(*args)
        if self.when == "auto" and self.waited < AUTO_EAGER_CALLS:
            self.waited += 1
            return self.fn(*args)
        self.calls += 1
        if self.calls == 1:  # eager: fills the host constant caches outside the trace
            return self.fn(*args)
        try:
            if self.calls <= 4:  # tracing: array_api_compat's type tests are lru_cache'd (harmless)
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*functools.lru_cache")
                    out = self._program()(*args)
            else:
                out = self._program()(*args)
        except Exception as err:  # noqa: BLE001 - a compiler failure: eager from now on
            out = self.fn(*args)  # pure: the same call eagerly (an error of the inputs raises here)
            self.failure = f"{type(err).__name__}: {err}"
            warnings.warn(f"torch.compile failed for {getattr(self.fn, '__qualname__', self.fn)}"
                          f" ({self.failure.splitlines()[0][:200]}); running it eagerly",
                          EvostratWarning, stacklevel=2)
            return out
        if self.mode == "reduce-overhead":  # the next replay reuses the output buffers
            out = map_tree(lambda x, _: x.clone() if isinstance(x, torch.Tensor) else x, out)
        return out

    def __repr__(self) -> str:
        return (f"FusedProgram({getattr(self.fn, '__qualname__', self.fn)}, when={self.when!r}, "
                f"mode={self.mode!r}, compiler={self.compiler!r})")
