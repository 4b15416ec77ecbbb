"""``evostrat replay CHECKPOINT``: play a checkpointed Atari policy, write a GIF or MP4.

The checkpoint must carry the problem's spec under the metadata key ``"atari"``
(``Checkpointer(path, metadata={"atari": problem.spec()})``, as
``examples/rl/atari_pong.py --checkpoint`` writes it): the command rebuilds the
:class:`~evostrat.problems.atari.AtariProblem`, plays the run's current mean (``--best``:
the best candidate seen) for ``--episodes`` episodes, prints each return and writes the
first episode's RGB frames to ``--out`` (the pytorch-es ``--test --restore``).

The spec is data from a file: before anything is built, its ``game`` must be an ALE game
name (letters and digits, as in ``ALE/<game>-v5``: :data:`GAME_PATTERN`) and its sizes
within the limits of real use: ``episodes`` <= :data:`MAX_EPISODES`, ``max_steps`` null or
<= :data:`MAX_STEPS` (the ALE's own cap of an episode, in frames) and ``ref_size`` <=
:data:`MAX_REF_SIZE`, and the preprocessing's ``frame_skip`` <= 100, ``noop_max`` <= 10,000,
``size`` <= 1024 and ``stack`` <= 64, ``sticky`` a probability, ``obs_clip`` positive and ``seed`` an
int >= 0 (a :class:`~evostrat.errors.CheckpointError` naming the
file and the field otherwise, as for a field :meth:`AtariProblem.spec` does not write).

Examples
--------
>>> from evostrat.cli import main
>>> main(["replay", "missing.ckpt"])          # the message goes to stderr
1
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

from evostrat.cli.inputs import shown
from evostrat.cli.run import UsageError
from evostrat.cli.types import nonnegative_int, positive_int
from evostrat.errors import InvalidArgumentError
from evostrat.run.state import is_int, is_real

__all__ = ["GAME_PATTERN", "MAX_EPISODES", "MAX_REF_SIZE", "MAX_STEPS", "SPEC_FIELDS", "add_parser", "replay"]

#: An ALE game's name as ``ALE/<game>-v5`` spells it (``Pong``, ``MontezumaRevenge``, ``Pitfall2``).
GAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")
#: Largest ``episodes`` of a replayed spec (the examples train on 1 to a few).
MAX_EPISODES = 1000
#: Largest ``max_steps`` of a replayed spec: the ALE's own cap of an episode (108,000 frames, 30 minutes).
MAX_STEPS = 108_000
#: Largest ``ref_size`` of a replayed spec (the reference batch of virtual batch normalisation; default 128).
MAX_REF_SIZE = 10_000
#: The fields :meth:`AtariProblem.spec <evostrat.problems.atari.AtariProblem.spec>` writes (and ``negate``,
#: which :meth:`~evostrat.problems.atari.AtariProblem.from_spec` takes).
SPEC_FIELDS = frozenset({"game", "max_steps", "episodes", "seed", "obs_norm", "ref_size", "policy", "frame_skip",
                         "noop_max", "size", "stack", "crop", "sticky", "obs_clip", "negate"})
#: field -> (may be null, smallest, largest, default) of the int fields of a replayed spec: sizes of real
#: use (the examples: frame_skip 4, noop_max 30, size 84 or 42, stack 4 or 1) with room to spare.
_BOUNDS = {"episodes": (False, 1, MAX_EPISODES, 1), "max_steps": (True, 1, MAX_STEPS, None),
           "ref_size": (False, 1, MAX_REF_SIZE, 128), "frame_skip": (False, 1, 100, 4),
           "noop_max": (False, 0, 10_000, 30), "size": (False, 1, 1024, 84), "stack": (False, 1, 64, 4)}


def replay(path: str, out: str | None = None, episodes: int = 1, seed: int = 10_000, best: bool = False,
           fps: int = 30, max_steps: int | None = None) -> list[float]:
    """Play the policy of checkpoint ``path``; returns the episode returns (and writes ``out``)."""
    import numpy as np

    from evostrat.checkpoint import checkpoint_info, load_checkpoint
    from evostrat.problems.atari import AtariProblem, write_replay

    info = checkpoint_info(path)
    spec = (info.get("user") or {}).get("atari")
    if spec is None:
        raise InvalidArgumentError(f"checkpoint {path!r} has no 'atari' problem spec in its metadata; write it "
                                   "with Checkpointer(path, metadata={'atari': problem.spec()})")
    _check_spec(spec, path)
    _check_policy_size(spec, path, info.get("dim"))
    spec = dict(spec, max_steps=max_steps if max_steps is not None else spec.get("max_steps"))
    problem = AtariProblem.from_spec(spec)
    # replay evaluates nothing; an obs_norm policy plays with the observation statistics it was trained with
    es = load_checkpoint(path, objective=problem if problem.obs_norm else None, evaluator="serial",
                         evaluator_options=None)
    theta = np.asarray(es.x_ if best else es.run_.to_box(es.strategy_.mean), dtype=np.float64)
    returns = []
    for e in range(episodes):
        total, frames = problem.play(theta, seed=seed + e)
        returns.append(total)
        print(f"episode {e + 1}: return {total:g} ({len(frames) - 1} steps)")
        if e == 0 and out:
            n = write_replay(frames, out, fps=fps)
            print(f"wrote {n} frames to {out}")
    return returns


def _check_spec(spec: Any, path: str) -> None:
    """Refuse a spec whose ``game`` is no ALE game name (``a:b`` was imported as a module by
    gymnasium's registry) or whose ``episodes``, ``max_steps`` or ``ref_size`` is out of range."""
    from evostrat.errors import CheckpointError

    def refuse(field: str, expected: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {path!r}: its 'atari' spec field {field!r} must be {expected}, got "
                               f"{shown(spec.get(field))}")

    if not isinstance(spec, dict):
        raise CheckpointError(f"checkpoint {path!r}: its 'atari' spec must be a dict from AtariProblem.spec(), "
                              f"got {type(spec).__name__}")
    if not isinstance(spec.get("game"), str) or not GAME_PATTERN.fullmatch(spec["game"]):
        raise refuse("game", "an ALE game name such as 'Pong' (letters and digits)")
    unknown = sorted(set(map(str, spec)) - SPEC_FIELDS)
    if unknown:
        raise CheckpointError(f"checkpoint {path!r}: its 'atari' spec has fields {unknown} that "
                              f"AtariProblem.spec() does not write")
    for field, (nullable, low, high, default) in _BOUNDS.items():
        value = spec.get(field, default)
        if not (value is None and nullable or is_int(value) and low <= value <= high):
            raise refuse(field, ("null or " if nullable else "") + f"an int from {low} to {high}")
    crop = spec.get("crop")
    if not (crop is None or isinstance(crop, list) and len(crop) == 2 and all(map(is_int, crop))):
        raise refuse("crop", "null or two ints [top, bottom]")
    for field in ("obs_norm", "negate"):
        if not isinstance(spec.get(field, False), bool):
            raise refuse(field, "true or false")
    if not (is_int(spec.get("seed", 0)) and spec.get("seed", 0) >= 0):  # gymnasium's resets take seeds >= 0
        raise refuse("seed", "an int >= 0")
    sticky, clip = spec.get("sticky", 0.0), spec.get("obs_clip", 5.0)
    if not (is_real(sticky) and 0.0 <= sticky <= 1.0):
        raise refuse("sticky", "a probability from 0 to 1")
    if not (is_real(clip) and clip > 0):  # also NaN
        raise refuse("obs_clip", "a positive number (Infinity: no clipping)")


def _check_policy_size(spec: Any, path: str, dim: Any) -> None:
    """Refuse a spec whose policy does not have the checkpoint's ``dim`` parameters, before the policy
    is made: it is sized on torch's ``meta`` device, which allocates nothing (a forged ``hidden`` of
    10**9 would otherwise allocate terabytes)."""
    import torch

    from evostrat.errors import CheckpointError
    from evostrat.problems.policies import make_policy

    try:
        with torch.device("meta"):
            size = sum(p.numel() for p in make_policy(spec.get("policy") if isinstance(spec, dict) else None)
                       .parameters())
    except (TypeError, ValueError, RuntimeError) as err:  # InvalidArgumentError is a ValueError
        raise CheckpointError(f"checkpoint {path!r}: its 'atari' spec has no valid policy config: {err}") from err
    if size != dim:
        raise CheckpointError(f"checkpoint {path!r}: the policy of its 'atari' spec has {size} parameters, "
                              f"but the run saved in it has {dim}")


def _cmd_replay(args: argparse.Namespace) -> int:
    if args.out is not None and not args.out.lower().endswith((".gif", ".mp4")):  # before the episodes are played
        raise UsageError(f"argument --out: expected a .gif or .mp4 file, got {args.out!r}")
    if args.out is not None:  # a place it cannot be written: refused now, not after the episodes
        from evostrat.checkpoint.format import check_writable

        if os.path.isdir(args.out) and not os.path.islink(args.out):
            raise UsageError(f"argument --out: {args.out!r} is a folder; name a .gif or .mp4 file")
        check_writable(args.out, f"--out {args.out!r}")
    replay(args.checkpoint, out=args.out, episodes=args.episodes, seed=args.seed, best=args.best, fps=args.fps,
           max_steps=args.max_steps)
    return 0


def add_parser(sub: Any) -> None:
    """Add ``replay`` to the subcommands ``sub``."""
    p = sub.add_parser("replay", help="play a checkpointed Atari policy and write a GIF/MP4",
                       description="Load a checkpoint written with an AtariProblem spec, play its policy, "
                                   "print the returns and write the first episode as a GIF or MP4.")
    p.add_argument("checkpoint", help="checkpoint file (metadata must hold the 'atari' problem spec)")
    p.add_argument("--out", default=None, help="write the first episode here (.gif, or .mp4 with imageio-ffmpeg)")
    p.add_argument("--episodes", type=positive_int, default=1, help="episodes to play (default 1)")
    p.add_argument("--seed", type=nonnegative_int, default=10_000, help="seed of the first episode (default 10000)")
    p.add_argument("--best", action="store_true", help="play the best candidate seen instead of the mean")
    p.add_argument("--fps", type=positive_int, default=30, help="frames per second of the animation")
    p.add_argument("--max-steps", type=positive_int, default=None, help="cap on agent steps per episode")
    p.set_defaults(func=_cmd_replay, parser=p)
