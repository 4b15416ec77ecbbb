"""The backend protocol: what strategies need beyond the Array API standard.

Strategies compute with ``backend.xp`` (an Array API namespace from
array-api-compat) and call the methods below for what the standard lacks:
random numbers, host transfers, gradients and compilation. Random numbers are
functional: ``split`` derives new keys, ``normal`` draws from a key without
mutating it, so ``init/ask/tell`` stay pure (jittable on JAX) and a run is
reproducible bit for bit from its state alone.

Examples
--------
>>> import numpy as np
>>> from evostrat.backends import get_backend
>>> be = get_backend("numpy")
>>> key = be.key(0)
>>> key, sub = be.split(key)
>>> be.normal(sub, (2, 3), be.default_float).shape
(2, 3)
"""

from __future__ import annotations

from typing import Any, Callable, Hashable, Sequence

import numpy as np

from evostrat.backends.devices import host_device
from evostrat.backends.programs import compile_cached
from evostrat.backends.trees import tree_from_host, tree_to_host
from evostrat.errors import InvalidArgumentError, InvalidTypeError

Array = Any
Key = Any
#: The floating dtypes runs compute in, on every backend (``ES(dtype=...)``).
FLOAT_DTYPES = ("float32", "float64")

def require_dependence(connected: bool, what: str | None) -> None:
    """Raise :class:`~evostrat.errors.InvalidArgumentError` naming ``what`` when ``what`` is
    given and the value it names is not ``connected`` to the parameters it is differentiated in
    (its gradient would be zero by construction, not by chance).

    >>> require_dependence(False, None)   # nobody asked: the caller gets zeros
    >>> require_dependence(False, "statistic")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    evostrat.errors.InvalidArgumentError: statistic does not depend on the parameters it is differentiated in, ...
    """
    if what is not None and not connected:
        raise InvalidArgumentError(
            f"{what} does not depend on the parameters it is differentiated in, so its gradient is "
            "zero by construction; expected a value computed from them (e.g. evostrat.expectation("
            "values, X, p) on the distribution p it is given), not a constant or a value built only "
            "from detached / stop_gradient arrays")


#: :meth:`Backend.dtype_name` of the dtypes seen so far.
_DTYPE_NAMES: dict[Any, str] = {}


