"""Gymnasium environments as ES objectives: the mean episode return of a policy.

:class:`GymProblem` turns a parameter vector into a policy (a ``torch.nn.Module``, a
numpy :class:`MLPPolicy`, or any ``policy(theta, obs)`` with an int ``dim``), runs
``episodes`` episodes reset with seeds ``seed, seed + 1, ...`` (common random numbers
for all candidates) and returns their mean return, to be *maximised*
(``ES(maximize=True)``, or ``negate=True`` for a cost). It takes one candidate or a
population ``(n, dim)``, holds plain attributes only and builds its environment lazily
in the evaluating process, so process-pool and Ray evaluators can ship it. The copies pools
evaluate leave their environment to the next copy in their process
(:mod:`evostrat.problems.gym_envs`): each worker makes one for the whole run.

Examples
--------
>>> import numpy as np
>>> from evostrat.problems.gym import GymProblem, MLPPolicy
>>> problem = GymProblem("CartPole-v1", MLPPolicy(4, 2, hidden=(8,)), episodes=2)
>>> problem.dim
58
>>> theta = np.zeros(problem.dim)
>>> float(problem(theta)) == float(problem(theta))     # deterministic given the seed
True
>>> problem(np.zeros((3, problem.dim))).shape
(3,)
"""

from __future__ import annotations

import copy
import math
import uuid
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from evostrat.backends import to_host
from evostrat.errors import EvostratWarning, InvalidArgumentError, InvalidTypeError
from evostrat.params_flat import TorchParams
from evostrat.problems.gym_envs import (ENVS, action_outputs, check_env_id, close_quietly, import_gymnasium,
                                        observation_shape, step_limit)
from evostrat.problems.obs_stats import ObservationStats, RunningStat, SeenObservations
from evostrat.problems.point_robot import layer_sizes, positive_int, seed_int

__all__ = ["GymProblem", "MLPPolicy", "RunningStat", "check_env_id", "import_gymnasium"]

#: Steps at which an episode of an environment with no time limit is cut when ``max_steps`` is None.
DEFAULT_STEP_CAP = 100_000


class MLPPolicy:
    """A numpy tanh MLP ``obs -> output``; ``dim`` weights and biases per candidate.

    Parameters
    ----------
    n_inputs, n_outputs : int
    hidden : tuple of int
        Hidden layer widths (tanh). ``()`` gives a linear policy.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat.problems import MLPPolicy
    >>> policy = MLPPolicy(4, 2, hidden=(8,))      # 4 * 8 + 8 + 8 * 2 + 2 parameters
    >>> policy.dim, policy(np.zeros(policy.dim), np.ones(4)).shape
    (58, (2,))
    """

    def __init__(self, n_inputs: int, n_outputs: int, hidden: tuple = (16,)) -> None:
        sizes = [positive_int("n_inputs", n_inputs)]
        sizes += list(layer_sizes("hidden", hidden))
        sizes.append(positive_int("n_outputs", n_outputs))
        self.sizes = tuple(sizes)
        self.dim = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))

    def init_params(self, seed: int = 0) -> np.ndarray:
        """Weights ``N(0, 1/fan_in)``, biases 0."""
        rng, parts = np.random.default_rng(seed), []
        for a, b in zip(self.sizes[:-1], self.sizes[1:]):
            parts += [rng.standard_normal(a * b) / math.sqrt(a), np.zeros(b)]
        return np.concatenate(parts)

    def __call__(self, theta: np.ndarray, obs: np.ndarray) -> np.ndarray:
        h, start, last = obs, 0, len(self.sizes) - 2
        for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            W = theta[start : start + a * b].reshape(a, b)
            bias = theta[start + a * b : start + a * b + b]
            start += a * b + b
            h = h @ W + bias
            if i < last:
                h = np.tanh(h)
        return h

    def __repr__(self) -> str:
        return f"MLPPolicy(sizes={self.sizes})"


