"""The timelines and the triage are rebuilt from the topics (#11's rule, for #18): a scoring process on an
empty schema, in a consumer group of its own, ends with the entries and assignees the running one had,
late and redelivered events included."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import asyncpg

from shared.alerts import Alert
from shared.db import create_pool
from shared.events import Actor, ActorType, AlertAssigned, AlertCreated, AlertNoteAdded, Event, Topic
from shared.wire import utcnow
from tests.services.scoring.conftest import isolated_env, read_model_applied
from tests.services.scoring.read_model_events import alert_response_time, alert_sync_changed, delivery_changed
from tests.support.polling import eventually

H = timedelta(hours=1)
ANA = Actor(type=ActorType.user, id="ana@partner.example")
_SNAPSHOT = {
    "alert_timeline": "SELECT * FROM alert_timeline WHERE tenant_id = $1 ORDER BY alert_id, entry_key",
    "alert_triage": "SELECT * FROM alert_triage WHERE tenant_id = $1 ORDER BY alert_id",
}


async def snapshot(pool: asyncpg.Pool, tenant_id: str) -> dict[str, list[dict[str, Any]]]:
    def plain(row: asyncpg.Record) -> dict[str, Any]:
        return {k: json.loads(v) if k == "details" else v for k, v in row.items()}

    return {table: [plain(r) for r in await pool.fetch(sql, tenant_id)] for table, sql in _SNAPSHOT.items()}


async def test_a_scoring_service_on_an_empty_schema_rebuilds_the_timelines_and_triage_from_the_topics(
    scoring, send_event, tenant_id, db_pool, make_service, own_database, redis_client
):
    now = utcnow().replace(microsecond=0)
    delivery_id, note_id = uuid.uuid4(), uuid.uuid4()
    note = AlertNoteAdded(tenant_id=tenant_id, occurred_date_time=now - H, alert_id="a1", note_id=note_id,
                          text="Called the customer", author=ANA)
    events: list[tuple[Topic, Event]] = [
        (Topic.alerts, AlertCreated(tenant_id=tenant_id, occurred_date_time=now - 3 * H,
                                    ingested_date_time=now - 3 * H, alert=Alert(id="a1", severity="high"))),
        (Topic.deliveries, delivery_changed(tenant_id, delivery_id, now - 3 * H, occurred=now - 3 * H)),
        (Topic.deliveries, delivery_changed(tenant_id, delivery_id, now - 3 * H, state="delivered", attempts=1,
                                            occurred=now - 2 * H)),
        (Topic.deliveries, delivery_changed(tenant_id, delivery_id, now - 3 * H, occurred=now - 3 * H)),  # late
        (Topic.alert_triage, AlertAssigned(tenant_id=tenant_id, occurred_date_time=now - 2 * H, alert_id="a1",
                                           assignee="bo@partner.example", actor=ANA)),
        (Topic.alert_triage, note),
        (Topic.alert_triage, note.model_copy(update={"event_id": uuid.uuid4()})),  # the same note told again
        (Topic.alert_response_times, alert_response_time(tenant_id, "a1", now - 4 * H, responded_at=now - H / 2,
                                                         status="investigating", occurred=now - H / 2)),
        (Topic.alert_sync, alert_sync_changed(tenant_id, "a1", "synced", occurred=now - 3 * H)),
        (Topic.alert_sync, alert_sync_changed(tenant_id, "a1", "pending", attempts=1, occurred=now - H / 2)),
        (Topic.alert_sync, alert_sync_changed(tenant_id, "a1", "pending", attempts=2, occurred=now - H / 4)),
    ]
    for topic, event in events:
        await send_event(topic, event)
    for _, event in events:
        await read_model_applied(db_pool, event)
    before = await snapshot(db_pool, tenant_id)
    assert sorted(row["type"] for row in before["alert_timeline"]) == [
        "assigned", "noted", "notified", "received", "responded", "synced", "synced"]
    assert [(row["assignee"], row["notes_count"]) for row in before["alert_triage"]] == [("bo@partner.example", 1)]

    rebuilt = make_service("scoring", **isolated_env(DATABASE_URL=own_database))
    own = await create_pool(own_database, schema="scoring")
    await asyncio.to_thread(rebuilt.start)
    try:
        await eventually(lambda: snapshot(own, tenant_id), lambda state: state == before, within=90,
                         what="the rebuilt timeline and triage equal to the running service's")
    finally:
        await asyncio.to_thread(rebuilt.stop)
        await own.close()
        async for key in redis_client.scan_iter(match=f"{rebuilt.env['REDIS_KEY_PREFIX']}*", count=500):
            await redis_client.delete(key)
