"""Alert events for the response-time tests: a creation, with or without a response, an update, a mixed stream."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from services.response_time import domain
from shared.alerts import Alert
from shared.events import Actor, ActorType, AlertCreated, AlertUpdated, Event, StatusChange

PARTNER = Actor(type=ActorType.user, id="ana@partner.example")
SYSTEM = Actor(type=ActorType.system)
H = timedelta(hours=1)


def created(
    tenant: str,
    alert_id: str,
    detected: datetime | None,
    *,
    response_at: datetime | None = None,
    is_test: bool = False,
    ingested: datetime | None = None,
) -> AlertCreated:
    """An alert first seen; with ``response_at``, its activity logs already hold a partner response."""
    changes = [
        StatusChange(field="status", from_="active", to="investigating", actor=PARTNER, changed_date_time=response_at)
    ] if response_at else []
    return AlertCreated(
        tenant_id=tenant,
        alert=Alert(id=alert_id, detected_date_time=detected, is_test=is_test),
        ingested_date_time=ingested or detected or datetime.now(UTC),
        status_changes=changes,
    )


def updated(
    tenant: str, alert_id: str, at: datetime, detected: datetime | None = None, *,
    actor: Actor = PARTNER, to: str = "resolved",
) -> AlertUpdated:
    """A status change of ``alert_id`` at ``at`` by ``actor`` (a partner user unless told otherwise)."""
    change = StatusChange(field="status", from_="active", to=to, actor=actor, changed_date_time=at)
    return AlertUpdated(
        tenant_id=tenant,
        alert_id=alert_id,
        changes=[],
        status_changes=[change],
        actor=actor,
        changed_date_time=at,
        alert=Alert(id=alert_id, status=to, detected_date_time=detected),
    )


def mixed_stream(tenant: str, alerts: int, now: datetime) -> list[Event]:
    """A mixed stream (seeded): creates, partner and system updates, test alerts, late creates, redeliveries."""
    rng = random.Random(7)
    events: list[Event] = []
    for i in range(alerts):
        detected = now - timedelta(minutes=rng.randint(60, 60 * 24 * 40)) if i % 5 else None
        ingested = now - timedelta(minutes=rng.randint(30, 60 * 24 * 40))
        create = created(
            tenant,
            f"a{i}",
            detected,
            ingested=ingested,
            is_test=(i % 17 == 0),
            response_at=(detected or ingested) + H if i % 11 == 0 else None,
        )
        start = detected or ingested
        updates = [
            updated(
                tenant,
                f"a{i}",
                start + timedelta(minutes=rng.randint(1, 3000)),
                detected,
                actor=PARTNER if i % 3 else SYSTEM,
                to="investigating",
            )
            for _ in range(rng.randint(0, 2))
        ]
        if i % 13 == 0 and updates:
            events += updates + [create]  # the update overtakes its create
        else:
            events += [create] + updates
        if i % 7 == 0:
            events.append(events[-1])  # a redelivery: the same event id again
    return events


def folded(events: list[Event]) -> list[domain.AlertClock]:
    """The alerts as the rules make them of ``events`` in this order, each event id once."""
    clocks: dict[str, domain.AlertClock] = {}
    seen: set = set()
    for event in events:
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        if isinstance(event, AlertCreated):
            clocks[event.alert.id] = domain.on_created(clocks.get(event.alert.id), event)
        else:
            clocks[event.alert_id] = domain.on_updated(clocks.get(event.alert_id), event)
    return list(clocks.values())
