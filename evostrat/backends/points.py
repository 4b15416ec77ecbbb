"""Where a run starts: the backend ``x0`` picks and ``x0`` as a validated search point.

``x0`` decides the backend (a numpy array or a list: numpy, a torch tensor:
torch, a JAX array: JAX) unless ``backend=`` names one; :func:`as_search_point`
turns it into a finite 1-D floating array of that backend.

Examples
--------
>>> import numpy as np
>>> be = resolve_backend([1.0, 2.0], "auto")
>>> be.name, as_search_point([1.0, 2.0], be).dtype
('numpy', dtype('float64'))
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import math
import os
from numbers import Integral
from typing import Any, Iterator

import numpy as np

from evostrat.backends import Backend, get_backend
from evostrat.backends.base import FLOAT_DTYPES, Array
from evostrat.backends.structured import holds_arrays
from evostrat.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["allocation_limit", "as_search_point", "check_allocation", "check_population_size", "draw_point",
           "stack_rows", "physical_memory", "placed_key", "resolve_backend"]

#: The bytes a strategy state may take within :func:`allocation_limit` (``None``: the machine's memory).
_STATE_LIMIT: contextvars.ContextVar[tuple[int, str] | None] = contextvars.ContextVar(
    "evostrat_state_limit", default=None)


def as_search_point(
    x0: Any, backend: Backend, dtype: Any = None, device: Any = None, *, program_input: bool = False
) -> Array:
    """Validate ``x0`` and convert it to a 1-D floating array of ``backend``.

    ``dtype`` (a name or a dtype of any library) is float32 or float64; by default
    ``x0``'s own (see :meth:`~evostrat.backends.base.Backend.float_dtype`).
    ``program_input``: the point only feeds a compiled program with a placed key, so it is
    converted with :meth:`~evostrat.backends.base.Backend.program_input` (no device given).
    Under ``jax.jit`` or ``jax.vmap`` (a traced ``x0``) the finiteness check is skipped: the
    values are not known while tracing.

    Raises
    ------
    InvalidTypeError
        For another ``dtype``, or an ``x0`` that is not float32/64, float16, bfloat16 or
        integer (bool, complex, longdouble, object, strings).
    InvalidArgumentError
        For a shape other than ``(dim,)`` with ``dim >= 1``, non-finite values, or a ``device``
        the backend does not know or the machine does not have.
    """
    device = backend.resolve_device(device)  # a name ("cuda:0") as the library's device, or refused
    lazy = program_input and device is None
    try:
        x = backend.program_input(x0) if lazy else backend.asarray(x0, device=device)
    except (TypeError, ValueError) as err:
        raise InvalidTypeError(
            f"x0 must be a 1-D array of real numbers, got {type(x0).__name__}: {err}"
        ) from err
    own = backend.float_dtype(x)  # refuses an x0 of a dtype no run computes in
    if dtype is not None:
        if backend.dtype_name(dtype) not in FLOAT_DTYPES:
            raise InvalidTypeError(f"dtype must be None or one of {FLOAT_DTYPES}, got {dtype!r}")
        own = backend.dtype_from_name(backend.dtype_name(dtype))
    x = backend.program_input(x, dtype=own) if lazy else backend.asarray(x, dtype=own)
    if getattr(x, "requires_grad", False):  # a torch x0 with a graph (parameters_to_vector): the run
        x = backend.stop_gradient(x)         # would chain every generation's autograd graph to it
    if x.ndim != 1 or x.shape[0] < 1:
        raise InvalidArgumentError(
            f"x0 must have shape (dim,) with dim >= 1, got shape {tuple(x.shape)}"
            + (f"; for a 1-D problem pass [{float(x)!r}]" if x.ndim == 0 else "")
        )
    try:
        host = backend.to_numpy(x)  # on the host: one small copy, no device ops
    except TypeError:  # a JAX tracer (init under jax.jit / vmap): no value to check yet
        if not backend.traceable:
            raise
        return x
    # a small point without numpy's reduction (~10 us with the cold caches after a compiled run)
    if not (all(map(math.isfinite, host.tolist())) if host.size <= 64 else np.isfinite(host).all()):
        raise InvalidArgumentError("x0 must be finite; it contains NaN or inf")
    return x


def resolve_backend(x0: Any, backend: Any) -> Backend:
    """The backend of a run: ``backend`` if given, else the one owning ``x0`` (numpy for lists).

    Examples
    --------
    >>> resolve_backend([1.0, 2.0], "auto").name
    'numpy'
    """
    if isinstance(x0, (str, bytes)):  # not a backend name: that is ``backend=``
        raise InvalidTypeError(f"x0 must be a 1-D array of real numbers (a numpy, torch or JAX array, or a list), "
                               f"got {type(x0).__name__} {x0!r}; pass a backend name as backend=")
    if backend is None or (isinstance(backend, str) and backend == "auto"):
        if isinstance(x0, (list, tuple, int, float)):
            return get_backend("numpy")
        try:
            return get_backend(x0)
        except InvalidTypeError as err:
            raise InvalidTypeError(f"x0: {err}") from None
    return get_backend(backend)


def physical_memory() -> int:
    """The machine's physical memory in bytes (2**50 where the system does not tell)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 2**50


