"""Pure decisions of ingest: is a posted alert new, changed, or a duplicate, and what changed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.alerts import Alert
from shared.events import Actor, ActorType, AlertCreated, AlertUpdated, FieldChange, StatusChange

# Fields whose change is a change of the alert; the activity log itself is how changes are told,
# not a change of its own.
_COMPARED = [name for name in Alert.model_fields if name != "activity_logs"]
_STATUS_FIELDS = {"status": "status", "resolved_reason": "resolvedReason"}


def actor_from(updated_by: str | None) -> Actor:
    """SPEC §3: an empty ``updatedBy`` or the value ``system`` is the system."""
    if updated_by is None or updated_by.strip() == "" or updated_by.strip().lower() == "system":
        return Actor(type=ActorType.system)
    return Actor(type=ActorType.user, id=updated_by.strip())


def _wire(alert: Alert, field: str) -> Any:
    return alert.model_dump(mode="json", include={field})[Alert.model_fields[field].alias or field]


def changed_fields(previous: Alert, incoming: Alert) -> list[FieldChange]:
    return [
        FieldChange(field=Alert.model_fields[name].alias or name, from_=_wire(previous, name), to=_wire(incoming, name))
        for name in _COMPARED
        if getattr(previous, name) != getattr(incoming, name)
    ]


def _new_logs(previous: Alert | None, incoming: Alert):
    known = {log.model_dump_json() for log in previous.activity_logs} if previous else set()
    return [log for log in incoming.activity_logs if log.model_dump_json() not in known]


def decide(
    tenant_id: str, incoming: Alert, previous: Alert | None, *, now: datetime, api_actor: Actor | None = None
) -> AlertCreated | AlertUpdated | None:
    """The event a post of ``incoming`` yields, given the last known state; ``None`` for a duplicate.

    Actor and time of a change come from the new activity-log entries; a change made through
    this system's own API (``api_actor``) is by the calling user at the time of the request.
    """
    new_logs = _new_logs(previous, incoming)
    if previous is None:
        return AlertCreated(tenant_id=tenant_id, alert=incoming, ingested_date_time=now, occurred_date_time=now,
                            status_changes=_status_changes_from_logs(new_logs, incoming))
    changes = changed_fields(previous, incoming)
    if not changes and not new_logs:
        return None
    if api_actor is not None:
        actor, when = api_actor, now
        status_changes = [
            StatusChange(field=c.field, from_=c.from_, to=c.to, actor=actor, changed_date_time=when)
            for c in changes if c.field in _STATUS_FIELDS.values()
        ]
    else:
        dated = [log for log in new_logs if log.updated_date_time is not None]
        latest = max(dated, key=lambda log: log.updated_date_time) if dated else None
        actor = actor_from(latest.updated_by) if latest else Actor(type=ActorType.system)
        when = latest.updated_date_time if latest else now
        status_changes = _status_changes_from_logs(new_logs, incoming)
        logged = {sc.field for sc in status_changes}
        # A status change with no log entry telling who made it is the system's (the feed itself).
        status_changes += [
            StatusChange(field=c.field, from_=c.from_, to=c.to, actor=Actor(type=ActorType.system),
                         changed_date_time=when)
            for c in changes if c.field in _STATUS_FIELDS.values() and c.field not in logged
        ]
    return AlertUpdated(tenant_id=tenant_id, alert_id=incoming.id, changes=changes, status_changes=status_changes,
                        actor=actor, changed_date_time=when, alert=incoming, occurred_date_time=now)


def _status_changes_from_logs(logs, incoming: Alert) -> list[StatusChange]:
    out = []
    for log in sorted((x for x in logs if x.updated_date_time is not None), key=lambda x: x.updated_date_time):
        if log.status_from != log.status_to:
            out.append(StatusChange(field="status", from_=log.status_from, to=log.status_to,
                                    actor=actor_from(log.updated_by), changed_date_time=log.updated_date_time))
    return out
