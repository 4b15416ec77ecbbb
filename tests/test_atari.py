"""Atari (issue 22): preprocessing, conv policies and VBN, the centre-rank diagnostic, replay, Pong on a pool."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ale_py")

from evostrat import ES  # noqa: E402
from evostrat.callbacks.centre_rank import CentreRank, centre_rank  # noqa: E402
from evostrat.callbacks.progress import ProgressBar  # noqa: E402
from evostrat.errors import InvalidArgumentError, StateError  # noqa: E402
from evostrat.problems.atari import AtariProblem, make_atari, write_replay  # noqa: E402
from evostrat.problems.policies import (ConvLSTMPolicy, ConvPolicy, VirtualBatchNorm,  # noqa: E402
                                        make_policy, set_reference)


def small_pong(vbn: bool = False, max_steps: int = 12, **kwargs):
    torch.manual_seed(0)
    policy = ConvLSTMPolicy(n_actions=6, hidden=16, activation="elu" if vbn else "selu", vbn=vbn)
    return AtariProblem("Pong", policy, size=42, stack=1, crop=(34, 194), max_steps=max_steps, ref_size=8, **kwargs)


# -- preprocessing -----------------------------------------------------------------------------------
def test_frames_grey_resized_stacked_and_skipped() -> None:
    env = make_atari("Pong", frame_skip=4, noop_max=0, size=84, stack=4)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.float32
    assert env.observation_space.shape == (4, 84, 84)
    assert 0.0 <= obs.min() and obs.max() <= 1.0
    assert all(np.array_equal(obs[0], obs[i]) for i in range(4))  # the first frame fills the stack
    ale = env.unwrapped.ale
    start = ale.getEpisodeFrameNumber()
    for _ in range(3):
        nxt, _, _, _, _ = env.step(0)
    assert ale.getEpisodeFrameNumber() - start == 12  # 3 actions x 4 frames
    assert nxt.shape == (4, 84, 84)
    # the newest frame is last: the max of the last two raw grey frames, area-resized, / 255
    grey = ale.getScreenGrayscale()
    assert np.allclose(env.process(grey).mean(), grey.mean() / 255, atol=2e-3)
    crop = make_atari("Pong", size=42, stack=1, crop=(34, 194))
    assert crop.reset(seed=0)[0].shape == (1, 42, 42)
    # constant frames stay constant (area weights sum to 1)
    assert np.allclose(crop.process(np.full((210, 160), 51, np.uint8)), 0.2)


def test_noop_starts_follow_the_seed() -> None:
    env = make_atari("Pong", noop_max=30)
    frames = []
    for seed in (0, 0, 1, 2, 3):
        env.reset(seed=seed)
        frames.append(env.unwrapped.ale.getEpisodeFrameNumber())
    assert frames[0] == frames[1]  # same seed, same start
    assert all(0 <= f <= 30 for f in frames) and len(set(frames)) > 1


def play_trace(env, seed: int, steps: int = 60) -> tuple:
    """Observations, rewards and frame numbers of an episode whose actions follow the observations."""
    obs, info = env.reset(seed=seed)
    trace, rewards, frames = [obs], [], [info["episode_frame_number"]]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(int(obs.sum() * 997) % env.action_space.n)
        trace.append(obs)
        rewards.append(reward)
        frames.append(info["episode_frame_number"])
        if terminated or truncated:
            break
    return np.stack(trace), rewards, frames


def test_seeded_resets_restore_the_start_and_play_a_new_resets_episode() -> None:
    # sticky actions and no-op starts: the episode after a restored start is the one a reload plays,
    # also after other seeds' episodes (the ALE's state leaves out the last action, which sticks)
    # (Breakout shows a stale last action within 60 steps; Pong ignores the paddle then)
    env = make_atari("Breakout", noop_max=30, sticky=0.25, size=42, stack=1)
    reload = make_atari("Breakout", noop_max=30, sticky=0.25, size=42, stack=1)
    reload.max_starts = 0  # keeps no start: every seeded reset reloads the game
    loads = {"env": 0, "reload": 0}
    for name, wrapper in (("env", env), ("reload", reload)):
        load = wrapper.unwrapped.load_game

        def counted(load=load, name=name) -> None:
            loads[name] += 1
            load()

        wrapper.unwrapped.load_game = counted
    seeds = (0, 1, 0, 2, 1, 1, 0)
    for seed in seeds:
        got, want = play_trace(env, seed), play_trace(reload, seed)
        assert np.array_equal(got[0], want[0]) and got[1:] == want[1:], seed
    assert loads == {"env": 3, "reload": len(seeds)}  # the game loads once per seed, not once per episode
    assert list(env.starts) == [2, 1, 0]  # most recently used last
    env.max_starts = 2
    env.reset(seed=3)
    assert list(env.starts) == [0, 3]  # the least recently used dropped


def test_restored_start_has_the_seed_and_generator_of_a_new_environments_reset() -> None:
    """After other seeds' episodes, a restored start reports its own seed as ``np_random_seed`` (it
    kept the last reloaded seed's) and draws what a new environment's ``reset(seed=s)`` draws."""
    env = make_atari("Breakout", noop_max=30, sticky=0.25, size=42, stack=1)
    for seed in (0, 1, 0, 2, 1):
        fresh = make_atari("Breakout", noop_max=30, sticky=0.25, size=42, stack=1)
        got, want = play_trace(env, seed), play_trace(fresh, seed)
        assert np.array_equal(got[0], want[0]) and got[1:] == want[1:], seed
        env.reset(seed=seed), fresh.reset(seed=seed)
        assert env.unwrapped.np_random_seed == fresh.unwrapped.np_random_seed == seed
        assert env.unwrapped.np_random.integers(2**30) == fresh.unwrapped.np_random.integers(2**30)
        fresh.close()
    assert list(env.starts) == [0, 2, 1]


def test_problem_returns_equal_with_restored_starts() -> None:
    problem = small_pong(max_steps=15, episodes=2, sticky=0.25)
    reload = small_pong(max_steps=15, episodes=2, sticky=0.25)
    reload._get_env().max_starts = 0
    theta = np.random.default_rng(1).standard_normal((2, problem.dim)) * 0.3
    first, again, want = problem(theta), problem(theta), reload(theta)
    assert np.array_equal(first, want) and np.array_equal(again, want)
    assert np.array_equal(problem.evaluate(theta[0], seed=5), reload.evaluate(theta[0], seed=5))


def test_preprocessing_bad_arguments() -> None:
    with pytest.raises(InvalidArgumentError, match="crop must be rows"):
        make_atari("Pong", crop=(200, 100))
    with pytest.raises(InvalidArgumentError, match="noop_max must be an int >= 0"):
        make_atari("Pong", noop_max=-1)
    with pytest.raises(InvalidArgumentError, match="sticky must be a probability"):
        make_atari("Pong", sticky=1.5)
    with pytest.raises(InvalidArgumentError, match="policy must be a torch.nn.Module"):
        AtariProblem("Pong", lambda theta, obs: obs)


# -- policies and virtual batch normalisation ---------------------------------------------------------
def test_policy_shapes_and_lstm_state() -> None:
    conv = ConvPolicy(n_actions=6, in_channels=4, size=84, hidden=32)
    assert conv(torch.zeros(4, 84, 84)).shape == (6,) and conv(torch.zeros(3, 4, 84, 84)).shape == (3, 6)
    net = ConvLSTMPolicy(n_actions=6)
    assert sum(p.numel() for p in net.parameters()) == 588_710  # the pytorch-es network
    x = torch.rand(1, 42, 42)
    with torch.no_grad():
        first, second = net(x), net(x)
        net.reset_state()
        again = net(x)
    assert not torch.equal(first, second)  # the LSTM remembers
    assert torch.equal(first, again)
    assert make_policy(net.config).config == net.config
    with pytest.raises(InvalidArgumentError, match="activation must be one of"):
        ConvPolicy(6, activation="swish")


def test_vbn_statistics_fixed_after_the_reference_batch() -> None:
    torch.manual_seed(1)
    net = ConvPolicy(n_actions=4, in_channels=2, size=36, hidden=8, activation="relu", vbn=True)
    with pytest.raises(StateError, match="set_reference"):
        net(torch.rand(2, 36, 36))
    ref = torch.rand(16, 2, 36, 36)
    set_reference(net, ref)
    layers = [m for m in net.modules() if isinstance(m, VirtualBatchNorm)]
    assert len(layers) == 3
    stats = [(m.ref_mean.clone(), m.ref_var.clone()) for m in layers]
    # the first layer's statistics are those of the reference batch through the first convolution
    conv_out = net.features[0](ref)
    assert torch.allclose(stats[0][0], conv_out.mean(dim=(0, 2, 3)), atol=1e-6)
    assert torch.allclose(stats[0][1], conv_out.var(dim=(0, 2, 3), unbiased=False), atol=1e-6)
    with torch.no_grad():
        a, b = torch.rand(2, 36, 36), 5 * torch.rand(2, 36, 36)
        alone = net(a)
        in_batch = net(torch.stack([a, b]))[0]
    assert torch.allclose(alone, in_batch, atol=1e-6)  # no dependence on batch companions
    for m, (mean, var) in zip(layers, stats):  # unchanged by later inputs
        assert torch.equal(m.ref_mean, mean) and torch.equal(m.ref_var, var)
    with torch.no_grad():  # new weights, new statistics (they are computed through the weights)
        net.features[0].weight.mul_(2.0)
    set_reference(net, ref)
    assert not torch.allclose(layers[0].ref_mean, stats[0][0])
    with pytest.raises(InvalidArgumentError, match="at least 2 observations"):
        set_reference(net, ref[:1])


def test_problem_sets_vbn_statistics_per_candidate() -> None:
    problem = small_pong(vbn=True)
    assert problem.reference.shape == (8, 1, 42, 42)
    theta = problem.init_params()
    other = theta + 0.1 * np.random.default_rng(0).standard_normal(theta.size)
    problem(other)
    after_other = problem.policy.features[1].ref_mean.clone()
    problem(theta)
    after_theta = problem.policy.features[1].ref_mean.clone()
    assert not torch.allclose(after_other, after_theta)
    set_reference(problem.policy, problem.reference)  # theta is loaded: the same statistics
    assert torch.allclose(problem.policy.features[1].ref_mean, after_theta)
    problem(other)  # the last candidate evaluated is in the problem's module, not in the start point
    np.testing.assert_array_equal(problem.init_params(), theta)


def test_observation_normalisation_and_episode_cap() -> None:
    problem = small_pong(max_steps=9, obs_norm=True)
    theta = problem.init_params()
    total, steps = problem.episode(theta, seed=0)
    assert steps == 9  # the cap, in agent steps
    assert problem.obs_stat.mean.shape == (1, 42, 42)
    assert problem.obs_stat.count == pytest.approx(9.01)  # every observation the policy saw
    problem.freeze()
    problem(theta)
    assert problem.obs_stat.count == pytest.approx(9.01)


# -- the centre-rank diagnostic -----------------------------------------------------------------------
@pytest.mark.parametrize("strategy,maximize", [("openai_es", False), ("snes", True), ("cma_es", False)])
def test_centre_rank_equals_brute_force_rank(strategy: str, maximize: bool) -> None:
    calls: list[np.ndarray] = []

    def f(X: np.ndarray) -> np.ndarray:
        calls.append(X.copy())
        return np.round(np.sum((X - 0.5) ** 2, axis=1), 1)  # rounding makes ties

    means: list[np.ndarray] = []
    rank = CentreRank("vectorized")
    x0 = np.ones(5)
    es = ES(strategy, popsize=8, max_generations=6, random_state=3, maximize=maximize, evaluator=rank)
    es.fit(f, x0, callbacks=[rank, lambda e: means.append(np.asarray(e.strategy_.mean).copy())])
    assert len(calls) == 6 and all(X.shape == (9, 5) for X in calls)  # popsize + the centre
    centres = [x0] + means[:-1]
    for X, centre, entry in zip(calls, centres, es.history_):
        assert np.array_equal(X[-1], centre)
        values = f(X).tolist()
        c = values.pop()
        ordered = sorted(values + [c], reverse=maximize)
        assert entry["centre_rank"] == ordered.index(c) + 1  # ties: the centre first
        assert entry["centre_value"] == c
    assert rank.ranks == [e["centre_rank"] for e in es.history_]
    # the diagnostic does not change the run
    plain = ES(strategy, popsize=8, max_generations=6, random_state=3, maximize=maximize).fit(f, x0)
    assert [e["generation_best"] for e in plain.history_] == [e["generation_best"] for e in es.history_]
    assert es.n_evals_ == plain.n_evals_ == 48


def test_centre_rank_progress_line_and_misuse(capsys: pytest.CaptureFixture) -> None:
    import io

    out = io.StringIO()
    rank = CentreRank("vectorized")
    ES("snes", max_generations=2, random_state=0, evaluator=rank).fit(
        lambda X: (X ** 2).sum(axis=1), np.ones(3), callbacks=[rank], progress=ProgressBar("always", file=out))
    assert "centre rank " in out.getvalue().splitlines()[-1]
    with pytest.raises(StateError, match="fit\\(callbacks"):
        ES("snes", max_generations=2, evaluator=CentreRank("vectorized")).fit(lambda X: (X ** 2).sum(axis=1),
                                                                            np.ones(3))
    assert centre_rank([1.0, np.nan, 3.0], 2.0) == 2 and centre_rank([1.0], np.nan) == 2


# -- replay --------------------------------------------------------------------------------------------
def test_write_replay_replaces_a_planted_link_instead_of_writing_through_it(tmp_path) -> None:
    """imageio opened ``path`` by name and wrote the GIF through a link planted there, over its target."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / "pong.gif").symlink_to(victim)
    frames = [np.full((8, 6, 3), i * 20, np.uint8) for i in range(4)]
    assert write_replay(frames, str(tmp_path / "pong.gif"), fps=10) == 4
    assert victim.read_text() == "keep"
    assert not (tmp_path / "pong.gif").is_symlink() and (tmp_path / "pong.gif").read_bytes()[:6] == b"GIF89a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pong.gif", "victim.txt"]


