"""The bench's interleaved rounds (``bench/tools/rounds.py``): pure, no I/O."""

from __future__ import annotations

import math

from bench.tools.rounds import BARE, REAL, Pair, Rounds, order
from bench.tools.wrk import WrkResult


def _result(ok_per_second: int, status_errors: int = 0, socket_errors: int = 0) -> WrkResult:
    return WrkResult("x", ok_per_second * 10 + status_errors, 10.0, status_errors, socket_errors, 1.0, 2.0)


def _rounds(*rates: tuple[int, int]) -> Rounds:
    return Rounds([Pair(real=_result(real), bare=_result(bare)) for real, bare in rates])


def test_the_sides_take_turns_going_first() -> None:
    assert [order(i) for i in range(4)] == [(BARE, REAL), (REAL, BARE), (BARE, REAL), (REAL, BARE)]


def test_with_two_measured_sides_the_baseline_goes_first_then_last() -> None:
    assert [order(i, (REAL, "alone")) for i in range(3)] == [
        (BARE, REAL, "alone"), ("alone", REAL, BARE), (BARE, REAL, "alone")]


def test_the_ratio_is_the_median_of_the_rounds_and_the_middle_round_is_the_one_shown() -> None:
    rounds = _rounds((550, 1000), (800, 1000), (630, 1000))
    assert rounds.ratio == 0.63
    assert rounds.middle.real.rate == 630
    assert rounds.spread() == "median of 3 interleaved rounds: 0.55, 0.63, 0.80"
    assert rounds.real_ok == 19_800


def test_an_even_number_of_rounds_shows_the_lower_middle_round() -> None:
    rounds = _rounds((700, 1000), (500, 1000))
    assert math.isclose(rounds.ratio, 0.6)
    assert rounds.middle.real.rate == 500


def test_errors_are_counted_over_every_round_and_not_as_served() -> None:
    rounds = Rounds([Pair(real=_result(100, status_errors=3), bare=_result(100)),
                     Pair(real=_result(100, socket_errors=2), bare=_result(100, status_errors=1))])
    assert rounds.errors(REAL) == (3, 2)
    assert rounds.errors(BARE) == (1, 0)
    assert rounds.ratios == [1.0, 1.0]


def test_one_round_says_so_and_a_baseline_that_served_nothing_gives_no_ratio() -> None:
    assert _rounds((500, 1000)).spread() == "one round"
    assert math.isnan(Pair(real=_result(5), bare=_result(0)).ratio)
    assert math.isnan(Rounds().ratio)


def test_lists_are_reported_in_alerts_per_second_the_round_of_the_median_ratio_shown() -> None:
    from bench.system import LIST_SIZE, _alerts_cell

    rounds = Rounds([Pair(real=_result(18), bare=_result(550)), Pair(real=_result(17), bare=_result(190)),
                     Pair(real=_result(22, status_errors=3), bare=_result(210))])
    assert LIST_SIZE == 100
    # Ratios 0.033, 0.089, 0.105: the middle round is the second.
    assert _alerts_cell(rounds, REAL) == "1,700/s (a list: p50 1.0 ms, p99 2.0 ms); **3 non-2xx, 0 socket errors**"
    assert _alerts_cell(rounds, BARE) == "19,000/s (a list: p50 1.0 ms, p99 2.0 ms)"


def test_the_alertmanager_baseline_is_known_by_its_status_answer_not_by_any_process_on_its_port() -> None:
    import httpx

    from bench.tools.stack import Alertmanager, Process

    alertmanager = Alertmanager("alertmanager", [], 1, {}, None)  # type: ignore[arg-type]
    status = httpx.Response(200, json={"cluster": {"status": "disabled"}, "versionInfo": {"version": "0.25.0"}})
    service = httpx.Response(200, json={"status": "ready", "service": "ingest"})
    assert alertmanager.serving(status) == alertmanager.expected_service() == "alertmanager"
    assert alertmanager.serving(service) is None
    assert Process("ingest", [], 1, {}, None).serving(service) == "ingest"  # type: ignore[arg-type]


def test_a_service_of_several_processes_is_told_in_all_and_judged_per_process_and_per_service() -> None:
    from bench.system import _memory_cell, _memory_met
    from bench.tools.procstat import Memory

    one = Memory(97.0, 101.0)
    workers = Memory(240.0, 250.0, processes=3, largest_peak_mb=112.0)  # a supervisor and two workers
    assert _memory_cell("scoring", one) == "scoring 97 MB (peak 101)"
    assert _memory_cell("ingest", workers) == "ingest 240 MB in 3 processes (peak 250; the largest process's 112)"
    assert _memory_met({"scoring": one}) == "yes"
    assert _memory_met({"scoring": one, "ingest": workers}) == "each process: yes; each service: **no** (ingest)"
