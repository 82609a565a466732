"""Offboarding a tenant in the notifier (#18): the tenant-offboarded event deletes every row of the
tenant (contact, channels, escalation chain, deliveries, timers, closed alerts, requirement states) and
nothing of another, records the tenant, and tombstones each delivery's key on ``deliveries``; from then
on every event of the tenant is dropped, one in flight included. On the real PostgreSQL, and a notifier
process on the real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient

from services.notifier import domain, offboarding, store, warning_store
from shared.db import create_pool
from shared.dead_letters import DeadLetter
from shared.events import (
    Actor,
    ActorType,
    EscalationChainChanged,
    EscalationStep,
    RedeliveryRequested,
    RequirementStatusObserved,
    SpendingBudgetThresholdReached,
    TenantOffboarded,
    Topic,
)
from shared.kafka import ensure_topics
from shared.settings import DEV_SEALING_KEY
from shared.wire import utcnow
from tests.services.notifier.helpers import alert_created, channel_changed, contact_changed, partner_response
from tests.support.kafka import produce, read_topic
from tests.support.polling import eventually

TABLES = ("notifier_contacts", "notification_channels", "escalation_chains", "notification_deliveries",
          "notification_timers", "notifier_closed_alerts", "requirement_states")
HOUR = 3600.0
CHAIN = [EscalationStep(after_minutes=60, email="lead@partner.example")]


@pytest_asyncio.fixture
async def pool(own_database: str) -> AsyncIterator[asyncpg.Pool]:
    """A database of this test's own: no notifier process sends, fires or publishes its rows."""
    pool = await create_pool(own_database, schema="notifier")
    yield pool
    await pool.close()


@pytest_asyncio.fixture
async def topic_prefix(test_env: dict[str, str], kafka_bootstrap: str) -> AsyncIterator[str]:
    """Topics of one test (overrides the notifier tests'): the tombstones these tests make would reach the
    other notifier tests, which read every record of their topics as an event."""
    own = f"{test_env['KAFKA_TOPIC_PREFIX']}notifier-off-{uuid.uuid4().hex[:6]}-"
    created = await ensure_topics(kafka_bootstrap, own)
    yield own
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(created)
    finally:
        await admin.close()


def offboarded(tenant_id: str) -> TenantOffboarded:
    return TenantOffboarded(tenant_id=tenant_id, actor=Actor(type=ActorType.user, id="operator"))


def noncompliant(tenant_id: str) -> RequirementStatusObserved:
    return RequirementStatusObserved(tenant_id=tenant_id, requirement_type="securityAlertsPromptlyResolved",
                                     compliance_status="noncompliant", observed_date_time=utcnow(), source="test")


def spending(tenant_id: str) -> SpendingBudgetThresholdReached:
    return SpendingBudgetThresholdReached(tenant_id=tenant_id, customer_tenant_id="cust-1", month="2026-11",
                                          budget=1000, spend=850)


async def rows_of(pool: asyncpg.Pool, tenant_id: str) -> dict[str, int]:
    return {table: await pool.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", tenant_id)
            for table in TABLES}


async def outbox_of(pool: asyncpg.Pool, tenant_id: str) -> list[tuple[str, str, bool]]:
    """The tenant's records waiting in the outbox, in order: (topic, key, is a tombstone)."""
    rows = await pool.fetch("SELECT topic, key, value FROM outbox WHERE key LIKE $1 ORDER BY id",
                            f"{tenant_id}:%".encode())
    return [(r["topic"], bytes(r["key"]).decode(), r["value"] is None) for r in rows]


async def a_session_waits_for_a_lock(observer: asyncpg.Connection) -> None:
    """Until a session of this test's own database waits for a lock."""
    deadline = asyncio.get_running_loop().time() + 20
    while not await observer.fetchval("SELECT count(*) FROM pg_stat_activity "
                                      "WHERE datname = current_database() AND wait_event_type = 'Lock'"):
        assert asyncio.get_running_loop().time() < deadline, "nothing ever waited for a lock"
        await asyncio.sleep(0.02)


