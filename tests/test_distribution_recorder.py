"""DistributionRecorder and distribution_summary (issue 18, item 6): the recorded fields are
the search distribution's, recording never changes the run, and ``every`` is honoured."""

from __future__ import annotations

import numpy as np
import pytest

from evostrat import ES
from evostrat.callbacks import DistributionRecorder, distribution_summary
from evostrat.errors import InvalidArgumentError, InvalidTypeError


def ellipsoid(X):
    return ((10.0 ** np.arange(X.shape[1])) * X**2).sum(axis=1)


ellipsoid.vectorized = True  # type: ignore[attr-defined]


def _fit(strategy: str, dim: int = 5, **options) -> ES:
    return ES(strategy, max_generations=40, random_state=1, **options).fit(ellipsoid, np.full(dim, 2.0))


@pytest.mark.parametrize("covariance", ["eigen", "factor"])
def test_cma_es_summary_is_the_covariance_sigma2_c(covariance: str) -> None:
    es = _fit("cma_es", strategy_options=dict(covariance=covariance))
    r = es.run_.runner
    s = distribution_summary(r.strategy, r.state, r.backend)
    sigma = float(r.state.sigma)
    np.testing.assert_allclose(s["stds"], sigma * np.sqrt(r.state.diag_C), rtol=1e-6)
    if covariance == "eigen":  # the last decomposition: sigma * D, and the correlation matrix of B D^2 B^T
        C = (r.state.B * r.state.D**2) @ r.state.B.T
        np.testing.assert_allclose(s["axes"], np.sort(sigma * r.state.D), rtol=1e-12)
    else:
        M = float(r.state.scale) * r.state.A
        C = M @ M.T
        np.testing.assert_allclose(s["axes"], sigma * np.sqrt(np.linalg.eigvalsh(C)), rtol=1e-6)
    R = C / np.sqrt(np.outer(np.diag(C), np.diag(C)))
    np.testing.assert_allclose(s["correlations"], np.linalg.eigvalsh(R), rtol=1e-6, atol=1e-12)
    assert np.isclose(sum(s["correlations"]), 5)  # the trace of a correlation matrix
    np.testing.assert_array_equal(s["mean"], r.state.mean)


def test_xnes_and_diagonal_strategies() -> None:
    es = _fit("xnes")
    r = es.run_.runner
    s = distribution_summary(r.strategy, r.state, r.backend)
    S = np.asarray(r.strategy.covariance(r.state))
    np.testing.assert_allclose(np.square(s["stds"]), np.diag(S), rtol=1e-10)
    np.testing.assert_allclose(np.square(s["axes"]), np.linalg.eigvalsh(S), rtol=1e-8)
    for name in ("snes", "sep_cma_es", "pgpe", "openai_es"):
        r = _fit(name).run_.runner
        s = distribution_summary(r.strategy, r.state, r.backend)
        assert s["axes"] == sorted(s["stds"]) and s["correlations"] == [1.0] * 5
    snes = _fit("snes").run_.runner
    np.testing.assert_array_equal(distribution_summary(snes.strategy, snes.state, snes.backend)["stds"],
                                  snes.state.sigma)


def test_recording_never_changes_the_run_and_every_is_honoured() -> None:
    plain = _fit("cma_es")
    recorder = DistributionRecorder(every=7)
    es = ES("cma_es", max_generations=40, random_state=1).fit(ellipsoid, np.full(5, 2.0), callbacks=[recorder])
    assert es.fun_ == plain.fun_ and np.array_equal(es.x_, plain.x_)
    recorded = [row["generation"] for row in es.history_ if "mean" in row]
    assert recorded == [1, 7, 14, 21, 28, 35, 40]  # the first, every 7th and the last
    assert [r["generation"] for r in recorder.records] == recorded
    auto = ES("cma_es", max_generations=40, random_state=1).fit(ellipsoid, np.full(5, 2.0),
                                                                callbacks=[DistributionRecorder()])
    assert {1, 2, 4, 8, 16, 32, 40} <= {row["generation"] for row in auto.history_ if "mean" in row}
    untouched = ES("cma_es", max_generations=5, random_state=1).fit(
        ellipsoid, np.full(5, 2.0), callbacks=[DistributionRecorder(history=False)])
    assert not any("mean" in row for row in untouched.history_)


def test_bad_arguments_name_the_argument() -> None:
    with pytest.raises(InvalidTypeError, match="every must be 'auto' or a positive int"):
        DistributionRecorder(every="log")
    with pytest.raises(InvalidArgumentError, match="every"):
        DistributionRecorder(every=0)
    with pytest.raises(InvalidArgumentError, match="overhead must be a number in"):
        DistributionRecorder(overhead=0)
    with pytest.raises(InvalidTypeError, match="path must be a str"):
        DistributionRecorder(path=3)