def test_replay_writes_a_readable_gif(tmp_path) -> None:
    from PIL import Image

    from evostrat.checkpoint import Checkpointer
    from evostrat.cli import main

    problem = small_pong(max_steps=10)
    total, frames = problem.play(problem.init_params(), seed=5)
    assert len(frames) == 11 and frames[0].shape == (210, 160, 3)  # the reset frame + one per step
    path = tmp_path / "pong.gif"
    assert write_replay(frames, str(path), fps=20) == 11
    with Image.open(path) as gif:  # identical consecutive frames are merged, their durations add up
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
        assert gif.size == (160, 210)
    assert sum(durations) == 11 * 50
    with pytest.raises(InvalidArgumentError, match=r"\.gif or \.mp4"):
        write_replay(frames, str(tmp_path / "pong.avi"))
    # the CLI: a checkpoint carrying the problem's spec
    ckpt = tmp_path / "run.ckpt"
    es = ES("openai_es", popsize=2, sigma0=0.01, max_generations=1, maximize=True, random_state=0,
            evaluator="serial")
    es.fit(problem, problem.init_params(), callbacks=[Checkpointer(str(ckpt), metadata={"atari": problem.spec()})])
    gif = tmp_path / "replay.gif"
    assert main(["replay", str(ckpt), "--out", str(gif), "--max-steps", "7", "--seed", "5"]) == 0
    with Image.open(gif) as image:
        assert image.size == (160, 210)
    assert main(["replay", str(tmp_path / "missing.ckpt")]) == 1


