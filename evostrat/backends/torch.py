"""The torch backend: CPU or CUDA tensors, on the device of ``x0``.

Keys are two-word ``uint64`` numpy arrays kept on the host (so deriving keys
never synchronises with the GPU); ``normal`` seeds a ``torch.Generator`` on the
target device from the key and samples there. Addressable noise rows
(``normal_rows``) are the numpy backend's blocks on the CPU
(:func:`~evostrat.backends.numpy.block_normal_rows`, shared memory); on an accelerator
they come from a counter-based hash (:func:`hashed_normal_rows`) in a fixed
number of kernels whatever the population, instead of two launches per row.
A :class:`~evostrat.backends.key_batch.KeyBatch` (many runs' keys in a vmapped ``ask``)
draws run by run, each run's rows from its own key.

Examples
--------
>>> import torch                                     # doctest: +SKIP
>>> from evostrat.backends import get_backend        # doctest: +SKIP
>>> be = get_backend(torch.zeros(3))                 # doctest: +SKIP
>>> be.normal(be.key(0), (2, 3), torch.float32).shape  # doctest: +SKIP
torch.Size([2, 3])
"""

from __future__ import annotations

import os
from typing import Any, Callable, Hashable, Sequence

import array_api_compat.torch as xp_torch
import numpy as np
import torch

from evostrat.backends.base import Array, Backend, Key, require_dependence
from evostrat.backends.devices import torch_device
from evostrat.backends.host_keys import GOLDEN_GAMMA, MIX1, MIX2
from evostrat.backends.key_batch import KeyBatch
from evostrat.backends.numpy import HostKeys, block_normal_rows
from evostrat.backends.programs import compile_cached
from evostrat.backends.torch_fused import FUSED_MODE_ENV, FusedProgram, fusable, fused_setting
from evostrat.backends.trees import map_tree, merge_leaves, tree_leaves
from evostrat.errors import InvalidArgumentError, InvalidTypeError


_SEED_MASK = 0x7FFF_FFFF_FFFF_FFFF  # a torch.Generator seed: 63 bits


def _signed(word: int) -> int:
    """A uint64 constant as the int64 with the same bits (torch has no uint64 arithmetic)."""
    return word - (1 << 64) if word >= 1 << 63 else word


