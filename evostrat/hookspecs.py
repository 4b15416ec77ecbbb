"""Hook specifications: the plugin author's reference.

A plugin is a module (or object) with functions decorated by
:data:`evostrat.hookimpl` whose names match the specifications below. Publish it
with an entry point in the ``evostrat`` group of your package's
``pyproject.toml``::

    [project.entry-points.evostrat]
    my_plugin = "my_package.evostrat_plugin"

After ``pip install``, ``evostrat.ES(strategy="my_strategy")`` finds it.
evostrat's own backends, strategies, evaluators and distributions are registered
through these same hooks, under the entry-point names ``evostrat.backends``,
``evostrat.strategies``, ``evostrat.evaluators`` and ``evostrat.distributions``.

Registry hooks (``evostrat_strategies``, ``evostrat_backends``,
``evostrat_evaluators``, ``evostrat_distributions``) are *collect-all*: every
plugin returns a dict of name -> factory and evostrat merges them. Two plugins
providing the same name is an error naming both.

Dispatch hooks (``evostrat_backend``, ``evostrat_kernel``, ``evostrat_stack_kernel``) are *first
result*: the first plugin that returns something other than ``None`` wins.
Built-in implementations are ``trylast``, so a plugin's specialised answer
takes precedence.

Every hook is called once per process (the kernel hooks once per strategy
instance and backend) and its result cached, never per generation.

A strategy's optional capabilities are methods and class attributes with defaults on
:class:`~evostrat.strategies.base.Strategy`, not hooks: ``kernel(state)`` (the fast path
this hook feeds), ``host_sigma``, ``tolx_parts``/``tolx_path``, and ``gaussian_readout(state)``
(the search distribution as a :class:`~evostrat.strategies.readout.GaussianReadout`, which
injection's Mahalanobis clipping and the distribution recorder read instead of state field
names); ``docs/guides/plugins.md`` lists them all.

Examples
--------
A plugin adding a strategy:

>>> from evostrat import hookimpl
>>> from evostrat.strategies.base import Strategy
>>> class MyStrategy(Strategy):        # doctest: +SKIP
...     ...                            # its name is the key below (Strategy.name)
>>> @hookimpl                          # doctest: +SKIP
... def evostrat_strategies():
...     return {"my_strategy": MyStrategy}
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("evostrat")
hookimpl = pluggy.HookimplMarker("evostrat")


@hookspec
def evostrat_strategies() -> dict[str, type]:
    """Strategies this plugin provides.

    Returns
    -------
    dict
        Maps a strategy name (what users pass as ``ES(strategy=...)``) to a
        subclass of :class:`evostrat.strategies.base.Strategy`. The class's
        ``__init__`` takes only hyper-parameters (keyword arguments with
        defaults), like a scikit-learn estimator. The methods, state fields, the
        class of its states (``state_type``) and the
        optional capabilities it must or may define are the contract in the
        docstring of :class:`~evostrat.strategies.base.Strategy`, checked by
        :func:`~evostrat.strategies.base.check_strategy`.
    """


@hookspec
def evostrat_backends() -> dict[str, Callable[[], Any]]:
    """Array backends this plugin provides.

    Returns
    -------
    dict
        Maps a backend name to a zero-argument callable returning a
        :class:`evostrat.backends.Backend`. The callable is invoked lazily, the
        first time the backend is needed, so heavy imports belong inside it.
    """


@hookspec(firstresult=True)
def evostrat_backend(x: Any) -> str | None:
    """Claim an array: return the name of the backend that handles ``x``.

    Parameters
    ----------
    x : object
        An array (typically ``x0``) of unknown type.

    Returns
    -------
    str or None
        A backend name registered through :func:`evostrat_backends`, or
        ``None`` to let other plugins decide. Do not import heavy libraries to
        answer: look at ``type(x).__module__`` first. The answer is cached per
        type.
    """


@hookspec
def evostrat_evaluators() -> dict[str, type]:
    """Evaluators this plugin provides.

    Returns
    -------
    dict
        Maps an evaluator name (``ES(evaluator=...)``) to a subclass of
        :class:`evostrat.evaluators.local.Evaluator`. ``evaluate(objective, X,
        backend)`` is all it must implement; an evaluator that sets
        ``accepts_seed`` (and ``accepts_replay``) also receives ``seed=`` (and
        ``replay=``) descriptions of ``X`` it may ship instead of the rows
        (:mod:`evostrat.evaluators.seeded`).
    """


@hookspec
def evostrat_distributions() -> dict[str, type]:
    """Search distributions this plugin provides.

    Returns
    -------
    dict
        Maps a distribution name (what users pass as ``NES(distribution=...)``,
        :mod:`evostrat.strategies.nes`) to a subclass of
        :class:`evostrat.distributions.Distribution`, found by
        :func:`evostrat.distributions.registry.distribution_class`.

    Notes
    -----
    The contract (``docs/guides/distributions.md`` walks through one):

    - **Parameters as a state.** ``param_names`` lists the parameters, the location
      (shape ``(d,)``) first; they are the pytree leaves (``tree_flatten`` /
      ``tree_unflatten``), anything else (flags, degrees of freedom) is static
      (``static_attrs``; ``leaf_attrs`` where other attributes hold the leaves).
      ``__init__`` builds them with ``convert_params``, ``validate`` and
      ``finite_condition``. ``search_init(mean, sigma, **options)`` builds the
      distribution a search starts from; ``positive`` names the parameters kept
      positive (moved in log units).
    - **Addressable draws.** ``transform_noise(eps)`` maps ``noise_dim`` standard normal
      values per draw to a draw; ``sample_rows(key, rows)`` then gives row ``r`` as
      a function of ``key`` and ``r`` alone (seed compression), and ``sample`` /
      ``rsample`` follow.
    - **Densities.** ``log_prob(x)`` (one value per draw; differentiable in the
      parameters on torch and JAX, which is all autodiff needs), ``entropy()`` and
      ``marginal_scale()`` (per-coordinate scale: the search's sigma read-out).
    - **numpy (no autodiff).** ``score(x)``: closed-form gradients of ``log_prob``
      per draw and parameter (``weighted_score`` sums them; override it when the
      per-draw array is large). They must agree with autodiff on the same draws.
    - **Optional geometry.** ``natural_gradient(grads)``: the inverse Fisher
      information applied to a gradient, in the coordinates ``retract(steps)``
      moves in (default ``None``: searches take plain or Adam steps);
      ``local_gradient`` and ``retract`` have defaults (log units for ``positive``).

    ``evostrat.testing.check_distribution(cls)`` checks every line of it, on every installed
    backend. The underscore names of earlier releases (``_transform``, ``_convert``,
    ``_validate``, ``_finite``, ``_static_attrs``, ``_leaf_attrs``) keep working as
    aliases (:mod:`evostrat.distributions.legacy`).
    """


@hookspec(firstresult=True)
def evostrat_kernel(strategy: Any, backend: Any) -> Any | None:
    """Offer a fast implementation of ``strategy``'s ``ask``/``tell`` on ``backend``.

    A *kernel* replaces a strategy's generic code (written once over the Array
    API namespace) on one backend, e.g. evostrat's numpy CMA-ES kernel
    (:mod:`evostrat.kernels.cma_numpy`), which calls numpy directly and skips
    the namespace's per-call overhead. The first plugin to return a kernel
    wins; evostrat's own implementations are ``trylast``, so a third-party
    kernel takes precedence. :func:`evostrat.kernels.resolve_kernel` calls this
    hook once per strategy instance and array type (again only after a
    hyper-parameter of the strategy changes), never per generation.

    Only a strategy that resolves its kernel in its own ``ask``/``tell`` uses one: evostrat's
    CMA-ES and sep-CMA-ES (:meth:`evostrat.strategies.cma_base.CMABase.kernel`), or a plugin's
    strategy written that way. For any other strategy (SNES, NES, ...) the run calls the
    strategy's methods and a kernel offered for it is not used.

    Parameters
    ----------
    strategy : Strategy
        The strategy instance (hyper-parameters set). Check its type (and any
        switch it offers, such as ``CMAES.numpy_kernel``) before answering.
    backend : Backend
        The backend of the state's arrays; compare ``backend.name``.

    Returns
    -------
    object or None
        An object with ``ask(state) -> (X, state)`` and
        ``tell(state, X, fitness) -> state``, bound to ``strategy``
        (:class:`evostrat.kernels.Kernel` is such a pair), or ``None`` to leave
        the strategy to others or to its generic code. A kernel must return the
        state type of the strategy with every field set as the generic code
        sets it (bit-identical states are the built-in kernels' standard, tested
        against the generic path; a kernel of a model with no generic twin, such as
        CMA-ES's ``covariance="factor"``, is tested against the update it implements)
        and must not mutate its inputs.

    Examples
    --------
    >>> from evostrat import hookimpl
    >>> from evostrat.kernels import Kernel
    >>> @hookimpl                                # doctest: +SKIP
    ... def evostrat_kernel(strategy, backend):
    ...     if backend.host_arrays and strategy.name == "sep_cma_es":
    ...         return Kernel(ask=my_ask, tell=my_tell)
    ...     return None
    """


@hookspec(firstresult=True)
def evostrat_stack_kernel(strategy: Any, backend: Any) -> Any | None:
    """Offer ``strategy``'s ``ask``, ``tell`` and read-outs over many runs' stacked states.

    A batched fit on an eager backend (torch: :mod:`evostrat.run.batch_torch`) keeps the
    states of a group's runs stacked and otherwise maps the strategy's pure methods over
    them with ``torch.func.vmap``. A *stack kernel* computes them for all the runs at once
    instead, written for the leading runs axis (evostrat's own:
    :mod:`evostrat.kernels.cma_torch_stack`, CMA-ES and sep-CMA-ES on torch). First result wins;
    evostrat's own is ``trylast``. :class:`~evostrat.run.batch_stack.StackedMethods` calls
    this hook once per group.

    Parameters
    ----------
    strategy : Strategy
        The strategy instance; check its type and any switch it offers (such as
        ``CMAES.stack_kernel``).
    backend : Backend
        The backend of the runs' arrays; ask its capabilities (``backend.torch_tensors``).

    Returns
    -------
    object or None
        An object with ``ask(state) -> (X, state)``, ``tell(state, X, fitness) -> state`` and
        ``read(state) -> (sigma, {name: flags})`` (:class:`evostrat.kernels.StackKernel`), or
        ``None``. Its *stacked state* is the strategy's state type with every array leaf
        stacked along a new leading axis of the runs and the key a ``(runs, 2)`` uint64 array
        of the runs' host keys; ``X`` has shape ``(runs, popsize, dim)``, ``fitness``
        ``(runs, popsize)``, ``sigma`` and each criterion's flags ``(runs,)``. Run ``i`` of
        each result must be what the strategy's own methods give for run ``i`` alone (its
        candidates from its own key, as alone), up to the rounding of batched products.

    Examples
    --------
    >>> from evostrat import hookimpl
    >>> from evostrat.kernels import StackKernel
    >>> @hookimpl                                # doctest: +SKIP
    ... def evostrat_stack_kernel(strategy, backend):
    ...     if backend.torch_tensors and strategy.name == "snes":
    ...         return StackKernel(ask=my_ask, tell=my_tell, read=my_read)
    ...     return None
    """
