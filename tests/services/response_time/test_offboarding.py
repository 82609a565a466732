"""Offboarding a tenant in the response-time service (#18), on the real PostgreSQL: the tenant-offboarded
event deletes every row of the tenant and nothing of another, records the tenant, and tombstones the
compacted keys the service published for it; from then on the tenant's events are dropped, whether they
were in flight or come again (a rebuild from the topics)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from aiokafka import ConsumerRecord

from services.response_time import offboarding, status, store
from services.response_time.handlers import EVENT_TYPES
from shared.dead_letters import DeadLetter
from shared.events import Actor, ActorType, TenantOffboarded
from shared.kafka import record_event
from tests.services.response_time.events import created, updated
from tests.services.response_time.running import produce_all, service
from tests.support.kafka import produce, read_topic
from tests.support.polling import eventually

H = timedelta(hours=1)
NOW = datetime.now(UTC).replace(microsecond=0)
OPERATOR = Actor(type=ActorType.user, id="operator")
TABLES = ("alerts", "response_time_tenants", "response_time_dirty")


def offboarded(tenant_id: str) -> TenantOffboarded:
    return TenantOffboarded(tenant_id=tenant_id, actor=OPERATOR)


async def rows_of(pool: asyncpg.Pool, tenant_id: str) -> dict[str, int]:
    return {table: await pool.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", tenant_id)
            for table in TABLES}


async def outbox_of(pool: asyncpg.Pool, tenant_id: str) -> list[tuple[str, str, bool]]:
    """The tenant's records waiting in the outbox, in order: (topic, key, is a tombstone). No relay runs
    on a test's own database."""
    rows = await pool.fetch("SELECT topic, key, value FROM outbox WHERE key LIKE $1 ORDER BY id",
                            f"{tenant_id}:%".encode())
    return [(r["topic"], bytes(r["key"]).decode(), r["value"] is None) for r in rows]


def test_a_tombstone_on_the_alerts_topic_is_no_event():
    """A record with no value is a deleted key (shared.kafka.is_tombstone): skipped, not poison."""
    for value in (None, b""):
        tombstone = ConsumerRecord(topic="alerts", partition=0, offset=0, timestamp=0, timestamp_type=0,
                                   key=b"t1:a1", value=value, checksum=None, serialized_key_size=5,
                                   serialized_value_size=0, headers=[("eventType", b"alert-created")])
        assert parse_record(tombstone) is None


async def a_session_waits_for_a_lock(observer: asyncpg.Connection) -> None:
    """Until a session of this test's own database waits for a lock."""
    deadline = asyncio.get_running_loop().time() + 20
    while not await observer.fetchval("SELECT count(*) FROM pg_stat_activity "
                                      "WHERE datname = current_database() AND wait_event_type = 'Lock'"):
        assert asyncio.get_running_loop().time() < deadline, "nothing ever waited for a lock"
        await asyncio.sleep(0.02)


async def a_tenant_with_history(pool: asyncpg.Pool, tenant_id: str) -> None:
    """Two alerts (one answered), their figures published, and a change not evaluated yet."""
    await store.apply_events(pool, [created(tenant_id, "a1", NOW - 5 * H), created(tenant_id, "a2", NOW - 3 * H),
                                    updated(tenant_id, "a1", NOW - 4 * H, NOW - 5 * H, to="investigating")])
    assert await status.evaluate_tenant(pool, tenant_id)
    await store.apply_events(pool, [created(tenant_id, "a3", NOW - H)])


def parse_record(record):
    return record_event(record, EVENT_TYPES, others_are_poison=False)


async def test_the_event_deletes_everything_of_the_tenant_records_it_and_tombstones_its_keys(own_rt_pool):
    pool = own_rt_pool
    tenant, other = "tenant-leaving", "tenant-staying"
    for each in (tenant, other):
        await a_tenant_with_history(pool, each)
    assert await rows_of(pool, tenant) == {"alerts": 3, "response_time_tenants": 1, "response_time_dirty": 1}
    other_before = await rows_of(pool, other)
    published = await outbox_of(pool, tenant)

    event = offboarded(tenant)
    result = await offboarding.offboard(pool, event)

    assert result == offboarding.Offboarded(alerts=3, tombstones=4)
    assert await rows_of(pool, tenant) == dict.fromkeys(TABLES, 0)
    assert await rows_of(pool, other) == other_before
    assert await pool.fetchval("SELECT offboarded_at FROM offboarded_tenants WHERE tenant_id = $1",
                               tenant) == event.occurred_date_time
    # After what was published before (so compaction keeps the tombstone), each key it published:
    # every alert's state, and the tenant's securityAlertsPromptlyResolved status.
    assert await outbox_of(pool, tenant) == published + [
        ("alert-response-times", f"{tenant}:a1", True),
        ("alert-response-times", f"{tenant}:a2", True),
        ("alert-response-times", f"{tenant}:a3", True),
        ("requirement-status", f"{tenant}:securityAlertsPromptlyResolved", True),
    ]
    assert not any(tombstone for _, _, tombstone in await outbox_of(pool, other))

    assert await offboarding.offboard(pool, event) is None  # applied before: nothing twice
    assert len(await outbox_of(pool, tenant)) == len(published) + 4


