"""Atari (ALE through gymnasium) as ES objectives, with the usual frame preprocessing.

:class:`AtariFrames` is a gymnasium wrapper doing the preprocessing of Mnih et al.
(2015) that Salimans et al. (2017) keep: grey frames (the ALE's own luminance), the
maximum of the last two raw frames of each action repeated ``frame_skip`` times, a
random number of no-op actions (up to ``noop_max``) after each reset, an optional crop,
a resize to ``size x size`` (area averaging) scaled to ``[0, 1]``, and the last ``stack``
frames as the observation ``(stack, size, size)`` (``stack=1`` for a recurrent policy
such as :class:`~evostrat.problems.policies.ConvLSTMPolicy`). The no-op count is drawn
from the reset seed, so every candidate of a generation meets the same episode starts.
A seeded reset reloads the game (about 0.15 s); :class:`AtariFrames` keeps the emulator
state each seed starts from (``ale.cloneState(include_rng=True)``, with the environment's
generator and the first frame) and the next reset with that seed restores it after a soft
reset (about 0.005 s), so the episode, sticky actions included, is the one a new reset
with that seed plays (and the environment's ``np_random_seed`` is that seed).

:class:`AtariProblem` is a :class:`~evostrat.problems.gym.GymProblem` on such an
environment (``ALE/<game>-v5`` with ``frameskip=1`` and, by default, no sticky actions,
as the ``Deterministic-v4`` ids that ale-py 0.10+ no longer registers): the mean return
of a torch policy, picklable for the process-pool and Ray evaluators. A recurrent
policy's state is reset at every episode; a policy with virtual batch normalisation gets
its statistics from a reference batch of observations collected once, at construction,
by a random policy (Salimans et al. 2017), recomputed through each candidate's weights.
The episode-length cap (``max_steps``) and observation normalisation (``obs_norm``) are
:class:`~evostrat.problems.gym.GymProblem`'s. :meth:`AtariProblem.play` records the
RGB frames of an episode and :func:`write_replay` writes them as a GIF or MP4.

Needs ``pip install evostrat[atari]`` (ale-py ships the ROMs).

Examples
--------
>>> from evostrat.problems.atari import AtariProblem
>>> from evostrat.problems.policies import ConvLSTMPolicy
>>> problem = AtariProblem("Pong", ConvLSTMPolicy(n_actions=6), size=42, stack=1, crop=(34, 194),
...                        max_steps=50)
>>> problem.obs_shape
(1, 42, 42)
>>> theta = problem.init_params()
>>> problem(theta) == problem(theta)        # same seeds, same no-op starts: deterministic
True
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

import numpy as np

from evostrat.errors import InvalidArgumentError
from evostrat.params_flat import TorchParams
from evostrat.problems.gym import GymProblem, import_gymnasium
from evostrat.problems.point_robot import positive_int

__all__ = ["AtariFrames", "AtariProblem", "make_atari", "write_replay"]

gymnasium = import_gymnasium("atari")


def _require_ale() -> None:
    try:
        import ale_py
    except ImportError as err:  # pragma: no cover - the atari extra is installed in CI
        raise ImportError("Atari environments need ale-py: pip install evostrat[atari]") from err
    gymnasium.register_envs(ale_py)


def _area_matrix(n_out: int, n_in: int) -> np.ndarray:
    """``(n_out, n_in)`` weights averaging the input cells each output cell covers (area resize)."""
    edges = np.linspace(0.0, n_in, n_out + 1)
    cells = np.arange(n_in)
    overlap = np.clip(np.minimum(edges[1:, None], cells + 1) - np.maximum(edges[:-1, None], cells), 0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


class AtariFrames(gymnasium.Wrapper):
    """Grey, frame-skipped, resized and stacked ALE frames (see the module docstring).

    Parameters
    ----------
    env : gymnasium.Env
        An ALE environment made with ``obs_type="grayscale"`` and ``frameskip=1``.
    frame_skip : int
        Times each action is repeated; rewards are summed.
    noop_max : int
        At most this many no-op actions after a reset (``0``: none).
    size : int
        Output frame height and width.
    stack : int
        Frames per observation.
    crop : tuple of int, optional
        Rows ``(top, bottom)`` kept before resizing (pytorch-es: ``(34, 194)``).

    Attributes
    ----------
    starts : OrderedDict
        The episode start of each seed reset with lately (at most :attr:`max_starts`): the
        emulator state after the no-ops, the environment's generator state, the first frame
        and the reset's info; ``reset(seed=s)`` restores the one of ``s`` instead of reloading the game.
    """

    #: Seeds whose episode starts are kept (the least recently used is dropped).
    max_starts = 64

    def __init__(self, env: Any, frame_skip: int = 4, noop_max: int = 30, size: int = 84, stack: int = 4,
                 crop: tuple[int, int] | None = None) -> None:
        super().__init__(env)
        self.frame_skip = positive_int("frame_skip", frame_skip)
        if isinstance(noop_max, bool) or not isinstance(noop_max, (int, np.integer)) or noop_max < 0:
            raise InvalidArgumentError(f"noop_max must be an int >= 0, got {noop_max!r}")
        self.noop_max = int(noop_max)
        self.size = positive_int("size", size)
        self.stack = positive_int("stack", stack)
        height, width = env.observation_space.shape[:2]
        if crop is not None:
            top, bottom = (int(c) for c in crop)
            if not 0 <= top < bottom <= height:
                raise InvalidArgumentError(f"crop must be rows (top, bottom) with 0 <= top < bottom <= {height}, "
                                           f"got {crop!r}")
            crop, height = (top, bottom), bottom - top
        self.crop = crop
        self.rows, self.cols = _area_matrix(self.size, height), _area_matrix(self.size, width).T / 255.0
        self.observation_space = gymnasium.spaces.Box(0.0, 1.0, (self.stack, self.size, self.size), np.float32)
        self.frames: deque = deque(maxlen=self.stack)
        self.recording: list | None = None  # RGB frames while play() records
        self.starts: OrderedDict[int, tuple] = OrderedDict()

    def process(self, frame: np.ndarray) -> np.ndarray:
        """One grey ``(210, 160)`` uint8 frame -> ``(size, size)`` float32 in ``[0, 1]``."""
        if self.crop is not None:
            frame = frame[self.crop[0]:self.crop[1]]
        return self.rows @ frame.astype(np.float32) @ self.cols

    def _record(self) -> None:
        if self.recording is not None:
            self.recording.append(self.env.unwrapped.ale.getScreenRGB())

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        keep = seed is not None and options is None and hasattr(self.env.unwrapped, "ale")
        if keep and self.recording is None and int(seed) in self.starts:  # play() records the reset's RGB frame
            return self._restart(int(seed))
        obs, info = self.env.reset(seed=seed, options=options)
        rng = np.random.default_rng(seed) if seed is not None else self.env.unwrapped.np_random
        for _ in range(int(rng.integers(0, self.noop_max + 1)) if self.noop_max else 0):
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(options=options)
        first = self.process(obs)
        if keep:
            self._keep(int(seed), first, info)
        return self._start(first, info)

    def _start(self, first: np.ndarray, info: dict) -> tuple[np.ndarray, dict]:
        self.frames.clear()
        self.frames.extend([first] * self.stack)
        self._record()
        return np.stack(self.frames), info

    def _keep(self, seed: int, first: np.ndarray, info: dict) -> None:
        """Remember the start of ``seed``'s episode (the emulator with its RNG, the generator, the frame)."""
        env = self.env.unwrapped
        try:
            state = env.ale.cloneState(include_rng=True)
        except TypeError:  # pragma: no cover - an ale-py without include_rng: reload the game every time
            return
        self.starts[seed] = (state, env.np_random.bit_generator.state, first, dict(info))
        self.starts.move_to_end(seed)
        while len(self.starts) > self.max_starts:
            self.starts.popitem(last=False)

    def _restart(self, seed: int) -> tuple[np.ndarray, dict]:
        """Start ``seed``'s episode again: a soft reset through the wrappers (their counters, the
        ALE's last actions, which its state leaves out), then the kept state."""
        state, generator, first, info = self.starts[seed]
        self.starts.move_to_end(seed)
        self.env.reset()
        env = self.env.unwrapped
        env.ale.restoreState(state)
        gymnasium.Env.reset(env, seed=seed)  # np_random_seed is seed's, as after a new reset with it
        env.np_random.bit_generator.state = generator  # and the generator where seed's episode starts
        return self._start(first, dict(info))

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        total, last = 0.0, []
        terminated = truncated = False
        info: dict = {}
        for i in range(self.frame_skip):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if i >= self.frame_skip - 2:
                last.append(obs)
            if terminated or truncated:
                break
        frame = np.maximum(last[-2], last[-1]) if len(last) == 2 else (last[-1] if last else obs)
        self.frames.append(self.process(frame))
        self._record()
        return np.stack(self.frames), total, terminated, truncated, info