@pytest.mark.parametrize("change, message", [
    ({"hidden": 10**9}, r"no valid policy config|has \d+ parameters"),  # past torch's sizes, or not
    ({"hidden": 10**6}, r"has \d+ parameters, but the run saved in it has \d+"),
    ({"hidden": 7}, r"has \d+ parameters, but the run saved in it has \d+"),
    ({"kind": "exec"}, "has no valid policy config"),
    ({"no_such_option": 1}, "has no valid policy config"),
])
def test_replay_refuses_a_forged_policy_spec_before_building_it(tmp_path, change, message) -> None:
    """The policy was built from the spec first: a forged ``hidden`` of 10**9 allocated gigabytes per layer
    (a MemoryError or the machine out of memory) before anything was checked."""
    import resource

    from evostrat.checkpoint import Checkpointer
    from evostrat.checkpoint.format import read_checkpoint, write_checkpoint
    from evostrat.cli.replay import replay
    from evostrat.errors import CheckpointError

    problem = small_pong(max_steps=4)
    ckpt = tmp_path / "run.ckpt"
    ES("openai_es", popsize=2, sigma0=0.01, max_generations=1, maximize=True, random_state=0,
       evaluator="serial").fit(problem, problem.init_params(),
                               callbacks=[Checkpointer(str(ckpt), metadata={"atari": problem.spec()})])
    meta, arrays = read_checkpoint(ckpt)
    meta["user"]["atari"]["policy"].update(change)
    write_checkpoint(ckpt, meta, arrays)  # digest recomputed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match=message):
        replay(str(ckpt))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing of the 10**9


