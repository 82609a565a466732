"""An alert's timeline in PostgreSQL (``read_model`` applies each event and its entry in one transaction,
``timeline_store`` keeps and pages them): a redelivered event adds nothing, a delivery is one entry
updated in place, a response is told once, a sync state only when it changes, newest first and paged;
the assignee and the count of notes kept beside the alert."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.scoring import read_model, timeline_store
from shared.alerts import Alert
from shared.events import (
    Actor,
    ActorType,
    AlertAssigned,
    AlertCreated,
    AlertNoteAdded,
    AlertUpdated,
    FieldChange,
)
from tests.services.scoring.read_model_events import alert_response_time, alert_sync_changed, delivery_changed

T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
S = timedelta(seconds=1)
H = timedelta(hours=1)
ANA = Actor(type=ActorType.user, id="ana@partner.example")


def created(tenant_id: str, alert_id: str = "a1", at: datetime = T0) -> AlertCreated:
    return AlertCreated(tenant_id=tenant_id, occurred_date_time=at, ingested_date_time=at,
                        alert=Alert(id=alert_id, severity="high", detected_date_time=at - H))


def acknowledged(tenant_id: str, at: datetime) -> AlertUpdated:
    return AlertUpdated(tenant_id=tenant_id, occurred_date_time=at, alert_id="a1", actor=ANA, changed_date_time=at,
                        changes=[FieldChange(field="status", from_="active", to="investigating")],
                        alert=Alert(id="a1", status="investigating"))


def assigned(tenant_id: str, assignee: str | None, previous: str | None, at: datetime) -> AlertAssigned:
    return AlertAssigned(tenant_id=tenant_id, occurred_date_time=at, alert_id="a1", assignee=assignee,
                         previous_assignee=previous, actor=ANA)


def noted(tenant_id: str, text: str, at: datetime, note_id: uuid.UUID | None = None) -> AlertNoteAdded:
    return AlertNoteAdded(tenant_id=tenant_id, occurred_date_time=at, alert_id="a1", note_id=note_id or uuid.uuid4(),
                          text=text, author=ANA)


async def entries(pool, tenant_id: str, alert_id: str = "a1") -> list[dict]:
    """The whole timeline, newest first, as the route shows it."""
    return [timeline_store.wire_of(row) for row in await timeline_store.page(pool, tenant_id, alert_id, top=1000)]


async def test_a_redelivered_event_adds_nothing_and_a_note_told_twice_is_one_note(db_pool, tenant_id):
    first = created(tenant_id)
    note = noted(tenant_id, "Called the customer", T0 + H)
    assert await read_model.apply_alert_events(db_pool, [first])
    assert await read_model.apply_alert_note_added(db_pool, note)
    assert not await read_model.apply_alert_events(db_pool, [first])
    assert not await read_model.apply_alert_note_added(db_pool, note)
    # The owner publishing the same note again (a new event id, the same note id): still one note.
    assert await read_model.apply_alert_note_added(db_pool, note.model_copy(update={"event_id": uuid.uuid4()}))
    assert [(e["type"], e["actor"]) for e in await entries(db_pool, tenant_id)] == [
        ("noted", "ana@partner.example"), ("received", None)]
    row = await read_model.get_triage(db_pool, tenant_id, "a1")
    assert (row["assignee"], row["notes_count"]) == (None, 1)


async def test_a_delivery_is_one_entry_updated_in_place_to_its_newest_state(db_pool, tenant_id):
    delivery_id = uuid.uuid4()
    pending = delivery_changed(tenant_id, delivery_id, T0, channel="email:contact", occurred=T0)
    failing = delivery_changed(tenant_id, delivery_id, T0, channel="email:contact", attempts=1,
                               last_error="421 try later", occurred=T0 + S)
    delivered = delivery_changed(tenant_id, delivery_id, T0, channel="email:contact", state="delivered", attempts=2,
                                 delivered_date_time=T0 + 5 * S, occurred=T0 + 5 * S)
    for event in (pending, delivered, failing):  # the older state arrives last
        assert await read_model.apply_deliveries(db_pool, [event])
    [entry] = await entries(db_pool, tenant_id)
    assert (entry["type"], entry["occurredDateTime"]) == ("notified", "2026-11-27T06:00:00Z")
    assert (entry["details"]["state"], entry["details"]["attempts"], entry["details"]["lastError"]) == (
        "delivered", 2, None)


async def test_a_response_is_told_once_and_a_sync_state_only_when_it_changes(db_pool, tenant_id):
    clock = T0 - 2 * H
    for event in (
        alert_response_time(tenant_id, "a1", clock, occurred=T0),
        alert_response_time(tenant_id, "a1", clock, responded_at=T0 + H, status="investigating", occurred=T0 + H),
        alert_response_time(tenant_id, "a1", clock, responded_at=T0 + H, status="resolved", occurred=T0 + 2 * H),
        alert_sync_changed(tenant_id, "a1", "synced", last_synced_date_time=T0, occurred=T0),
        alert_sync_changed(tenant_id, "a1", "pending", pending_status="investigating", attempts=1,
                           occurred=T0 + H),
        alert_sync_changed(tenant_id, "a1", "pending", pending_status="investigating", attempts=2,
                           occurred=T0 + H + 10 * S),
        alert_sync_changed(tenant_id, "a1", "synced", last_synced_date_time=T0 + H + 20 * S,
                           occurred=T0 + H + 20 * S),
        alert_sync_changed(tenant_id, "a1", "failed", occurred=T0 + 30 * S),  # late and older: no change
    ):
        applier = (read_model.apply_alert_sync if event.event_type == "alert-sync-changed"
                   else lambda pool, e: read_model.apply_alert_response_times(pool, [e]))
        assert await applier(db_pool, event)
    timeline = await entries(db_pool, tenant_id)
    assert [(e["type"], e["occurredDateTime"], e["details"].get("state")) for e in timeline] == [
        ("synced", "2026-11-27T07:00:20Z", "synced"),
        ("synced", "2026-11-27T07:00:00Z", "pending"),
        ("responded", "2026-11-27T07:00:00Z", None),
        ("synced", "2026-11-27T06:00:00Z", "synced"),
    ]
    assert (timeline[2]["actor"], timeline[2]["details"]) == ("ana@partner.example", {"latencyHours": 3.0})


async def test_the_assignee_is_the_newest_assignment_and_each_one_is_on_the_timeline(db_pool, tenant_id):
    events = [
        assigned(tenant_id, "bo@partner.example", None, T0 + H),
        assigned(tenant_id, None, "bo@partner.example", T0 + 3 * H),
        assigned(tenant_id, "cy@partner.example", "bo@partner.example", T0 + 2 * H),  # late and older
    ]
    for event in events:
        assert await read_model.apply_alert_assigned(db_pool, event)
    row = await read_model.get_triage(db_pool, tenant_id, "a1")
    assert (row["assignee"], row["notes_count"]) == (None, 0)  # the newest: unassigned
    assert [(e["type"], e["details"]["assignee"]) for e in await entries(db_pool, tenant_id)] == [
        ("unassigned", None), ("assigned", "cy@partner.example"), ("assigned", "bo@partner.example")]


async def test_the_timeline_pages_newest_first_in_the_order_things_happened(db_pool, tenant_id):
    acknowledged_at = T0 + 2 * H
    await read_model.apply_alert_events(db_pool, [created(tenant_id)])
    await read_model.apply_deliveries(db_pool, [delivery_changed(tenant_id, uuid.uuid4(), T0 + S, occurred=T0 + S)])
    await read_model.apply_alert_assigned(db_pool, assigned(tenant_id, "bo@partner.example", None, T0 + H))
    for minute in range(1, 4):
        await read_model.apply_alert_note_added(db_pool, noted(tenant_id, f"note {minute}", T0 + H + minute * 60 * S))
    # The response and the update that made it, at one instant, told in the other order.
    await read_model.apply_alert_response_times(db_pool, [alert_response_time(
        tenant_id, "a1", T0 - H, responded_at=acknowledged_at, status="investigating", occurred=acknowledged_at)])
    await read_model.apply_alert_events(db_pool, [acknowledged(tenant_id, acknowledged_at)])
    # Another alert's entries are not this one's.
    await read_model.apply_alert_events(db_pool, [created(tenant_id, "a2", T0 + 3 * H)])

    whole = await entries(db_pool, tenant_id)
    assert [e["type"] for e in whole] == [
        "responded", "updated", "noted", "noted", "noted", "assigned", "notified", "received"]
    assert [e["details"]["text"] for e in whole if e["type"] == "noted"] == ["note 3", "note 2", "note 1"]

    # Page by page (three at a time), each page starting after the last entry of the one before.
    pages, after = [], None
    while True:
        rows = await timeline_store.page(db_pool, tenant_id, "a1", top=3, after=after)
        if not rows:
            break
        pages.append([timeline_store.wire_of(row) for row in rows])
        after = timeline_store.position(rows[-1])
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [e for p in pages for e in p] == whole
    # An offset from a position, as the route's skip.
    skipped = await timeline_store.page(db_pool, tenant_id, "a1", top=2, skip=1, after=timeline_store.position(
        (await timeline_store.page(db_pool, tenant_id, "a1", top=1))[0]))
    assert [timeline_store.wire_of(r) for r in skipped] == whole[2:4]


async def test_an_alert_is_known_by_its_response_time_or_by_any_entry(db_pool, tenant_id):
    assert not await timeline_store.alert_known(db_pool, tenant_id, "a1")
    await read_model.apply_alert_events(db_pool, [created(tenant_id)])
    assert await timeline_store.alert_known(db_pool, tenant_id, "a1")
    await read_model.apply_alert_response_times(db_pool, [alert_response_time(tenant_id, "a3", T0)])
    assert await timeline_store.alert_known(db_pool, tenant_id, "a3")
    assert not await timeline_store.alert_known(db_pool, f"{tenant_id}-other", "a1")