@contextlib.contextmanager
def allocation_limit(nbytes: int, reason: str) -> Iterator[None]:
    """Within the block, :func:`check_allocation` refuses states over ``nbytes`` bytes, saying
    ``reason`` (e.g. what a checkpoint holds), as well as states over the machine's memory.

    Examples
    --------
    >>> with allocation_limit(800, "a demo allows"):
    ...     check_allocation("a state of 200 values", 200 * 8, "popsize=200")
    Traceback (most recent call last):
    ...
    evostrat.errors.InvalidArgumentError: popsize=200 makes a state of 200 values: 1.49e-06 GiB, more than the 7.45e-07 GiB a demo allows
    """
    token = _STATE_LIMIT.set((int(nbytes), reason))
    try:
        yield
    finally:
        _STATE_LIMIT.reset(token)


def check_allocation(what: str, nbytes: int, cause: str) -> None:
    """Raise :class:`InvalidArgumentError` naming ``cause`` (the argument, ``"lazy_eigen=..."``)
    when ``what`` (``nbytes`` bytes) exceeds the physical memory or the :func:`allocation_limit`."""
    limit, reason = physical_memory(), "of memory"
    bound = _STATE_LIMIT.get()
    if bound is not None and bound[0] < limit:
        limit, reason = bound
    if nbytes > limit:
        raise InvalidArgumentError(f"{cause} makes {what}: {nbytes / 2**30:.3g} GiB, more than the "
                                   f"{limit / 2**30:.3g} GiB {reason}")


def check_population_size(popsize: Any, x0: Any, dtype: Any = None) -> None:
    """Raise :class:`InvalidArgumentError` if one population (``popsize x dim x itemsize``
    bytes) exceeds the physical memory (2**50 bytes where the system does not tell)."""
    if isinstance(popsize, Integral) and not isinstance(popsize, bool):  # else the strategy reports it
        dim = math.prod(getattr(x0, "shape", None) or (len(x0) if isinstance(x0, (list, tuple)) else 1,))
        dtype = dtype or getattr(x0, "dtype", "")
        single = (dtype.kind == "f" and dtype.itemsize == 4 if isinstance(dtype, np.dtype)  # numpy's, JAX's:
                  else "float32" in str(dtype))  # without str(), ~15 us right after a compiled run
        need = int(popsize) * dim * (4 if single else 8)
        memory = physical_memory()
        if need > memory:
            raise InvalidArgumentError(f"popsize={popsize} needs {need / 2**30:.3g} GiB for one population "
                                       f"of dim {dim}, more than the {memory / 2**30:.3g} GiB of memory")


