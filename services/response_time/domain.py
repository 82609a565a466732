"""Pure response-time rules of SPEC §3: how alert events move an alert's clock. No I/O here.

The figures themselves (window, latency, open, the averages) are part of the contract and live in
``shared.response_time``, which the read API's read model uses too. Decisions the spec leaves open
(docs/response-time.md explains each, and names its test), beside those of that module:

- The stored alert state follows the events' own order (``occurredDateTime``, stamped by ingest;
  the alerts topic keeps per-alert order), never the partner's log times: those are another clock.
- A reopen makes an alert that was closed unanswered open again; a later partner change still
  records the (write-once) response.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from shared import response_time
from shared.alerts import Alert
from shared.catalogue import RequirementType
from shared.events import AlertCreated, AlertResponseTimeChanged, AlertUpdated, StatusChange
from shared.response_time import (
    TARGET_US,
    WINDOW,
    ResponseTimeFigures,
    WindowAggregates,
    is_open,
    latency_us,
    near_limit_at,
)
from shared.responses import first_partner_response
from shared.wire import built_of_checked_text

REQUIREMENT_TYPE = RequirementType.security_alerts_promptly_resolved


def clock_start(event: AlertCreated) -> datetime:
    """The clock starts at ``detectedDateTime``; if absent, when the alert was first ingested (the rule
    is shared: the read API shows a new alert from its ``alert-created`` with the same start)."""
    return response_time.clock_start(event.alert.detected_date_time, event.ingested_date_time)


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
        return is_open(responded=self.response is not None, is_test=self.is_test, status=self.status)

    @property
    def responded_at(self) -> datetime | None:
        return None if self.response is None else self.response.at

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


# --- what alert-response-times says of an alert ------------------------------------------------------


def published_view(clock: AlertClock) -> dict[str, Any]:
    """The fields of ``AlertResponseTimeChanged`` for the alert as stored (its row holds the same)."""
    return {
        "alert": clock.alert.model_dump(mode="json"),
        "status": clock.status,
        "is_test": clock.is_test,
        "clock_started_date_time": clock.clock_started_at,
        "responded_date_time": clock.responded_at,
        "responded_by": None if clock.response is None else clock.response.by,
        "latency_us": clock.latency_us,
    }


def response_time_changes(before: Mapping[tuple[str, str], AlertClock],
                          after: Mapping[tuple[str, str], AlertClock]) -> list[AlertResponseTimeChanged]:
    """One event per alert whose published view changed, in the order of ``after``.

    An event that moves nothing the view shows (a redelivered create, an update older than the state)
    publishes nothing: the compacted topic's consumers only ever see changes.
    """
    with built_of_checked_text():  # the clocks hold what events and storage gave: checked text
        return [AlertResponseTimeChanged(tenant_id=clock.tenant_id, alert_id=clock.alert_id, **view)
                for key, clock in after.items()
                if (view := published_view(clock)) != (None if key not in before else published_view(before[key]))]


def _earlier(a: Response | None, b: Response | None) -> Response | None:
    if a is None or b is None:
        return a or b
    return a if a.at <= b.at else b


# --- when to evaluate again ------------------------------------------------------------------


def next_edge(agg: WindowAggregates, now: datetime) -> datetime | None:
    """The next time the published figures can change with no new event; None if never.

    Either the earliest response in the window leaves it, the oldest open alert becomes near the limit
    (``openAlertNearLimit`` flips; once near, it stays so until an event answers or closes it), or the
    open alerts, ageing, push the projected average over 24 h (``atRisk`` flips). The sum of open ages grows by at most
    ``open_count`` µs per µs (less while an alert detected in the future is clamped at 0), so the
    flip is never earlier than computed: a wake-up there is at worst early, never late.
    """
    edges = [] if agg.earliest_responded_at is None else [agg.earliest_responded_at + WINDOW]
    total_count = agg.responded_count + agg.open_count
    headroom_us = TARGET_US * total_count - (agg.responded_latency_us + agg.open_age_us)
    if agg.open_count and headroom_us >= 0:
        edges.append(now + timedelta(microseconds=headroom_us // agg.open_count + 1))
    if agg.oldest_open_started_at is not None and (near := near_limit_at(agg.oldest_open_started_at)) > now:
        edges.append(near)
    return min(edges, default=None)


def emission_key(f: ResponseTimeFigures) -> dict[str, Any]:
    """The figures whose change publishes a new requirement status.

    The open alerts' ages (oldest age, projected average) drift every second; publishing each drift
    would flood the topic, so they ride along in the insights and publish only when ``atRisk`` or
    ``openAlertNearLimit`` flips.
    """
    return {"compliant": f.compliant, "atRisk": f.at_risk, "openAlertNearLimit": f.open_alert_near_limit,
            "respondedCount": f.responded_count, "openCount": f.open_count,
            "averageResponseTimeInHours": f.average_response_time_in_hours}


def should_publish(last_key: dict[str, Any] | None, current: ResponseTimeFigures) -> bool:
    return last_key != emission_key(current)
