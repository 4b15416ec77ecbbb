"""gymnax environments as traceable ES objectives: whole populations of rollouts in XLA.

:class:`GymnaxProblem` maps a population ``(n, dim)`` to mean returns (to maximise, or
``negate=True``) with ``jax.vmap`` over candidates and episodes and ``jax.lax.scan`` over
time steps: one traceable program, so it composes with
:class:`evostrat.run.compiled_loop.CompiledLoop`. :func:`evolve` runs ask, all rollouts
and tell for chunks of generations inside one ``lax.scan``, on fresh episode keys each
generation. Policies are the built-in tanh MLP or any ``apply(params, obs)`` with a
parameter pytree (flax: ``apply=model.apply, params=variables``).

Examples
--------
>>> import jax.numpy as jnp
>>> from evostrat.problems.gymnax import GymnaxProblem
>>> problem = GymnaxProblem("Pendulum-v1", hidden=(8,), episodes=2, squash=True)
>>> problem.dim
41
>>> problem(jnp.zeros((3, problem.dim))).shape
(3,)
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, NamedTuple

try:
    import gymnax
    import jax
    import jax.numpy as jnp
    from gymnax.environments import spaces
except ImportError as err:
    raise ImportError(f"evostrat.problems.gymnax needs gymnax and JAX ({err.name} is missing): "
                      "pip install evostrat[gym,jax]") from err

from evostrat.backends import to_host
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.params_flat import JaxParams
from evostrat.problems.gym import check_env_id
from evostrat.problems.point_robot import layer_sizes, positive_int, seed_int

__all__ = ["GymnaxProblem", "evolve", "EvolveResult"]


def _mlp_template(sizes: tuple) -> list:
    return [(jnp.zeros((a, b)), jnp.zeros(b)) for a, b in zip(sizes[:-1], sizes[1:])]


def _mlp_apply(params: list, obs: Any) -> Any:
    h = obs
    for i, (W, b) in enumerate(params):
        h = h @ W + b
        if i < len(params) - 1:
            h = jnp.tanh(h)
    return h


class GymnaxProblem:
    """Mean episode return of a JAX policy in a gymnax environment.

    Parameters
    ----------
    env_id : str
        A gymnax id (``gymnax.registered_envs``), e.g. ``"Pendulum-v1"``.
    hidden : tuple of int
        Hidden widths of the built-in tanh MLP (ignored when ``apply`` is given).
    apply, params : callable and pytree, optional
        A custom policy ``apply(params, obs) -> outputs`` and its parameter template.
    episodes : int
        Episodes per candidate.
    max_steps : int, optional
        Steps per episode (default: the environment's ``max_steps_in_episode``).
    squash : bool
        Continuous actions: ``tanh`` onto ``[low, high]`` instead of clipping (discrete
        actions take the argmax of the outputs).
    seed : int
        Key of the episodes when ``__call__`` gets no key.
    negate : bool
        Return minus the mean return (a cost to minimise).
    env_params : gymnax EnvParams, optional
    """

    #: takes a whole population ``(n, dim)`` as well as one candidate: off the compiled path,
    #: ``evaluator="auto"`` makes one call per generation, not one per candidate
    vectorized = True

    def __init__(
        self,
        env_id: str,
        hidden: tuple = (32,),
        apply: Callable | None = None,
        params: Any = None,
        episodes: int = 1,
        max_steps: int | None = None,
        squash: bool = False,
        seed: int = 0,
        negate: bool = False,
        env_params: Any = None,
    ) -> None:
        check_env_id(env_id, gymnax.registered_envs, "gymnax")
        if (apply is None) != (params is None):
            raise InvalidArgumentError("apply and params must be given together (a policy and its template)")
        self.env_id = env_id
        self.hidden = layer_sizes("hidden", hidden)
        self.apply, self.params = apply, params
        self.episodes = positive_int("episodes", episodes)
        self.max_steps = positive_int("max_steps", max_steps, allow_none=True)
        self.squash = bool(squash)
        self.seed = seed_int(seed)
        self.negate = bool(negate)
        self.env_params = env_params
        self._build()

    def _build(self) -> None:
        self._env, default_params = gymnax.make(self.env_id)
        self._env_params = default_params if self.env_params is None else self.env_params
        obs_shape = tuple(self._env.observation_space(self._env_params).shape)
        space = self._env.action_space(self._env_params)
        if isinstance(space, spaces.Discrete):
            self.n_outputs, self.discrete = int(space.n), True
        elif isinstance(space, spaces.Box):
            self.n_outputs, self.discrete = int(math.prod(space.shape) or 1), False
            self._low, self._high = space.low, space.high
        else:
            raise InvalidTypeError(f"GymnaxProblem supports Discrete and Box actions, {self.env_id} has {space}")
        self._space = space
        if self.apply is None:
            sizes = (int(math.prod(obs_shape)),) + self.hidden + (self.n_outputs,)
            self._apply, template = _mlp_apply, _mlp_template(sizes)
        else:
            self._apply, template = self.apply, self.params
        self._spec = JaxParams(template)
        self.dim = self._spec.dim
        self.steps = self.max_steps or int(self._env_params.max_steps_in_episode)
        self._batched = jax.jit(self.population_returns)
        self._checked = False

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._build()

    def init_params(self, seed: int = 0, scale: float = 1.0) -> Any:
        """A random vector: weights ``N(0, scale^2 / fan_in)``, biases 0 (built-in MLP)."""
        leaves, treedef = jax.tree_util.tree_flatten(self._spec.template)
        keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
        new = [
            scale * jax.random.normal(k, leaf.shape, leaf.dtype) / math.sqrt(leaf.shape[0])
            if leaf.ndim == 2 else jnp.zeros_like(leaf)
            for k, leaf in zip(keys, leaves)
        ]
        return self._spec.flatten(jax.tree_util.tree_unflatten(treedef, new))

    def unflatten(self, theta: Any) -> Any:
        """The policy's parameter pytree (shaped as ``params``, or the built-in MLP's
        ``[(W, b), ...]``) of a flat vector ``theta`` of ``dim`` values, such as
        :func:`evolve`'s ``mean``."""
        return self._spec.unflatten(theta)

    def _action(self, out: Any) -> Any:
        out = jnp.ravel(out)
        if out.shape[0] != self.n_outputs:
            raise InvalidArgumentError(
                f"policy output must have {self.n_outputs} values for the action space "
                f"{type(self._space).__name__} of {self.env_id}, got {out.shape[0]}"
            )
        if self.discrete:
            return jnp.argmax(out)
        low, high = jnp.ravel(jnp.asarray(self._low)), jnp.ravel(jnp.asarray(self._high))
        a = low + (jnp.tanh(out) + 1.0) * 0.5 * (high - low) if self.squash else jnp.clip(out, low, high)
        shape = tuple(self._space.shape)
        return a.reshape(shape) if shape else a[0]

    def episode_return(self, theta: Any, key: Any) -> Any:
        """Return of one episode (traceable); steps after the episode ends count 0."""
        params = self._spec.unflatten(theta)
        key_reset, key_steps = jax.random.split(key)
        obs, state = self._env.reset(key_reset, self._env_params)

        def step(carry: Any, k: Any) -> tuple[Any, None]:
            obs, state, total, done = carry
            action = self._action(self._apply(params, jnp.ravel(obs)))
            obs, state, reward, finished, _ = self._env.step(k, state, action, self._env_params)
            total = total + jnp.where(done, 0.0, reward)
            return (obs, state, total, jnp.logical_or(done, finished)), None

        init = (obs, state, jnp.zeros((), theta.dtype), jnp.zeros((), bool))
        (_, _, total, _), _ = jax.lax.scan(step, init, jax.random.split(key_steps, self.steps))
        return total

    def population_returns(self, X: Any, key: Any) -> Any:
        """Mean returns ``(n,)`` of the rows of ``X`` over ``episodes`` episodes from ``key`` (traceable)."""
        keys = jax.random.split(key, self.episodes)
        per_episode = jax.vmap(jax.vmap(self.episode_return, in_axes=(None, 0)), in_axes=(0, None))
        returns = per_episode(X, keys).mean(axis=1)
        return -returns if self.negate else returns

    def episode_returns(self, theta: Any, episodes: int = 20, seed: int = 10_000) -> Any:
        """Returns of ``episodes`` fresh episodes of one candidate (a vector or a parameter pytree),
        shape ``(episodes,)``."""
        theta = jnp.asarray(self.flatten(theta))
        self._check(theta[None, :] if theta.ndim == 1 else theta)
        keys = jax.random.split(jax.random.PRNGKey(seed), positive_int("episodes", episodes))
        return jax.jit(jax.vmap(self.episode_return, in_axes=(None, 0)))(theta, keys)

    def _check(self, X: Any) -> None:
        shape = tuple(getattr(X, "shape", ()))
        if len(shape) != 2 or shape[1] != self.dim:
            raise InvalidArgumentError(
                f"X must have shape (n, {self.dim}) or ({self.dim},) for this policy, got {shape}"
            )

    def flatten(self, x: Any) -> Any:
        """``x``, or for a pytree of the policy's parameters (what ``ES.fit`` hands an objective when
        ``x0`` is the parameter pytree; leaves may have a leading population axis) its flat
        vector(s), in :class:`~evostrat.params_flat.JaxParams` order; traceable."""
        template = self._spec.template
        if jax.tree_util.tree_structure(x) != jax.tree_util.tree_structure(template) \
                or jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(template)):
            return x
        leaves, named = jax.tree_util.tree_leaves(x), jax.tree_util.tree_leaves_with_path(template)
        lead = tuple(jnp.shape(leaves[0]))[:1] if jnp.ndim(leaves[0]) == jnp.ndim(named[0][1]) + 1 else ()
        for leaf, (path, like) in zip(leaves, named):
            if tuple(jnp.shape(leaf)) != lead + tuple(jnp.shape(like)):
                raise InvalidArgumentError(f"x{jax.tree_util.keystr(path)} must have shape "
                                           f"{lead + tuple(jnp.shape(like))}, got {tuple(jnp.shape(leaf))}")
        return jnp.concatenate([jnp.reshape(jnp.asarray(leaf), lead + (-1,)) for leaf in leaves], axis=-1)

    def __call__(self, X: Any, key: Any = None) -> Any:
        """Mean returns ``(n,)`` for ``X`` of shape ``(n, dim)`` (a scalar for ``(dim,)``), or for a
        pytree shaped as the policy's parameters (``params``; leaves with a leading population axis
        for several, as ``ES.fit`` hands them when ``x0`` is the pytree); traceable."""
        X = self.flatten(X)
        if not isinstance(X, jax.Array):
            X = jnp.asarray(to_host(X))
        single = X.ndim == 1
        X = X[None, :] if single else X
        self._check(X)
        key = jax.random.PRNGKey(self.seed) if key is None else key
        values = self._batched(X, key)
        return values[0] if single else values

    def __repr__(self) -> str:
        return f"GymnaxProblem({self.env_id!r}, episodes={self.episodes}, dim={self.dim})"