async def test_later_events_of_the_tenant_are_dropped_and_its_figures_never_evaluated_again(own_rt_pool):
    pool = own_rt_pool
    tenant, other = "tenant-gone", "tenant-here"
    await a_tenant_with_history(pool, tenant)
    await offboarding.offboard(pool, offboarded(tenant))
    published = await outbox_of(pool, tenant)

    # One still in flight, one replayed by a rebuild, in one batch with another tenant's.
    changed = await store.apply_events(pool, [created(tenant, "a9", NOW - H), created(other, "b1", NOW - H),
                                              updated(tenant, "a1", NOW - H, NOW - 5 * H)])

    assert changed == [other]
    assert await rows_of(pool, tenant) == dict.fromkeys(TABLES, 0)
    assert await rows_of(pool, other) == {"alerts": 1, "response_time_tenants": 0, "response_time_dirty": 1}
    assert not await status.evaluate_tenant(pool, tenant)  # a mark taken before the offboarding
    assert await rows_of(pool, tenant) == dict.fromkeys(TABLES, 0)
    assert await outbox_of(pool, tenant) == published


async def test_an_event_applied_while_the_tenant_is_offboarded_is_deleted_with_the_rest(own_rt_pool):
    """The offboarding waits for a transaction applying the tenant's events: what it commits is then
    deleted and tombstoned too, never left behind."""
    pool = own_rt_pool
    tenant = "tenant-racing"
    async with pool.acquire() as applying, pool.acquire() as observer:
        transaction = applying.transaction()
        await transaction.start()
        assert await store.apply_events_in(applying, [created(tenant, "in-flight", NOW - H)]) == [tenant]
        offboarding_task = asyncio.create_task(offboarding.offboard(pool, offboarded(tenant)))
        await a_session_waits_for_a_lock(observer)
        assert not offboarding_task.done()
        await transaction.commit()
    result = await offboarding_task
    assert result.alerts == 1
    assert await rows_of(pool, tenant) == dict.fromkeys(TABLES, 0)
    assert ("alert-response-times", f"{tenant}:in-flight", True) in await outbox_of(pool, tenant)


async def test_an_event_applied_while_the_offboarding_commits_is_dropped(own_rt_pool):
    """An event of the tenant applied while its offboarding is not committed yet waits for it, then
    finds the tenant offboarded: nothing of it comes back."""
    pool = own_rt_pool
    tenant = "tenant-late"
    async with pool.acquire() as offboarding_conn, pool.acquire() as observer:
        transaction = offboarding_conn.transaction()
        await transaction.start()
        await offboarding.offboard_in(offboarding_conn, offboarded(tenant))
        applying = asyncio.create_task(store.apply_events(pool, [created(tenant, "late", NOW - H)]))
        await a_session_waits_for_a_lock(observer)
        assert not applying.done()
        await transaction.commit()
    assert await applying == []
    assert await rows_of(pool, tenant) == dict.fromkeys(TABLES, 0)


async def test_a_response_time_process_offboards_on_the_event_and_publishes_the_tombstones(
    make_service, kafka_bootstrap, prefix, own_database, own_rt_pool
):
    """The process consumes ``tenants``: the tenant's keys are deleted from the compacted topics it
    publishes (a record with a null value each), and a later event of the tenant brings nothing back."""
    tenant, other = f"tenant-off-{uuid.uuid4().hex[:6]}", f"tenant-on-{uuid.uuid4().hex[:6]}"
    rt = service(make_service, prefix, own_database).start()
    try:
        await produce_all(kafka_bootstrap, f"{prefix}alerts",
                          [created(tenant, "a1", NOW - 5 * H), created(other, "b1", NOW - 5 * H)])
        await read_topic(kafka_bootstrap, f"{prefix}alert-response-times", count=2, timeout=60,
                         predicate=lambda r: r["key"] in (f"{tenant}:a1", f"{other}:b1"))

        # Before the event, on its partition (its key): a tombstone (skipped) and a record of an event type
        # nobody handles (a dead letter); neither holds it up.
        await produce(kafka_bootstrap, f"{prefix}tenants", None, key=tenant.encode(),
                      headers={"eventType": "tombstone"})
        await produce(kafka_bootstrap, f"{prefix}tenants", b"{}", key=tenant.encode(),
                      headers={"eventType": "mystery", "tenantId": tenant})
        await produce_all(kafka_bootstrap, f"{prefix}tenants", [offboarded(tenant)])
        tombstones = await read_topic(
            kafka_bootstrap, f"{prefix}alert-response-times", count=1, timeout=60,
            predicate=lambda r: r["key"] == f"{tenant}:a1" and r["value"] is None)
        assert tombstones[0]["headers"]["eventType"] == "tombstone"
        assert await read_topic(
            kafka_bootstrap, f"{prefix}requirement-status", count=1, timeout=30,
            predicate=lambda r: r["key"] == f"{tenant}:securityAlertsPromptlyResolved" and r["value"] is None)

        # Then the tenant's alert again (a replay): taken (its id claimed), and dropped.
        replayed = created(tenant, "a2", NOW - H)
        await produce_all(kafka_bootstrap, f"{prefix}alerts", [replayed])
        await eventually(lambda: own_rt_pool.fetchval(
            "SELECT count(*) FROM processed_events WHERE event_id = $1", replayed.event_id), what="the replay taken")
        assert await rows_of(own_rt_pool, tenant) == dict.fromkeys(TABLES, 0)
        dead = await read_topic(kafka_bootstrap, f"{prefix}dead-letter", timeout=10,
                                predicate=lambda r: r["key"] == tenant)
        assert [DeadLetter.model_validate(d["value"]).record.headers["eventType"] for d in dead] == ["mystery"]
    finally:
        rt.stop()
