"""The IPOP/BIPOP schedule of :class:`evostrat.run.restarts.Restarts`, step by step, against the
formulas of pycma's ``fmin2`` (Hansen, "Benchmarking a BI-population CMA-ES on the BBOB-2009
function testbed", GECCO 2009): a large run doubles (``incpopsize``) the population; BIPOP runs a
small one while the small runs spent fewer evaluations than the large ones, with
``floor(popsize0 * ratio ** (u ** 2))`` candidates, ``sigma0 * 10 ** (-2 v)`` and at most half the large
runs' evaluations (``u``, ``v`` uniform in [0, 1), ``ratio`` the last large run's population factor).

Driven with chosen evaluation counts, no fit: each decision is checked, not only where a run ends.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from evostrat.run.restarts import Restarts
from evostrat.run.termination_defaults import default_max_generations


def _plans(kind: str, used: list[int], **options: object) -> list:
    """The schedule's runs when run ``i`` uses ``used[i]`` evaluations (until the schedule ends)."""
    r = Restarts(kind=kind, random_state=7, **options)
    plans = [r.start(popsize0=10.7, dim=5)]
    for n_evals in used:
        nxt = r.next(plans[-1], n_evals)
        if nxt is None:
            break
        plans.append(nxt)
    return plans


def test_the_default_is_nine_restarts_after_the_first_run_as_pycmas_fmin2_restarts_9() -> None:
    assert Restarts().max_restarts == 9 and Restarts().incpopsize == 2.0
    plans = _plans("ipop", [100] * 20)
    assert len(plans) == 10 and [p.regime for p in plans] == ["initial"] + ["large"] * 9
    # int(), from the unrounded default 4 + 3 ln(5) = 8.83 here 10.7: pycma's floor of popsize0 * 2 ** k
    assert [p.popsize for p in plans] == [int(10.7 * 2**k) for k in range(10)] == [10, 21, 42, 85, 171, 342, 684,
                                                                                    1369, 2739, 5478]
    assert all(p.sigma_factor == 1.0 for p in plans)
    # maxiter 100 + 150 (d + 3)^2 / sqrt(popsize); the first run's from the unrounded popsize0, as pycma's
    assert [p.max_generations for p in plans] == [default_max_generations(5, 10.7)] + [
        default_max_generations(5, p.popsize) for p in plans[1:]]
    assert plans[0].max_generations == 3034 != default_max_generations(5, 10)


def test_bipop_alternates_on_the_evaluations_spent_and_draws_small_runs_as_pycma() -> None:
    # the initial run (small budget) 1000 -> large (small 1000 >= large 0); 3000 -> small (1000 < 3000);
    # 500 -> small (1500 < 3000); 1500 -> large (3000 >= 3000: a tie goes to the large regime); 4000 -> small
    # (3000 < 7000); 4000 -> large (7000 >= 7000), the third: max_restarts=3 ends the schedule after it
    plans = _plans("bipop", [1000, 3000, 500, 1500, 4000, 4000], max_restarts=3)
    assert [p.regime for p in plans] == ["initial", "large", "small", "small", "large", "small", "large"]
    assert [p.run for p in plans] == list(range(7))
    rng = np.random.default_rng(7)  # the schedule's generator: two draws per small run
    for plan, large_evals, ratio in ((plans[2], 3000, 2.0), (plans[3], 3000, 2.0), (plans[5], 7000, 4.0)):
        u, v = rng.uniform(size=2)
        popsize = max(2, math.floor(10.7 * ratio ** (u**2)))
        assert plan.popsize == popsize
        assert plan.sigma_factor == 10.0 ** (-2.0 * v)
        assert plan.max_generations == max(1, min(default_max_generations(5, popsize),
                                                  math.ceil(0.5 * large_evals / popsize)))
    assert [plans[i].popsize for i in (1, 4, 6)] == [21, 42, 85]  # the large runs: 10.7 * 2 ** k
    assert _plans("bipop", [1000, 3000, 500, 1500, 4000, 4000, 9], max_restarts=3)[-1].run == 6  # then none
    # one evaluation short of the large runs' count is still small, the count itself large
    assert [p.regime for p in _plans("bipop", [1000, 3000, 1999, 1], max_restarts=3)] == [
        "initial", "large", "small", "small", "large"]


def test_ipop_grows_by_incpopsize_from_the_unrounded_first_population() -> None:
    plans = _plans("ipop", [100] * 3, max_restarts=3, incpopsize=3)
    assert [p.popsize for p in plans] == [10, 32, 96, 288]


def test_max_restarts_zero_is_the_first_run_alone() -> None:
    from evostrat import ES
    from evostrat.problems import rastrigin

    assert [p.regime for p in _plans("bipop", [100, 100], max_restarts=0)] == ["initial"]
    es = ES("cma_es", restarts=dict(kind="ipop", max_restarts=0), random_state=0).fit(rastrigin, np.full(3, 2.0))
    assert len(es.restarts_) == 1 and es.stop_reason_ == "maxrestarts"


class _Crash(Exception):
    pass


def test_a_one_dimensional_restart_run_resumes_from_its_checkpoint(tmp_path) -> None:
    """The schedule's values checked on loading (``dim`` an int >= 1): a 1-D run's are valid."""
    from evostrat import ES
    from evostrat.problems import rastrigin

    def crash_in_the_second_run(es: ES) -> None:
        if len(es.restarts_) == 2 and es.n_evals_ > es.restarts_[1]["start_evals"] + 3 * es.restarts_[1]["popsize"]:
            raise _Crash

    options = dict(restarts="ipop", max_evals=3000, random_state=1, compiled_loop=False)
    full = ES("cma_es", **options).fit(rastrigin, np.array([3.3]))
    assert len(full.restarts_) >= 3
    path = tmp_path / "one.ckpt"
    with pytest.raises(_Crash):
        ES("cma_es", **options).fit(rastrigin, np.array([3.3]), checkpoint=path, callbacks=[crash_in_the_second_run])
    resumed = ES.resume(path, rastrigin)
    assert (resumed.n_evals_, resumed.fun_, len(resumed.restarts_)) == (full.n_evals_, full.fun_, len(full.restarts_))
    np.testing.assert_array_equal(resumed.x_, full.x_)
