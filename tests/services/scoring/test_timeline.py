"""An alert's timeline entries, each made from one event the read API consumes, with no I/O
(``services/scoring/timeline.py``): which entry, when, by whom, what it says, and what makes two
events the same entry (a redelivery, a delivery's next state, a response told again)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.scoring import timeline
from services.scoring.timeline import EntryType
from shared.alerts import Alert
from shared.events import (
    Actor,
    ActorType,
    AlertAssigned,
    AlertCreated,
    AlertNoteAdded,
    AlertUpdated,
    FieldChange,
    StatusChange,
)
from tests.services.scoring.read_model_events import alert_response_time, alert_sync_changed, delivery_changed

T = "tenant-1"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
ANA = Actor(type=ActorType.user, id="ana@partner.example")
SYSTEM = Actor(type=ActorType.system)


def created(alert_id: str = "a1", **alert) -> AlertCreated:
    return AlertCreated(tenant_id=T, occurred_date_time=NOW, ingested_date_time=NOW,
                        alert=Alert(id=alert_id, display_name="Impossible travel", severity="high",
                                    detected_date_time=NOW - 2 * H, customer_tenant_id="c1", **alert))


def acknowledged(actor: Actor = ANA, at: datetime = NOW + H) -> AlertUpdated:
    return AlertUpdated(
        tenant_id=T, occurred_date_time=at, alert_id="a1", actor=actor, changed_date_time=at,
        changes=[FieldChange(field="status", from_="active", to="investigating")],
        status_changes=[StatusChange(field="status", from_="active", to="investigating", actor=actor,
                                     changed_date_time=at)],
        alert=Alert(id="a1", status="investigating"))


def test_a_new_alert_is_received_when_this_system_first_saw_it():
    entry = timeline.received(created())
    assert (entry.tenant_id, entry.alert_id, entry.type, entry.occurred_at, entry.actor) == (
        T, "a1", EntryType.received, NOW, None)
    assert entry.details == {"displayName": "Impossible travel", "severity": "high", "status": "active",
                             "detectedDateTime": "2026-11-27T10:00:00Z", "customerTenantId": "c1", "isTest": False}
    # An alert is received once: any copy of its alert-created is the same entry.
    assert timeline.received(created()).key == entry.key


def test_an_update_says_what_changed_and_who_changed_it():
    event = acknowledged()
    entry = timeline.updated(event)
    assert (entry.type, entry.occurred_at, entry.actor) == (EntryType.updated, NOW + H, "ana@partner.example")
    assert entry.details == {"changes": [{"field": "status", "from": "active", "to": "investigating"}]}
    # Each update is its own entry; a copy of the same event (same id) is the same one.
    assert timeline.updated(event).key == entry.key
    assert timeline.updated(acknowledged()).key != entry.key


def test_a_change_by_the_system_names_the_system():
    assert timeline.updated(acknowledged(SYSTEM)).actor == "system"


def test_each_delivery_of_an_alert_is_one_entry_of_its_kind_whatever_its_state():
    delivery_id = uuid.uuid4()
    pending = delivery_changed(T, delivery_id, NOW, channel="email:contact", kind="alert",
                               recipient="soc@partner.example", occurred=NOW)
    delivered = delivery_changed(T, delivery_id, NOW, channel="email:contact", kind="alert",
                                 recipient="soc@partner.example", state="delivered", attempts=1,
                                 delivered_date_time=NOW + timedelta(seconds=2), occurred=NOW + timedelta(seconds=2))
    first, last = timeline.delivery(pending), timeline.delivery(delivered)
    assert first.key == last.key  # one entry, updated in place to the latest state
    assert (last.type, last.occurred_at, last.actor, last.as_of) == (
        EntryType.notified, NOW, None, NOW + timedelta(seconds=2))
    assert last.details == {
        "deliveryId": str(delivery_id), "channel": "email:contact", "recipient": "soc@partner.example",
        "state": "delivered", "attempts": 1, "redeliveries": 0, "lastStatusCode": None, "lastError": None,
        "deliveredDateTime": "2026-11-27T12:00:02Z", "deadLetteredDateTime": None, "digestId": None}
    assert first.details["state"] == "pending"


def test_a_reminder_and_an_escalation_are_their_own_kinds_and_an_outcome_says_why():
    reminder = timeline.delivery(delivery_changed(T, uuid.uuid4(), NOW, kind="reminder", state="dead",
                                                  last_status_code=500, last_error="500 from the receiver"))
    escalation = timeline.delivery(delivery_changed(T, uuid.uuid4(), NOW, kind="escalation", state="skipped"))
    digest = uuid.uuid4()
    grouped = timeline.delivery(delivery_changed(T, uuid.uuid4(), NOW, kind="alert", state="grouped",
                                                 digest_id=digest))
    assert (reminder.type, reminder.details["state"], reminder.details["lastError"]) == (
        EntryType.reminded, "dead", "500 from the receiver")
    assert (escalation.type, escalation.details["state"]) == (EntryType.escalated, "skipped")
    assert (grouped.type, grouped.details["state"], grouped.details["digestId"]) == (
        EntryType.notified, "grouped", str(digest))


def test_a_delivery_about_no_single_alert_is_on_no_timeline():
    for kind, alert_id in (("spending", None), ("warning", None), ("digest", None), ("alert", None)):
        assert timeline.delivery(delivery_changed(T, uuid.uuid4(), NOW, kind=kind, alert_id=alert_id)) is None


def test_an_assignment_and_an_unassignment_name_both_people():
    assigned = AlertAssigned(tenant_id=T, occurred_date_time=NOW, alert_id="a1", assignee="bo@partner.example",
                             previous_assignee="ana@partner.example", actor=ANA)
    unassigned = AlertAssigned(tenant_id=T, occurred_date_time=NOW + H, alert_id="a1", assignee=None,
                               previous_assignee="bo@partner.example", actor=ANA)
    first, second = timeline.assignment(assigned), timeline.assignment(unassigned)
    assert (first.type, first.occurred_at, first.actor, first.details) == (
        EntryType.assigned, NOW, "ana@partner.example",
        {"assignee": "bo@partner.example", "previousAssignee": "ana@partner.example"})
    assert (second.type, second.details) == (
        EntryType.unassigned, {"assignee": None, "previousAssignee": "bo@partner.example"})
    assert first.key != second.key


def test_a_note_is_one_entry_per_note_with_its_text_and_author():
    note_id = uuid.uuid4()
    event = AlertNoteAdded(tenant_id=T, occurred_date_time=NOW, alert_id="a1", note_id=note_id,
                           text="Called the customer.\nWaiting.", author=ANA)
    entry = timeline.note(event)
    assert (entry.type, entry.occurred_at, entry.actor, entry.details) == (
        EntryType.noted, NOW, "ana@partner.example", {"noteId": str(note_id), "text": "Called the customer.\nWaiting."})
    # The same note published again under another event id is still one entry.
    again = event.model_copy(update={"event_id": uuid.uuid4()})
    assert again.event_id != event.event_id and timeline.note(again).key == entry.key


def test_a_response_is_one_entry_at_its_time_by_whom_with_the_latency():
    answered = alert_response_time(T, "a1", NOW - 2 * H, responded_at=NOW, status="investigating", occurred=NOW)
    entry = timeline.response(answered)
    assert (entry.type, entry.occurred_at, entry.actor, entry.details) == (
        EntryType.responded, NOW, "ana@partner.example", {"latencyHours": 2.0})
    # Every later state of the alert tells the same first response: the same entry.
    resolved = alert_response_time(T, "a1", NOW - 2 * H, responded_at=NOW, status="resolved", occurred=NOW + H)
    assert timeline.response(resolved).key == entry.key
    assert timeline.response(alert_response_time(T, "a1", NOW - 2 * H)) is None  # not answered yet


def test_a_sync_state_is_an_entry_only_when_it_changes():
    pending = alert_sync_changed(T, "a1", "pending", pending_status="investigating", attempts=1, occurred=NOW)
    entry = timeline.sync(pending, previous=None)
    assert (entry.type, entry.occurred_at, entry.actor) == (EntryType.synced, NOW, None)
    assert entry.details == {"state": "pending", "lastSyncedDateTime": None, "pendingStatus": "investigating",
                             "attempts": 1, "lastError": None}
    # Another attempt while still pending: no change of state, no entry.
    retried = alert_sync_changed(T, "a1", "pending", attempts=2, occurred=NOW + H)
    assert timeline.sync(retried, previous=("pending", NOW)) is None
    synced = alert_sync_changed(T, "a1", "synced", last_synced_date_time=NOW + 2 * H, occurred=NOW + 2 * H)
    assert timeline.sync(synced, previous=("pending", NOW + H)).details["state"] == "synced"
    # An older state arriving late is no change of the current one.
    assert timeline.sync(alert_sync_changed(T, "a1", "failed", occurred=NOW), previous=("synced", NOW + 2 * H)) is None


def test_at_one_instant_entries_keep_the_order_things_happen_in():
    # An acknowledgement is the update and the response at the same instant: the update comes first.
    update = timeline.updated(acknowledged(at=NOW))
    response = timeline.response(
        alert_response_time(T, "a1", NOW - 2 * H, responded_at=NOW, status="investigating", occurred=NOW))
    received = timeline.received(created())
    assert received.occurred_at == update.occurred_at == response.occurred_at
    assert received.tie_order < update.tie_order < response.tie_order


def test_the_wire_form_of_an_entry():
    entry = timeline.updated(acknowledged())
    assert timeline.wire(entry.type, entry.occurred_at, entry.actor, entry.details) == {
        "type": "updated", "occurredDateTime": "2026-11-27T13:00:00Z", "actor": "ana@partner.example",
        "details": {"changes": [{"field": "status", "from": "active", "to": "investigating"}]}}
