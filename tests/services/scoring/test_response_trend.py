"""The 30-day trend of the average response time: one point per day, each the rolling average as of that
day's end (today: as of now). Pure, no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.scoring.trend import Response, daily_averages, first_response_needed_after
from shared.response_time import MICROSECONDS_PER_HOUR, aggregate, figures

H = timedelta(hours=1)
D = timedelta(days=1)
NOW = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)
TODAY_START = datetime(2026, 11, 27, tzinfo=UTC)


def responded(at: datetime, latency_hours: float) -> Response:
    return Response(responded_at=at, latency_us=int(latency_hours * MICROSECONDS_PER_HOUR))


def test_one_point_per_day_oldest_first_the_last_today():
    points = daily_averages([], NOW, days=30)
    assert len(points) == 30
    assert points[0].date == date(2026, 10, 29) and points[-1].date == date(2026, 11, 27)
    assert all(p.average_hours is None and p.responded_count == 0 for p in points)


def test_each_day_is_the_rolling_window_as_of_its_end():
    responses = [
        responded(TODAY_START - 40 * D + 2 * H, 10.0),  # in the windows of the days up to 10 days ago
        responded(TODAY_START - 5 * D + 3 * H, 2.0),
        responded(TODAY_START - 5 * D + 4 * H, 4.0),
        responded(TODAY_START + 1 * H, 30.0),  # today
    ]
    points = {p.date: p for p in daily_averages(responses, NOW, days=30)}
    first = points[date(2026, 10, 29)]  # ends 2026-10-30 00:00: the window from 2026-09-30 00:00
    assert (first.average_hours, first.responded_count) == (10.0, 1)
    # The response of 2026-10-18 02:00 leaves the window 30 days later: the day ending 2026-11-17 00:00
    # still holds it (its window starts 2026-10-18 00:00), the day ending 2026-11-18 00:00 does not.
    assert points[date(2026, 11, 16)].responded_count == 1
    assert points[date(2026, 11, 17)].responded_count == 0
    assert points[date(2026, 11, 21)].responded_count == 0
    assert (points[date(2026, 11, 22)].average_hours, points[date(2026, 11, 22)].responded_count) == (3.0, 2)
    assert (points[date(2026, 11, 26)].average_hours, points[date(2026, 11, 26)].responded_count) == (3.0, 2)
    assert (points[date(2026, 11, 27)].average_hours, points[date(2026, 11, 27)].responded_count) == (12.0, 3)


def test_today_is_what_get_response_time_says_now():
    class Alert:
        def __init__(self, response: Response) -> None:
            self.status, self.is_test, self.responded_at = "resolved", False, response.responded_at
            self.latency_us, self.clock_started_at = response.latency_us, response.responded_at

    responses = [responded(NOW - 29 * D - 23 * H, 7.0), responded(NOW - 30 * D, 100.0), responded(NOW - H, 1.5),
                 responded(NOW - 10 * D, 0.25)]
    today = daily_averages(responses, NOW, days=1)[-1]
    now_figures = figures(aggregate([Alert(r) for r in responses], NOW), NOW)
    assert (today.average_hours, today.responded_count) == (now_figures.average_response_time_in_hours,
                                                            now_figures.responded_count) == (2.916666667, 3)


def test_a_response_at_a_days_end_belongs_to_the_next_day():
    points = daily_averages([responded(TODAY_START, 5.0)], NOW, days=2)
    assert [(p.date, p.responded_count) for p in points] == [(date(2026, 11, 26), 0), (date(2026, 11, 27), 1)]


def test_the_oldest_response_the_trend_needs():
    # The first day (29 days before today) ends 28 days before today's start; its window reaches back 30 more.
    assert first_response_needed_after(NOW, days=30) == TODAY_START - 29 * D + D - 30 * D
    responses = [responded(first_response_needed_after(NOW, days=30), 5.0)]  # exactly then: already out
    assert daily_averages(responses, NOW, days=30)[0].responded_count == 0


@pytest.mark.parametrize("days", [0, 91])
def test_days_out_of_range(days):
    with pytest.raises(ValueError, match="days"):
        daily_averages([], NOW, days=days)
