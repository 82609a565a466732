"""The read model's batches of ``deliveries`` and ``alerts`` events (#15), on the real PostgreSQL: one
transaction per batch, the same rows as applying its events one after the other. An id twice in a batch
counts once, a delivery's changes out of order leave its newest view (ties: the later record), an
offboarded tenant's events leave nothing (their ids claimed all the same), and the batch consumed again
(a crash before its offsets were committed) changes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.scoring import read_model
from shared.alerts import Alert
from shared.events import Actor, ActorType, AlertCreated, AlertUpdated, FieldChange
from tests.services.scoring.read_model_events import delivery_changed
from tests.services.scoring.test_timeline_store import entries

T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
S = timedelta(seconds=1)
ANA = Actor(type=ActorType.user, id="ana@partner.example")


async def offboard(pool, tenant_id: str) -> None:
    await pool.execute("INSERT INTO offboarded_tenants (tenant_id, offboarded_at) VALUES ($1, now())", tenant_id)


async def claimed(pool, *events) -> list[int]:
    """How many times each event's id is in the read model's ledger."""
    return [await pool.fetchval("SELECT count(*) FROM processed_events WHERE consumer = $1 AND event_id = $2",
                                read_model.CONSUMER, e.event_id) for e in events]


async def test_a_batch_of_deliveries_keeps_each_ones_newest_view_once(db_pool, tenant_id):
    gone = f"{tenant_id}-gone"
    await offboard(db_pool, gone)
    d1, d2, d3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    pending = delivery_changed(tenant_id, d1, T0, occurred=T0)
    delivered = delivery_changed(tenant_id, d1, T0, state="delivered", attempts=1, delivered_date_time=T0 + 5 * S,
                                 occurred=T0 + 5 * S)
    failing = delivery_changed(tenant_id, d1, T0, attempts=1, last_error="421 try later", occurred=T0 + S)
    # Two changes of one instant: the later record is the newer.
    tie_first = delivery_changed(tenant_id, d2, T0, alert_id="a2", occurred=T0 + S)
    tie_later = delivery_changed(tenant_id, d2, T0, alert_id="a2", state="dead", attempts=5, occurred=T0 + S)
    spending = delivery_changed(tenant_id, d3, T0, alert_id=None, kind="spending", occurred=T0)  # on no timeline
    of_gone = delivery_changed(gone, uuid.uuid4(), T0, occurred=T0)
    batch = [pending, delivered, failing, pending, tie_first, of_gone, tie_later, spending]

    assert await read_model.apply_deliveries(db_pool, batch) == [pending, delivered, failing, tie_first, tie_later,
                                                                 spending]
    rows = {r["delivery_id"]: r for r in await db_pool.fetch(
        "SELECT delivery_id, state, changed_at, event_id FROM deliveries WHERE tenant_id = $1", tenant_id)}
    assert {d: (r["state"], r["event_id"]) for d, r in rows.items()} == {
        d1: ("delivered", delivered.event_id), d2: ("dead", tie_later.event_id), d3: ("pending", spending.event_id)}
    assert await db_pool.fetchval("SELECT count(*) FROM deliveries WHERE tenant_id = $1", gone) == 0
    timeline = {alert: [(e["type"], e["details"]["state"]) for e in await entries(db_pool, tenant_id, alert)]
                for alert in ("a1", "a2")}
    assert timeline == {"a1": [("notified", "delivered")], "a2": [("notified", "dead")]}
    assert await db_pool.fetchval("SELECT count(*) FROM alert_timeline WHERE tenant_id = ANY($1::text[])",
                                  [tenant_id, gone]) == 2
    assert await claimed(db_pool, *batch) == [1] * len(batch)  # the offboarded tenant's too

    # The batch consumed again: nothing applied, nothing changed.
    before = await db_pool.fetch("SELECT * FROM deliveries WHERE tenant_id = $1 ORDER BY delivery_id", tenant_id)
    assert await read_model.apply_deliveries(db_pool, batch) == []
    assert await db_pool.fetch("SELECT * FROM deliveries WHERE tenant_id = $1 ORDER BY delivery_id",
                               tenant_id) == before
    # An older change in a later batch (a new id): applied, and the newer view stays.
    older = failing.model_copy(update={"event_id": uuid.uuid4()})
    assert await read_model.apply_deliveries(db_pool, [older]) == [older]
    assert await db_pool.fetchval("SELECT state FROM deliveries WHERE tenant_id = $1 AND delivery_id = $2",
                                  tenant_id, d1) == "delivered"
    assert [e["details"]["state"] for e in await entries(db_pool, tenant_id, "a1")] == ["delivered"]
    assert await read_model.apply_deliveries(db_pool, []) == []


async def test_a_batch_of_alert_events_records_each_entry_once(db_pool, tenant_id):
    gone = f"{tenant_id}-gone"
    await offboard(db_pool, gone)

    def created(tenant: str, alert_id: str, severity: str = "high") -> AlertCreated:
        return AlertCreated(tenant_id=tenant, occurred_date_time=T0, ingested_date_time=T0,
                            alert=Alert(id=alert_id, severity=severity, detected_date_time=T0 - S))

    def updated(alert_id: str, at: datetime, to: str) -> AlertUpdated:
        return AlertUpdated(tenant_id=tenant_id, occurred_date_time=at, alert_id=alert_id, actor=ANA,
                            changed_date_time=at, changes=[FieldChange(field="status", from_="active", to=to)],
                            alert=Alert(id=alert_id, status=to))

    a1 = created(tenant_id, "a1", "low")
    a1_again = created(tenant_id, "a1", "high")  # told again under another id, at the same instant: the later
    investigating = updated("a1", T0 + S, "investigating")
    resolved = updated("a1", T0 + 2 * S, "resolved")
    a2 = created(tenant_id, "a2")
    of_gone = created(gone, "a1")
    batch = [a1, investigating, a1, of_gone, a1_again, resolved, investigating, a2]

    assert await read_model.apply_alert_events(db_pool, batch) == [a1, investigating, a1_again, resolved, a2]
    a1_entries = await entries(db_pool, tenant_id, "a1")
    assert [(e["type"], e["details"].get("severity") or e["details"]["changes"][0]["to"]) for e in a1_entries] == [
        ("updated", "resolved"), ("updated", "investigating"), ("received", "high")]
    assert [e["type"] for e in await entries(db_pool, tenant_id, "a2")] == ["received"]
    assert await entries(db_pool, gone, "a1") == []
    assert await claimed(db_pool, *batch) == [1] * len(batch)

    # The batch consumed again: nothing applied, nothing added.
    assert await read_model.apply_alert_events(db_pool, batch) == []
    assert await entries(db_pool, tenant_id, "a1") == a1_entries
    assert await db_pool.fetchval("SELECT count(*) FROM alert_timeline WHERE tenant_id = $1", tenant_id) == 4
