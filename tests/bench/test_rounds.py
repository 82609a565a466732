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