def draw_point(source: Any, seed: int | None, run: int, dim: int | None = None) -> Any:
    """A start point from the callable ``x0`` (``source``) for restart run ``run``; ``dim``:
    the length it must have (``None``: any).

    A callable of no arguments (pycma's ``x0()``) is called while numpy's global generator is
    seeded from ``(seed, run)`` (then restored), so one drawing from ``np.random`` gives
    reproducible runs. A callable of one required argument, ``x0(rng)``, gets a
    ``numpy.random.Generator`` seeded from ``(seed, run)`` (fresh entropy without a seed) and
    the global generator is left alone.

    Raises
    ------
    InvalidTypeError
        For a callable that needs more than one argument.
    InvalidArgumentError
        For a structured point, a point of another shape, or one with NaN or inf.

    Examples
    --------
    >>> a = draw_point(lambda rng: rng.uniform(-1, 1, 3), seed=0, run=1)
    >>> bool((a == draw_point(lambda rng: rng.uniform(-1, 1, 3), seed=0, run=1)).all()), a.shape
    (True, (3,))
    """
    entropy = None if seed is None else [int(seed), run, 0x5EED]
    if _required_arguments(source) == 1:
        point = source(np.random.default_rng(np.random.SeedSequence(entropy)))
    else:
        saved = np.random.get_state()
        if seed is not None:
            np.random.seed(np.random.SeedSequence(entropy).generate_state(4))
        try:
            point = source()
        finally:
            if seed is not None:
                np.random.set_state(saved)
    structured = isinstance(point, (list, tuple)) and holds_arrays(point)  # a list of arrays, not of numbers
    if isinstance(point, dict) or structured or hasattr(point, "parameters"):
        raise InvalidArgumentError(f"the callable x0 returned a {type(point).__name__} for restart run {run}: a "
                                   "callable x0 must return a flat point (an array of shape (dim,)); structured "
                                   "starts (dicts, pytrees, modules) are taken as x0 itself, not from a callable")
    shape = tuple(np.shape(point))
    if len(shape) != 1 or shape[0] < 1 or (dim is not None and shape[0] != dim):
        raise InvalidArgumentError(f"the callable x0 must return a point of shape {'(dim,)' if dim is None else (dim,)}, "
                                   f"got shape {shape} for restart run {run}")
    try:
        finite = bool(np.isfinite(np.asarray(point.detach().cpu() if hasattr(point, "detach") else point,
                                             dtype=np.float64)).all())
    except (TypeError, ValueError):
        finite = True  # not numbers: as_search_point names the type
    if not finite:
        raise InvalidArgumentError(f"the callable x0 returned a point with NaN or inf for restart run {run}")
    return point


def _required_arguments(source: Any) -> int:
    """How many positional arguments the callable ``x0`` requires (0 where its signature is unknown).

    Raises
    ------
    InvalidTypeError
        When it requires more than one, or a keyword-only argument.
    """
    try:
        parameters = inspect.signature(source).parameters.values()
    except (TypeError, ValueError):  # a builtin or an extension's callable: called as pycma calls it
        return 0
    required = [p for p in parameters if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    positional = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in required)
    if positional > 1 or len(required) > positional:
        raise InvalidTypeError(f"a callable x0 is called as x0() or x0(rng) (rng: a numpy.random.Generator); "
                               f"{getattr(source, '__name__', type(source).__name__)}{inspect.signature(source)} "
                               f"requires {', '.join(repr(p.name) for p in required)}")
    return positional


def stack_rows(X: Any, backend: Backend, device: Any = None, dtype: Any = None) -> Any:
    """``X`` given as a list or tuple of rows (as pycma's ``ask`` hands a population out, or
    ``list(es.ask())``) stacked into one ``(rows, dim)`` array of ``backend`` and ``dtype`` (the
    run's: Python floats would otherwise become torch's default float32) on ``device``; any
    other ``X``, or rows that do not stack into one, unchanged (the caller's checks name them).

    Examples
    --------
    >>> import numpy as np
    >>> stack_rows([np.zeros(2), np.ones(2)], get_backend("numpy")).shape
    (2, 2)
    """
    if not isinstance(X, (list, tuple)) or not X:
        return X
    try:
        return backend.xp.stack([backend.asarray(x, dtype=dtype, device=device) for x in X])
    except (TypeError, ValueError, RuntimeError):
        return X


def placed_key(backend: Backend, random_state: int | None, x: Array) -> Any:
    """The key of ``random_state``, on ``x``'s device where the backend compiles (JAX).

    ``Backend.key`` makes a JAX key on the default device; beside an ``x0`` on another one
    (``ES(device=...)``, an ``x0`` put there) every program of the run refused its inputs' devices.
    """
    key = backend.key(random_state)
    if backend.traceable:
        device = backend.device(x)
        if device is not None and backend.device(key) != device:
            key = backend.asarray(key, device=device)
    return key
