"""The JAX backend: CPU, GPU or TPU arrays; ``ask``/``tell`` are jitted.

Keys are raw ``uint32[2]`` JAX PRNG keys, split with ``jax.random.split``.
Search points are float32 unless ``jax_enable_x64`` is on and ``x0`` is float64 (as
JAX itself would, without x64 a float64 ``x0`` from numpy or torch becomes float32;
``dtype="float64"`` then raises instead of truncating).

Examples
--------
>>> import jax.numpy as jnp                          # doctest: +SKIP
>>> from evostrat.backends import get_backend        # doctest: +SKIP
>>> be = get_backend(jnp.zeros(3))                   # doctest: +SKIP
>>> be.normal(be.key(0), (2, 3), jnp.float32).shape  # doctest: +SKIP
(2, 3)
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import jax.scipy.linalg
import numpy as np

from evostrat.backends.base import Array, Backend, Key, require_dependence
from evostrat.backends.devices import jax_device
from evostrat.backends.host_keys import block_rows, seed_to_uint64
from evostrat.backends.jax_threefry import normal as threefry_normal
from evostrat.backends.jax_threefry import uniform as threefry_uniform
from evostrat.errors import InvalidArgumentError, InvalidTypeError


_PYTREE_CLASSES: set[type] = set()

#: Keys of integer seeds already built, per (seed, device): a seed's SeedSequence and the
#: transfer cost ~40 us, the look-up well under one (at most ``_KEYS_KEPT`` are kept).
_KEYS: dict[tuple[int, Any], Key] = {}
_KEYS_KEPT = 256

#: ``(axis name, active)`` while a lockstep batch's generation is traced (:func:`lockstep_conds`).
_LOCKSTEP: contextvars.ContextVar[tuple[str, Any] | None] = contextvars.ContextVar("lockstep", default=None)

#: From this dimension on, xNES's matrix exponential on an accelerator uses Pade, not eigh.
_PADE_MIN_DIM = 64


def expm_pade(a: Array) -> Array:
    """``expm(a)`` by Pade approximation with scaling and squaring (Higham, SIAM J.
    Matrix Anal. Appl. 26(4), 2005; ``jax.scipy.linalg.expm``), products in full float32
    precision (not TF32): matrix products only, no eigendecomposition.
    """
    with jax.default_matmul_precision("highest"):
        return jax.scipy.linalg.expm(a)


@contextlib.contextmanager
def lockstep_conds(axis_name: str, active: Any) -> Iterator[None]:
    """Trace ``JaxBackend.cond`` as one decision for runs advanced together under ``jax.vmap``.

    Under ``vmap`` a ``lax.cond`` whose predicate differs between runs becomes a ``select``:
    both branches run for every run in every generation, CMA-ES's lazy eigendecomposition
    included. Inside this context (while tracing the vmapped generation of a batch, whose
    ``vmap`` has ``axis_name``), a ``cond`` runs its true branch for all runs, each run then
    keeping the branch its own predicate picks, only when that predicate holds for at least one
    run whose ``active`` flag is set (runs in lockstep share their counters, so CMA-ES
    decomposes once every ``k`` generations), and only its false branch otherwise. An
    inactive run gets the false branch: its result is discarded.

    Examples
    --------
    >>> from evostrat.backends import get_backend
    >>> be = get_backend("jax")
    >>> def step(x, active):
    ...     with lockstep_conds("runs", active):
    ...         return be.cond(x > 1, lambda v: v * 10, lambda v: v, x)
    >>> jax.vmap(step, axis_name="runs")(jnp.arange(3.0), jnp.ones(3, bool)).tolist()
    [0.0, 1.0, 20.0]
    """
    token = _LOCKSTEP.set((axis_name, active))
    try:
        yield
    finally:
        _LOCKSTEP.reset(token)


def block_rows_jax(key: Key, rows: Any, dim: int, dtype: Any) -> Array:
    """Rows ``rows`` of the addressable normal matrix of ``key``, drawn as blocks.

    Row ``r`` is row ``r % B`` of block ``r // B`` (``B = block_rows(dim)``,
    :func:`~evostrat.backends.host_keys.block_rows`), block ``b`` being
    ``jax.random.normal(fold_in(key, b), (B, dim))``. With partitionable threefry
    (JAX's default) element ``(i, j)`` of a draw depends on its key and ``i * dim + j``
    alone, so the first rows of a block are drawn by a shorter draw: a run of rows is at
    most a partial first block, the whole blocks (one vmapped draw) and a partial last
    block; at popsize 24, d = 10 one draw of 24 rows (20 us) instead of 24 per-row draws
    (56 us). Traceable; ``rows`` (a range or host ints) is static.

    Examples
    --------
    >>> import jax, numpy as np
    >>> key = jax.random.PRNGKey(0)
    >>> full = np.asarray(block_rows_jax(key, range(3000), 10, "float32"))
    >>> bool((np.asarray(block_rows_jax(key, [2999, 5], 10, "float32")) == full[[2999, 5]]).all())
    True
    """
    per = block_rows(dim)
    if isinstance(rows, range) and rows.step == 1:
        start, stop = rows.start, max(rows.start, rows.stop)
        index = None
    else:
        index = np.asarray(rows, dtype=np.int64).reshape(-1)
        start, stop = (int(index.min()), int(index.max()) + 1) if index.size else (0, 0)
    if start < 0:
        raise InvalidArgumentError(f"row indices must be >= 0, got {start}")
    if index is not None and index.size and np.array_equal(index, np.arange(start, stop)):
        index = None
    if index is not None and index.size and stop - start <= 4 * index.size:
        index = index - start  # dense enough: draw the span, then gather
    elif index is not None and index.size:
        # scattered rows: each block's prefix up to its last row asked, then one gather
        blocks = np.unique(index // per)
        parts = [_block_prefix(key, int(b), int(index[index // per == b].max() % per) + 1, dim, dtype)
                 for b in blocks]
        where = np.searchsorted(blocks, index // per)
        base = np.concatenate([[0], np.cumsum([p.shape[0] for p in parts])[:-1]])
        return jnp.concatenate(parts)[jnp.asarray(base[where] + index % per)]
    if stop <= start:
        return jnp.zeros((0, dim), dtype=dtype)
    first, last = start // per, (stop - 1) // per
    if first == last:
        out = _block_prefix(key, first, stop - first * per, dim, dtype)[start - first * per:]
    else:
        parts = [_block_prefix(key, first, per, dim, dtype)[start - first * per:]]
        if last - first > 1:  # the whole blocks between: one vmapped draw
            parts.append(jax.vmap(lambda b: threefry_normal(jax.random.fold_in(key, b), (per, dim), dtype))(
                jnp.arange(first + 1, last, dtype=jnp.uint32)).reshape(-1, dim))
        parts.append(_block_prefix(key, last, stop - last * per, dim, dtype))
        out = jnp.concatenate(parts)
    return out if index is None else out[jnp.asarray(index)]


def _block_prefix(key: Key, block: int, count: int, dim: int, dtype: Any) -> Array:
    """The first ``count`` rows of noise block ``block``."""
    return threefry_normal(jax.random.fold_in(key, block), (count, dim), dtype)


_FLOAT32 = np.dtype(np.float32)
_COMMITTERS: dict[Any, Callable[[Array], Array]] = {}


def _as_is(x: Any, dtype: Any) -> bool:
    """Whether ``x`` needs no conversion to ``dtype`` (``None``: its own): a concrete, strongly
    typed JAX array of that dtype (a weak one would compile a program twice: see ``asarray``)."""
    return (isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer) and not x.weak_type
            and (dtype is None or x.dtype == dtype))


def _committer(device: Any) -> Callable[[Array], Array]:
    """``x -> x`` committed to ``device``: a compiled identity (~4 us a call against
    ``jax.device_put``'s ~15 us), one per device."""
    commit = _COMMITTERS.get(device)
    if commit is None:
        commit = _COMMITTERS[device] = jax.jit(lambda a: a, out_shardings=jax.sharding.SingleDeviceSharding(device))
    return commit


#: Set by :meth:`JaxBackend.grad`: a list the JVP rule of :func:`_connected` appends to.
_CONNECTED: contextvars.ContextVar[list] = contextvars.ContextVar("evostrat_jax_connected", default=[])


@jax.custom_jvp
def _connected(y: Array) -> Array:
    """The identity; its JVP rule, which ``jax.grad`` runs only when ``y`` depends on the
    differentiated arguments (it is their tracer), records that it ran: the exact test of
    a gradient that is zero by construction, at trace time (so under ``jit`` too)."""
    return y


@_connected.defjvp
def _connected_jvp(primals: tuple, tangents: tuple) -> tuple:
    _CONNECTED.get().append(True)
    return primals[0], tangents[0]


class JaxBackend(Backend):
    """JAX arrays; pure functions are compiled with ``jax.jit``."""

    name = "jax"
    xp = jnp
    default_float = jnp.float32

    def owns(self, x: Any) -> bool:
        return isinstance(x, jax.Array)

    def asarray(self, x: Any, dtype: Any = None, device: Any = None) -> Array:
        if hasattr(x, "detach"):  # torch tensor
            x = x.detach().cpu().numpy()
        elif _as_is(x, dtype) and (device is None or device in x.devices()):
            if x.committed:
                return x  # already what this returns (immutable: no copy needed)
            return _committer(self.device(x) if device is None else device)(x)  # (jnp.ones(3) and alike)
        if dtype is None and getattr(x, "weak_type", False):
            # a weakly typed array (jnp.full(3, 2.0)) becomes a strong one, as every program output is:
            # a weak input would compile a program a second time when its own outputs come back
            dtype = x.dtype
        out = jnp.asarray(x, dtype=dtype)
        if device is None and not isinstance(out, jax.core.Tracer):
            device = self.device(out)
        # Commit to a device: jit specialises on committed vs uncommitted inputs, and
        # ask/tell outputs are committed, so an uncommitted initial state would make
        # the second generation compile ask again.
        return out if device is None else jax.device_put(out, device)

    def program_input(self, x: Any, dtype: Any = None) -> Array:
        # an uncommitted array of the wanted dtype as it is: a program that also takes a committed
        # input (the run's key) commits its outputs to that device, so the committing dispatch of
        # asarray (~5 us, ~100 us with cold caches right after a compiled chunk) is not needed
        return x if _as_is(x, dtype) else self.asarray(x, dtype=dtype)

    def resolve_device(self, device: Any) -> Any:
        return jax_device(device)

    def device(self, x: Array) -> Any:
        try:
            return next(iter(x.devices()))
        except (AttributeError, StopIteration, jax.errors.ConcretizationTypeError):
            return None  # tracers have no device (jax >= 0.5 raises on .devices())

    def float_dtype(self, x: Array) -> Any:
        if x.dtype == _FLOAT32:  # the usual case, without the name look-ups
            return _FLOAT32 if jax.config.jax_enable_x64 else jnp.float32
        dtype = super().float_dtype(x)
        # Without x64 JAX silently turns float64 into float32: be explicit about it.
        return jnp.dtype(dtype) if jax.config.jax_enable_x64 else jnp.float32

    def dtype_from_name(self, name: str) -> Any:
        if name == "float64" and not jax.config.jax_enable_x64:  # JAX would truncate it to float32
            raise InvalidTypeError("dtype 'float64' on JAX needs jax.config.update('jax_enable_x64', True)")
        return jnp.dtype(name)

    def require_dtype(self, name: str) -> Any:
        if name == "float64" and not jax.config.jax_enable_x64:
            jax.config.update("jax_enable_x64", True)  # a worker of a float64 JAX run
        return jnp.dtype(name)

    def key(self, seed: int | None) -> Key:
        device = jax.devices()[0]
        if type(seed) is int:  # a key is immutable: one per seed and device serves every run
            cached = _KEYS.get((seed, device))
            if cached is not None and not cached.is_deleted():  # (a donated key is deleted)
                return cached
        words = seed_to_uint64(seed) & np.uint64(0xFFFF_FFFF)
        key = jax.device_put(words.astype(np.uint32), device)  # a raw threefry key, committed
        # Under jit (a seed given inside a traced function) device_put gives a tracer: never
        # cache it, or every later key of that seed is the leaked tracer.
        if type(seed) is int and not isinstance(key, jax.core.Tracer):
            if len(_KEYS) >= _KEYS_KEPT:
                _KEYS.clear()
            _KEYS[seed, device] = key
        return key

    def split(self, key: Key, num: int = 2) -> tuple[Key, ...]:
        keys = jax.random.split(key, num)
        return tuple(keys[i] for i in range(num))

    def normal(self, key: Key, shape: tuple[int, ...], dtype: Any, device: Any = None) -> Array:
        # jax.random.normal's values, its Threefry hash unrolled on the CPU (backends.jax_threefry)
        return threefry_normal(key, shape, dtype)

    def uniform(self, key: Key, shape: tuple[int, ...], dtype: Any, device: Any = None) -> Array:
        return threefry_uniform(key, shape, dtype)

    def normal_rows(self, key: Key, rows: Any, dim: int, dtype: Any, device: Any = None) -> Array:
        # Traceable: rows is static (a range or a host integer array).
        if not jax.config.jax_threefry_partitionable:
            # Row r: normal(fold_in(key, r), (dim,)) (an unpartitionable threefry draw
            # depends on its whole shape, so a block's rows could not be rebuilt in part).
            index = jnp.asarray(np.asarray(rows, dtype=np.uint32).reshape(-1))
            return jax.vmap(lambda r: jax.random.normal(jax.random.fold_in(key, r), (dim,), dtype=dtype))(index)
        # The rows materialised: a consumer's ``mean + sigma * z`` then compiles to the same
        # multiply-adds whether it takes all rows of a draw or a slice (fused into the
        # draw, XLA rounds a population differently from a worker's chunk of it).
        return jax.lax.optimization_barrier(block_rows_jax(key, rows, dim, dtype))

    def key_from_numpy(self, data: np.ndarray) -> Key:
        return self.asarray(np.asarray(data, dtype=np.uint32))

    def is_key(self, x: Any) -> bool:
        return isinstance(x, jax.Array) and x.dtype == jnp.uint32 and x.shape == (2,)

    has_autodiff = True

    def stop_gradient(self, x: Array) -> Array:
        return jax.lax.stop_gradient(x)

    def grad(self, fn: Callable[..., Array], params: Sequence[Array], *, what: str | None = None) -> tuple:
        def scalar(*args: Array) -> Array:
            out = fn(*args)
            if getattr(out, "size", 1) != 1:
                raise InvalidArgumentError(
                    f"the function must return a scalar, got shape {tuple(out.shape)}"
                )
            return _connected(out.reshape(()))

        token = _CONNECTED.set([])
        try:
            grads = tuple(jax.grad(scalar, argnums=tuple(range(len(params))))(*params))
            require_dependence(bool(_CONNECTED.get()), what)
        finally:
            _CONNECTED.reset(token)
        return grads

    def register_pytree_class(self, cls: type) -> type:
        if cls not in _PYTREE_CLASSES:
            jax.tree_util.register_pytree_node_class(cls)
            _PYTREE_CLASSES.add(cls)
        return cls

    def _compile(self, fn: Callable) -> Callable:
        return jax.jit(fn)

    def eval_shape(self, fn: Callable, *args: Any) -> Any:
        try:  # a strategy's first-state checks: each read-out compiled alone cost a first fit ~0.15 s
            return jax.eval_shape(fn, *args)
        except Exception:  # noqa: BLE001 - host logic, non-array outputs: run it (and raise what it raises)
            return fn(*args)

    @property
    def traceable(self) -> bool:
        return True

    @property
    def in_lockstep(self) -> bool:
        return _LOCKSTEP.get() is not None

    def cond(self, pred: Any, true_fn: Callable, false_fn: Callable, *operands: Any) -> Any:
        if not isinstance(pred, jax.core.Tracer):
            # eager (the functional API outside jax.jit): one branch, as on numpy. lax.cond traces
            # and compiles its branches, and the strategies' branches are new closures or bound
            # methods at every call: CMA-ES d = 100 compiled its eigen branch every generation (0.3 s).
            return true_fn(*operands) if bool(pred) else false_fn(*operands)
        lockstep = _LOCKSTEP.get()
        if lockstep is None:
            return jax.lax.cond(pred, true_fn, false_fn, *operands)
        axis_name, active = lockstep
        mine = jnp.logical_and(pred, active)

        def either(*ops: Any) -> Any:
            return jax.tree_util.tree_map(lambda a, b: jnp.where(mine, a, b), true_fn(*ops), false_fn(*ops))

        anyone = jax.lax.psum(mine.astype(jnp.int32), axis_name) > 0  # one value for all the runs
        return jax.lax.cond(anyone, either, false_fn, *operands)

    def expm_symmetric(self, s: Array) -> Array:
        # eigh on the CPU and for small matrices; Pade with scaling and squaring on
        # accelerators from d = 64 (on an H100: eigh 0.39 / 1.16 / 11.1 ms at d = 10 / 100 /
        # 1000, Pade 0.87 / 0.81 / 3.5 ms).
        if s.shape[0] < _PADE_MIN_DIM:
            return super().expm_symmetric(s)
        return jax.lax.platform_dependent(s, cpu=super().expm_symmetric, default=expm_pade)