def test_with_bounds_the_mean_is_in_the_box() -> None:
    es = ES("cma_es", max_generations=50, random_state=0, bounds=(0.5, 3.0)).fit(
        ellipsoid, np.full(3, 2.0), callbacks=[DistributionRecorder(every=1)])
    means = np.array([row["mean"] for row in es.history_])
    assert means.min() >= 0.5 and means.max() <= 3.0
    # the optimum of the box is its corner (seeds 0-5: within 0.002 after 50 generations, 0.27 after 30)
    assert np.allclose(means[-1], 0.5, atol=0.01)


def test_the_file_is_never_written_through_a_link_even_one_planted_during_the_run(tmp_path) -> None:
    target, path = tmp_path / "elsewhere.txt", tmp_path / "records.jsonl"
    target.write_text("kept\n")
    path.symlink_to(target)
    with pytest.raises(InvalidArgumentError, match="symbolic link"):
        ES("snes", max_generations=5).fit(ellipsoid, np.ones(3), callbacks=[DistributionRecorder(path=path, every=1)])
    path.unlink()

    def plant(es) -> None:  # after the recorder opened its file: replace it by a link
        if es.n_generations_ == 3:
            path.unlink()
            path.symlink_to(target)

    with pytest.raises(InvalidArgumentError, match="symbolic link"):
        ES("snes", max_generations=5).fit(ellipsoid, np.ones(3),
                                          callbacks=[plant, DistributionRecorder(path=path, every=1)])
    assert target.read_text() == "kept\n"


@pytest.mark.parametrize("every", [7, "auto"])
def test_an_interrupted_and_resumed_run_records_what_the_uninterrupted_one_does(tmp_path, every) -> None:
    """Neither the interrupted fit's last generation (17) nor the resumed fit's first (18) gets a record the
    uninterrupted run has not; no generation is recorded twice. ``"auto"``'s time rule is switched off (a
    tiny ``overhead``): its records depend on the clock, its powers of 2 do not."""
    from evostrat.checkpoint import Checkpointer

    def recorder(name: str) -> DistributionRecorder:
        return DistributionRecorder(every=every, overhead=1e-12, path=tmp_path / name)

    def generations(name: str) -> list[int]:
        import json

        return [json.loads(line)["generation"] for line in (tmp_path / name).read_text().splitlines()]

    full = ES("cma_es", max_generations=30, random_state=0).fit(ellipsoid, np.ones(4), callbacks=[recorder("a")])
    calls = [0]

    def cut(X):
        calls[0] += 1
        if calls[0] == 18:  # during generation 18: the last finished one is 17
            raise KeyboardInterrupt
        return ellipsoid(X)

    cut.vectorized = True  # type: ignore[attr-defined]
    with pytest.raises(KeyboardInterrupt):
        ES("cma_es", max_generations=30, random_state=0).fit(
            cut, np.ones(4), callbacks=[recorder("b")], checkpoint=Checkpointer(tmp_path / "c.ckpt", every=5))
    assert generations("b")[-1] == 17  # the interrupted file ends at its last generation
    resumed = ES.resume(tmp_path / "c.ckpt", ellipsoid, callbacks=[recorder("b")])
    expected = [1, 7, 14, 21, 28, 30] if every == 7 else [1, 2, 4, 8, 16, 30]
    assert generations("a") == generations("b") == expected
    assert [r["generation"] for r in full.history_ if "mean" in r] == expected
    assert [r["generation"] for r in resumed.history_ if "mean" in r] == expected
    longer = ES.resume(tmp_path / "c.ckpt", ellipsoid, callbacks=[recorder("b")], max_generations=40)
    assert generations("b") == expected[:-1] + ([35, 40] if every == 7 else [32, 40])  # 30 was the old budget's
    assert [r["generation"] for r in longer.history_ if "mean" in r] == generations("b")


@pytest.mark.parametrize("line", ["[" * 100_000 + "]" * 100_000, '{"generation": Infinity}', '{"generation": 1e400}'])
def test_a_resumed_recorder_skips_hostile_lines_of_its_file(tmp_path, line: str) -> None:
    """Reading the file back on resume ended in a RecursionError (deep nesting) or OverflowError (an infinite
    generation) traceback; such lines are dropped as a line cut by a kill is."""
    import json

    from evostrat.checkpoint import Checkpointer

    path = tmp_path / "d.jsonl"
    ES("snes", max_generations=4, random_state=0).fit(
        ellipsoid, np.ones(3), callbacks=[DistributionRecorder(every=1, path=path)],
        checkpoint=Checkpointer(tmp_path / "c.ckpt", every=1))
    with open(path, "a") as file:
        file.write(line + "\n")
    ES.resume(tmp_path / "c.ckpt", ellipsoid, callbacks=[DistributionRecorder(every=1, path=path)], max_generations=6)
    assert [json.loads(text)["generation"] for text in path.read_text().splitlines()] == [1, 2, 3, 4, 5, 6]