def _shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 words (``>>`` on int64 is arithmetic)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _mix(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's step on int64 words: add the golden gamma, then its finaliser."""
    x = x + _signed(GOLDEN_GAMMA)
    x = (x ^ _shift_right(x, 30)) * _signed(MIX1)
    x = (x ^ _shift_right(x, 27)) * _signed(MIX2)
    return x ^ _shift_right(x, 31)


def row_seeds(key: Key, rows: Any, device: Any) -> torch.Tensor:
    """``row_words(key, r)[0]`` for each row, as int64 words on ``device``.

    A ``range`` of rows is built on the device (no host-to-device copy).
    """
    if isinstance(rows, range):
        first = min(rows.start, rows[-1]) if len(rows) else 0
        r = torch.arange(rows.start, rows.stop, rows.step, dtype=torch.int64, device=device)
    else:
        host = np.asarray(rows, dtype=np.int64).reshape(-1)
        first = int(host.min()) if host.size else 0
        r = torch.as_tensor(host, device=device)
    if first < 0:
        raise InvalidArgumentError(f"row indices must be >= 0, got {first}")
    return _mix(_mix(r) ^ _signed(int(key[0])))


def hashed_normal_rows(seeds: Any, dim: int, dtype: Any, device: Any) -> torch.Tensor:
    """Standard normal rows, row ``i`` a function of ``seeds[i]`` alone.

    Element ``j`` of row ``i`` is SplitMix64's output ``j`` for the state
    ``seeds[i]`` (Steele, Lea and Flood, "Fast splittable pseudorandom number
    generators", OOPSLA 2014): ``mix(seed + (j + 1) * golden)``, its top 53 bits
    a uniform ``u`` in (0, 1), then ``sqrt(2) erfinv(2u - 1)`` in float64 (tails
    to about 8.3 sigma). About 15 elementwise kernels for the whole block, where
    re-seeding a generator costs two launches per row (on an H100, SNES at
    d = 100,000 with a population of 152: 5.5 ms per generation before, 4.4 ms after).

    Parameters
    ----------
    seeds : uint64 ndarray or int64 tensor, shape (n,)
    dim : int
    dtype, device
        Of the result, shape ``(n, dim)``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> z = hashed_normal_rows(np.array([1, 2], dtype=np.uint64), 50_000, torch.float64, "cpu")
    >>> abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02
    True
    >>> bool((hashed_normal_rows(np.array([2], dtype=np.uint64), 5, torch.float64, "cpu")
    ...       == z[1, :5]).all())
    True
    """
    device = torch.device(device if device is not None else "cpu")
    if isinstance(seeds, np.ndarray):
        seeds = torch.as_tensor(seeds.astype(np.uint64).view(np.int64), device=device)
    step = torch.arange(dim, dtype=torch.int64, device=device) * _signed(GOLDEN_GAMMA)
    x = _mix(seeds[:, None] + step)
    u = (_shift_right(x, 11).to(torch.float64) + 0.5) * 2.0**-53
    return (torch.special.erfinv(2.0 * u - 1.0) * 2.0**0.5).to(dtype)


def _gather_run(stacked: torch.Tensor, index: Any) -> torch.Tensor:
    """The draws of a :class:`~evostrat.backends.key_batch.KeyBatch`'s runs (stacked) indexed by
    the vmapped run ``index``: each vmapped run gets its own run's numbers."""
    return stacked if index is None else stacked[index]


def _keyed_fill(keys: KeyBatch, shape: tuple[int, ...], dtype: Any, device: Any, fill: Callable) -> torch.Tensor:
    """``TorchBackend.normal`` / ``uniform`` of each run's key (``fill``: ``Tensor.normal_`` or
    ``uniform_``, what ``randn`` / ``rand`` fill with), into one tensor, one generator re-seeded."""
    device = torch.device(device if device is not None else "cpu")
    out = torch.empty((len(keys.keys),) + tuple(shape), dtype=dtype, device=device)
    gen = torch.Generator(device=device)
    for row, seed in zip(out, generator_seed(keys.keys[:, 0], keys.keys[:, 1]).tolist()):
        fill(row, generator=gen.manual_seed(seed))
    return _gather_run(out, keys.index)


def generator_seed(k0: Any, k1: Any) -> Any:
    """The ``torch.Generator`` seed of a host key's words ``k0``, ``k1`` (numpy ``uint64``
    scalars, or columns of many keys): the two words folded into 63 bits."""
    return (k0 ^ (k1 >> np.uint64(1))) & np.uint64(_SEED_MASK)


def _global_rng_states() -> list[torch.Tensor]:
    """The states of torch's default generators (CPU, and the current GPU's once CUDA is up)."""
    states = [torch.random.get_rng_state()]
    if torch.cuda.is_initialized():
        states.append(torch.cuda.get_rng_state())
    return states


def _select(pred: torch.Tensor, a: Any, b: Any) -> Any:
    """``a`` where ``pred`` else ``b``, leaf by leaf over two trees of the same structure."""
    return merge_leaves(lambda x, y: torch.where(pred, torch.as_tensor(x), torch.as_tensor(y)), a, b)


def _fresh(out: Any, inputs: Sequence[torch.Tensor], like: Any = None) -> Any:
    """A branch output for ``torch.cond``: copied if it is one of ``inputs`` (``torch.cond``
    refuses aliases), else given the layout of ``like`` (the input it replaces), as both
    branches must return the same layouts (``eigh``'s eigenvectors are column-major)."""
    if any(out is x for x in inputs):
        return out.clone()
    if isinstance(like, torch.Tensor) and like.shape == out.shape and like.stride() != out.stride():
        return torch.empty_like(like, dtype=out.dtype).copy_(out)
    return out


def traced_cond(pred: Any, true_fn: Callable, false_fn: Callable, operands: tuple) -> Any:
    """:meth:`TorchBackend.cond` under ``torch.compile``: one ``torch.cond`` in the graph.

    ``torch.cond`` takes and returns tensors only. Operands with other leaves (a state's
    host key) go in as their tensor leaves; each branch must then return a tree shaped
    like the first operand with the same non-tensor leaves (a state from a state), which
    is rebuilt around the tensors ``torch.cond`` returns, each in its input's layout.
    """
    leaves = tree_leaves(operands)
    inputs = tuple(x for x in leaves if isinstance(x, torch.Tensor))
    if len(inputs) == len(leaves):  # all tensors: torch.cond handles the trees itself
        def plain(fn: Callable) -> Callable:
            return lambda *args: map_tree(lambda o, _: _fresh(o, args), fn(*args))
        return torch.cond(pred, plain(true_fn), plain(false_fn), operands)
    template = tree_leaves(operands[0])

    def branch(fn: Callable) -> Callable:
        def run(*tensors: torch.Tensor) -> tuple:
            it = iter(tensors)
            args = map_tree(lambda x, _: next(it) if isinstance(x, torch.Tensor) else x, operands)
            out = tree_leaves(fn(*args))
            if len(out) != len(template) or any(
                    not isinstance(o, torch.Tensor) and o is not t for o, t in zip(out, template)):
                raise InvalidArgumentError(
                    "under torch.compile, cond branches must return a tree shaped like the first "
                    "operand, with its non-tensor leaves (a state from a state)")
            return tuple(_fresh(o, tensors, t) for o, t in zip(out, template)
                         if isinstance(o, torch.Tensor))
        return run

    result = iter(torch.cond(pred, branch(true_fn), branch(false_fn), inputs))
    return map_tree(lambda x, _: next(result) if isinstance(x, torch.Tensor) else x, operands[0])


def _one_device(tree: Any) -> Any:
    """``tree`` with its CPU tensors moved to the one accelerator device of its other tensors.

    A state keeps its decision counters on the host beside device arrays
    (:meth:`TorchBackend.counter_device`): alone a 0-d CPU tensor, which torch
    passes to device kernels as a scalar, but stacked over a batch a CPU vector, which
    ``torch.func.vmap`` cannot combine with the device's tensors. A batched call reads the
    device anyway (both branches of a ``cond``, then a select), so the copy costs nothing more.
    """
    devices = {x.device for x in tree_leaves(tree) if isinstance(x, torch.Tensor)}
    accelerators = [d for d in devices if d.type != "cpu"]
    if len(accelerators) != 1 or len(devices) == 1:
        return tree
    target = accelerators[0]
    return map_tree(lambda x, _: x.to(target) if isinstance(x, torch.Tensor) and x.device.type == "cpu"
                    else x, tree)


class TorchBackend(HostKeys, Backend):
    """torch tensors, CPU or CUDA.

    Parameters
    ----------
    fused : {"auto", "always", "never"} or bool, optional
        Whether :meth:`compile` fuses a strategy's ``fusable_methods`` (its ``tell``) with
        ``torch.compile`` (:mod:`~evostrat.backends.torch_fused`): ``"auto"`` on CUDA
        devices only. Default: ``$EVOSTRAT_TORCH_FUSED``, else ``"auto"``.
    fused_mode : str, optional
        ``torch.compile``'s mode; ``"reduce-overhead"`` replays CUDA graphs. Default:
        ``$EVOSTRAT_TORCH_FUSED_MODE``, else torch's default.
    compiler : str
        ``torch.compile``'s backend (``"inductor"``; ``"aot_eager"``/``"eager"`` for checks).

    Examples
    --------
    >>> import torch
    >>> from evostrat import ES
    >>> es = ES("snes", max_generations=5, random_state=0,
    ...         backend=TorchBackend(fused="never")).fit(lambda X: (X ** 2).sum(1), torch.ones(3))
    >>> es.n_generations_
    5
    """

    name = "torch"
    xp = xp_torch
    default_float = torch.float32
    torch_tensors = True

    def __init__(self, fused: Any = None, fused_mode: str | None = None,
                 compiler: str = "inductor") -> None:
        self.fused = fused_setting(fused)
        if fused_mode is None:
            fused_mode = os.environ.get(FUSED_MODE_ENV) or None
        self.fused_mode = None if fused_mode == "default" else fused_mode
        self.compiler = compiler

    def compile(self, fn: Callable, key: Hashable = None) -> Callable:
        """``fn`` as a :class:`~evostrat.backends.torch_fused.FusedProgram` if its strategy lists
        it in ``fusable_methods`` and :attr:`fused` is not ``"never"``; else ``fn`` (eager)."""
        if self.fused == "never" or not fusable(fn):
            return fn
        cache = f"torch:fused:{self.fused}:{self.fused_mode}:{self.compiler}"
        return compile_cached((cache, key), fn, lambda f: FusedProgram(
            f, self.fused, self.fused_mode, self.compiler))

    def owns(self, x: Any) -> bool:
        return isinstance(x, torch.Tensor)

    def asarray(self, x: Any, dtype: Any = None, device: Any = None) -> Array:
        if isinstance(x, torch.Tensor):
            return x.to(dtype=dtype or x.dtype, device=device or x.device)
        if not isinstance(x, np.ndarray) and hasattr(x, "__array__"):
            x = np.array(x)  # e.g. a JAX array: copy, its host view is read-only
        return torch.as_tensor(x, dtype=dtype, device=device)

    def to_numpy(self, x: Array) -> np.ndarray:
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy()
        return np.asarray(x)

    def device(self, x: Array) -> Any:
        return x.device if isinstance(x, torch.Tensor) else None

    def resolve_device(self, device: Any) -> Any:
        return torch_device(device)

    def _generator(self, key: Key, device: Any) -> torch.Generator:
        device = torch.device(device if device is not None else "cpu")
        return torch.Generator(device=device).manual_seed(int(generator_seed(key[0], key[1])))

    def normal(self, key: Key, shape: tuple[int, ...], dtype: Any, device: Any = None) -> Array:
        if isinstance(key, KeyBatch):
            return _keyed_fill(key, shape, dtype, device, torch.Tensor.normal_)
        gen = self._generator(key, device)
        return torch.randn(shape, generator=gen, dtype=dtype, device=gen.device)

    def uniform(self, key: Key, shape: tuple[int, ...], dtype: Any, device: Any = None) -> Array:
        if isinstance(key, KeyBatch):
            return _keyed_fill(key, shape, dtype, device, torch.Tensor.uniform_)
        gen = self._generator(key, device)
        return torch.rand(shape, generator=gen, dtype=dtype, device=gen.device)

    def normal_rows(self, key: Key, rows: Any, dim: int, dtype: Any, device: Any = None) -> Array:
        if isinstance(key, KeyBatch):
            return _gather_run(torch.stack([self.normal_rows(k, rows, dim, dtype, device) for k in key.keys]),
                               key.index)
        device = torch.device(device if device is not None else "cpu")
        if device.type != "cpu":  # one block of kernels instead of two launches per row
            return hashed_normal_rows(row_seeds(key, rows, device), dim, dtype, device)
        # The numpy backend's blocks (one generator call per block, the same numbers):
        # torch's CPU normal_ draws a tensor's tail differently from a longer tensor's
        # prefix, so its blocks could not be rebuilt in part.
        return torch.from_numpy(block_normal_rows(key, rows, dim, self.dtype_name(dtype)))

    def generator_normal(
        self, generator: Any, shape: tuple[int, ...], dtype: Any, device: Any = None
    ) -> Array:
        if not isinstance(generator, torch.Generator):
            raise InvalidTypeError(
                "generator must be a torch.Generator on the parameters' device, got "
                f"{type(generator).__name__}"
            )
        return torch.randn(shape, generator=generator, dtype=dtype, device=device)

    @property
    def host_device(self) -> Any:
        return torch.device("cpu")

    def counter_device(self, device: Any) -> Any:
        """The host, whatever ``device`` the state's arrays are on: ``bool()`` of a 0-d CPU
        tensor reads host memory, where one on a GPU waits for every queued kernel, and torch
        takes a 0-d CPU tensor in an operation with tensors of any device as a scalar (under
        ``torch.compile`` inductor computes it on the CPU and passes it to the GPU kernels by
        value). (JAX keeps one device per program; numpy has only the host.)"""
        return self.host_device

    def restored_device(self, template: Any, device: Any) -> Any:
        """``template``'s own device, so that a counter kept on the host (:meth:`counter_device`)
        is restored there, not on the run's GPU.

        >>> from evostrat.backends import get_backend
        >>> get_backend("torch").restored_device(torch.zeros((), dtype=torch.int32), "meta")
        device(type='cpu')
        """
        return self.device(template) if self.owns(template) else device

    # torch.func.vmap (batched fits): no data-dependent branch, no view op without a batching rule
    eager_vmap = True

    def vmap(self, fn: Callable, keyed_draws: bool = False) -> Callable:
        # keyed draws: torch's randomness="same" runs a random op once, unmapped (a KeyBatch's
        # draws, made with each run's own generator); an unkeyed draw would give every run the
        # same numbers, so one that moved torch's global generators is refused
        mapped = torch.func.vmap(fn, randomness="same" if keyed_draws else "error")
        if not keyed_draws:
            return lambda *args: mapped(*_one_device(args))

        def call(*args: Any) -> Any:
            before = _global_rng_states()
            out = mapped(*_one_device(args))
            if any(not torch.equal(a, b) for a, b in zip(before, _global_rng_states())):
                raise RuntimeError("a random draw under vmap not made from a KeyBatch key")
            return out

        return call

    def cond(self, pred: Any, true_fn: Callable, false_fn: Callable, *operands: Any) -> Any:
        if torch.compiler.is_compiling():  # in the graph: no graph break, no host read here
            return traced_cond(pred, true_fn, false_fn, operands)
        try:
            take = bool(pred)
        except RuntimeError:  # a batched predicate under torch.func.vmap: both branches, then select
            return _select(pred, true_fn(*operands), false_fn(*operands))
        return true_fn(*operands) if take else false_fn(*operands)

    def vecdot(self, a: Array, b: Array) -> Array:
        # the product array_api_compat's vecdot computes (the same numbers), without its
        # moveaxis, which torch.func.vmap cannot batch
        return (a.unsqueeze(-2) @ b.unsqueeze(-1))[..., 0, 0]

    # traceable stays False: JAX's compiled loops and trace-only paths do not apply to torch
    has_autodiff = True

    def stop_gradient(self, x: Array) -> Array:
        return x.detach()

    def grad(self, fn: Callable[..., Array], params: Sequence[Array], *, what: str | None = None) -> tuple:
        leaves = [t.detach().requires_grad_(True) for t in params]
        with torch.enable_grad():
            out = fn(*leaves)
        if not isinstance(out, torch.Tensor) or out.numel() != 1:
            raise InvalidArgumentError(
                f"the function must return a scalar tensor, got {type(out).__name__} "
                f"of shape {tuple(getattr(out, 'shape', ()))}"
            )
        if not out.requires_grad:  # no grad_fn: no path from the leaves to the value
            require_dependence(False, what)
            return tuple(torch.zeros_like(t) for t in leaves)
        grads = torch.autograd.grad(out.reshape(()), leaves, allow_unused=True)
        return tuple(torch.zeros_like(t) if g is None else g for t, g in zip(leaves, grads))
