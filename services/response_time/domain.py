"""Pure response-time rules of SPEC §3: no I/O here.

Decisions the spec leaves open (docs/response-time.md explains each, and names its test):

- A response counts in the rolling window while ``now - respondedAt < 30 days``: a response made
  exactly 30 days ago has dropped out.
- Latency = response - clock start, clamped to 0 when the response is stamped before the clock
  started (a partner cannot answer faster than instantly; a negative latency would flatter the
  average).
- No responded alert in the window: the average is ``null`` and the requirement is compliant.
- An alert is *open* while it has no partner response, is not a test alert and is not resolved. One
  resolved with no partner response (by the system, or in a feed with no user log entry) is *closed
  unanswered*: in neither the average nor the open set. A reopen makes it open again; a later partner
  change still records the (write-once) response.
- The stored alert state follows the events' own order (``occurredDateTime``, stamped by ingest;
  the alerts topic keeps per-alert order), never the partner's log times: those are another clock.
- Durations are kept in whole microseconds (what PostgreSQL and ``datetime`` hold), so sums are
  exact and "an average of exactly 24.0 hours" is compliant without floating-point doubt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from shared.alerts import Alert
from shared.catalogue import RequirementType
from shared.events import AlertCreated, AlertUpdated, StatusChange
from shared.responses import RESPONSE_TARGET_HOURS, first_partner_response
from shared.wire import WireModel

REQUIREMENT_TYPE = RequirementType.security_alerts_promptly_resolved
WINDOW_DAYS = 30
WINDOW = timedelta(days=WINDOW_DAYS)
MICROSECONDS_PER_HOUR = 3_600_000_000
TARGET_US = RESPONSE_TARGET_HOURS * MICROSECONDS_PER_HOUR
RESOLVED = "resolved"


def microseconds(delta: timedelta) -> int:
    """A duration in whole microseconds (exact: ``timedelta`` holds nothing finer)."""
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def clock_start(event: AlertCreated) -> datetime:
    """The clock starts at ``detectedDateTime``; if absent, when the alert was first ingested."""
    return event.alert.detected_date_time or event.ingested_date_time


def latency_us(clock_started_at: datetime, responded_at: datetime) -> int:
    """Response - start, clamped to 0 for a response stamped before the clock started."""
    return max(0, microseconds(responded_at - clock_started_at))


@dataclass(frozen=True)
class Response:
    """The first partner response: when, and by whom."""

    at: datetime
    by: str | None


def partner_response(changes: Iterable[StatusChange]) -> Response | None:
    first = first_partner_response(changes)
    return None if first is None else Response(first.changed_date_time, first.actor.id)


@dataclass(frozen=True)
class AlertClock:
    """What the response-time service keeps per alert."""

    tenant_id: str
    alert_id: str
    alert: Alert                  # the latest known state of the alert
    state_as_of: datetime         # occurredDateTime of the event that brought that state
    clock_started_at: datetime
    created_seen: bool            # False while only updates arrived (the create is late)
    ingested_at: datetime | None
    response: Response | None

    @property
    def is_test(self) -> bool:
        return self.alert.is_test

    @property
    def status(self) -> str:
        return self.alert.status.value if self.alert.status else "active"

    @property
    def is_open(self) -> bool:
        """Counts as open: no partner response, not a test alert, not resolved."""
        return self.response is None and not self.is_test and self.status != RESOLVED

    @property
    def latency_us(self) -> int | None:
        return None if self.response is None else latency_us(self.clock_started_at, self.response.at)


def on_created(existing: AlertClock | None, event: AlertCreated) -> AlertClock:
    """Apply an ``alert-created`` event (the first one, or one arriving after an update).

    A create arriving after an update is authoritative for the clock start (its ingestion time is
    the start when there is no detection time); the alert state stays the newer one; the response is
    the earlier of what the update brought and what the create's activity logs already held. Once a
    create has been applied, a second create (re-published by ingest) changes nothing but fills gaps
    (and its state, if it occurred later than the stored one). The state's order is the events'
    ``occurredDateTime``; an update applied before its create always wins over that create.
    """
    response = partner_response(event.status_changes)
    if existing is None:
        return AlertClock(event.tenant_id, event.alert.id, event.alert, event.occurred_date_time,
                          clock_start(event), True, event.ingested_date_time, response)
    if existing.created_seen:
        newer = event.occurred_date_time >= existing.state_as_of
        state = dict(alert=event.alert, state_as_of=event.occurred_date_time) if newer else {}
        return replace(existing, ingested_at=existing.ingested_at or event.ingested_date_time,
                       response=existing.response or response, **state)
    return replace(existing, clock_started_at=clock_start(event), created_seen=True,
                   ingested_at=event.ingested_date_time, response=_earlier(existing.response, response))


def on_updated(existing: AlertClock | None, event: AlertUpdated) -> AlertClock:
    """Apply an ``alert-updated`` event: newer state, and the response if none is recorded yet.

    An update arriving before its create is kept: the clock starts at the alert's detection time
    or, without one, provisionally at the change time (the later create sets the real start).
    """
    response = partner_response(event.status_changes)
    if existing is None:
        start = event.alert.detected_date_time or event.changed_date_time
        return AlertClock(event.tenant_id, event.alert_id, event.alert, event.occurred_date_time, start,
                          False, None, response)
    # Ordered by ingest's clock (occurredDateTime), not the partner's updatedDateTime: a change logged
    # at 11:55 but fed at 13:00 is still newer than a create ingested at 12:00.
    newer = event.occurred_date_time >= existing.state_as_of
    state = dict(alert=event.alert, state_as_of=event.occurred_date_time) if newer else {}
    # Write-once: once stopped, the clock never moves again.
    return replace(existing, response=existing.response or response, **state)


def apply(existing: AlertClock | None, event: AlertCreated | AlertUpdated) -> AlertClock:
    return on_created(existing, event) if isinstance(event, AlertCreated) else on_updated(existing, event)


def alert_key(event: AlertCreated | AlertUpdated) -> tuple[str, str]:
    alert_id = event.alert.id if isinstance(event, AlertCreated) else event.alert_id
    return event.tenant_id, alert_id


def _earlier(a: Response | None, b: Response | None) -> Response | None:
    if a is None or b is None:
        return a or b
    return a if a.at <= b.at else b


# --- the figures --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowAggregates:
    """The sums the figures are made of; PostgreSQL computes the same with two index range scans."""

    responded_count: int = 0
    responded_latency_us: int = 0
    open_count: int = 0
    open_age_us: int = 0
    oldest_open_started_at: datetime | None = None
    earliest_responded_at: datetime | None = None  # of the responses in the window: the next to leave it


def window_start(now: datetime) -> datetime:
    """A response counts while it is strictly later than this."""
    return now - WINDOW


def in_window(responded_at: datetime, now: datetime) -> bool:
    return responded_at > window_start(now)


def open_age_us(clock_started_at: datetime, now: datetime) -> int:
    return max(0, microseconds(now - clock_started_at))


def aggregate(clocks: Iterable[AlertClock], now: datetime) -> WindowAggregates:
    """The reference computation over whole alerts (the store does it in SQL over indexes)."""
    responded = responded_sum = opened = open_sum = 0
    oldest: datetime | None = None
    earliest: datetime | None = None
    for clock in clocks:
        if clock.is_test:
            continue  # closed unanswered (resolved, no partner response) falls through both branches
        if clock.is_open:
            opened += 1
            open_sum += open_age_us(clock.clock_started_at, now)
            oldest = clock.clock_started_at if oldest is None else min(oldest, clock.clock_started_at)
        elif clock.response is not None and in_window(clock.response.at, now):
            responded += 1
            responded_sum += clock.latency_us or 0
            earliest = clock.response.at if earliest is None else min(earliest, clock.response.at)
    return WindowAggregates(responded, responded_sum, opened, open_sum, oldest, earliest)


def next_edge(agg: WindowAggregates, now: datetime) -> datetime | None:
    """The next time the published figures can change with no new event; None if never.

    Either the earliest response in the window leaves it, or the open alerts, ageing, push the
    projected average over 24 h (``atRisk`` flips). The sum of open ages grows by at most
    ``open_count`` µs per µs (less while an alert detected in the future is clamped at 0), so the
    flip is never earlier than computed: a wake-up there is at worst early, never late.
    """
    edges = [] if agg.earliest_responded_at is None else [agg.earliest_responded_at + WINDOW]
    total_count = agg.responded_count + agg.open_count
    headroom_us = TARGET_US * total_count - (agg.responded_latency_us + agg.open_age_us)
    if agg.open_count and headroom_us >= 0:
        edges.append(now + timedelta(microseconds=headroom_us // agg.open_count + 1))
    return min(edges, default=None)


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


def _hours(us: int | float) -> float:
    # Rounded to 9 decimals (a few microseconds), so 24 h reads as 24.0, not 23.999999999999996.
    return round(us / MICROSECONDS_PER_HOUR, 9)


def figures(agg: WindowAggregates, now: datetime) -> ResponseTimeFigures:
    """Compliance and risk compare exact integer sums; the hours are for display."""
    total_count = agg.responded_count + agg.open_count
    total_us = agg.responded_latency_us + agg.open_age_us
    return ResponseTimeFigures(
        average_response_time_in_hours=(_hours(agg.responded_latency_us / agg.responded_count)
                                        if agg.responded_count else None),
        responded_count=agg.responded_count,
        open_count=agg.open_count,
        oldest_open_age_hours=(_hours(open_age_us(agg.oldest_open_started_at, now))
                               if agg.oldest_open_started_at is not None else None),
        projected_average_response_time_in_hours=_hours(total_us / total_count) if total_count else None,
        compliant=agg.responded_latency_us <= TARGET_US * agg.responded_count,
        at_risk=total_us > TARGET_US * total_count,
    )


def emission_key(f: ResponseTimeFigures) -> dict[str, Any]:
    """The figures whose change publishes a new requirement status.

    The open alerts' ages (oldest age, projected average) drift every second; publishing each drift
    would flood the topic, so they ride along in the insights and publish only when ``atRisk`` flips.
    """
    return {"compliant": f.compliant, "atRisk": f.at_risk, "respondedCount": f.responded_count,
            "openCount": f.open_count, "averageResponseTimeInHours": f.average_response_time_in_hours}


def should_publish(last_key: dict[str, Any] | None, current: ResponseTimeFigures) -> bool:
    return last_key != emission_key(current)
