"""The response-time figures of SPEC §3, defined once: pure, no I/O.

The response-time service publishes the requirement status from these figures, and the read API
answers ``GET /response-time`` from its read model of ``alert-response-times`` with the same
functions: the definition of the figures is part of the contract, so both sides compute it alike.

Decisions the spec leaves open (docs/response-time.md explains each):

- A response counts in the rolling window while ``now - respondedAt < 30 days``: a response made
  exactly 30 days ago has dropped out.
- Latency = response - clock start, clamped to 0 when the response is stamped before the clock
  started (a negative latency would flatter the average).
- No responded alert in the window: the average is ``null`` and the requirement is compliant.
- An alert is *open* while it has no partner response, is not a test alert and is not resolved. One
  resolved with no partner response is *closed unanswered*: in neither the average nor the open set.
- An open alert is *near the limit* from ``NEAR_LIMIT_HOURS`` (20 h) old: ``openAlertNearLimit`` says
  whether the oldest open alert is, a state of the tenant (not one per alert) that the notifier warns of.
- Durations are kept in whole microseconds (what PostgreSQL and ``datetime`` hold), so sums are
  exact and "an average of exactly 24.0 hours" is compliant without floating-point doubt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import Field

from shared.events import AlertCreated
from shared.responses import NEAR_LIMIT_HOURS, RESPONSE_TARGET_HOURS, first_partner_response
from shared.wire import WireModel

WINDOW_DAYS = 30
WINDOW = timedelta(days=WINDOW_DAYS)
MICROSECONDS_PER_HOUR = 3_600_000_000
TARGET_US = RESPONSE_TARGET_HOURS * MICROSECONDS_PER_HOUR
NEAR_LIMIT_US = NEAR_LIMIT_HOURS * MICROSECONDS_PER_HOUR
RESOLVED = "resolved"


def microseconds(delta: timedelta) -> int:
    """A duration in whole microseconds (exact: ``timedelta`` holds nothing finer)."""
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def latency_us(clock_started_at: datetime, responded_at: datetime) -> int:
    """Response - start, clamped to 0 for a response stamped before the clock started."""
    return max(0, microseconds(responded_at - clock_started_at))


def clock_start(detected_at: datetime | None, ingested_at: datetime) -> datetime:
    """An alert's clock starts at its ``detectedDateTime``; if absent, when it was first ingested."""
    return detected_at or ingested_at


@dataclass(frozen=True)
class FirstState:
    """What the response-time service first says of a new alert (the fields of its first
    ``alert-response-time-changed``), from the alert's ``alert-created`` alone."""

    status: str
    is_test: bool
    clock_started_at: datetime
    responded_at: datetime | None
    responded_by: str | None
    latency_us: int | None


def first_state(event: AlertCreated) -> FirstState:
    """:class:`FirstState` of a new alert: the clock started (:func:`clock_start`), and the first partner
    response its activity logs already hold, if any. The read API shows a new alert so the moment its
    ``alert-created`` arrives, one Kafka hop before the response-time service's event of it (#15)."""
    alert = event.alert
    started = clock_start(alert.detected_date_time, event.ingested_date_time)
    response = first_partner_response(event.status_changes)
    return FirstState(
        status=alert.status.value if alert.status else "active",
        is_test=alert.is_test,
        clock_started_at=started,
        responded_at=None if response is None else response.changed_date_time,
        responded_by=None if response is None else response.actor.id,
        latency_us=None if response is None else latency_us(started, response.changed_date_time),
    )


def is_open(*, responded: bool, is_test: bool, status: str) -> bool:
    """Counts as open: no partner response, not a test alert, not resolved."""
    return not responded and not is_test and status != RESOLVED


def hours(us: int | float) -> float:
    """Microseconds as hours, rounded to 9 decimals (a few µs), so 24 h reads 24.0, not 23.999999999999996."""
    return round(us / MICROSECONDS_PER_HOUR, 9)


# --- the window ---------------------------------------------------------------------------------


def window_start(now: datetime) -> datetime:
    """A response counts while it is strictly later than this."""
    return now - WINDOW


def in_window(responded_at: datetime, now: datetime) -> bool:
    return responded_at > window_start(now)


def open_age_us(clock_started_at: datetime, now: datetime) -> int:
    """How long an open alert has waited; 0 for one detected in the future."""
    return max(0, microseconds(now - clock_started_at))


def near_limit_at(clock_started_at: datetime) -> datetime:
    """When an open alert started then becomes near the limit (``openAlertNearLimit``)."""
    return clock_started_at + timedelta(microseconds=NEAR_LIMIT_US)


class AlertTiming(Protocol):
    """What the figures read of one alert (a stored row, or the service's ``AlertClock``)."""

    @property
    def status(self) -> str: ...
    @property
    def is_test(self) -> bool: ...
    @property
    def clock_started_at(self) -> datetime: ...
    @property
    def responded_at(self) -> datetime | None: ...
    @property
    def latency_us(self) -> int | None: ...


