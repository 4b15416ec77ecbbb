"""Gymnasium plumbing for :class:`~evostrat.problems.gym.GymProblem`: ids, spaces, time limits, reuse.

:func:`import_gymnasium`, :func:`check_env_id`, :func:`observation_shape` and
:func:`action_outputs` check an environment and its spaces; :func:`step_limit` finds the
cap on an episode's steps that the environment itself enforces (a ``TimeLimit`` wrapper,
the spec's ``max_episode_steps``, the ALE's ``max_num_frames_per_episode``), if any.

:data:`ENVS`, an :class:`EnvCache`, keeps the environments of each process for reuse:
the copy of a problem that a pool evaluates (a thread pool's copy per chunk, a process
pool's or Ray's per task) gives its environment back when it goes, and the next copy
of the same problem in that process takes it instead of making one, so each worker makes
an environment once, not once a generation. An episode starts with ``env.reset(seed=...)``,
which a reused environment obeys as a new one does: the returns are the same. The
environments of a process are closed by ``GymProblem.close()`` (those of its problem), when
more than :attr:`EnvCache.max_keys` problems have left some (the oldest), and when the
process exits (a pool's workers when it shuts down).

Examples
--------
>>> from evostrat.problems.gym_envs import EnvCache
>>> class Env:
...     made = 0
...     def __init__(self):
...         Env.made += 1
...     def close(self):
...         pass
>>> cache = EnvCache()
>>> env = cache.take("problem", Env)
>>> cache.give_back("problem", env)
>>> cache.take("problem", Env) is env, Env.made
(True, 1)
"""

from __future__ import annotations

import difflib
import os
import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable

import numpy as np

from evostrat.errors import InvalidArgumentError, InvalidTypeError, UnknownNameError

__all__ = ["ENVS", "EnvCache", "action_outputs", "check_env_id", "import_gymnasium", "observation_shape",
           "step_limit"]


def import_gymnasium(extra: str = "gym") -> Any:
    """The ``gymnasium`` module, or an ``ImportError`` naming the evostrat extra that installs it."""
    try:
        import gymnasium
    except ImportError as err:
        raise ImportError(f"gymnasium environments need gymnasium: pip install evostrat[{extra}]") from err
    return gymnasium


def check_env_id(env_id: Any, registered: Any, library: str) -> None:
    """Raise unless ``env_id`` is one of the ``registered`` ids of ``library``, suggesting close ones."""
    if not isinstance(env_id, str):
        raise InvalidTypeError(f"env_id must be a {library} id string, got {type(env_id).__name__}")
    if env_id not in registered:
        close = difflib.get_close_matches(env_id, list(registered), n=3)
        hint = f"; did you mean {close}?" if close else ""
        raise UnknownNameError(f"env_id {env_id!r} is not a registered {library} environment{hint}")


def observation_shape(space: Any, env_id: str) -> tuple:
    """The shape of the observations a policy sees: a ``Box``'s own, else ``(flatdim,)`` (one-hot
    ``Discrete``, concatenated ``Dict``/``Tuple``/``MultiDiscrete``/``MultiBinary``, as gymnasium flattens them)."""
    spaces = import_gymnasium().spaces
    if isinstance(space, spaces.Box):
        return tuple(space.shape)
    try:
        return (int(spaces.flatdim(space)),)
    except (NotImplementedError, ValueError, TypeError):
        raise InvalidTypeError(f"GymProblem supports observation spaces that gymnasium can flatten (Box, "
                               f"Discrete, Text, MultiDiscrete, MultiBinary, Dict, Tuple); {env_id} has {space}") from None


def action_outputs(space: Any, env_id: str, squash: bool) -> int:
    """How many policy outputs the action space takes: ``n`` (``Discrete``: argmax), ``sum(nvec)``
    (``MultiDiscrete``: an argmax per component) or ``prod(shape)`` (``Box``); refuses other spaces,
    and ``squash`` onto a ``Box`` that is not bounded on both sides."""
    spaces = import_gymnasium().spaces
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.MultiDiscrete):
        return int(np.sum(space.nvec))
    if not isinstance(space, spaces.Box):
        raise InvalidTypeError(f"GymProblem supports Discrete, MultiDiscrete and Box action spaces, "
                               f"{env_id} has {space}")
    if squash and not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise InvalidArgumentError(f"squash=True maps actions onto [low, high], which must be finite; {env_id} "
                                   f"has {space} (use squash=False: actions are then clipped)")
    return int(np.prod(space.shape))