def test_replay_plays_with_the_trained_observation_statistics(tmp_path, monkeypatch) -> None:
    # replay rebuilt an obs_norm problem with fresh statistics: the policy saw other observations
    from evostrat.checkpoint import Checkpointer
    from evostrat.cli.replay import replay

    problem = small_pong(max_steps=4, obs_norm=True)
    ckpt = tmp_path / "norm.ckpt"
    ES("openai_es", popsize=2, sigma0=0.01, max_generations=1, maximize=True, random_state=0, evaluator="serial").fit(
        problem, problem.init_params(), callbacks=[Checkpointer(str(ckpt), metadata={"atari": problem.spec()})])
    built = []
    from_spec = AtariProblem.from_spec.__func__
    monkeypatch.setattr(AtariProblem, "from_spec", classmethod(lambda cls, spec: built.append(from_spec(cls, spec))
                                                               or built[-1]))
    replay(str(ckpt), max_steps=2)
    assert built[0].obs_stat.count == problem.obs_stat.count > 8  # not the fresh 0.01
    assert np.array_equal(built[0].obs_stat.sum, problem.obs_stat.sum)


# -- Pong on the process pool --------------------------------------------------------------------------
def test_pong_one_generation_on_the_pool() -> None:
    problem = small_pong(max_steps=20)
    rank = CentreRank("executor", {"max_workers": 2})
    x0 = problem.init_params()
    es = ES("openai_es", popsize=4, sigma0=0.05, max_generations=1, maximize=True, random_state=0, evaluator=rank)
    es.fit(problem, x0, callbacks=[rank])
    entry = es.history_[-1]
    assert es.n_generations_ == 1 and es.n_evals_ == 4
    assert entry["centre_value"] == problem(x0)  # the worker's rollout equals one here
    assert 1 <= entry["centre_rank"] <= 5


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")
def test_atari_generations_on_ray_equal_serial() -> None:
    ray = pytest.importorskip("ray")
    from evostrat.evaluators.ray import start_local_cluster

    if ray.is_initialized():  # pragma: no cover - another module left one running
        ray.shutdown()
    start_local_cluster(2, object_store_memory=128 * 2**20, log_to_driver=False, configure_logging=False)
    try:
        torch.manual_seed(0)  # Freeway: returns differ between candidates within 200 steps (Pong's do not)
        problem = AtariProblem("Freeway", ConvLSTMPolicy(n_actions=3, hidden=16), size=42, stack=1, max_steps=200)
        x0 = problem.init_params()
        rank = CentreRank("ray", {"address": "auto"})
        es = ES("openai_es", popsize=4, sigma0=0.5, max_generations=2, maximize=True, random_state=1,
                evaluator=rank)
        es.fit(problem, x0, callbacks=[rank])
    finally:
        ray.shutdown()
    serial = ES("openai_es", popsize=4, sigma0=0.5, max_generations=2, maximize=True, random_state=1,
                evaluator="serial").fit(problem, x0)
    keys = ("generation_best", "median")
    assert [[e[k] for k in keys] for e in es.history_] == [[e[k] for k in keys] for e in serial.history_]
    assert es.history_[0]["generation_best"] > es.history_[0]["median"]  # the values differ
    assert np.array_equal(es.x_, serial.x_)
    assert es.history_[0]["centre_value"] == problem(x0)
    assert all(1 <= e["centre_rank"] <= 5 for e in es.history_)