class GymProblem(ObservationStats):
    """Mean return of a policy over gymnasium episodes.

    Parameters
    ----------
    env_id : str
        A registered gymnasium id (``"CartPole-v1"``, ``"Pendulum-v1"``, ...).
    policy : torch.nn.Module or MLPPolicy or object with ``dim`` and ``__call__(theta, obs)``
        A torch module (all its parameters, ``requires_grad`` or not, are the search
        vector, see :class:`~evostrat.params_flat.TorchParams`; its buffers stay fixed) is
        copied (the copy is ``policy``) and runs under ``torch.no_grad`` with each
        candidate's parameters; the module passed in is never changed. A
        ``Discrete(n)`` action space takes the argmax of ``n`` outputs, a ``MultiDiscrete``
        space an argmax per component (``sum(nvec)`` outputs), a ``Box`` space
        ``prod(shape)`` outputs; another output size raises ``InvalidArgumentError`` (for an
        :class:`MLPPolicy`, when the problem is made). ``Box`` observations are shown as
        they are, other spaces flattened as ``gymnasium.spaces.flatten`` does (``Discrete``
        one-hot, ``Dict``/``Tuple`` concatenated); other action spaces, and observation
        spaces gymnasium cannot flatten, raise ``InvalidTypeError`` when the problem is made.
        With a torch policy a candidate may also be a module or ``{name: tensor}`` dict of its
        parameters (leaves with a leading population axis for several), so the module itself
        can be ``ES.fit``'s ``x0`` and ``problem(es.x_)`` scores the result.
    episodes : int
        Episodes per candidate; the value is their mean return.
    max_steps : int, optional
        Cap on steps per episode (on top of the environment's own time limit: a ``TimeLimit``
        wrapper, the spec's ``max_episode_steps``, the ALE's frame cap). Without either,
        episodes are cut at ``DEFAULT_STEP_CAP`` (100 000) steps, and an ``EvostratWarning``
        says so when one is: an environment whose episodes always end by themselves never
        meets it, one where a good policy never fails does not run forever.
    obs_norm : bool
        Show the policy ``clip((obs - mean) / std, -obs_clip, obs_clip)`` with running
        statistics ``obs_stat`` (a :class:`~evostrat.problems.obs_stats.RunningStat`) of every
        observation seen (Salimans et al. 2017). In ``ES.fit`` every candidate of a generation
        is evaluated with the statistics as they were when the generation started, wherever it
        runs (in process, thread or process pools, Ray); each returns the count, mean and ``M2``
        of its observations and the run merges them in population order after the generation
        (:meth:`generation_start`, :meth:`collect`, :meth:`merge`, the protocol of
        :mod:`evostrat.evaluators.sync`), so every evaluator gives the serial run's values. A
        call outside a fit (``problem(X)``, :meth:`episode`) uses the statistics as they were
        when it began and adds its observations at its end. :meth:`freeze` stops updates for
        testing. Checkpoints of ``fit(checkpoint=...)`` save them (:meth:`checkpoint_state`)
        and ``ES.resume`` gives them back, so a resumed run continues exactly.
    obs_clip : float
        Clip of normalised observations.
    squash : bool
        ``Box`` actions: map ``tanh(output)`` onto ``[low, high]`` (both finite) instead of clipping.
    seed : int
        Episode ``e`` is reset with seed ``seed + e`` (an int >= 0, as gymnasium takes).
    negate : bool
        Return minus the mean return (a cost to minimise).
    env_kwargs : dict, optional
        Passed to ``gymnasium.make``.

    Attributes
    ----------
    env_key : str
        Under which this problem and its evaluation copies keep their environments for reuse
        in each process (:data:`evostrat.problems.gym_envs.ENVS`).
    unlimited : bool
        The environment never cuts an episode itself (no time limit): ``max_steps``, else
        ``DEFAULT_STEP_CAP``, does.

    References
    ----------
    Salimans, Ho, Chen, Sidor, Sutskever, "Evolution Strategies as a Scalable Alternative
    to Reinforcement Learning", arXiv 1703.03864 (2017) (observation normalisation).

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> from evostrat.problems import GymProblem, MLPPolicy
    >>> problem = GymProblem("CartPole-v1", MLPPolicy(4, 2, hidden=(8,)), episodes=1, negate=True)
    >>> es = ES("snes", max_generations=5, random_state=0).fit(problem, np.zeros(problem.dim))
    >>> bool(es.fun_ < -20)                             # a return above 20 (negated: a cost)
    True
    """

    def __init__(
        self,
        env_id: str,
        policy: Any,
        episodes: int = 1,
        max_steps: int | None = None,
        obs_norm: bool = False,
        obs_clip: float = 5.0,
        squash: bool = False,
        seed: int = 0,
        negate: bool = False,
        env_kwargs: dict | None = None,
    ) -> None:
        check_env_id(env_id, import_gymnasium().envs.registry, "gymnasium")
        self.env_id = env_id
        self.episodes = positive_int("episodes", episodes)
        self.max_steps = positive_int("max_steps", max_steps, allow_none=True)
        self.obs_norm = bool(obs_norm)
        self.obs_clip = float(obs_clip) if isinstance(obs_clip, (int, float, np.number)) else math.nan
        if not self.obs_clip > 0:  # also NaN and what is not a number
            raise InvalidArgumentError(f"obs_clip must be a positive number (inf: no clipping), got {obs_clip!r}")
        self.squash = bool(squash)
        self.seed = seed_int(seed, nonnegative=True)
        self.negate = bool(negate)
        self.env_kwargs = dict(env_kwargs or {})
        self.frozen = False
        self._torch = None
        if hasattr(policy, "named_parameters"):  # a torch.nn.Module

            policy = copy.deepcopy(policy)  # takes each candidate's parameters: the caller's module stays as it is
            self._torch = TorchParams(policy)
            self.dim = self._torch.dim
        elif callable(policy) and isinstance(getattr(policy, "dim", None), (int, np.integer)):
            self.dim = int(policy.dim)
        else:
            raise InvalidTypeError(
                "policy must be a torch.nn.Module or a callable policy(theta, obs) with an int "
                f"attribute dim, got {type(policy).__name__}"
            )
        self.policy = policy
        self._env: Any = None
        self._origin, self.env_key = True, uuid.uuid4().hex  # copies share the key: they reuse environments
        env = self._get_env()
        self.obs_shape = observation_shape(env.observation_space, env_id)
        self._flattened = not isinstance(env.observation_space, import_gymnasium().spaces.Box)  # one-hot, ...
        self.n_outputs = action_outputs(env.action_space, env_id, self.squash)
        sizes = policy.sizes if isinstance(policy, MLPPolicy) else None  # its widths are known now
        if sizes is not None and (sizes[0] != math.prod(self.obs_shape) or sizes[-1] != self.n_outputs):
            raise InvalidArgumentError(
                f"policy must map {math.prod(self.obs_shape)} observation values to {self.n_outputs} outputs for "
                f"{env_id} (observations {env.observation_space}, actions {env.action_space}), got "
                f"MLPPolicy(n_inputs={sizes[0]}, n_outputs={sizes[-1]})"
            )
        self.obs_stat = RunningStat(self.obs_shape) if self.obs_norm else None
        self.unlimited = step_limit(env) is None  # the environment itself never cuts an episode

    # -- plumbing: one environment per process and problem, reused (evostrat.problems.gym_envs) ----------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_env"], state["_origin"] = None, False  # an evaluation copy: takes an environment where it runs
        return state

    def make_env(self) -> Any:
        """A new environment (``gymnasium.make(env_id, **env_kwargs)``)."""
        return import_gymnasium().make(self.env_id, **self.env_kwargs)

    def _get_env(self) -> Any:
        if self._env is None:
            self._env = ENVS.take(self.env_key, self.make_env)
        return self._env

    def close(self) -> None:
        """Close the environment, and those this problem's evaluation copies left for reuse in
        this process (a thread pool's); a new one is made on the next call. The workers of a
        process pool close theirs when they exit (when the pool shuts down)."""
        env, self._env = self._env, None
        if env is not None:
            close_quietly(env)
        ENVS.close(self.env_key)

    def __del__(self) -> None:
        """The problem closes its environments; an evaluation copy (thread pools make one per
        chunk, process pools per task) leaves its environment for the next copy in its process."""
        try:
            if self._origin:
                self.close()
            elif self._env is not None:
                env, self._env = self._env, None
                ENVS.give_back(self.env_key, env)
        except Exception:  # noqa: BLE001 - at interpreter exit, or a half-made problem
            pass

    def freeze(self, frozen: bool = True) -> "GymProblem":
        """Stop (or resume) updating the observation statistics."""
        self.frozen = bool(frozen)
        return self

    # -- policy and actions --------------------------------------------------------------
    def _policy_fn(self, theta: np.ndarray) -> Any:
        if self._torch is None:
            return lambda obs: np.asarray(to_host(self.policy(theta, obs)), dtype=np.float64)
        return self._torch.policy(theta)

    def _action(self, out: np.ndarray, space: Any) -> Any:
        spaces = import_gymnasium().spaces
        out = np.asarray(out, dtype=np.float64).ravel()
        if out.size != self.n_outputs:
            raise InvalidArgumentError(
                f"policy output must have {self.n_outputs} values for the action space {space}, got {out.size}"
            )
        if isinstance(space, spaces.Discrete):
            return int(space.start + np.argmax(out))
        if isinstance(space, spaces.MultiDiscrete):
            ends = np.cumsum(space.nvec.ravel())
            picks = [np.argmax(part) for part in np.split(out, ends[:-1])]
            start = np.ravel(getattr(space, "start", 0))  # gymnasium < 1.0 has no start
            return (start + np.asarray(picks)).reshape(space.shape).astype(space.dtype)
        low, high = space.low.ravel(), space.high.ravel()
        if self.squash:
            out = low + (np.tanh(out) + 1.0) * 0.5 * (high - low)
        return np.clip(out, low, high).reshape(space.shape).astype(space.dtype)

    def _observe(self, obs: Any, seen: SeenObservations | None = None, scale: tuple | None = None) -> np.ndarray:
        """The observation the policy sees (noted in ``seen``); ``scale``: the statistics' ``(mean, std)``."""
        if self._flattened:  # not a Box: one-hot / concatenated, as gymnasium flattens it
            obs = import_gymnasium().spaces.flatten(self._get_env().observation_space, obs)
        obs = np.asarray(obs, dtype=np.float64)
        if self.obs_stat is None:
            return obs
        if seen is not None:
            seen.add(obs.reshape(self.obs_shape))
        mean, std = (self.obs_stat.mean, self.obs_stat.std) if scale is None else scale
        return np.clip((obs - mean) / std, -self.obs_clip, self.obs_clip)

    # -- evaluation ------------------------------------------------------------------------
    def episode(self, theta: Any, seed: int, update_stats: bool = True) -> tuple[float, int]:
        """One episode with parameters ``theta``: ``(return, steps)``; its observations join the
        statistics at its end (in a generation: at the generation's end)."""
        seen = self._seen(update_stats)
        result = self._episode(theta, seed, seen)
        self._record([seen])
        return result

    def _flat(self, x: Any) -> Any:
        """``x``, or for a torch policy given as a module or ``{name: tensor}`` dict (what ``ES.fit``
        hands an objective when ``x0`` is the module; leaves may have a leading population axis)
        its flat vector(s), in the module's parameter order."""
        if self._torch is None or not (isinstance(x, Mapping) or hasattr(x, "named_parameters")):
            return x
        params = dict(x.named_parameters()) if hasattr(x, "named_parameters") else x
        names, shapes = self._torch.names, self._torch.shapes
        if sorted(params) != sorted(names):
            raise InvalidArgumentError(f"x must hold the policy's parameters {list(names)}, got {sorted(params)}")
        leaves = [np.asarray(to_host(getattr(params[n], "detach", lambda: params[n])()), dtype=np.float64)
                  for n in names]
        lead = leaves[0].shape[:1] if leaves[0].ndim == len(shapes[0]) + 1 else ()  # (n,): a population
        for name, shape, leaf in zip(names, shapes, leaves):
            if leaf.shape != lead + shape:
                raise InvalidArgumentError(f"x[{name!r}] must have shape {lead + shape}, got {leaf.shape}")
        return np.concatenate([leaf.reshape(lead + (-1,)) for leaf in leaves], axis=-1)

    def _episode(self, theta: Any, seed: int, seen: SeenObservations | None) -> tuple[float, int]:
        theta = np.asarray(to_host(self._flat(theta)), dtype=np.float64)
        if theta.shape != (self.dim,):
            raise InvalidArgumentError(
                f"theta must have shape ({self.dim},) for this policy, got {theta.shape}"
            )
        env, act = self._get_env(), self._policy_fn(theta)
        scale = None if self.obs_stat is None else (self.obs_stat.mean, self.obs_stat.std)
        obs, _ = env.reset(seed=int(seed))
        total, steps = 0.0, 0
        cap = self.max_steps or (DEFAULT_STEP_CAP if self.unlimited else None)
        while cap is None or steps < cap:
            action = self._action(act(self._observe(obs, seen, scale)), env.action_space)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            steps += 1
            if terminated or truncated:
                return total, steps
        if self.max_steps is None:
            warnings.warn(f"{self.env_id} has no time limit and max_steps is None: an episode was cut at {cap} "
                          f"steps (the default cap for such environments); pass max_steps=..., or "
                          f"env_kwargs={{'max_episode_steps': ...}}", EvostratWarning, stacklevel=2)
        return total, steps

    def evaluate(self, theta: Any, episodes: int | None = None, seed: int | None = None) -> np.ndarray:
        """Returns of ``episodes`` episodes seeded ``seed, seed + 1, ...`` (statistics not updated)."""
        episodes = positive_int("episodes", self.episodes if episodes is None else episodes)
        seed = self.seed if seed is None else seed_int(seed, nonnegative=True)
        return np.array([self.episode(theta, seed + e, update_stats=False)[0] for e in range(episodes)])

    #: takes a whole population ``(n, dim)`` as well as one candidate: ``evaluator="auto"``
    #: makes one call per generation (rows evaluated in order, as one by one)
    vectorized = True

    def __call__(self, x: Any) -> Any:
        """Mean return of ``x`` (shape ``(dim,)``), or of each row of ``X`` (``(n, dim)``)."""
        X = np.asarray(to_host(self._flat(x)), dtype=np.float64)
        if X.ndim not in (1, 2) or X.shape[-1] != self.dim:
            raise InvalidArgumentError(
                f"x must have shape ({self.dim},) or (n, {self.dim}) for this policy, got {X.shape}"
            )
        rows = X[None, :] if X.ndim == 1 else X
        sign = -1.0 if self.negate else 1.0
        seeds = [self.seed + e for e in range(self.episodes)]
        values, seen = [], []
        for row in rows:  # all with the statistics as they are: the observations join them at the end
            seen.append(self._seen())
            values.append(sign * np.mean([self._episode(row, seed, seen[-1])[0] for seed in seeds]))
        self._record(seen)
        values = np.array(values)
        return float(values[0]) if X.ndim == 1 else values

    def __repr__(self) -> str:
        return f"GymProblem({self.env_id!r}, episodes={self.episodes}, dim={self.dim})"