class Backend:
    """Base class of array backends. Subclasses fill in every method.

    Attributes
    ----------
    name : str
        Registry name (``"numpy"``, ``"torch"``, ``"jax"``).
    xp : module
        Array API namespace used by all numerical code.
    default_float : dtype
        Floating dtype used when ``x0`` is not floating.
    host_arrays : bool
        Its arrays are numpy ``ndarray`` in host memory, so host kernels (numpy code that reads
        and writes them, :mod:`evostrat.kernels`) apply to them and a numpy array of its dtype
        needs no conversion. Code outside :mod:`evostrat.backends` asks this, never the name.
    torch_tensors : bool
        Its arrays are ``torch.Tensor`` (on any device), so torch kernels (torch code that reads
        and writes them, :mod:`evostrat.kernels.cma_torch_stack`) apply to them.
    """

    name: str = ""
    xp: Any = None
    default_float: Any = None
    host_arrays: bool = False
    torch_tensors: bool = False

    # -- identification ------------------------------------------------------------
    def owns(self, x: Any) -> bool:
        """Whether ``x`` is an array of this backend."""
        raise NotImplementedError

    # -- conversion ------------------------------------------------------------------
    def asarray(self, x: Any, dtype: Any = None, device: Any = None) -> Array:
        """Convert ``x`` (array-like, possibly of another backend) to this backend."""
        raise NotImplementedError

    def program_input(self, x: Any, dtype: Any = None) -> Array:
        """:meth:`asarray` for an array that only feeds a compiled program together with inputs
        already placed on a device (a random key): the program's inputs place the outputs.

        Where arrays carry a placement (JAX's committed arrays), an array of this backend
        and ``dtype`` that is not yet placed is returned as it is, saving a dispatch;
        elsewhere this is :meth:`asarray`.
        """
        return self.asarray(x, dtype=dtype)

    def to_numpy(self, x: Array) -> np.ndarray:
        """``x`` as a host numpy array."""
        return np.asarray(x)

    def device(self, x: Array) -> Any:
        """The device ``x`` lives on (``None`` where the notion does not apply)."""
        return None

    def resolve_device(self, device: Any) -> Any:
        """A run's ``device`` argument as what this backend places arrays with, checked once
        (:mod:`evostrat.backends.devices`): host arrays take only ``None`` or ``"cpu"``."""
        return host_device(device)

    def on_cpu(self, x: Array) -> bool:
        """Whether ``x`` lives in host memory (a worker's CPU can rebuild it bit for bit)."""
        device = self.device(x)
        kind = getattr(device, "type", None) or getattr(device, "platform", None) or device
        return device is None or str(kind).lower().startswith("cpu")

    def to_host(self, tree: Any) -> Any:
        """``tree`` (an array, a state: nested NamedTuples, tuples, lists, dicts) on the host.

        Arrays become numpy arrays (no copies where possible), keys (fields
        named ``key``) their numpy words; numpy scalars and other leaves are kept.
        """
        return tree_to_host(self, tree)

    def from_host(self, tree: Any, dtype: Any = None) -> Any:
        """Inverse of :meth:`to_host`: fresh arrays on :attr:`host_device` (cast to ``dtype``)."""
        return tree_from_host(self, tree, dtype)

    @property
    def host_device(self) -> Any:
        """Where :meth:`from_host` puts arrays (``None``: the library's default)."""
        return None

    def counter_device(self, device: Any) -> Any:
        """The device of a state's integer counter whose value a decision reads (a generation
        count), in a state on ``device``: ``device`` itself, except on torch (the host).

        >>> from evostrat.backends import get_backend
        >>> get_backend("numpy").counter_device(None) is None
        True
        """
        return device

    def restored_device(self, template: Any, device: Any) -> Any:
        """The device of a state leaf restored (a checkpoint) in place of ``template`` in a run
        on ``device``: ``device`` itself, except on torch (``template``'s own)."""
        return device

    def float_dtype(self, x: Array) -> Any:
        """The floating dtype a search point like ``x`` is kept in.

        float32 and float64 are kept; integers, float16 and bfloat16 (numpy and torch
        lack their random-number and eigendecomposition kernels) are computed in
        :attr:`default_float`; other dtypes (bool, complex, longdouble...) are refused.
        """
        name = self.dtype_name(x.dtype)
        if name in FLOAT_DTYPES:
            return x.dtype
        if name in ("float16", "bfloat16") or self.xp.isdtype(x.dtype, "integral"):
            return self.default_float
        raise InvalidTypeError(
            f"x0 must have a float32 or float64 dtype (integer, float16 and bfloat16 x0 are "
            f"computed in {self.dtype_name(self.default_float)}), got {name}"
        )

    @staticmethod
    def dtype_name(dtype: Any) -> str:
        """A portable dtype name such as ``"float32"`` (of a numpy or torch dtype or scalar type)."""
        try:
            return _DTYPE_NAMES[dtype]  # (numpy's name look-up costs a few microseconds)
        except (KeyError, TypeError):
            pass
        try:
            name = np.dtype(dtype).name  # np.float64 and np.dtype("float64") alike
        except TypeError:
            name = str(dtype).rsplit(".", 1)[-1]
        try:
            if len(_DTYPE_NAMES) < 64:
                _DTYPE_NAMES[dtype] = name
        except TypeError:  # unhashable
            pass
        return name

    def dtype_from_name(self, name: str) -> Any:
        """Inverse of :meth:`dtype_name`."""
        return getattr(self.xp, name)

    def require_dtype(self, name: str) -> Any:
        """The dtype named ``name``, switched on first where the library needs it.

        A worker process rebuilding a float64 JAX population turns on
        ``jax_enable_x64`` here; other backends just look the name up.

        >>> from evostrat.backends import get_backend
        >>> get_backend("numpy").require_dtype("float32")
        <class 'numpy.float32'>
        """
        return self.dtype_from_name(name)

    # -- random numbers (functional keys) --------------------------------------------
    def key(self, seed: int | None) -> Key:
        """A key from ``random_state``."""
        raise NotImplementedError

    def split(self, key: Key, num: int = 2) -> tuple[Key, ...]:
        """Derive ``num`` new keys; the input key must not be used again."""
        raise NotImplementedError

    def normal(self, key: Key, shape: tuple[int, ...], dtype: Any, device: Any = None) -> Array:
        """Standard normal samples."""
        raise NotImplementedError

    def uniform(self, key: Key, shape: tuple[int, ...], dtype: Any, device: Any = None) -> Array:
        """Uniform samples on [0, 1)."""
        raise NotImplementedError

    def normal_rows(
        self, key: Key, rows: Any, dim: int, dtype: Any, device: Any = None
    ) -> Array:
        """Rows ``rows`` of an addressable standard normal matrix with ``dim`` columns.

        Row ``r`` (``rows``: a ``range`` or 1-D array of non-negative ints) depends only
        on ``key`` and ``r``, so a worker can rebuild just its own rows of a population
        (:mod:`evostrat.evaluators.seeded`). This generic version seeds :meth:`normal`
        per row through ``SeedSequence``; backends override it with faster equivalents.
        """
        out = []
        base = [int(w) for w in np.asarray(self.key_to_numpy(key)).ravel()]
        for r in np.asarray(rows, dtype=np.int64).reshape(-1):
            words = np.random.SeedSequence(base + [int(r)]).generate_state(2, np.uint64)
            out.append(self.normal(self.key_from_numpy(words), (dim,), dtype, device))
        if not out:
            return self.xp.zeros((0, dim), dtype=dtype)
        return self.xp.stack(out, axis=0)

    def key_to_numpy(self, key: Key) -> np.ndarray:
        """Serialise a key to a numpy array."""
        return np.asarray(self.to_numpy(key))

    def key_from_numpy(self, data: np.ndarray) -> Key:
        """Inverse of :meth:`key_to_numpy`."""
        raise NotImplementedError

    def is_key(self, x: Any) -> bool:
        """Whether ``x`` looks like a key of this backend."""
        return False

    def generator_normal(
        self, generator: Any, shape: tuple[int, ...], dtype: Any, device: Any = None
    ) -> Array:
        """Standard normal draws from a stateful generator of this library.

        numpy takes a ``numpy.random.Generator``, torch a ``torch.Generator``;
        backends without stateful generators (JAX) raise ``InvalidArgumentError``,
        a generator of the wrong kind ``InvalidTypeError``.

        >>> from evostrat.backends import get_backend
        >>> be = get_backend("numpy")
        >>> be.generator_normal(np.random.default_rng(0), (2,), np.float64).shape
        (2,)
        """
        raise InvalidArgumentError(
            f"generator is not supported on the {self.name} backend (it has no stateful "
            "generators); pass key= instead"
        )

    # -- autodiff and compilation -----------------------------------------------------
    #: Whether :meth:`grad` works (torch, JAX); numpy callers use closed forms.
    has_autodiff: bool = False

    def stop_gradient(self, x: Array) -> Array:
        """``x`` with gradients blocked (identity where there is no autodiff)."""
        return x

    def grad(self, fn: Callable[..., Array], params: Sequence[Array], *, what: str | None = None) -> tuple:
        """Gradient of the scalar ``fn(*params)`` with respect to each of ``params``.

        torch: fresh leaves and ``torch.autograd.grad`` (parameters unused by
        ``fn`` get zeros); JAX: ``jax.grad`` (traceable, so it runs under ``jit``).

        Raises :class:`~evostrat.errors.InvalidArgumentError` on numpy (no
        autodiff: use closed forms such as :func:`evostrat.expectation.expectation_grad`),
        when ``fn`` does not return a scalar, or, when ``what`` names ``fn`` (e.g.
        ``"statistic of strategy 'nes'"``), when its value depends on none of ``params``
        (:func:`require_dependence`: a gradient that is zero by construction).

        >>> from evostrat.backends import get_backend
        >>> get_backend("numpy").has_autodiff
        False
        """
        raise InvalidArgumentError(
            f"the {self.name} backend has no autodiff; use the closed-form expectation_grad() "
            "or a torch/JAX backend"
        )

    def register_pytree_class(self, cls: type) -> type:
        """Let instances of ``cls`` pass through :meth:`compile` and :meth:`grad` (JAX pytrees).

        ``cls`` defines ``tree_flatten(self) -> (leaves, aux)`` and the
        classmethod ``tree_unflatten(aux, leaves)``. Registered once; a no-op
        on backends that do not trace. Returns ``cls``.
        """
        return cls

    def eval_shape(self, fn: Callable, *args: Any) -> Any:
        """``fn(*args)`` where only its outputs' shapes and dtypes are needed: JAX traces ``fn`` without
        compiling or running it (its outputs ``jax.ShapeDtypeStruct``), falling back to ``fn(*args)``
        where ``fn`` does not trace; eager backends call it."""
        return fn(*args)

    def compile(self, fn: Callable, key: Hashable = None) -> Callable:
        """A compiled version of the pure function ``fn`` (``fn`` itself where nothing compiles).

        Backends share one LRU cache of compiled programs (:mod:`~evostrat.backends.programs`).
        ``key`` names the program (default: ``fn``); with
        :func:`~evostrat.backends.programs.program_key`, equal strategies share their
        ``ask``/``tell``, so a new run, a restart or a replaying worker compiles nothing
        new. The cache keeps ``fn`` alive, so a key may use ``id()`` of what ``fn`` refers to.

        >>> from evostrat.backends import get_backend
        >>> f = lambda x: x + 1
        >>> get_backend("numpy").compile(f) is f     # numpy does not compile
        True
        """
        if not self.traceable:
            return fn
        return compile_cached((self.name, key), fn, self._compile)

    def _compile(self, fn: Callable) -> Callable:
        """Compile ``fn`` (no caching); backends whose :attr:`traceable` is true override it."""
        return fn

    @property
    def traceable(self) -> bool:
        """Whether :meth:`compile` really compiles (pure functions only)."""
        return False

    #: Whether :meth:`vmap` maps a function eagerly over a leading batch axis (torch's
    #: ``torch.func.vmap``), which :mod:`evostrat.run.batch_torch` uses to tell many runs at once.
    #: JAX batches runs through its compiled path instead (:mod:`evostrat.run.batch_jax`).
    eager_vmap: bool = False

    def vmap(self, fn: Callable, keyed_draws: bool = False) -> Callable:
        """``fn`` mapped over the leading axis of each argument and result (:attr:`eager_vmap`).

        ``keyed_draws``: ``fn`` draws only from a :class:`~evostrat.backends.key_batch.KeyBatch`
        (each draw made once, unmapped, then gathered per run); any other random draw inside
        is an error.
        """
        raise NotImplementedError(f"the {self.name} backend has no eager vmap")

    @property
    def in_lockstep(self) -> bool:
        """Whether a batch of runs advanced together is being traced now (JAX's
        :func:`~evostrat.backends.jax.lockstep_conds`): ``cond`` is then one decision for the
        runs, and a cheap branch (:func:`~evostrat.backends.namespaces.cheap_cond`) is cheaper
        computed for every run and selected."""
        return False

    def cond(self, pred: Any, true_fn: Callable, false_fn: Callable, *operands: Any) -> Any:
        """``true_fn(*operands)`` if ``pred`` else ``false_fn(*operands)``.

        Both branches must return the same structure. Eager backends evaluate
        one branch; JAX uses ``lax.cond`` so the choice can depend on traced values.
        """
        return true_fn(*operands) if bool(pred) else false_fn(*operands)

    # -- linear algebra ---------------------------------------------------------------
    def vecdot(self, a: Array, b: Array) -> Array:
        """``sum(a * b, axis=-1)``: the Array API's ``vecdot`` over the last axis."""
        return self.xp.vecdot(a, b, axis=-1)

    def eigh(self, a: Array) -> tuple[Array, Array]:
        """Eigenvalues (ascending) and eigenvectors of a symmetric matrix."""
        return self.xp.linalg.eigh(a)

    def expm_symmetric(self, s: Array) -> Array:
        """Matrix exponential of a symmetric matrix, ``I + V diag(expm1(w)) V^T``.

        ``s = V diag(w) V^T``; adding ``expm1`` to the identity keeps ``expm(0)``
        exactly ``I`` and small arguments accurate. Backends on accelerators may
        use a matrix-product method instead (JAX off the CPU, where ``eigh`` is slow).
        """
        xp = self.xp
        w, V = self.eigh(s)
        eye = xp.eye(s.shape[0], dtype=s.dtype, device=self.device(s))
        return eye + xp.matmul(V * xp.expm1(w), V.T)

    def __repr__(self) -> str:
        return f"<evostrat backend {self.name!r}>"
