"""The scoring service rebuilds its own state from the topics it reads: a process on an empty schema, in
a consumer group of its own (so from the beginning of every topic), ends with the read model and the
requirement statuses the running service had (issue #11: each consumer rebuilds from the topics)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from shared.db import create_pool
from shared.events import Topic
from shared.wire import utcnow
from tests.services.scoring.conftest import (
    event_applied,
    isolated_env,
    read_model_applied,
    status_event,
    wait_for_score,
)
from tests.services.scoring.read_model_events import (
    alert_response_time,
    alert_sync_changed,
    customer_mfa,
    delivery_changed,
)
from tests.support.polling import eventually

T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
H = timedelta(hours=1)

# Every column but when this process applied it: the state, as the events made it.
_SNAPSHOT = {
    "requirement_status": """SELECT requirement_type, compliance_status, observed_at, event_id, source, insights
                             FROM requirement_status WHERE tenant_id = $1 ORDER BY requirement_type""",
    "score_state": """SELECT current_score, projected_score, compliant_requirements_count, total_requirements_count
                      FROM score_state WHERE tenant_id = $1""",
    "alert_response_times": "SELECT * FROM alert_response_times WHERE tenant_id = $1 ORDER BY alert_id",
    "deliveries": "SELECT * FROM deliveries WHERE tenant_id = $1 ORDER BY delivery_id",
    "customer_mfa": "SELECT * FROM customer_mfa WHERE tenant_id = $1 ORDER BY customer_tenant_id",
    "alert_sync": "SELECT * FROM alert_sync WHERE tenant_id = $1 ORDER BY alert_id",
}


async def snapshot(pool: asyncpg.Pool, tenant_id: str) -> dict[str, list[dict[str, Any]]]:
    def plain(row: asyncpg.Record) -> dict[str, Any]:
        # jsonb columns as values, not as the text asyncpg returns (its key order is PostgreSQL's).
        return {k: json.loads(v) if k in ("insights", "alert", "view") else v for k, v in row.items()}

    return {table: [plain(r) for r in await pool.fetch(sql, tenant_id)] for table, sql in _SNAPSHOT.items()}


async def test_a_scoring_service_on_an_empty_schema_rebuilds_its_state_from_the_topics(
    scoring, send_status, send_event, tenant_id, db_pool, make_service, own_database, redis_client
):
    now = utcnow().replace(microsecond=0)
    statuses = [
        status_event(tenant_id, "mfaEnforcedForAdmins", "compliant", T0, insights={"admins": 2}),
        status_event(tenant_id, "securityContactProvided", "noncompliant", T0 + H),
        status_event(tenant_id, "securityContactProvided", "compliant", T0),  # late and older: never counts
    ]
    events = [
        (Topic.alert_response_times, alert_response_time(tenant_id, "a1", now - 5 * H, occurred=now - 5 * H)),
        (Topic.alert_response_times, alert_response_time(tenant_id, "a1", now - 5 * H, responded_at=now - 4 * H,
                                                         status="investigating", occurred=now - 4 * H)),
        (Topic.alert_response_times, alert_response_time(tenant_id, "a2", now - 3 * H, occurred=now - 3 * H)),
        (Topic.alert_response_times, alert_response_time(tenant_id, "a1", now - 5 * H, occurred=now - 5 * H)),
        (Topic.deliveries, delivery_changed(tenant_id, (d1 := uuid.uuid4()), now - 2 * H, occurred=now - 2 * H)),
        (Topic.deliveries, delivery_changed(tenant_id, d1, now - 2 * H, state="delivered", attempts=1,
                                            delivered_date_time=now - H, occurred=now - H)),
        (Topic.deliveries, delivery_changed(tenant_id, uuid.uuid4(), now - H, state="dead", occurred=now - H)),
        (Topic.customer_mfa, customer_mfa(tenant_id, "c1", "Contoso", now - 2 * H)),
        (Topic.customer_mfa, customer_mfa(tenant_id, "c2", "Fabrikam", now - 2 * H)),
        (Topic.customer_mfa, customer_mfa(tenant_id, "c1", "Contoso", now - H, admins_with_mfa=1)),
        (Topic.alert_sync, alert_sync_changed(tenant_id, "a1", "pending", pending_status="investigating",
                                              occurred=now - 4 * H)),
        (Topic.alert_sync, alert_sync_changed(tenant_id, "a1", "synced", last_synced_date_time=now - 3 * H,
                                              occurred=now - 3 * H)),
        (Topic.alert_sync, alert_sync_changed(tenant_id, "a1", "pending", occurred=now - 4 * H)),  # late, older
        (Topic.alert_sync, alert_sync_changed(tenant_id, "a2", "failed", attempts=1, last_error="403 Forbidden",
                                              occurred=now - 2 * H)),
    ]
    for status in statuses:
        await send_status(status)
    for topic, event in events:
        await send_event(topic, event)
    for status in statuses:
        await event_applied(db_pool, status)
    for _, event in events:
        await read_model_applied(db_pool, event)
    await wait_for_score(scoring, tenant_id, 37.5)
    before = await snapshot(db_pool, tenant_id)
    assert [len(before[t]) for t in _SNAPSHOT] == [2, 1, 2, 2, 2, 2]
    assert before["alert_response_times"][0]["responded_at"] == now - 4 * H  # the older a1 did not win
    assert before["alert_sync"][0]["state"] == "synced"  # nor its older sync state

    rebuilt = make_service("scoring", **isolated_env(DATABASE_URL=own_database))
    own = await create_pool(own_database, schema="scoring")
    await asyncio.to_thread(rebuilt.start)
    try:
        await eventually(lambda: snapshot(own, tenant_id), lambda state: state == before, within=90,
                         what="the rebuilt state equal to the running service's")
        await wait_for_score(rebuilt, tenant_id, 37.5)
    finally:
        await asyncio.to_thread(rebuilt.stop)
        await own.close()
        async for key in redis_client.scan_iter(match=f"{rebuilt.env['REDIS_KEY_PREFIX']}*", count=500):
            await redis_client.delete(key)
