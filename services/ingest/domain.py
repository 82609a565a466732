"""Pure decisions of ingest: is a posted alert new, changed, or a duplicate, and what changed.

No I/O here. The store hands in the last known state (and its version); the decision says which
event, if any, a post yields and what state to keep.

Decisions the spec left open (docs/ingest.md):
- A field absent from a posted alert keeps its previous value; an explicit ``null`` clears it
  (``status`` excepted: it cannot be cleared, a null keeps the previous status).
- ``activityLogs`` is not a changed field of its own: posted entries are merged into the known
  ones, and the new entries tell who changed the status and when.
- A status change posted with no new activity-log entry is the system's (a feed's own update).
- Event ids are derived from tenant, alert id, state version and the state itself, so republishing
  a state after a failed attempt reuses the id and consumers drop the copy.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Any

from shared.action_links import Action, change_for
from shared.alerts import ActivityLog, Alert, AlertStatus, ResolvedReason
from shared.events import Actor, ActorType, AlertCreated, AlertUpdated, FieldChange, StatusChange

# How far ahead of our clock a posted time may be (clock skew), for alerts and signals alike; later
# is refused. An alert's future detection would start its response clock late, a future activity-log
# entry stop it late; a future-dated signal observation would shadow every real one until that date
# (the newest observation wins).
FUTURE_TOLERANCE = timedelta(minutes=5)

# Fields whose change is a change of the alert; the activity log itself is how changes are told,
# not a change of its own.
COMPARED_FIELDS = tuple(name for name in Alert.model_fields if name != "activity_logs")
STATUS_FIELDS = {"status": "status", "resolved_reason": "resolvedReason"}
SYSTEM = Actor(type=ActorType.system)

# Namespace of the event ids of alert states (any constant uuid; never change it).
_EVENT_ID_NAMESPACE = uuid.UUID("6f1c3a52-3d0e-4b7a-9a56-0c1d2e7f9b31")


def actor_from(updated_by: str | None) -> Actor:
    """SPEC §3: an empty ``updatedBy`` or the value ``system`` is the system."""
    if updated_by is None or updated_by.strip() == "" or updated_by.strip().lower() == "system":
        return SYSTEM
    return Actor(type=ActorType.user, id=updated_by.strip())


def event_id_for(tenant_id: str, alert_id: str, version: int, state: Alert, state_json: str | None = None) -> uuid.UUID:
    """The id of the event that made ``state`` version ``version`` of an alert (1 = created).

    A retry after a failed publish decides the same state from the same previous one, so it gets
    the same id and consumers drop a copy; a different state never shares an id. ``state_json``:
    ``state.model_dump_json()``, if the caller has it.
    """
    text = state.model_dump_json() if state_json is None else state_json
    digest = hashlib.sha256(text.encode()).hexdigest()
    return uuid.uuid5(_EVENT_ID_NAMESPACE, f"{tenant_id}\x1f{alert_id}\x1f{version}\x1f{digest}")


def _wire_name(field: str) -> str:
    return Alert.model_fields[field].alias or field


def _wire(alert: Alert, field: str) -> Any:
    return alert.model_dump(mode="json", include={field})[_wire_name(field)]


def _log_key(log: ActivityLog) -> tuple:
    return (log.status_from, log.status_to, (log.updated_by or "").strip().lower(), log.updated_date_time)


def new_activity_logs(previous: Alert | None, incoming: Alert) -> list[ActivityLog]:
    """The posted activity-log entries not known yet (in posted order, each once)."""
    known = {_log_key(log) for log in previous.activity_logs} if previous else set()
    fresh = []
    for log in incoming.activity_logs:
        key = _log_key(log)
        if key not in known:
            known.add(key)
            fresh.append(log)
    return fresh


def merge(previous: Alert, incoming: Alert) -> Alert:
    """The state after a post: posted fields replace known ones, absent fields keep theirs."""
    update = {
        name: getattr(incoming, name)
        for name in incoming.model_fields_set
        if name in COMPARED_FIELDS and not (name == "status" and incoming.status is None)
    }
    update["activity_logs"] = [*previous.activity_logs, *new_activity_logs(previous, incoming)]
    return previous.model_copy(update=update)


def created_state(incoming: Alert) -> Alert:
    if incoming.status is None:
        return incoming.model_copy(update={"status": AlertStatus.active})
    return incoming


def changed_fields(previous: Alert, current: Alert) -> list[FieldChange]:
    return [
        FieldChange(field=_wire_name(name), from_=_wire(previous, name), to=_wire(current, name))
        for name in COMPARED_FIELDS
        if getattr(previous, name) != getattr(current, name)
    ]


def _status_changes_from_logs(logs: list[ActivityLog], now: datetime) -> list[StatusChange]:
    changes = [
        StatusChange(
            field="status",
            from_=log.status_from,
            to=log.status_to,
            actor=actor_from(log.updated_by),
            changed_date_time=log.updated_date_time or now,
        )
        for log in logs
        if log.status_from != log.status_to
    ]
    return sorted(changes, key=lambda c: c.changed_date_time)


def _latest(logs: list[ActivityLog], now: datetime) -> tuple[Actor, datetime] | None:
    if not logs:
        return None
    latest = max(logs, key=lambda log: log.updated_date_time or now)
    return actor_from(latest.updated_by), latest.updated_date_time or now


def decide(
    tenant_id: str,
    incoming: Alert,
    previous: Alert | None,
    *,
    now: datetime,
    previous_version: int = 0,
    api_actor: Actor | None = None,
    created_json: str | None = None,
) -> AlertCreated | AlertUpdated | None:
    """The event a post of ``incoming`` yields, given the last known state; ``None`` for a duplicate.

    The event's ``alert`` is the state to keep. Actor and time of a feed's change come from its new
    activity-log entries (none: the system, now); a change made through this system's own API
    (``api_actor``) is by that user at the time of the request. ``created_json``: the JSON of
    ``created_state(incoming)``, if the caller made it already (it stored that state).
    """
    version = previous_version + 1
    if previous is None:
        alert = created_state(incoming)
        # Made once: the event's id, its record and the stored state (three serialisations before, #15).
        alert_json = alert.model_dump_json() if created_json is None else created_json
        created = AlertCreated(
            event_id=event_id_for(tenant_id, alert.id, version, alert, alert_json),
            tenant_id=tenant_id,
            alert=alert,
            ingested_date_time=now,
            occurred_date_time=now,
            status_changes=_status_changes_from_logs(alert.activity_logs, now),
        )
        created.keep_alert_json(alert_json)
        return created
    new_logs = new_activity_logs(previous, incoming)
    current = merge(previous, incoming)
    changes = changed_fields(previous, current)
    if not changes and not new_logs:
        return None
    status_field_changes = [c for c in changes if c.field in STATUS_FIELDS.values()]
    if api_actor is not None:
        actor, when = api_actor, now
        status_changes = [
            StatusChange(field=c.field, from_=c.from_, to=c.to, actor=actor, changed_date_time=when)
            for c in status_field_changes
        ]
    else:
        actor, when = _latest(new_logs, now) or (SYSTEM, now)
        status_changes = _status_changes_from_logs(new_logs, now)
        status_logged = bool(status_changes)
        for change in status_field_changes:
            if change.field == "status" and status_logged:
                continue  # the log entries tell this change, with its actor and time
            # A resolvedReason is set with the status change the latest entry records; with no
            # entry at all, the feed changed it itself: the system.
            status_changes.append(
                StatusChange(
                    field=change.field, from_=change.from_, to=change.to, actor=actor, changed_date_time=when
                )
            )
    current_json = current.model_dump_json()
    updated = AlertUpdated(
        event_id=event_id_for(tenant_id, incoming.id, version, current, current_json),
        tenant_id=tenant_id,
        alert_id=incoming.id,
        changes=changes,
        status_changes=status_changes,
        actor=actor,
        changed_date_time=when,
        alert=current,
        occurred_date_time=now,
    )
    updated.keep_alert_json(current_json)
    return updated


def patched(
    previous: Alert,
    *,
    status: AlertStatus | None,
    resolved_reason: ResolvedReason | None,
    fields: set[str],
    actor: Actor,
    now: datetime,
) -> Alert:
    """The alert as posted by ``PATCH {status, resolvedReason}``; a status change is logged.

    Only the fields in ``fields`` are applied (an absent field is unchanged, an explicit null
    clears ``resolvedReason``). Resolving records when and by whom; reopening clears both.
    """
    update: dict[str, Any] = {}
    if "resolved_reason" in fields:
        update["resolved_reason"] = resolved_reason
    if "status" in fields and status is not None and status != previous.status:
        update["status"] = status
        log = ActivityLog(
            status_from=previous.status,
            status_to=status,
            updated_by=actor.id or "system",
            updated_date_time=now,
        )
        update["activity_logs"] = [*previous.activity_logs, log]
        if status is AlertStatus.resolved:
            update["resolved_on_date_time"] = now
            update["resolved_by"] = actor.id
        elif previous.status is AlertStatus.resolved:
            update["resolved_on_date_time"] = None
            update["resolved_by"] = None
    return previous.model_copy(update=update)


def acted_on(previous: Alert, action: Action, actor: Actor, now: datetime) -> Alert:
    """``previous`` as a one-click or bulk ``action`` (acknowledge, resolve with a reason) by ``actor``
    at ``now`` changes it (``shared.action_links.change_for``: acknowledging never reopens an alert);
    ``previous`` itself when the action would change nothing."""
    status = previous.status.value if previous.status else AlertStatus.active.value  # (unknown: as new)
    reason = previous.resolved_reason.value if previous.resolved_reason else None
    change = change_for(action, status, reason)
    if change is None:
        return previous
    new_status, new_reason = change
    return patched(
        previous,
        status=AlertStatus(new_status),
        resolved_reason=ResolvedReason(new_reason) if new_reason else None,
        fields={"status", "resolved_reason"} if new_reason else {"status"},
        actor=actor,
        now=now,
    )
