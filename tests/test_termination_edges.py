"""The run-level criteria at their edges: each inequality is pycma's, strict where pycma's is
(``cma/evolution_strategy.py``, ``_CMAStopDict._update``; ``fit.histbest`` in ``tell``), the
bookkeeping behind them (deferred generations, the stagnation history) keeps its order and length.

Written from mutating ``evostrat/run/termination.py`` one operator or constant at a time: every test
here fails for at least one such change that the rest of the suite let pass. The values are chosen to
be exact in binary (0.25, 0.5, 1.5), so "equal to the threshold" means equal.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from evostrat.run.termination import HIST_EVERY, HIST_KEEP, PROGRESS_SCHEMA, Termination

#: only the criteria a test names: pycma's defaults (tolfun, tolx 1e-11) off
OFF = {"tolfun": None, "tolx": None}


def first_stop(t: Termination, generations: list[list[float]], popsize: int | None = None,
               sigma: float = 1.0) -> tuple[int, str] | None:
    """``(generation, reason)`` of the first of ``generations`` (each its values, minimised) that
    stops ``t``, evaluated in order; ``None`` if none does."""
    evals = 0
    for g, values in enumerate(generations, start=1):
        evals += len(values) if popsize is None else popsize
        finite = [v for v in values if math.isfinite(v)]
        best = min(finite) if finite else math.inf
        if (reason := t.check(g, evals, best, values, sigma)) is not None:
            return g, reason
    return None


# ftarget, maxfevals, maxiter: pycma's "best.f <= ftarget", "countiter >= maxiter"


@pytest.mark.parametrize("maximize", [False, True])
def test_ftarget_is_reached_at_equality_in_either_sense(maximize: bool) -> None:
    t = Termination(ftarget=1.5, maximize=maximize, **OFF)
    short = 1.25 if maximize else 1.75  # one step short of the target, in the run's sense
    assert t.check(1, 2, short, [short, 3.0 if not maximize else 0.0], 1.0) is None
    assert t.check(2, 4, 1.5, [1.5, 3.0 if not maximize else 0.0], 1.0) == "ftarget"


def test_budgets_stop_at_their_count_not_after_it() -> None:
    t = Termination(max_evals=8, **OFF)
    assert t.check(1, 7, 1.0, [1.0, 2.0], 1.0) is None
    assert t.check(2, 8, 1.0, [1.0, 2.0], 1.0) == "maxfevals"
    t = Termination(max_generations=2, **OFF)
    assert t.check(1, 2, 1.0, [1.0, 2.0], 1.0) is None
    assert t.check(2, 4, 1.0, [1.0, 2.0], 1.0) == "maxiter"


# tolfun: pycma's "max(fit) - min(fit) < tolfun and max(hist) - min(hist) < tolfun", both strict


@pytest.mark.parametrize("presorted", [False, True])
def test_tolfun_needs_a_range_below_it_not_equal_to_it(presorted: bool) -> None:
    t = Termination(tolfun=0.5, tolx=None)
    assert t.check(1, 2, 1.0, [1.0, 1.5], 1.0, presorted=presorted) is None  # range 0.5
    t = Termination(tolfun=0.5, tolx=None)
    assert t.check(1, 2, 1.0, [1.0, 1.25], 1.0, presorted=presorted) == "tolfun"  # range 0.25


def test_tolfun_needs_the_window_of_generation_bests_below_it_too() -> None:
    # the bests 1.0, 1.5, 1.25: the latest is within 0.5 of the first and of the previous one, yet
    # the window's range (1.5 - 1.0) equals tolfun: no stop; 1.0, 1.375, 1.25: a range of 0.375
    flat_last = [[1.0, 9.0], [1.5, 9.0], [1.25, 1.25]]
    assert first_stop(Termination(tolfun=0.5, tolx=None), flat_last) is None
    closer = [[1.0, 9.0], [1.375, 9.0], [1.25, 1.25]]
    assert first_stop(Termination(tolfun=0.5, tolx=None), closer) == (3, "tolfun")


def test_tolfun_on_a_single_value_waits_for_a_second_generation() -> None:
    # one value has no spread: popsize 1 needs two generations in the window (pycma's fit.hist)
    assert first_stop(Termination(tolfun=0.5, tolx=None), [[1.0], [1.25]]) == (2, "tolfun")


@pytest.mark.parametrize("history_length", [0, 1])
def test_a_window_of_one_generation_holds_the_latest_best_alone(history_length: int) -> None:
    t = Termination(tolfun=0.5, tolx=None, history_length=history_length)
    assert t.window == 1
    assert first_stop(t, [[1.0, 3.0], [5.0, 5.0]]) == (2, "tolfun")  # the window no longer holds 1.0


def test_a_generation_without_values_checks_nothing_that_needs_them() -> None:
    t = Termination(tolfun=0.5, tolx=None, tolflatfitness=0, tolstagnation=10)
    assert t.check(1, 2, 1.0, [1.0, 3.0], 1.0) is None and t.check(2, 4, 1.0, [1.0, 3.0], 1.0) is None
    assert t.check(3, 4, 1.0, [], 1.0) is None  # the window's two bests agree, but no values: no range
    assert t.progress_values()["recent"] == [1.0, 1.0]


@pytest.mark.parametrize("maximize", [False, True])
def test_infinite_values_never_enter_the_window(maximize: bool) -> None:
    # PROGRESS_SCHEMA: "recent" holds finite values (a checkpoint with others is refused)
    t = Termination(maximize=maximize, **OFF)
    t.check(1, 2, 2.0, [-math.inf, 2.0], 1.0)
    t.check(2, 4, 2.0, [2.0, math.inf], 1.0)
    t.check(3, 6, 2.0, [math.nan, 2.0], 1.0)
    assert t.progress_values()["recent"] == [2.0, 2.0, 2.0]



def test_a_presorted_generation_gives_its_first_value_to_the_window() -> None:
    t = Termination(**OFF)
    t.check(1, 3, 1.0, [1.0, 2.0, 4.0], 1.0, presorted=True)
    assert t.progress_values()["recent"] == [1.0]

# tolx: pycma's "all(sigma * ... < tolx)", strict; the path test (CMA-ES's sigma * pc) as well


class _Paths:
    """A strategy's ``tolx_parts``/``tolx_path``: the state is the path's largest entry."""

    def __init__(self) -> None:
        self.read: list[Any] = []

    def tolx_parts(self, state: Any) -> Any:
        self.read.append(state)
        return state

    def tolx_path(self, parts: Any) -> float:
        return float(parts)


def test_tolx_needs_sigma_and_the_path_below_it() -> None:
    t = Termination(tolfun=None, tolx=0.5)
    assert t.check(1, 2, 1.0, [1.0, 2.0], 0.5) is None
    assert t.check(2, 4, 1.0, [1.0, 2.0], 0.25) == "tolx"
    t = Termination(tolfun=None, tolx=0.5)
    t.paths = _Paths()
    assert t.check(1, 2, 1.0, [1.0, 2.0], 0.25, path=0.5) is None  # the path's entry equals tolx
    assert t.check(2, 4, 1.0, [1.0, 2.0], 0.25, path=0.25) == "tolx"


def test_no_path_is_read_without_tolx_or_without_the_strategys_test() -> None:
    t, paths = Termination(tolx=None), _Paths()
    t.paths = paths
    assert t.path_of("state") is None and paths.read == []
    assert Termination(tolx=0.5).path_of("state") is None  # no strategy path test: sigma alone
    t = Termination(tolx=0.5)
    t.paths = paths
    assert t.path_of("state") == "state" and paths.read == ["state"]


# tolfunhist: pycma's "len(fit.hist) > 9 and range < tolfunhist"


def test_tolfunhist_waits_for_ten_generation_bests() -> None:
    t = Termination(tolfun=None, tolx=None, tolfunhist=0.5, history_length=20)
    assert first_stop(t, [[1.0, 9.0]] * 12) == (10, "tolfunhist")


# tolflatfitness: pycma's "fit[0] == fit[int(0.75 * popsize)]" counted over consecutive generations,
# stopping once the count passes the setting


def test_tolflatfitness_counts_consecutive_flat_generations_past_its_setting() -> None:
    flat, steep = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0]
    # 8 values: the best against the 7th smallest (index 6), as pycma
    assert first_stop(Termination(tolflatfitness=2, **OFF), [flat, flat, steep, flat, flat, flat]) == (6, "tolflatfitness")
    assert first_stop(Termination(tolflatfitness=2, **OFF), [flat, flat, steep, flat, flat]) is None


def test_tolflatfitness_zero_stops_a_single_value_at_once() -> None:
    # popsize 1: fit[0] is fit[int(0.75)], flat in every generation (pycma stops after the first)
    assert first_stop(Termination(tolflatfitness=0, **OFF), [[3.0]]) == (1, "tolflatfitness")


# tolstagnation: pycma's conditions, each at its edge


def _stagnation(tolstagnation: int, generations: int, popsize: int = 2, dim: int = 1) -> tuple[int, str] | None:
    """The first stop of constant generations [1, 2] (the best found by the first evaluation)."""
    t = Termination(tolstagnation=tolstagnation, dim=dim, popsize=popsize, **OFF)
    return first_stop(t, [[1.0, 2.0]] * generations)


def test_tolstagnation_compares_two_windows_only_when_the_history_holds_more_than_both() -> None:
    # l = int(max(t / 10, records / 10)) = 101 records: pycma's "2 l < len(histbest)" first holds at
    # 203 records, generation 203 * 5 = 1015 (the medians are equal: ">=" holds on a plateau; the
    # other conditions, more than 100 records and a best older than t * popsize / 2 evaluations,
    # hold from generation 506)
    assert _stagnation(1010, 1100) == (1015, "tolstagnation")


def test_tolstagnation_dates_a_plateaus_best_from_its_first_evaluation() -> None:
    # pycma's best.update takes a strictly better value only: on a plateau the best stays the first
    # evaluation's, so (evaluations - best's) / popsize > t / 2 from generation 51 on (t = 100)
    assert _stagnation(100, 600) == (505, "tolstagnation")  # then 101 records, at generation 505


@pytest.mark.parametrize("at", [0, 1])
def test_tolstagnation_dates_the_best_from_its_position_in_its_generation(at: int) -> None:
    # generations of [2, 3], but generation 471 holds the run's best, 1.0, at position `at`: pycma's
    # best.evals = 2 * 470 + at + 1, and "(evaluations - best.evals) / popsize > t / 2" first holds
    # at generation 521 (best first) or 522 (best second), after the 100 records of generation 505;
    # the records (every 5th generation) stay flat
    generations = [[2.0, 3.0]] * 600
    generations[470] = [1.0, 3.0] if at == 0 else [3.0, 1.0]
    t = Termination(tolstagnation=100, dim=1, popsize=2, **OFF)
    assert first_stop(t, generations) == (521 + at, "tolstagnation")

def test_stagnation_history_keeps_pycmas_twenty_thousand_records() -> None:
    t = Termination(tolstagnation=10**9, **OFF)  # on, never firing
    generations = HIST_EVERY * (HIST_KEEP + 2)
    for g in range(1, generations + 1):
        t.check(g, 2 * g, float(g), [float(g), 2.0 * g], 1.0, presorted=True)
    progress = t.progress_values()
    assert len(progress["hist_best"]) == len(progress["hist_median"]) == HIST_KEEP == 20_000
    # the two oldest dropped from both: the last 20,000 records are generations 15, 20, ...
    assert progress["hist_best"][0] == 15.0 and progress["hist_median"][0] == 22.5


def test_stagnation_history_records_pycmas_median_of_an_even_population() -> None:
    t = Termination(tolstagnation=10**9, **OFF)
    for g in range(1, HIST_EVERY + 1):
        t.check(g, 4 * g, 1.0, [4.0, 1.0, 3.0, 2.0], 1.0)
    assert t.progress_values()["hist_median"] == [2.5]  # (fit[1] + fit[2]) / 2



def test_stagnation_history_ranks_a_nan_worst() -> None:
    t = Termination(tolstagnation=10**9, **OFF)
    for g in range(1, HIST_EVERY + 1):
        t.check(g, 4 * g, 1.0, [3.0, math.nan, 1.0, 2.0], 1.0)
    progress = t.progress_values()
    assert progress["hist_best"] == [1.0] and progress["hist_median"] == [2.5]  # of 1, 2, 3, NaN as +inf

# deferred generations are checked in order, before the generation check() is given


def test_check_first_checks_the_deferred_generations_in_order() -> None:
    t = Termination(**OFF)
    t.defer(1, 2, 3.0, [3.0, 4.0], 1.0)
    t.check(2, 4, 1.0, [1.0, 2.0], 1.0)
    assert t.deferred == [] and t.progress_values()["recent"] == [3.0, 1.0]


def test_check_first_takes_the_generations_recorded_elsewhere() -> None:
    t = Termination(**OFF)
    recorded = [(1, 2, 3.0, [3.0, 4.0], 1.0)]

    def before_flush() -> None:  # as a run's RunState adds the generations it holds
        while recorded:
            t.defer(*recorded.pop())

    t.before_flush = before_flush
    t.check(2, 4, 1.0, [1.0, 2.0], 1.0)
    assert t.progress_values()["recent"] == [3.0, 1.0]


@pytest.mark.parametrize("popsize, limit", [(1, 4096), (16, 4096), (17, 3855), (100_000, 1)])
def test_deferred_generations_are_checked_once_about_65536_values_wait(popsize: int, limit: int) -> None:
    t = Termination(max_generations=limit, tolfun=None, tolx=None, popsize=popsize)
    assert t.defer_limit == limit  # min(4096, 2**16 // popsize), at least 1
    for g in range(1, limit):
        t.defer(g, g, 1.0, [1.0, 2.0], 1.0)
    assert len(t.deferred) == limit - 1 and t.last is None
    t.defer(limit, limit, 1.0, [1.0, 2.0], 1.0)
    assert t.deferred == [] and t.last == "maxiter"


# what stop() reports, and what a checkpoint may hold


def test_setting_is_the_criterions_number_or_true() -> None:
    class Strategy:
        tolfacupx, flag, name = 1e3, True, "cma"

    t = Termination(tolflatfitness=None)
    assert t.setting("tolx") == 1e-11 and t.setting("maxiter", max_generations=50) == 50
    assert t.setting("tolflatfitness") is True and t.setting("maxrestarts") is True  # not set
    assert t.setting("tolfacupx", strategy=Strategy) == 1e3
    assert t.setting("flag", strategy=Strategy) is True and t.setting("name", strategy=Strategy) is True


@pytest.mark.parametrize("field", ["hist_best", "hist_median"])
def test_checkpoint_histories_hold_at_most_twenty_thousand_numbers(field: str) -> None:
    valid, _ = PROGRESS_SCHEMA[field]
    assert valid([0.5] * HIST_KEEP) and not valid([0.5] * (HIST_KEEP + 1))
    assert not valid(["0.5"]) and not valid(0.5)


def test_checkpoint_window_holds_finite_numbers_only() -> None:
    valid, _ = PROGRESS_SCHEMA["recent"]
    assert valid([0.5, -2.0]) and valid([])
    assert not valid([0.5, math.inf]) and not valid([math.nan]) and not valid(["0.5"])


def test_checkpoint_best_may_be_infinite_but_not_nan() -> None:
    valid, _ = PROGRESS_SCHEMA["run_best"]
    assert valid(0.5) and valid(math.inf) and not valid(math.nan) and not valid("0.5")
