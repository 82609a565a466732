"""Alert events for the response-time tests: a creation, with or without a response, and an update."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.alerts import Alert
from shared.events import Actor, ActorType, AlertCreated, AlertUpdated, StatusChange

PARTNER = Actor(type=ActorType.user, id="ana@partner.example")


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