def step_limit(env: Any) -> int | None:
    """The cap the environment puts on an episode's steps (frames for the ALE), or ``None``.

    A ``TimeLimit`` wrapper anywhere in the chain (its ``max_episode_steps``; also one an
    entry point adds itself, which the registry does not know of), the spec's
    ``max_episode_steps``, or the ALE's ``max_num_frames_per_episode`` when positive."""
    TimeLimit = import_gymnasium().wrappers.TimeLimit
    layer, depth = env, 0
    while layer is not None and depth < 64:  # wrappers hold the environment they wrap as .env
        steps = getattr(layer.spec, "max_episode_steps", None) if isinstance(layer, TimeLimit) else None
        if steps is not None:  # its spec is the environment's with its own max_episode_steps
            return int(steps)
        layer, depth = getattr(layer, "env", None), depth + 1
    spec = getattr(env, "spec", None)
    steps = getattr(spec, "max_episode_steps", None)
    if steps is not None:
        return int(steps)
    frames = (getattr(spec, "kwargs", None) or {}).get("max_num_frames_per_episode")
    return int(frames) if isinstance(frames, (int, np.integer)) and frames > 0 else None


def close_quietly(env: Any) -> None:
    """``env.close()``; an error there (a half-made or already closed environment) is ignored."""
    try:
        env.close()
    except Exception:  # noqa: BLE001 - closing must not fail an evaluation, a fit's end or the exit
        pass


class EnvCache:
    """Idle environments of this process, by the key of the problem they belong to.

    Parameters
    ----------
    max_keys : int
        Problems whose environments are kept; giving one back for another problem closes
        those of the problem that gave one back longest ago.
    """

    def __init__(self, max_keys: int = 4) -> None:
        self.max_keys = int(max_keys)
        self._idle: OrderedDict[Hashable, list] = OrderedDict()
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._at_exit = False

    def _own(self) -> None:
        """Forget what a forked parent held (its environments are the parent's to close)."""
        if self._pid != os.getpid():
            self._idle, self._pid, self._at_exit = OrderedDict(), os.getpid(), False

    def take(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """An idle environment of ``key``, else ``make()``; the caller holds it until :meth:`give_back`."""
        with self._lock:
            self._own()
            idle = self._idle.get(key)
            if idle:
                return idle.pop()
        return make()

    def give_back(self, key: Hashable, env: Any) -> None:
        """Keep ``env`` for the next :meth:`take` of ``key`` in this process."""
        with self._lock:
            self._own()
            self._idle.setdefault(key, []).append(env)
            self._idle.move_to_end(key)
            evicted = [self._idle.popitem(last=False)[1] for _ in range(len(self._idle) - max(self.max_keys, 1))]
            if not self._at_exit:  # closed when this process exits: a pool's workers when it shuts down
                import multiprocessing.util

                multiprocessing.util.Finalize(None, self.close, exitpriority=10)
                self._at_exit = True
        for env in (env for envs in evicted for env in envs):
            close_quietly(env)

    def close(self, key: Hashable | None = None) -> int:
        """Close the idle environments of ``key`` (of every key: ``None``); how many were closed."""
        with self._lock:
            self._own()
            if key is None:
                envs = [env for idle in self._idle.values() for env in idle]
                self._idle.clear()
            else:
                envs = self._idle.pop(key, [])
        for env in envs:
            close_quietly(env)
        return len(envs)

    def idle(self, key: Hashable) -> int:
        """How many environments of ``key`` wait in this process."""
        with self._lock:
            self._own()
            return len(self._idle.get(key, ()))


#: The environments of this process waiting for reuse (see the module docstring).
ENVS = EnvCache()