# -- examples/rl/atari_pong.py, as its docstring runs it, at tiny size -----------------------------------
def test_atari_pong_example_logs_checkpoints_replays_and_plots(tmp_path, monkeypatch) -> None:
    import json
    import sys
    from pathlib import Path

    from PIL import Image

    from evostrat.cli import main as cli

    pytest.importorskip("matplotlib")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the 588,710-weight Convnet-LSTM thrashes with competing threads
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "examples" / "rl"))
    try:
        import atari_pong

        log, ckpt, png = tmp_path / "pong.jsonl", tmp_path / "pong.ckpt", tmp_path / "pong.png"
        result = atari_pong.main(["--minutes", "0", "--workers", "0", "--popsize", "2", "--max-steps", "6",
                                  "--log", str(log), "--checkpoint", str(ckpt), "--plot", str(png)])
    finally:
        torch.set_num_threads(threads)
        sys.modules.pop("atari_pong", None)
    assert result["generations"] == 1  # a zero budget stops after the first generation
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert record["generation"] == 1 and record["popsize"] == 2 and 1 <= record["centre_rank"] <= 3
    assert record == result["records"][0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = tmp_path / "again.png"
    assert atari_pong.main(["--plot-log", str(log), "--plot", str(again)]) is None
    assert again.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    gif = tmp_path / "pong.gif"  # the checkpoint carries the problem's spec: replay rebuilds it
    assert cli(["replay", str(ckpt), "--out", str(gif), "--max-steps", "3"]) == 0
    with Image.open(gif) as image:
        assert image.size == (160, 210)


@pytest.mark.parametrize("field, value", [
    ("game", "evil_module:Pong"), ("game", "Pong-v5/../x"), ("game", ""), ("game", 3),
    ("ref_size", 10**9), ("ref_size", 0), ("ref_size", 8.5), ("episodes", 10**12), ("episodes", True),
    ("max_steps", 10**15), ("max_steps", -1), ("size", 10**9), ("stack", 10**9), ("frame_skip", 10**12),
    ("noop_max", 10**12), ("noop_max", -1), ("crop", "ab"), ("crop", [1, 2, 3]), ("obs_norm", 3), ("seed", "0"),
    # were not checked: a ValueError or TypeError traceback from float() (sticky "x" or null), an error naming
    # sticky, obs_clip or nothing after the checkpoint was loaded, a seed < 0 inside gymnasium
    ("sticky", "x"), ("sticky", None), ("sticky", 2.0), ("sticky", -0.1), ("sticky", float("nan")), ("sticky", True),
    ("obs_clip", -1.0), ("obs_clip", 0), ("obs_clip", "a"), ("obs_clip", float("nan")), ("seed", -1),
])
def test_replay_refuses_a_forged_spec_field_naming_file_and_field(tmp_path, monkeypatch, field, value) -> None:
    """A forged ``game`` with ``:`` ended in gymnasium's ModuleNotFoundError traceback (it imports the part
    before the colon); ``ref_size``, ``episodes`` and ``max_steps`` were unbounded (10**9 random-play
    observations to collect, an episode that never ends), and so were the preprocessing's sizes (``size`` or
    ``stack`` 10**9: a MemoryError traceback; ``noop_max`` 10**12: no-ops without end). Refused before the
    problem is built."""
    from evostrat.checkpoint import Checkpointer
    from evostrat.cli import main
    from evostrat.cli.replay import replay
    from evostrat.errors import CheckpointError
    from evostrat.problems import sphere

    problem = small_pong(max_steps=4)
    spec = {**problem.spec(), field: value}
    ckpt = tmp_path / "run.ckpt"
    ES("snes", max_generations=1, random_state=0).fit(sphere, np.zeros(problem.dim),
                                                      callbacks=[Checkpointer(str(ckpt), metadata={"atari": spec})])
    monkeypatch.setattr(AtariProblem, "from_spec", classmethod(lambda cls, s: pytest.fail("built the problem")))
    with pytest.raises(CheckpointError, match=rf"{ckpt}.*'atari' spec field {field!r} must be"):
        replay(str(ckpt))
    assert main(["replay", str(ckpt)]) == 1


def test_replay_refuses_a_spec_field_that_spec_does_not_write(tmp_path, monkeypatch) -> None:
    """An unknown field reached AtariProblem(**spec): a TypeError traceback."""
    from evostrat.checkpoint import Checkpointer
    from evostrat.cli.replay import replay
    from evostrat.errors import CheckpointError
    from evostrat.problems import sphere

    problem = small_pong(max_steps=4)
    ckpt = tmp_path / "run.ckpt"
    ES("snes", max_generations=1, random_state=0).fit(sphere, np.zeros(problem.dim), callbacks=[
        Checkpointer(str(ckpt), metadata={"atari": {**problem.spec(), "evil": 1}})])
    monkeypatch.setattr(AtariProblem, "from_spec", classmethod(lambda cls, s: pytest.fail("built the problem")))
    with pytest.raises(CheckpointError, match=r"'atari' spec has fields \['evil'\]"):
        replay(str(ckpt))


def test_replay_spec_limits_admit_real_use(tmp_path, monkeypatch) -> None:
    from evostrat.checkpoint import Checkpointer
    from evostrat.cli.replay import MAX_EPISODES, MAX_REF_SIZE, MAX_STEPS, replay
    from evostrat.problems import sphere

    problem = small_pong(max_steps=None)
    spec = {**problem.spec(), "game": "MontezumaRevenge", "episodes": MAX_EPISODES, "max_steps": MAX_STEPS,
            "ref_size": MAX_REF_SIZE}
    ckpt = tmp_path / "run.ckpt"
    ES("snes", max_generations=1, random_state=0).fit(sphere, np.zeros(problem.dim),
                                                      callbacks=[Checkpointer(str(ckpt), metadata={"atari": spec})])
    built = []
    monkeypatch.setattr(AtariProblem, "from_spec", classmethod(lambda cls, s: built.append(s) or 1 / 0))
    with pytest.raises(ZeroDivisionError):  # past the checks: the problem is being built
        replay(str(ckpt))
    assert built[0]["game"] == "MontezumaRevenge" and built[0]["ref_size"] == MAX_REF_SIZE


def test_replay_out_that_cannot_be_written_is_refused_before_playing(tmp_path, monkeypatch, capsys) -> None:
    """``--out`` inside a file or naming a folder failed only after every episode was played
    (a bare NotADirectoryError, or an InvalidArgumentError without the option)."""
    from evostrat.checkpoint import Checkpointer
    from evostrat.cli import main
    from evostrat.problems import sphere

    problem = small_pong(max_steps=4)
    ckpt = tmp_path / "run.ckpt"
    ES("snes", max_generations=1, random_state=0).fit(sphere, np.zeros(problem.dim), callbacks=[
        Checkpointer(str(ckpt), metadata={"atari": problem.spec()})])
    monkeypatch.setattr(AtariProblem, "from_spec", classmethod(lambda cls, s: pytest.fail("played")))
    (tmp_path / "notes.txt").write_text("x")
    out = tmp_path / "notes.txt" / "pong.gif"
    assert main(["replay", str(ckpt), "--out", str(out)]) == 1
    assert f"OutputError: --out {str(out)!r} cannot be written: {str(tmp_path / 'notes.txt')!r} is not a folder" \
        in capsys.readouterr().err
    (tmp_path / "folder.gif").mkdir()
    with pytest.raises(SystemExit) as stop:
        main(["replay", str(ckpt), "--out", str(tmp_path / "folder.gif")])
    assert stop.value.code == 2 and "argument --out: " in capsys.readouterr().err
