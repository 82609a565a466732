"""``POST /deliveries/{id}/redeliver`` as a command: the write API knows the deliveries from the
notifier's ``delivery-changed`` events (its own small read model: newest wins, each event once), answers
404 and 409 from it, and puts a ``redelivery-requested`` command on ``delivery-commands`` for a dead one.
The read model rebuilds from the topic into an empty schema. Real PostgreSQL and Kafka, in-process API.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from shared.db import create_pool
from shared.events import DeliveryChanged, DeliveryView, Topic
from tests.conftest import AUTH
from tests.services.ingest.support import publish, running_ingest, topic_records
from tests.support.polling import eventually

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def changed(tenant_id: str, delivery_id: uuid.UUID, state: str, *, minutes: int, **fields) -> DeliveryChanged:
    at = T0 + timedelta(minutes=minutes)
    view = DeliveryView(id=delivery_id, alert_id="a1", subject="a1", channel="webhook:jira", kind="alert",
                        state=state, recipient="https://tickets.example/hook", attempts=3, created_date_time=T0,
                        last_attempt_date_time=at, **fields)
    return DeliveryChanged(tenant_id=tenant_id, occurred_date_time=at, delivery=view)


async def known_deliveries(pool: asyncpg.Pool, tenant_id: str) -> list[dict]:
    rows = await pool.fetch(
        """SELECT delivery_id, tenant_id, state, view::text AS view, changed_at FROM ingest.deliveries
           WHERE tenant_id = $1 ORDER BY delivery_id""", tenant_id)
    return [dict(row) for row in rows]


async def test_redeliver_answers_from_the_deliveries_it_heard_of_and_sends_the_command(
    test_env, tenant_id, db_pool
):
    dead, delivered = uuid.uuid4(), uuid.uuid4()
    dead_event = changed(tenant_id, dead, "dead", minutes=5, last_status_code=500, last_error="HTTP 500",
                         dead_lettered_date_time=T0 + timedelta(minutes=5))
    async with running_ingest() as client:
        await publish(test_env, Topic.deliveries, changed(tenant_id, dead, "pending", minutes=1), dead_event,
                      changed(tenant_id, delivered, "delivered", minutes=2,
                              delivered_date_time=T0 + timedelta(minutes=2)))
        await eventually(lambda: known_deliveries(db_pool, tenant_id), lambda rows: len(rows) == 2
                         and {r["state"] for r in rows} == {"dead", "delivered"}, what="the deliveries heard of")
        base = f"/v1/tenants/{tenant_id}/deliveries"

        unknown = await client.post(f"{base}/{uuid.uuid4()}/redeliver", headers=AUTH)
        assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
        elsewhere = await client.post(f"/v1/tenants/{tenant_id}-other/deliveries/{dead}/redeliver", headers=AUTH)
        assert elsewhere.status_code == 404  # another tenant's delivery is unknown here
        not_dead = await client.post(f"{base}/{delivered}/redeliver", headers=AUTH)
        assert not_dead.status_code == 409, not_dead.text
        assert not_dead.json()["state"] == "delivered"

        accepted = await client.post(f"{base}/{dead}/redeliver", headers=AUTH)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json() == dead_event.delivery.model_dump(mode="json")

        [command] = await topic_records(test_env, Topic.delivery_commands, f"{tenant_id}:", count=1)
    assert command["key"] == f"{tenant_id}:{dead}"
    assert command["headers"]["eventType"] == "redelivery-requested"
    assert {k: command["value"][k] for k in ("eventType", "tenantId", "deliveryId", "actor")} == {
        "eventType": "redelivery-requested", "tenantId": tenant_id, "deliveryId": str(dead),
        "actor": {"type": "user", "id": "operator"},
    }
    # The write API changed nothing of the delivery itself: the notifier will, and say so.
    assert len(await topic_records(test_env, Topic.delivery_commands, f"{tenant_id}:")) == 1


async def test_the_newest_change_wins_and_each_event_applies_once(test_env, tenant_id, db_pool):
    delivery = uuid.uuid4()
    newest = changed(tenant_id, delivery, "dead", minutes=9)
    async with running_ingest():
        # Older changes arriving after the newest (a republished record) and the newest twice.
        await publish(test_env, Topic.deliveries, changed(tenant_id, delivery, "pending", minutes=1), newest,
                      changed(tenant_id, delivery, "pending", minutes=3), newest)
        await eventually(
            lambda: db_pool.fetchval("SELECT count(*) FROM ingest.processed_events WHERE event_id = $1",
                                     newest.event_id), lambda n: n == 1, what="the newest change applied")
        marker = changed(tenant_id, uuid.uuid4(), "delivered", minutes=0)
        await publish(test_env, Topic.deliveries, marker)  # once this is in, everything before it is
        await eventually(lambda: known_deliveries(db_pool, tenant_id), lambda rows: len(rows) == 2,
                         what="the marker delivery")
    [row] = [r for r in await known_deliveries(db_pool, tenant_id) if r["delivery_id"] == delivery]
    assert row["state"] == "dead" and row["changed_at"] == newest.occurred_date_time
    assert DeliveryView.model_validate_json(row["view"]) == newest.delivery
    # A delivery that is not dead is kept by its state alone (a redelivery of it is a 409 that says it).
    [other] = [r for r in await known_deliveries(db_pool, tenant_id) if r["delivery_id"] == marker.delivery.id]
    assert other["state"] == "delivered" and other["view"] is None


async def test_the_deliveries_read_model_rebuilds_from_the_topic(
    test_env, tenant_id, db_pool, own_database, monkeypatch
):
    deliveries = [uuid.uuid4() for _ in range(4)]
    async with running_ingest():
        await publish(test_env, Topic.deliveries, *(
            changed(tenant_id, d, state, minutes=m)
            for m, (d, state) in enumerate([(deliveries[0], "pending"), (deliveries[1], "dead"),
                                            (deliveries[0], "delivered"), (deliveries[2], "skipped"),
                                            (deliveries[3], "pending"), (deliveries[3], "dead")])))
        before = await eventually(
            lambda: known_deliveries(db_pool, tenant_id),
            lambda rows: [r["state"] for r in rows] == [s for _, s in sorted(
                zip(deliveries, ["delivered", "dead", "skipped", "dead"], strict=True))],
            what="the deliveries applied")

    # An empty schema and a consumer of its own reading the topic from its beginning.
    monkeypatch.setenv("DATABASE_URL", own_database)
    monkeypatch.setenv("CONSUMER_GROUP", f"{test_env['KAFKA_TOPIC_PREFIX']}ingest-rebuild-{uuid.uuid4().hex[:6]}")
    rebuilt_pool = await create_pool(own_database, schema="ingest")
    try:
        assert await known_deliveries(rebuilt_pool, tenant_id) == []
        async with running_ingest():
            rebuilt = await eventually(lambda: known_deliveries(rebuilt_pool, tenant_id),
                                       lambda rows: rows == before, what="the rebuilt deliveries, as they were")
    finally:
        await rebuilt_pool.close()
    assert rebuilt == before