@dataclass(frozen=True)
class WindowAggregates:
    """The sums the figures are made of, for one tenant at one instant.

    :func:`aggregate` is the reference computation; a store computes the same in SQL over indexes:
    responded = not a test, responded strictly after :func:`window_start` (count, sum of latencies,
    earliest response); open = not a test, no response, status not resolved (count, sum of
    :func:`open_age_us`, earliest clock start).
    """

    responded_count: int = 0
    responded_latency_us: int = 0
    open_count: int = 0
    open_age_us: int = 0
    oldest_open_started_at: datetime | None = None
    earliest_responded_at: datetime | None = None  # of the responses in the window: the next to leave it


def window_aggregates_sql(table: str) -> str:
    """:class:`WindowAggregates` in SQL over ``table``, a table of alerts with the columns
    ``tenant_id, is_test, status, clock_started_at, responded_at, latency_us``; parameters: $1 the
    tenant, $2 :func:`window_start`, $3 now. Two index range scans (responded in the window; open and
    unresolved by clock start): O(window + open), not O(history). The response-time service and the
    read API's read model both run it, each over its own table, so their figures cannot drift."""
    return f"""
    SELECT r.responded_count, r.responded_latency_us, o.open_count, o.open_age_us, o.oldest_open_started_at,
           r.earliest_responded_at
    FROM (SELECT count(*) AS responded_count, COALESCE(sum(latency_us), 0)::bigint AS responded_latency_us,
                 min(responded_at) AS earliest_responded_at
          FROM {table}
          WHERE tenant_id = $1 AND NOT is_test AND responded_at IS NOT NULL AND responded_at > $2) r,
         (SELECT count(*) AS open_count,
                 COALESCE(sum(GREATEST(0, (extract(epoch FROM $3::timestamptz - clock_started_at)
                                           * 1000000)::bigint)), 0)::bigint AS open_age_us,
                 min(clock_started_at) AS oldest_open_started_at
          FROM {table}
          WHERE tenant_id = $1 AND NOT is_test AND responded_at IS NULL AND status <> '{RESOLVED}') o"""


def window_aggregates_of(row: Mapping[str, Any]) -> WindowAggregates:
    """The :class:`WindowAggregates` in a row of :func:`window_aggregates_sql`."""
    return WindowAggregates(row["responded_count"], row["responded_latency_us"], row["open_count"],
                            row["open_age_us"], row["oldest_open_started_at"], row["earliest_responded_at"])


def aggregate(alerts: Iterable[AlertTiming], now: datetime) -> WindowAggregates:
    """The reference computation over whole alerts (stores do it in SQL over indexes)."""
    responded = responded_sum = opened = open_sum = 0
    oldest: datetime | None = None
    earliest: datetime | None = None
    for alert in alerts:
        if alert.is_test:
            continue  # closed unanswered (resolved, no partner response) falls through both branches
        if is_open(responded=alert.responded_at is not None, is_test=False, status=alert.status):
            opened += 1
            open_sum += open_age_us(alert.clock_started_at, now)
            oldest = alert.clock_started_at if oldest is None else min(oldest, alert.clock_started_at)
        elif alert.responded_at is not None and in_window(alert.responded_at, now):
            responded += 1
            responded_sum += alert.latency_us or 0
            earliest = alert.responded_at if earliest is None else min(earliest, alert.responded_at)
    return WindowAggregates(responded, responded_sum, opened, open_sum, oldest, earliest)


# --- the figures --------------------------------------------------------------------------------


class ResponseTimeFigures(WireModel):
    """``GET /response-time`` and the insights of the requirement status."""

    average_response_time_in_hours: float | None = Field(
        description="Mean latency of the non-test alerts first answered in the last 30 days; null if none.")
    window_days: int = Field(WINDOW_DAYS, description="Length of the rolling window.")
    responded_count: int = Field(description="Alerts whose first response falls in the window.")
    open_count: int = Field(description="Non-test, unresolved alerts with no partner response yet.")
    oldest_open_age_hours: float | None = Field(description="Age of the oldest open alert; null if none.")
    projected_average_response_time_in_hours: float | None = Field(
        description="The average if every open alert were answered now; null if nothing to average.")
    compliant: bool = Field(description="The average is at most 24.0 hours (or nothing was answered).")
    at_risk: bool = Field(description="The projected average exceeds 24 hours.")
    open_alert_near_limit: bool = Field(
        description="The oldest open alert is at least 20 hours old: answered after 24 hours, its response time "
        "counts against the limit.")


def figures(agg: WindowAggregates, now: datetime) -> ResponseTimeFigures:
    """Compliance and risk compare exact integer sums; the hours are for display."""
    total_count = agg.responded_count + agg.open_count
    total_us = agg.responded_latency_us + agg.open_age_us
    oldest_age_us = None if agg.oldest_open_started_at is None else open_age_us(agg.oldest_open_started_at, now)
    return ResponseTimeFigures(
        average_response_time_in_hours=(hours(agg.responded_latency_us / agg.responded_count)
                                        if agg.responded_count else None),
        responded_count=agg.responded_count,
        open_count=agg.open_count,
        oldest_open_age_hours=None if oldest_age_us is None else hours(oldest_age_us),
        projected_average_response_time_in_hours=hours(total_us / total_count) if total_count else None,
        compliant=agg.responded_latency_us <= TARGET_US * agg.responded_count,
        at_risk=total_us > TARGET_US * total_count,
        open_alert_near_limit=oldest_age_us is not None and oldest_age_us >= NEAR_LIMIT_US,
    )
