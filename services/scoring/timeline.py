"""An alert's timeline (#18), pure: each event the read API consumes becomes at most one entry.

An entry has a ``type``, when it happened (``occurred_at``), who did it (``actor``: a person's id or
e-mail, ``system``, or None when nobody acted, e.g. a delivery) and ``details``, the event's own facts.
Its ``key`` says which events are the same entry: a copy of an event, every state of one delivery,
every later state of an alert that tells the same first response. Where one key meets several events,
the entry holds the newest (``as_of``, the event's own time): an older one arriving late changes nothing.
No entry is made by reading another service's tables: only from the events (``timeline_store.py`` keeps
them, ``read_model.py`` applies each event and its entry in one transaction).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import Field

from shared.events import (
    Actor,
    ActorType,
    AlertAssigned,
    AlertCreated,
    AlertNoteAdded,
    AlertResponseTimeChanged,
    AlertSyncChanged,
    AlertUpdated,
    DeliveryChanged,
)
from shared.response_time import hours
from shared.wire import UtcDateTime, WireModel


class EntryType(StrEnum):
    received = "received"  # alert-created: this system first saw the alert
    updated = "updated"  # alert-updated: what changed, by whom
    notified = "notified"  # a delivery of kind alert
    reminded = "reminded"  # a delivery of kind reminder
    escalated = "escalated"  # a delivery of kind escalation
    assigned = "assigned"  # alert-assigned to a person
    unassigned = "unassigned"  # alert-assigned to nobody
    noted = "noted"  # alert-note-added
    responded = "responded"  # the first partner response, from alert-response-time-changed
    synced = "synced"  # a change of the alert's sync state with Partner Center, from alert-sync-changed


# A delivery's kind -> its entry. Spending notifications, at-risk warnings and storm digests are
# about no single alert (a digest's alerts each have their own delivery, state grouped).
DELIVERY_TYPES = {"alert": EntryType.notified, "reminder": EntryType.reminded, "escalation": EntryType.escalated}

# Entries of one instant, in the order things happen: an acknowledgement is an update and the first
# response at the same time (the response is that update); its write-back to Partner Center follows.
TIE_ORDER = {
    EntryType.received: 0,
    EntryType.updated: 1,
    EntryType.responded: 2,
    EntryType.synced: 3,
    EntryType.notified: 4,
    EntryType.reminded: 5,
    EntryType.escalated: 6,
    EntryType.assigned: 7,
    EntryType.unassigned: 7,
    EntryType.noted: 8,
}


@dataclass(frozen=True)
class Entry:
    tenant_id: str
    alert_id: str
    key: str
    type: EntryType
    occurred_at: datetime
    actor: str | None
    details: dict[str, Any]
    event_id: UUID
    as_of: datetime  # the event's occurredDateTime: an entry only moves to a newer event of its key

    @property
    def tie_order(self) -> int:
        return TIE_ORDER[self.type]


class TimelineEntry(WireModel):
    """One entry of an alert's timeline, as ``GET /alerts/{alertId}/timeline`` lists it."""

    type: EntryType = Field(description="received | updated | notified | reminded | escalated | assigned | "
                            "unassigned | noted | responded | synced")
    occurred_date_time: UtcDateTime = Field(description="When it happened (UTC).")
    actor: str | None = Field(
        description="Who did it: a person, `system`; null when nobody acted (a delivery, a sync).")
    details: dict[str, Any] = Field(description="What the event told, by type (docs/scoring.md, Timeline).")


def wire(type_: str, occurred_at: datetime, actor: str | None, details: dict[str, Any]) -> dict[str, Any]:
    return TimelineEntry(type=type_, occurred_date_time=occurred_at, actor=actor, details=details).model_dump(
        mode="json")


def actor_name(actor: Actor) -> str:
    """A person's id, or ``system`` (an actor of type system, or a user naming nobody)."""
    return actor.id if actor.type is ActorType.user and actor.id else "system"


def received(event: AlertCreated) -> Entry:
    alert = event.alert
    details = alert.model_dump(mode="json", include={
        "display_name", "severity", "status", "detected_date_time", "customer_tenant_id", "is_test"})
    return Entry(event.tenant_id, alert.id, "received", EntryType.received, event.ingested_date_time, None,
                 details, event.event_id, event.occurred_date_time)


def updated(event: AlertUpdated) -> Entry:
    changes = [change.model_dump(mode="json") for change in event.changes]
    return Entry(event.tenant_id, event.alert_id, f"updated:{event.event_id}", EntryType.updated,
                 event.changed_date_time, actor_name(event.actor), {"changes": changes}, event.event_id,
                 event.occurred_date_time)


def delivery(event: DeliveryChanged) -> Entry | None:
    """The delivery's entry at its creation, holding its latest state; None if it is about no one alert."""
    view = event.delivery
    type_ = DELIVERY_TYPES.get(view.kind)
    if type_ is None or view.alert_id is None:
        return None
    details = view.model_dump(mode="json", include={
        "channel", "recipient", "state", "attempts", "redeliveries", "last_status_code", "last_error",
        "delivered_date_time", "dead_lettered_date_time", "digest_id"})
    return Entry(event.tenant_id, view.alert_id, f"delivery:{view.id}", type_, view.created_date_time, None,
                 {"deliveryId": str(view.id), **details}, event.event_id, event.occurred_date_time)


def assignment(event: AlertAssigned) -> Entry:
    type_ = EntryType.assigned if event.assignee is not None else EntryType.unassigned
    return Entry(event.tenant_id, event.alert_id, f"assignment:{event.event_id}", type_, event.occurred_date_time,
                 actor_name(event.actor), {"assignee": event.assignee, "previousAssignee": event.previous_assignee},
                 event.event_id, event.occurred_date_time)


def note(event: AlertNoteAdded) -> Entry:
    return Entry(event.tenant_id, event.alert_id, f"note:{event.note_id}", EntryType.noted, event.occurred_date_time,
                 actor_name(event.author), {"noteId": str(event.note_id), "text": event.text}, event.event_id,
                 event.occurred_date_time)


def response(event: AlertResponseTimeChanged) -> Entry | None:
    """The alert's first partner response, once (every later state tells it again); None while unanswered."""
    if event.responded_date_time is None or event.latency_us is None:
        return None
    return Entry(event.tenant_id, event.alert_id, "responded", EntryType.responded, event.responded_date_time,
                 event.responded_by, {"latencyHours": hours(event.latency_us)}, event.event_id,
                 event.occurred_date_time)


def sync(event: AlertSyncChanged, previous: tuple[str, datetime] | None) -> Entry | None:
    """An entry if the event changes the alert's sync state: ``previous`` is the state held and the time
    of the event that brought it (None: the first state). A newer event of the same state (another
    write-back attempt, another poll) and an older event arriving late are no change."""
    state = event.sync.state.value
    if previous is not None:
        held_state, held_as_of = previous
        if event.occurred_date_time < held_as_of or state == held_state:
            return None
    return Entry(event.tenant_id, event.alert_id, f"sync:{event.event_id}", EntryType.synced,
                 event.occurred_date_time, None, event.sync.model_dump(mode="json"), event.event_id,
                 event.occurred_date_time)