async def a_tenant_with_everything(pool: asyncpg.Pool, tenant_id: str) -> None:
    """A row in every table the notifier keeps of a tenant."""
    await store.record_contact(pool, contact_changed(tenant_id, "soc@partner.example"), HOUR)
    channel = channel_changed(tenant_id, "jira", "https://jira.example/hook")
    await store.record_channel(pool, channel, domain.open_channel(channel.channel, [DEV_SEALING_KEY]))
    await store.record_escalation_chain(pool, EscalationChainChanged(tenant_id=tenant_id, steps=CHAIN),
                                        domain.usable_chain(CHAIN))
    assert await store.record_alert_created(pool, alert_created(tenant_id, "a1"), HOUR, 2 * HOUR)
    answered = alert_created(tenant_id, "a2")
    assert await store.record_alert_created(pool, answered, HOUR, 2 * HOUR)
    assert await store.record_alert_updated(pool, partner_response(answered))
    assert await store.record_spending(pool, spending(tenant_id))
    assert await warning_store.record_requirement_status(pool, noncompliant(tenant_id), now=utcnow(),
                                                         escalation_email=True)


async def test_the_event_deletes_everything_of_the_tenant_records_it_and_tombstones_its_deliveries(pool):
    tenant, other = "tenant-leaving", "tenant-staying"
    for each in (tenant, other):
        await a_tenant_with_everything(pool, each)
    before = await rows_of(pool, tenant)
    assert all(before.values()), before
    other_before = await rows_of(pool, other)
    deliveries = {f"{tenant}:{row['delivery_id']}" for row in await pool.fetch(
        "SELECT delivery_id FROM notification_deliveries WHERE tenant_id = $1", tenant)}
    published = await outbox_of(pool, tenant)

    event = offboarded(tenant)
    result = await offboarding.offboard(pool, event)

    assert result == offboarding.Offboarded(rows=before, tombstones=len(deliveries))
    assert await rows_of(pool, tenant) == dict.fromkeys(TABLES, 0)
    assert await rows_of(pool, other) == other_before
    assert await pool.fetchval("SELECT offboarded_at FROM offboarded_tenants WHERE tenant_id = $1",
                               tenant) == event.occurred_date_time
    # After every change of them published before (so compaction keeps the tombstone): each delivery's key.
    after = await outbox_of(pool, tenant)
    assert after[:len(published)] == published
    tombstones = after[len(published):]
    assert all(topic == "deliveries" and tombstone for topic, _, tombstone in tombstones)
    assert {key for _, key, _ in tombstones} == deliveries and len(tombstones) == len(deliveries)
    assert not any(tombstone for _, _, tombstone in await outbox_of(pool, other))

    assert await offboarding.offboard(pool, event) is None  # applied before: nothing twice
    assert await outbox_of(pool, tenant) == after


async def test_every_later_event_of_the_tenant_is_dropped(pool):
    tenant = "tenant-gone"
    await a_tenant_with_everything(pool, tenant)
    dead = await pool.fetchval("SELECT delivery_id FROM notification_deliveries WHERE tenant_id = $1 LIMIT 1",
                               tenant)
    await offboarding.offboard(pool, offboarded(tenant))
    published = await outbox_of(pool, tenant)

    await a_tenant_with_everything(pool, "tenant-other")  # the same events of another tenant apply
    for applied in (
        store.record_contact(pool, contact_changed(tenant, "soc@partner.example"), HOUR),
        store.record_channel(pool, (channel := channel_changed(tenant, "jira", "https://jira.example/hook")),
                             domain.open_channel(channel.channel, [DEV_SEALING_KEY])),
        store.record_escalation_chain(pool, EscalationChainChanged(tenant_id=tenant, steps=CHAIN),
                                      domain.usable_chain(CHAIN)),
        store.record_alert_created(pool, (created := alert_created(tenant, "a3")), HOUR, 2 * HOUR),
        store.record_alert_updated(pool, partner_response(created)),
        store.record_spending(pool, spending(tenant)),
        store.requeue_dead(pool, RedeliveryRequested(tenant_id=tenant, delivery_id=dead,
                                                     actor=Actor(type=ActorType.user, id="x"))),
        warning_store.record_requirement_status(pool, noncompliant(tenant), now=utcnow(), escalation_email=True),
    ):
        assert not await applied

    assert await rows_of(pool, tenant) == dict.fromkeys(TABLES, 0)
    assert await outbox_of(pool, tenant) == published