class EvolveResult(NamedTuple):
    """Outcome of :func:`evolve`: final state, mean, and per-generation fitness."""

    state: Any
    mean: Any
    fitness: Any  # (generations, popsize), as the problem returns them
    seconds_per_generation: float  # after the first (compiling) chunk; nan when there is only one


def evolve(
    strategy: Any,
    problem: GymnaxProblem,
    x0: Any,
    generations: int,
    random_state: int = 0,
    chunk: int = 50,
    maximize: bool = True,
    callback: Callable[[int, Any], None] | None = None,
) -> EvolveResult:
    """Run ``generations`` of ask / all rollouts / tell in compiled chunks of ``lax.scan``.

    Each generation evaluates on fresh episode keys. ``callback(generation, fitness)``
    runs on the host after each chunk with the chunk's ``(chunk, popsize)`` fitness.
    ``x0`` is a flat vector of ``problem.dim`` values or the policy's parameter pytree
    (shaped as the problem's ``params``, e.g. a flax ``variables`` dict); the result's
    ``mean`` is flat (:meth:`GymnaxProblem.unflatten` gives it the pytree's shape).

    Examples
    --------
    >>> from evostrat.strategies.snes import SNES
    >>> problem = GymnaxProblem("CartPole-v1", hidden=(4,), episodes=1, max_steps=20)
    >>> out = evolve(SNES(popsize=8, sigma0=0.1), problem, problem.init_params(), 4, chunk=2)
    >>> out.fitness.shape
    (4, 8)
    """
    generations, chunk = positive_int("generations", generations), positive_int("chunk", chunk)
    sign = -1.0 if maximize else 1.0
    x0 = jnp.asarray(problem.flatten(x0))
    if x0.shape != (problem.dim,):
        raise InvalidArgumentError(f"x0 must be the policy's parameters: a vector of shape ({problem.dim},) or "
                                   f"a pytree shaped as the problem's params, got shape {tuple(x0.shape)}")
    state = strategy.init(x0, random_state=random_state, backend="jax")

    def generation(state: Any, key: Any) -> tuple[Any, Any]:
        X, new = strategy.ask(state)
        values = problem.population_returns(X, key)
        return strategy.tell(new, X, sign * values), values

    def body(carry: Any, i: Any) -> tuple[Any, Any]:
        state, key, n_active = carry
        key, sub = jax.random.split(key)
        values = jax.eval_shape(generation, state, sub)[1]

        def skip(state: Any, key: Any) -> tuple[Any, Any]:  # past the last generation of a short chunk
            return state, jnp.zeros(values.shape, values.dtype)

        # a real branch: the generations past n_active play no rollouts (they cost a whole chunk)
        state, values = jax.lax.cond(i < n_active, generation, skip, state, sub)
        return (state, key, n_active), values

    @jax.jit
    def run(state: Any, key: Any, n_active: Any) -> Any:
        (state, key, _), values = jax.lax.scan(body, (state, key, n_active), jnp.arange(chunk))
        return state, key, values

    # committed to the state's device as every program output is: an uncommitted first key would
    # compile the chunk program a second time when the first chunk's key comes back
    device = next((leaf.sharding for leaf in jax.tree_util.tree_leaves(state) if isinstance(leaf, jax.Array)
                   and not isinstance(leaf, jax.core.Tracer) and leaf.committed), jax.devices()[0])
    key = jax.device_put(jax.random.PRNGKey(random_state + 1), device)
    fitness, done, start, timed = [], 0, 0.0, 0
    while done < generations:
        n = min(chunk, generations - done)
        t0 = time.perf_counter()
        state, key, values = run(state, key, n)
        values = jax.block_until_ready(values)[:n]
        if done > 0:  # the first chunk includes compilation
            start += time.perf_counter() - t0
            timed += n
        fitness.append(values)
        done += n
        if callback is not None:
            callback(done, values)
    per_gen = start / timed if timed else float("nan")
    return EvolveResult(state, strategy.mean(state), jnp.concatenate(fitness), per_gen)
