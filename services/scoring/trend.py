"""The trend of the average response time (``GET /response-time/trend``): pure, no I/O.

One point per UTC day, oldest first, the last one today. A day's point is the rolling average of SPEC
§3 as of the end of that day (midnight UTC after it): the non-test responses made before that instant
and less than 30 days before it, as ``shared.response_time`` defines the window (a response made
exactly 30 days before has dropped out). Today's point is as of now, so it is what
``GET /response-time`` answers at the same instant.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate

from shared.response_time import hours, window_start

MAX_DAYS = 90
GOAL_HOURS = 1.0  # SPEC §1: the requirement's limit is 24 hours on average; the goal is one hour
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Response:
    """A non-test alert's first partner response: when, and its latency."""

    responded_at: datetime
    latency_us: int


@dataclass(frozen=True)
class DailyAverage:
    date: date
    average_hours: float | None  # None: no response in that day's window
    responded_count: int


def _today_start(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date(), time(), UTC)


def _check(days: int) -> None:
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be 1..{MAX_DAYS}, not {days}")


def first_response_needed_after(now: datetime, days: int) -> datetime:
    """The trend of ``days`` days reads the responses strictly after this (the first day's window start)."""
    _check(days)
    first_day_end = _today_start(now) - (days - 2) * _DAY
    return window_start(min(first_day_end, now))


def daily_averages(responses: Iterable[Response], now: datetime, days: int) -> list[DailyAverage]:
    """The ``days`` points, oldest first; ``responses`` in any order (those outside every window ignored)."""
    _check(days)
    ordered = sorted(responses, key=lambda r: r.responded_at)
    times = [r.responded_at for r in ordered]
    sums = [0, *accumulate(r.latency_us for r in ordered)]  # sums[i]: the latencies of the first i
    today_start = _today_start(now)
    points = []
    for back in range(days - 1, -1, -1):
        day_start = today_start - back * _DAY
        as_of = now if back == 0 else day_start + _DAY
        first = bisect_right(times, window_start(as_of))  # strictly after the window's start
        # Past days: made before their end (a response at midnight is the next day's). Today: every
        # response, as GET /response-time counts them.
        last = len(times) if back == 0 else bisect_left(times, as_of)
        count = max(0, last - first)
        points.append(DailyAverage(day_start.date(), hours((sums[last] - sums[first]) / count) if count else None,
                                   count))
    return points
