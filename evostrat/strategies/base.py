"""The Strategy base and its contract: hyper-parameters plus pure ``init``/``ask``/``tell``.

A strategy object holds only hyper-parameters (like a scikit-learn estimator); the
run lives in a ``NamedTuple`` *state* that the pure methods take and return (optax
style), written once over the Array API namespace of the state's arrays, so they run
unchanged on numpy, torch and JAX (jitted)::

    state = strategy.init(x0, random_state=0)
    X, state = strategy.ask(state)            # (popsize, dim) candidates
    state = strategy.tell(state, X, f(X))     # f(X): (popsize,) values to minimise

:meth:`Strategy.initialize` wraps them in a stateful :class:`~evostrat.run.asktell.AskTell`;
the contract is the docstring of :class:`Strategy`, checked by :func:`check_strategy`.

Examples
--------
>>> import numpy as np
>>> from evostrat.strategies.snes import SNES
>>> s = SNES(sigma0=0.5)
>>> state = s.init(np.ones(3), random_state=0)
>>> X, state = s.ask(state)
>>> state = s.tell(state, X, (X ** 2).sum(axis=1))
>>> X.shape
(7, 3)
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, NamedTuple

import numpy as np

from evostrat.backends import Backend, get_backend
from evostrat.backends.points import (as_search_point, check_population_size,  # noqa: F401 - re-exported
                                      placed_key, resolve_backend)
from evostrat.backends.programs import program_key
from evostrat.errors import EvostratError, InvalidArgumentError, InvalidTypeError
from evostrat.params import Params
from evostrat.plugins import RegisteredName
from evostrat.run.asktell import AskTell
from evostrat.strategies.numerics import clamp_sigma, host_value  # noqa: F401 - re-exported
from evostrat.strategies.popsize import MirroredPopsize, default_popsize  # noqa: F401 - re-exported
from evostrat.strategies.state_type import (READ_OUTS, accepts_state, checking_state, declare_state_type,
                                            state_type_name)
from evostrat.strategies.told import checking_tell

if TYPE_CHECKING:
    from evostrat.evaluators.seeded import GaussianSeed
    from evostrat.strategies.readout import GaussianReadout

Array = Any

__all__ = ["MirroredPopsize", "Strategy", "as_search_point", "check_strategy", "clamp_sigma",
           "default_popsize", "host_value", "resolve_backend"]


#: initial_state program keys that did not trace (run eagerly from then on).
_UNTRACEABLE_INIT: set[Any] = set()
#: initial_state program keys whose state passed :func:`check_strategy`: a program keyed by the
#: strategy's class, hyper-parameters and input signature gives states of one structure.
_CHECKED_INIT: set[Any] = set()


class Strategy(Params):
    """Base class of all strategies, and the contract they fulfil.

    Parameters
    ----------
    popsize : int, optional
        Candidates per generation; ``None`` picks the strategy's default for
        the dimension.
    sigma0 : float or array
        Initial standard deviation of the search distribution (per coordinate
        when an array of shape ``(dim,)``).

    Notes
    -----
    **Required.** A subclass defines three pure functions over a ``NamedTuple`` state
    (never mutating it or ``self``); its ``name`` is the key it is registered under:

    - ``initial_state(x0, key, backend) -> state``: ``x0`` is the validated mean
      (shape ``(dim,)``), ``key`` the backend's random key;
    - ``ask(state) -> (X, state)``: ``X`` of shape ``(popsize, dim)``; split the key;
    - ``tell(state, X, fitness) -> state``: ``fitness`` (``popsize,``) is minimised; the shapes of
      ``X`` and ``fitness`` are checked before it runs (:mod:`~evostrat.strategies.told`).

    The state has the fields ``mean`` (the distribution's centre, ``(dim,)``) and
    ``key``, and ``sigma`` unless the strategy overrides :meth:`sigma`. Its class is the class
    attribute ``state_type`` (a tuple of classes for several): ``ask``, ``tell`` and the read-outs
    refuse a state of another type, another strategy's (:mod:`~evostrat.strategies.state_type`). The
    read-outs :meth:`mean` returns a ``(dim,)`` array and :meth:`sigma` a 0-d array.
    Hyper-parameters are the ``__init__`` arguments, stored under their names and
    validated by ``parameter_constraints`` (:mod:`evostrat.params`).

    **Optional**, with defaults here so that callers never test for them: the class attributes
    ``needs_behaviours``, ``termination_defaults``, ``min_popsize``, ``fusable_methods``,
    ``initial_only_params``, ``host_sigma`` and ``nonfinite_state_fields``, and :meth:`default_popsize`,
    :meth:`stop`, :meth:`population_seed` (seed-compressed evaluation), :meth:`evolvability`,
    :meth:`kernel`, :meth:`tolx_parts`/:meth:`tolx_path`, :meth:`gaussian_readout` and
    :meth:`check_state_arrays`. :meth:`init` checks the state once (:func:`check_strategy`);
    ``evostrat.testing.check_strategy`` runs the whole contract (``ask`` on the state's backend,
    dtype and device; randomness only from ``key``, so a seed reproduces the run and ``tell``
    updates alike on every backend).
    """

    #: The strategy's registry key (the one source of its name; see :class:`RegisteredName`).
    name: ClassVar[str] = RegisteredName()  # type: ignore[assignment]
    #: Whether ``tell`` takes behaviour descriptors (population, k) instead of fitness.
    needs_behaviours: ClassVar[bool] = False
    #: Smallest population the strategy accepts.
    min_popsize: ClassVar[int] = 2
    #: History criteria (``tolfunhist``, ``tolstagnation``, ``tolflatfitness``) the run uses
    #: unless told otherwise (none by default).
    termination_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    #: Methods that are array code alone (no host read of a device value, no host key), which
    #: the torch backend may fuse with ``torch.compile`` (:mod:`evostrat.backends.torch_fused`).
    #: A subclass that overrides one of them drops it unless it lists it again.
    fusable_methods: ClassVar[frozenset[str]] = frozenset()
    #: Hyper-parameters that only :meth:`initial_state` reads (the built-ins: ``sigma0``, whose
    #: value lives in the state from then on). The compiled ``ask``, ``tell``, ``stop``,
    #: ``sigma`` and driver chunks are shared across their values
    #: (:func:`~evostrat.backends.programs.program_key`), so a run with another ``sigma0``
    #: compiles only its small initial-state program. A subclass whose other methods read one
    #: of them must leave it out (``evostrat.testing``'s ``capabilities`` check compares those
    #: methods across values).
    initial_only_params: ClassVar[frozenset[str]] = frozenset()
    #: ``None``, or a method ``host_sigma(state) -> float``: :meth:`sigma` as a Python float read more
    #: cheaply on the host (xNES), which a run's history rows then use.
    host_sigma: ClassVar[Any] = None
    #: State fields that may hold NaN or inf (a checkpoint's other floating fields must be finite).
    nonfinite_state_fields: ClassVar[frozenset[str]] = frozenset()
    #: The ``NamedTuple`` class of the strategy's states, or a tuple of them; ``None``: not checked. A
    #: subclass that overrides ``initial_state`` declares it again (else ``None``; :mod:`.state_type`).
    state_type: ClassVar[Any] = None

    class State(NamedTuple):
        mean: Array
        key: Array

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap the ``tell``/``tell_seed`` of ``cls`` in the checks of :mod:`~evostrat.strategies.told`, its
        ``ask`` and read-outs in the state check of :mod:`~evostrat.strategies.state_type`."""
        super().__init_subclass__(**kwargs)
        for method in ("tell", "tell_seed"):
            fn = getattr(cls, method, None)  # a mixin's too
            if fn is not None and fn is not Strategy.tell and not getattr(fn, "__told_checked__", False):
                setattr(cls, method, checking_tell(fn, seeded=method == "tell_seed", owner=cls))
        declare_state_type(cls, Strategy)

    def __init__(self, popsize: int | None = None, sigma0: Any = 1.0) -> None:
        self.popsize = popsize
        self.sigma0 = sigma0

    # -- hyper-parameters resolved for a dimension (plain Python numbers) ---------------
    def default_popsize(self, dim: int) -> int:
        """The population size used when ``popsize`` is ``None``."""
        return default_popsize(dim)

    def resolved_popsize(self, dim: int) -> int:
        """``popsize`` or the default for ``dim``, validated."""
        lam = self.default_popsize(dim) if self.popsize is None else self.popsize
        if isinstance(lam, bool) or not isinstance(lam, (int, np.integer)):
            if self.popsize is None:  # the strategy's own default
                raise InvalidTypeError(f"default_popsize({dim}) of {type(self).__name__} must be an int, got {lam!r}")
            raise InvalidTypeError(f"popsize must be an int or None, got {lam!r}")
        if lam < self.min_popsize:
            raise InvalidArgumentError(
                f"popsize must be >= {self.min_popsize} for {self.name or type(self).__name__}, got {lam}"
            )
        return int(lam)

    def unrounded_popsize(self, dim: int) -> float:
        """The population size the run's defaults are computed with: ``popsize`` as resolved.

        Restarts grow populations from it (``int(unrounded * 2^k)``) and the default
        ``maxiter`` and ``tolstagnation`` of a first run use it; the CMA family gives pycma's
        unrounded ``4 + 3 ln d`` when ``popsize`` is left to the default.
        """
        return float(self.resolved_popsize(dim))

    def initial_sigma(self, x0: Array, backend: Backend) -> Array:
        """``sigma0`` as an array of shape ``(dim,)`` on ``x0``'s backend, validated.

        The checks read the host value of ``sigma0`` (a hyper-parameter), so this also
        runs inside a compiled :meth:`initial_state`.
        """
        expected = f"sigma0 must be a positive number or an array of shape {tuple(x0.shape)}"
        try:
            host = np.asarray(host_value(self.sigma0))
            if host.dtype.kind not in "fiu":  # numpy would read "1" and True as numbers
                raise TypeError(f"dtype {host.dtype}")
            host = host.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise InvalidTypeError(f"{expected}, got {type(self.sigma0).__name__}: {self.sigma0!r}") from err
        if host.ndim != 0 and host.shape != tuple(x0.shape):
            raise InvalidArgumentError(f"{expected}, got shape {host.shape}")
        cast = host.astype(backend.dtype_name(x0.dtype))
        if not (np.all(cast > 0) and np.all(np.isfinite(cast))):
            raise InvalidArgumentError(f"sigma0 must be positive and finite, got {self.sigma0!r}")
        sigma = backend.asarray(host, dtype=x0.dtype, device=backend.device(x0))
        return backend.xp.ones_like(x0) * sigma if host.ndim == 0 else sigma

    # -- the pure interface -----------------------------------------------------------
    def init(self, x0: Any, key: Any = None, backend: Any = "auto", *,
             random_state: int | None = None, dtype: Any = None, device: Any = None) -> Any:
        """Initial state around ``x0``, after validating ``x0``, the hyper-parameters and the state.

        Parameters
        ----------
        x0 : array, shape (dim,)
            Initial mean. Its type picks the backend unless ``backend`` is given.
        key : backend key, optional
            Random key; built from ``random_state`` when omitted.
        backend : str or Backend
        random_state : int, optional
        dtype, device : optional
            Override the floating dtype and (torch/JAX) device of the state.
        """
        be = resolve_backend(x0, backend)
        # with the run's own (placed) key, x0 may stay unplaced: the state program places its outputs
        x = as_search_point(x0, be, dtype=dtype, device=device, program_input=key is None and be.traceable)
        self.validate_params()
        check_population_size(self.resolved_popsize(x.shape[0]), x)  # before any population exists
        state, name = self._build_state(x, placed_key(be, random_state, x) if key is None else key, be)
        if name is None or name not in _CHECKED_INIT:  # a program's states all pass or all fail
            check_strategy(self, state)
            if name is not None:
                if len(_CHECKED_INIT) >= 256:
                    _CHECKED_INIT.clear()
                _CHECKED_INIT.add(name)
        return state

    def _build_state(self, x0: Array, key: Any, backend: Backend) -> tuple[Any, Any]:
        """``(state, name)``: :meth:`initial_state`, compiled once per hyper-parameters and
        signature where the backend compiles (a dozen small array operations cost ~1 ms one
        by one on JAX) under the program key ``name``; run as it is when it does not trace
        (``name`` ``None``)."""
        if not backend.traceable:
            return self.initial_state(x0, key, backend), None
        signature = (tuple(x0.shape), backend.dtype_name(x0.dtype), backend.device(x0))
        name = program_key(self.initial_state, *signature)
        if name[0] is not type(self) or name in _UNTRACEABLE_INIT:  # not keyed by hyper-parameters
            return self.initial_state(backend.asarray(x0), key, backend), None  # placed (program_input)
        program = backend.compile(lambda x, k: self.initial_state(x, k, backend), key=name)
        try:
            return program(x0, key), name
        except EvostratError:
            raise
        except Exception:  # noqa: BLE001 - host-side logic in initial_state: run it eagerly
            _UNTRACEABLE_INIT.add(name)
            return self.initial_state(backend.asarray(x0), key, backend), None

    def initial_state(self, x0: Array, key: Any, backend: Backend) -> Any:
        """The state around the validated mean ``x0`` (required; see the class docstring)."""
        legacy = getattr(self, "_init", None)  # this method's old name, for existing subclasses
        if legacy is None:
            raise NotImplementedError(f"{type(self).__name__} does not define initial_state")
        return legacy(x0, key, backend)

    def ask(self, state: Any) -> tuple[Array, Any]:
        """Sample a population: returns ``(X, new_state)``, ``X`` of shape (popsize, dim)."""
        raise NotImplementedError

    def tell(self, state: Any, X: Array, fitness: Array) -> Any:
        """Update the state from the population ``X`` and its ``fitness`` (minimised)."""
        raise NotImplementedError

    # -- read-outs ----------------------------------------------------------------------
    def mean(self, state: Any) -> Array:
        """Centre of the search distribution (the current estimate of the optimum)."""
        return state.mean

    def sigma(self, state: Any) -> Array:
        """Largest per-coordinate standard deviation of the search distribution (0-d)."""
        return get_backend(state.mean).xp.max(state.sigma)

    # -- optional capabilities (defaults) ------------------------------------------------
    def stop(self, state: Any) -> dict[str, bool]:
        """Strategy-specific termination criteria (name -> triggered); none by default."""
        return {}

    def population_seed(self, state: Any) -> GaussianSeed | None:
        """The population ``ask(state)`` returns, as a seed; ``None`` (default): not seedable."""
        return None

    def evolvability(self, state: Any) -> Array:
        """The behavioural statistic the strategy ascends (0-d); NaN (default) when none."""
        be = get_backend(state.mean)
        return be.xp.full((), math.nan, dtype=state.mean.dtype, device=be.device(state.mean))

    def kernel(self, state: Any) -> Any:
        """The fast-path kernel (:mod:`evostrat.kernels`) the strategy runs ``state`` with;
        ``None`` (default): the strategy's own methods."""
        return None

    def gaussian_readout(self, state: Any) -> GaussianReadout | None:
        """The search distribution in ``state`` (:mod:`~evostrat.strategies.readout`); ``None``: ``sigma`` alone."""
        return None

    def tolx_parts(self, state: Any) -> Any:
        """What ``tolx`` reads of ``state`` besides :meth:`sigma`, for :meth:`tolx_path` (kept
        while a run defers its criteria); ``None`` (default): ``sigma`` alone."""
        return None

    def tolx_path(self, parts: Any) -> Array:
        """A 0-d value of non-``None`` :meth:`tolx_parts` that must be below ``tolx`` too (CMA-ES:
        pycma's ``max_j sigma p_c_j``)."""
        raise NotImplementedError(f"{type(self).__name__} has tolx_parts but no tolx_path")

    def check_state_arrays(self, arrays: dict[str, Any]) -> None:
        """Refuse saved state ``arrays`` (numpy, by field) whose values are inconsistent, with an
        ``InvalidArgumentError`` naming the field; nothing to check by default (finiteness is
        checked for every strategy: :mod:`evostrat.strategies.state_checks`)."""

    # -- stateful wrapper ---------------------------------------------------------------
    def initialize(self, x0: Any, random_state: int | None = None, *, backend: Any = "auto",
                   dtype: Any = None, device: Any = None, nonfinite: str = "warn") -> "AskTell":
        """A stateful ask/tell object around this strategy (see :class:`~evostrat.run.asktell.AskTell`)."""
        return AskTell(self, x0, random_state=random_state, backend=backend, dtype=dtype,
                       device=device, nonfinite=nonfinite)


def check_strategy(strategy: Strategy, state: Any) -> None:
    """Check ``strategy`` and its initial ``state`` against the contract of :class:`Strategy`.

    :meth:`Strategy.init` calls it once, so a broken state is refused before the first
    generation; plugin authors run the whole contract with ``evostrat.testing.check_strategy``.

    Raises
    ------
    InvalidTypeError
        Naming the missing method or state field, the read-out of the wrong shape (or a
        ``sigma`` of another dtype than the mean), a
        ``needs_behaviours`` that is not a bool or a ``stop(state)`` that is not a dict of names.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat.strategies.snes import SNES
    >>> s = SNES()
    >>> check_strategy(s, s.init(np.zeros(3), random_state=0))
    >>> check_strategy(s, s.init(np.zeros(3), random_state=0)._replace(mean=np.zeros((2, 3))))
    Traceback (most recent call last):
    ...
    evostrat.errors.InvalidTypeError: mean(state) of strategy 'snes' must be an array of shape (dim,), got shape (2, 3)
    """
    label = f"strategy {strategy.name or type(strategy).__name__!r}"
    for method in ("ask", "tell"):
        if getattr(type(strategy), method) is getattr(Strategy, method):
            raise InvalidTypeError(f"{label} does not define {method}")
    if not isinstance(strategy.needs_behaviours, bool):  # a truthy string would switch behaviours on
        raise InvalidTypeError(f"needs_behaviours of {label} must be a bool, got {strategy.needs_behaviours!r}")
    fields = getattr(type(state), "_fields", None)
    if not isinstance(state, tuple) or fields is None:
        raise InvalidTypeError(f"the state of {label} must be a NamedTuple, got {type(state).__name__}")
    if not accepts_state(strategy.state_type, state):
        raise InvalidTypeError(f"initial_state of {label} must return {state_type_name(strategy.state_type)}, its "
                               f"state_type, got {state_type_name(type(state))}")
    needed = ["mean", "key"] + (["sigma"] if type(strategy).sigma is Strategy.sigma else [])
    for field in needed:
        if field not in fields:
            extra = " and the strategy does not override sigma(state)" if field == "sigma" else ""
            raise InvalidTypeError(f"state of {label} has no field {field!r}{extra}")
    # the read-outs' shapes and dtypes (on JAX traced, not compiled and run)
    mean, sigma, stops = get_backend(state.mean).eval_shape(
        lambda s: (strategy.mean(s), strategy.sigma(s), strategy.stop(s)), state)
    for read_out, value, ndim, shape in (("mean", mean, 1, "(dim,)"), ("sigma", sigma, 0, "()")):
        if getattr(value, "ndim", None) != ndim:
            got = tuple(value.shape) if hasattr(value, "shape") else type(value).__name__
            raise InvalidTypeError(
                f"{read_out}(state) of {label} must be an array of shape {shape}, got "
                f"{'shape ' if hasattr(value, 'shape') else ''}{got}"
            )
    dtypes = mean.dtype, sigma.dtype
    if dtypes[0] != dtypes[1]:  # built from something other than x0: ask's X would be promoted
        raise InvalidTypeError(f"sigma(state) of {label} must be of the dtype of x0 and mean(state), "
                               f"{dtypes[0]}, got {dtypes[1]}")
    if not isinstance(stops, dict) or not all(isinstance(name, str) for name in stops):
        raise InvalidTypeError(f"stop(state) of {label} must return a dict of criterion names to booleans, "
                               f"got {type(stops).__name__}: {stops!r}"[:300])


for _method in READ_OUTS:  # the defaults; a subclass's own are wrapped by __init_subclass__
    setattr(Strategy, _method, checking_state(getattr(Strategy, _method), _method))