def make_atari(game: str, frame_skip: int = 4, noop_max: int = 30, size: int = 84, stack: int = 4,
               crop: tuple[int, int] | None = None, sticky: float = 0.0, **kwargs: Any) -> AtariFrames:
    """``ALE/<game>-v5`` (grey, ``frameskip=1``, sticky-action probability ``sticky``) in :class:`AtariFrames`."""
    _require_ale()
    if not 0.0 <= float(sticky) <= 1.0:
        raise InvalidArgumentError(f"sticky must be a probability in [0, 1], got {sticky!r}")
    env = gymnasium.make(f"ALE/{game}-v5", obs_type="grayscale", frameskip=1,
                         repeat_action_probability=float(sticky), **kwargs)
    return AtariFrames(env, frame_skip=frame_skip, noop_max=noop_max, size=size, stack=stack, crop=crop)


class AtariProblem(GymProblem):
    """Mean episode return of a torch policy on an Atari game (to maximise).

    Parameters
    ----------
    game : str
        An ALE game name as in ``ALE/<game>-v5`` (``"Pong"``, ``"Breakout"``, ...).
    policy : torch.nn.Module
        Maps an observation ``(stack, size, size)`` to one output per action (argmax is
        played); a ``reset_state()`` method is called at each episode's start.
    episodes, max_steps, obs_norm, obs_clip, seed, negate
        As :class:`~evostrat.problems.gym.GymProblem` (``max_steps`` caps agent steps,
        i.e. ``frame_skip`` frames each).
    frame_skip, noop_max, size, stack, crop, sticky
        The preprocessing (:class:`AtariFrames`, :func:`make_atari`).
    ref_size : int
        Observations in the reference batch of a policy with virtual batch normalisation.
    """

    def __init__(self, game: str, policy: Any, episodes: int = 1, max_steps: int | None = None,
                 frame_skip: int = 4, noop_max: int = 30, size: int = 84, stack: int = 4,
                 crop: tuple[int, int] | None = None, sticky: float = 0.0, obs_norm: bool = False,
                 obs_clip: float = 5.0, ref_size: int = 128, seed: int = 0, negate: bool = False) -> None:
        from evostrat.problems.policies import uses_vbn

        _require_ale()
        if not isinstance(game, str):
            raise InvalidArgumentError(f"game must be an ALE game name such as 'Pong', got {game!r}")
        self.game = game
        self.preprocessing = {"frame_skip": frame_skip, "noop_max": noop_max, "size": size, "stack": stack,
                              "crop": None if crop is None else tuple(crop), "sticky": sticky}
        if not hasattr(policy, "named_parameters"):
            raise InvalidArgumentError(f"policy must be a torch.nn.Module, got {type(policy).__name__}")
        super().__init__(f"ALE/{game}-v5", policy, episodes=episodes, max_steps=max_steps, obs_norm=obs_norm,
                         obs_clip=obs_clip, seed=seed, negate=negate)
        self.params = TorchParams(self.policy)  # GymProblem's copy of the module
        self.initial = self.params.flatten().double().numpy()  # the module's weights as it was given
        self.ref_size = positive_int("ref_size", ref_size)
        self.reference = self.reference_batch(self.ref_size, seed=seed) if uses_vbn(self.policy) else None

    def make_env(self) -> Any:
        """A new preprocessed environment (:func:`make_atari`); GymProblem makes one per
        process and reuses it (:mod:`evostrat.problems.gym_envs`)."""
        return make_atari(self.game, **self.preprocessing)

    def _policy_fn(self, theta: np.ndarray) -> Any:  # once per episode: VBN statistics, fresh LSTM state
        from evostrat.problems.policies import set_reference

        act = self.params.policy(theta)
        if self.reference is not None:
            set_reference(self.policy, self.reference)
        reset = getattr(self.policy, "reset_state", None)
        if reset is not None:
            reset()
        return act

    def init_params(self) -> np.ndarray:
        """The policy's weights as it was given, as a float64 search point (evaluations load
        candidates into the problem's copy of the module, never into these)."""
        return self.initial.copy()

    def reference_batch(self, n: int, seed: int = 0, steps: int | None = None) -> np.ndarray:
        """``n`` observations of uniformly random play (episodes seeded ``seed, seed + 1, ...``),
        drawn at random from the first ``steps`` (default ``10 n``) agent steps: the VBN reference batch."""
        n = positive_int("n", n)
        steps = 10 * n if steps is None else positive_int("steps", steps)
        env, rng = self._get_env(), np.random.default_rng(seed)
        env.action_space.seed(int(seed))
        seen: list = []
        episode = 0
        obs, _ = env.reset(seed=int(seed))
        while len(seen) < steps:
            seen.append(obs)
            obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                episode += 1
                obs, _ = env.reset(seed=int(seed) + episode)
        pick = rng.choice(len(seen), size=min(n, len(seen)), replace=False)
        return np.stack([seen[i] for i in np.sort(pick)]).astype(np.float32)

    def play(self, theta: Any, seed: int | None = None) -> tuple[float, list[np.ndarray]]:
        """One episode of ``theta`` (reset with ``seed``, default ``self.seed``):
        ``(return, RGB frames)``, one frame per agent step plus the first."""
        env = self._get_env()
        env.recording = []
        try:
            total, _ = self.episode(theta, self.seed if seed is None else int(seed), update_stats=False)
            return total, env.recording
        finally:
            env.recording = None

    def spec(self) -> dict[str, Any]:
        """Game, preprocessing and policy as plain JSON values (stored with checkpoints for
        replay; :meth:`from_spec` rebuilds the problem)."""
        config = getattr(self.policy, "config", None)
        return {"game": self.game, "max_steps": self.max_steps, "episodes": self.episodes, "seed": self.seed,
                "obs_norm": self.obs_norm, "ref_size": self.ref_size, "policy": config,
                **{k: (list(v) if isinstance(v, tuple) else v) for k, v in self.preprocessing.items()}}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "AtariProblem":
        """The problem :meth:`spec` describes (its policy must be one of :mod:`evostrat.problems.policies`)."""
        from evostrat.problems.policies import make_policy

        if not isinstance(spec, dict) or "game" not in spec:
            raise InvalidArgumentError(f"spec must be a dict from AtariProblem.spec(), got {spec!r}")
        if spec.get("policy") is None:
            raise InvalidArgumentError("spec has no policy config: only the policies of "
                                       "evostrat.problems.policies can be rebuilt")
        kwargs = {k: v for k, v in spec.items() if k not in ("game", "policy")}
        return cls(spec["game"], make_policy(spec["policy"]), **kwargs)

    def __repr__(self) -> str:
        return f"AtariProblem({self.game!r}, episodes={self.episodes}, dim={self.dim}, obs={self.obs_shape})"


def write_replay(frames: list[np.ndarray], path: str, fps: int = 30) -> int:
    """Write RGB ``frames`` as an animated GIF (``.gif``) or an MP4 (``.mp4``, needs
    ``imageio-ffmpeg``); returns the number of frames written. The file is written atomically
    (:func:`~evostrat.checkpoint.format.atomic_file`): a file, link or FIFO at ``path`` is
    replaced, never written through."""
    from evostrat.checkpoint.format import atomic_file

    try:
        import imageio.v3 as iio
    except ImportError as err:
        raise ImportError("writing a replay needs imageio: pip install evostrat[atari]") from err

    if not frames:
        raise InvalidArgumentError("frames is empty: nothing to write")
    suffix = str(path).lower().rsplit(".", 1)[-1]
    if suffix == "gif":
        options = {"duration": 1000.0 / positive_int("fps", fps), "loop": 0}
    elif suffix == "mp4":
        options = {"fps": positive_int("fps", fps), "codec": "libx264"}
    else:
        raise InvalidArgumentError(f"path must end in .gif or .mp4, got {path!r}")
    video = np.stack(frames)
    with atomic_file(path, prefix=".") as file:
        iio.imwrite(file, video, extension=f".{suffix}", **options)
    return len(frames)