async def test_an_event_applied_while_the_offboarding_commits_waits_for_it_and_is_dropped(pool):
    tenant = "tenant-late"
    async with pool.acquire() as offboarding_conn, pool.acquire() as observer:
        transaction = offboarding_conn.transaction()
        await transaction.start()
        await offboarding.offboard_in(offboarding_conn, offboarded(tenant))
        applying = asyncio.create_task(store.record_alert_created(pool, alert_created(tenant, "a1"), HOUR, HOUR))
        await a_session_waits_for_a_lock(observer)
        assert not applying.done()
        await transaction.commit()
    assert await applying is False
    assert await rows_of(pool, tenant) == dict.fromkeys(TABLES, 0)


async def test_a_notifier_process_offboards_on_the_event_and_publishes_the_tombstones(
    tenant_id, start_notifier, publish, notifier_pool, kafka_bootstrap, topic_prefix
):
    start_notifier()
    created = alert_created(tenant_id, "a1")
    await publish(Topic.alerts, created)
    await eventually(lambda: notifier_pool.fetchval(
        "SELECT count(*) FROM notification_deliveries WHERE tenant_id = $1", tenant_id), what="the delivery logged")
    delivery = await notifier_pool.fetchval(
        "SELECT delivery_id FROM notification_deliveries WHERE tenant_id = $1", tenant_id)

    await publish(Topic.tenants, offboarded(tenant_id))
    tombstones = await read_topic(kafka_bootstrap, f"{topic_prefix}deliveries", count=1, timeout=60,
                                  predicate=lambda r: r["key"] == f"{tenant_id}:{delivery}" and r["value"] is None)
    assert tombstones[0]["headers"]["eventType"] == "tombstone"

    # A later alert of the tenant (in flight, or replayed by a rebuild): taken (its id claimed), and dropped.
    replayed = alert_created(tenant_id, "a2")
    await publish(Topic.alerts, replayed)
    await eventually(lambda: notifier_pool.fetchval(
        "SELECT count(*) FROM processed_events WHERE event_id = $1", replayed.event_id), what="the replay taken")
    assert await rows_of(notifier_pool, tenant_id) == dict.fromkeys(TABLES, 0)


async def test_a_tombstone_on_a_notifier_topic_is_skipped_and_the_partition_moves_on(
    tenant_id, start_notifier, publish, notifier_pool, kafka_bootstrap, topic_prefix
):
    """The write API tombstones the contact and channels of a tenant it offboards, on topics the notifier
    reads: no event, committed and skipped (never a dead letter), and the records after it on the same
    partition are applied; a record of an event type nobody handles is a dead letter, not a stall."""
    start_notifier()
    key = tenant_id.encode()  # the contact's key: the tombstone, the unknown record and the contact share a partition
    await produce(kafka_bootstrap, f"{topic_prefix}security-contacts", None, key=key,
                  headers={"eventType": "tombstone"})
    await produce(kafka_bootstrap, f"{topic_prefix}security-contacts", b"{}", key=key,
                  headers={"eventType": "mystery", "tenantId": tenant_id})
    await publish(Topic.tenants, offboarded("tenant-elsewhere"))
    await produce(kafka_bootstrap, f"{topic_prefix}tenants", None, key=key, headers={"eventType": "tombstone"})
    await publish(Topic.security_contacts, contact_changed(tenant_id, "soc@partner.example"))
    await publish(Topic.tenants, (later := offboarded(f"{tenant_id}-later")))

    await eventually(lambda: notifier_pool.fetchval("SELECT email FROM notifier_contacts WHERE tenant_id = $1",
                                                    tenant_id), what="the contact after the tombstone applied")
    await eventually(lambda: notifier_pool.fetchval(
        "SELECT count(*) FROM offboarded_tenants WHERE tenant_id = $1", later.tenant_id),
        what="the offboarding after the tombstone on tenants applied")
    dead = await read_topic(kafka_bootstrap, f"{topic_prefix}dead-letter", timeout=10,
                            predicate=lambda r: r["key"] == tenant_id)
    assert [DeadLetter.model_validate(d["value"]).record.headers["eventType"] for d in dead] == ["mystery"]
