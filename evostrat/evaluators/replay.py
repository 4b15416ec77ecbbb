"""Worker-side state replay: ship the told fitness, not the distribution.

Salimans et al. (2017), sec. 2.1; ``seeded="replay"`` in the remote evaluators.
Each worker process keeps a run's state (a cache of the last :data:`REPLAY_RUNS`
runs). Per generation the driver (:class:`ReplayLog`, :class:`ReplayStep`) sends a
:class:`ReplayMessage`: the fitness vectors it told the strategy in the last
``replay_window`` generations (after the NaN policy and the sign of ``maximize``)
and a digest of the resulting state. A worker up to that many generations behind
replays ``ask`` and ``tell`` with the compiled programs, checks the digest and
rebuilds its rows; otherwise (first generation, new worker, any differing bit) it
answers ``need_state`` and gets the full :class:`ReplayState` once.

Examples
--------
>>> import numpy as np
>>> from evostrat.evaluators.replay import state_digest
>>> from evostrat.strategies.snes import SNES
>>> state = SNES(sigma0=0.5).init(np.zeros(3), random_state=0)
>>> len(state_digest(state)), state_digest(state) == state_digest(state)
(16, True)
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from evostrat.backends import Backend, get_backend
from evostrat.backends.programs import program_key
from evostrat.backends.trees import named_leaves

__all__ = ["REPLAY_RUNS", "REPLAY_WINDOW", "NeedState", "ReplayLog", "ReplayMessage", "ReplayState",
           "ReplayStep", "state_digest"]

Array = Any

#: Generations of told fitness a replay message carries by default: a worker whose cached
#: state is up to this many generations behind catches up by replaying them.
REPLAY_WINDOW = 4
#: Runs whose state a worker process keeps (least recently used dropped first).
REPLAY_RUNS = 4


class NeedState(Exception):
    """Raised on a worker whose cache cannot replay to a message's state (internal).

    The worker answers ``need_state`` and the driver resends the chunk with the full state.
    """


def _leaves(tree: Any) -> Any:
    for name, value in named_leaves(tree):
        yield name, np.asarray(value)


def state_digest(host: Any) -> bytes:
    """16-byte BLAKE2b digest of a host state tree: names, dtypes, shapes and bytes of its leaves."""
    import hashlib  # here: a serial or vectorized fit (which imports this module) never digests

    h = hashlib.blake2b(digest_size=16)
    for name, a in _leaves(host):
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(np.ascontiguousarray(a).reshape(-1).view(np.uint8).data)
    return h.digest()


@dataclass(frozen=True)
class ReplayMessage:
    """What one generation ships in replay mode: ``O(popsize)`` bytes.

    Attributes
    ----------
    run : str
        Id of the run (a new one per ``ES.fit`` run, restarts included).
    generation : int
        Completed generations: the state to evaluate from precedes the ``generation``-th ``ask``.
    first : int
        Generation of ``fitness[0]``.
    fitness : ndarray, shape (k, popsize)
        The values told at generations ``first .. generation - 1`` (after the NaN policy
        and sign), ``k <=`` the evaluator's ``replay_window``.
    digest : bytes
        :func:`state_digest` of the state at ``generation``.
    """

    run: str
    generation: int
    first: int
    fitness: np.ndarray
    digest: bytes

    @property
    def nbytes(self) -> int:
        """Bytes of array data this message carries."""
        return int(self.fitness.nbytes + len(self.digest) + len(self.run))

    def rows(self, start: int, stop: int, as_backend: bool = False) -> Any:
        """Candidates ``start .. stop - 1`` from this worker's cached state, replayed.

        Raises
        ------
        NeedState
            When the cache cannot reach (or does not match) the driver's state.
        """
        with _REPLAY_LOCK:
            entry = _REPLAY_CACHE.get(self.run)
            if entry is None:
                raise NeedState(f"no cached state for run {self.run}")
            _REPLAY_CACHE.move_to_end(self.run)
            if not self.first <= entry.generation <= self.generation:
                raise NeedState(
                    f"cached state of generation {entry.generation}; the message replays "
                    f"{self.first}..{self.generation}"
                )
            be, state = entry.backend, entry.state
            ask, tell = entry.programs()
            for g in range(entry.generation, self.generation):
                X, state = ask(state)
                state = tell(state, X, be.from_host(self.fitness[g - self.first]))
            if state_digest(be.to_host(state)) != self.digest:
                del _REPLAY_CACHE[self.run]
                raise NeedState(f"replayed state of generation {self.generation} differs from the driver's")
            entry.generation, entry.state = self.generation, state
        return entry.rows(state, start, stop, as_backend)


@dataclass(frozen=True)
class ReplayState:
    """The full state of a generation: the replay fallback (and each run's first message).

    A worker installs it in its cache, so later :class:`ReplayMessage` s replay from it.
    Carries the strategy (its hyper-parameters), hence once per worker and run.
    """

    message: ReplayMessage
    strategy: Any
    backend: str
    dtype: str
    state: Any  # the strategy's state, leaves as host numpy arrays

    @property
    def nbytes(self) -> int:
        """Bytes of array data (the state's leaves and the message)."""
        return int(sum(a.nbytes for _, a in _leaves(self.state)) + self.message.nbytes)

    def rows(self, start: int, stop: int, as_backend: bool = False) -> Any:
        """Install the state in this worker's cache; candidates ``start .. stop - 1``."""
        be = get_backend(self.backend)
        be.require_dtype(self.dtype)
        entry = _CachedRun(self.strategy, be, self.message.generation, be.from_host(self.state))
        with _REPLAY_LOCK:
            _REPLAY_CACHE[self.message.run] = entry
            _REPLAY_CACHE.move_to_end(self.message.run)
            while len(_REPLAY_CACHE) > REPLAY_RUNS:
                _REPLAY_CACHE.popitem(last=False)
        return entry.rows(entry.state, start, stop, as_backend)


class _CachedRun:
    """A worker's copy of a run: strategy, state and generation.

    Its ``ask``/``tell`` come from the backend's one compile cache
    (:meth:`~evostrat.backends.base.Backend.compile`), as the driver's do.
    """

    def __init__(self, strategy: Any, backend: Backend, generation: int, state: Any) -> None:
        self.strategy, self.backend = strategy, backend
        self.generation, self.state = int(generation), state

    def programs(self) -> tuple[Any, Any]:
        """The strategy's compiled ``ask`` and ``tell``, shared by runs of equal strategies."""
        be, s, mean = self.backend, self.strategy, self.state.mean
        signature = (tuple(mean.shape), be.dtype_name(mean.dtype))
        return tuple(be.compile(f, key=program_key(f, *signature)) for f in (s.ask, s.tell))

    def rows(self, state: Any, start: int, stop: int, as_backend: bool) -> Any:
        return self.strategy.population_seed(state).rows(start, stop, as_backend=as_backend)


#: This process's cached run states (workers; thread pools share it with the driver).
_REPLAY_CACHE: "OrderedDict[str, _CachedRun]" = OrderedDict()
_REPLAY_LOCK = threading.RLock()


class ReplayStep:
    """Driver side of one generation in replay mode (never shipped).

    Made by :class:`ReplayLog` before ``ask``; the evaluator turns it into a
    :meth:`message` or, for workers without the state, :meth:`full`.
    """

    def __init__(self, run: str, runner: Any, history: list[np.ndarray]) -> None:
        self.run = run
        self.strategy = runner.strategy
        self.backend = runner.backend
        self.state = runner.state  # immutable: ask and tell return new states
        self.generation = int(runner.generation)
        self.history = history  # told fitness of generations generation - len .. generation - 1
        self._full: ReplayState | None = None

    @functools.cached_property
    def host_state(self) -> Any:
        return self.backend.to_host(self.state)

    @functools.cached_property
    def digest(self) -> bytes:
        return state_digest(self.host_state)

    def message(self, window: int = REPLAY_WINDOW) -> ReplayMessage:
        """The per-generation message: the last ``window`` told fitness vectors and the digest."""
        history = self.history[len(self.history) - min(int(window), len(self.history)):]
        n = int(self.strategy.resolved_popsize(int(self.state.mean.shape[0])))
        dtype = np.asarray(self.host_state.mean).dtype
        fitness = np.stack(history) if history else np.empty((0, n), dtype=dtype)
        return ReplayMessage(run=self.run, generation=self.generation, first=self.generation - len(history),
                             fitness=fitness, digest=self.digest)

    def full(self) -> ReplayState:
        """The full state (with the strategy): installs the run on a worker."""
        if self._full is None:
            dtype = self.backend.dtype_name(self.state.mean.dtype)
            self._full = ReplayState(message=self.message(0), strategy=self.strategy,
                                     backend=self.backend.name, dtype=dtype, state=self.host_state)
        return self._full


class ReplayLog:
    """Follows a fit's generations for state replay: run id and told fitness.

    ``ES.fit`` makes one per run loop for evaluators with ``accepts_replay``;
    :meth:`step` before each ``ask``, :meth:`told` after each ``tell`` with
    the values the strategy was told. A new :class:`~evostrat.run.asktell.AskTell`
    (a restart, a resumed checkpoint) starts a new run id.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat.run.asktell import AskTell
    >>> from evostrat.strategies.snes import SNES
    >>> runner = AskTell(SNES(popsize=6), np.zeros(3), random_state=0)
    >>> log = ReplayLog()
    >>> step = log.step(runner)
    >>> X = runner.ask(); f = (X ** 2).sum(axis=1); runner.tell(X, f); log.told(runner, f)
    >>> message = log.step(runner).message()
    >>> message.generation, message.fitness.shape, len(message.digest)
    (1, (1, 6), 16)
    """

    def __init__(self, keep: int = 16) -> None:
        self.keep = int(keep)
        self._runner: Any = None
        self.run: str | None = None
        self._fitness: dict[int, np.ndarray] = {}

    def step(self, runner: Any) -> ReplayStep:
        """The replay description of the generation ``runner.ask()`` will start."""
        if runner is not self._runner:
            import uuid

            self._runner, self.run, self._fitness = runner, uuid.uuid4().hex, {}
        history = []
        g = int(runner.generation) - 1
        while g in self._fitness and len(history) < self.keep:
            history.append(self._fitness[g])
            g -= 1
        return ReplayStep(self.run or "", runner, history[::-1])

    def told(self, runner: Any, fitness: Any) -> None:
        """Record what ``runner``'s strategy was told at its last generation."""
        if runner is not self._runner or fitness is None:
            return
        g = int(runner.generation) - 1
        self._fitness[g] = np.array(runner.backend.to_numpy(fitness), copy=True)
        for old in [k for k in self._fitness if k <= g - self.keep]:
            del self._fitness[old]
