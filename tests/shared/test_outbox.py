"""The transactional outbox against the real PostgreSQL and Kafka: what commits is published, in
order, once; what rolls back never is; one relay per schema leads and another takes over."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
import pytest_asyncio

from shared import outbox
from shared.db import application_name
from shared.events import Actor, ActorType, RedeliveryRequested, Topic
from shared.settings import CommonSettings
from tests.support.kafka import read_topic
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def schema(own_database: str):
    """A schema of this test with an outbox table, on a database of its own."""
    name = f"outbox_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(own_database)
    await conn.execute(f"CREATE SCHEMA {name}; SET search_path TO {name}; {outbox.OUTBOX_DDL}")
    await conn.close()
    return name


@pytest_asyncio.fixture
async def conn(own_database: str, schema: str):
    connection = await asyncpg.connect(own_database, server_settings={"search_path": schema})
    yield connection
    await connection.close()


def settings(own_database: str, test_env: dict[str, str]) -> CommonSettings:
    return CommonSettings(environment="development", database_url=own_database,
                          kafka_bootstrap_servers=test_env["KAFKA_BOOTSTRAP_SERVERS"],
                          kafka_topic_prefix=test_env["KAFKA_TOPIC_PREFIX"])


def command(tenant_id: str, delivery_id: uuid.UUID) -> RedeliveryRequested:
    return RedeliveryRequested(tenant_id=tenant_id, delivery_id=delivery_id,
                               actor=Actor(type=ActorType.user, id="test"))


async def commands_of(test_env, tenant_id: str, count: int | None = None) -> list[dict]:
    return await read_topic(test_env["KAFKA_BOOTSTRAP_SERVERS"],
                            f"{test_env['KAFKA_TOPIC_PREFIX']}{Topic.delivery_commands.value}",
                            count=count, timeout=5 if count is None else 15,
                            predicate=lambda r: r["value"]["tenantId"] == tenant_id)


async def test_what_commits_is_published_in_order_once_and_what_rolls_back_never(
        own_database, schema, conn, test_env, tenant_id):
    delivery = uuid.uuid4()
    events = [command(tenant_id, delivery) for _ in range(5)]
    async with conn.transaction():
        await outbox.enqueue_many(conn, [(Topic.delivery_commands, e) for e in events[:3]])
    with pytest.raises(RuntimeError):
        async with conn.transaction():
            await outbox.enqueue(conn, Topic.delivery_commands, command(tenant_id, delivery))
            raise RuntimeError("the change failed: its event must never go out")
    async with conn.transaction():
        await outbox.enqueue(conn, Topic.delivery_commands, events[3])
        await outbox.enqueue(conn, Topic.delivery_commands, events[4])
    assert (await outbox.backlog(conn))[0] == 5

    relay = outbox.OutboxRelay(settings(own_database, test_env), schema=schema, client_id="test-outbox")
    await relay.start()
    try:
        records = await commands_of(test_env, tenant_id, count=5)
        await eventually(lambda: outbox.backlog(conn), lambda b: b == (0, None))
    finally:
        await relay.close()
    assert [r["value"]["eventId"] for r in records] == [str(e.event_id) for e in events]
    assert all(r["key"] == f"{tenant_id}:{delivery}" for r in records)
    assert all(r["headers"]["eventType"] == "redelivery-requested" for r in records)
    assert len(await commands_of(test_env, tenant_id)) == 5  # nothing more came


async def test_one_relay_leads_and_another_takes_over_when_it_stops(own_database, schema, conn, test_env, tenant_id):
    first = outbox.OutboxRelay(settings(own_database, test_env), schema=schema, client_id="test-outbox-1")
    second = outbox.OutboxRelay(settings(own_database, test_env), schema=schema, client_id="test-outbox-2")
    await first.start()
    await eventually(lambda: first.leader, lambda leads: leads)
    await second.start()
    try:
        async with conn.transaction():
            await outbox.enqueue(conn, Topic.delivery_commands, command(tenant_id, uuid.uuid4()))
        await commands_of(test_env, tenant_id, count=1)
        # The record is on the topic a moment before the relay counts it (after deleting its row).
        await eventually(lambda: first.published, lambda n: n == 1, what="the leader counted it")
        assert not second.leader and second.published == 0
        # Its session of its own says what it is (pg_stat_activity), beside the schema's pool's.
        assert await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                                   application_name(schema, "outbox-relay")) == 2

        await first.close()
        await eventually(lambda: second.leader, lambda leads: leads, within=15)
        async with conn.transaction():
            await outbox.enqueue(conn, Topic.delivery_commands, command(tenant_id, uuid.uuid4()))
        await commands_of(test_env, tenant_id, count=2)
        await eventually(lambda: second.published, lambda n: n == 1, what="the new leader counted it")
    finally:
        await first.close()
        await second.close()


async def test_a_follower_waits_quietly_for_the_lead_and_stops_at_once(own_database, schema, conn, test_env, tenant_id):
    """Commits notify every relay of the schema; a follower must not answer each with an election
    (it spun: thousands of lock attempts a second) and must stop when told."""
    leader = outbox.OutboxRelay(settings(own_database, test_env), schema=schema, client_id="test-outbox-1")
    follower = outbox.OutboxRelay(settings(own_database, test_env), schema=schema, client_id="test-outbox-2")
    await leader.start()
    await eventually(lambda: leader.leader, lambda leads: leads)
    await follower.start()
    try:
        await eventually(lambda: follower.elections, lambda n: n >= 1)
        for _ in range(20):
            async with conn.transaction():
                await outbox.enqueue(conn, Topic.delivery_commands, command(tenant_id, uuid.uuid4()))
        await commands_of(test_env, tenant_id, count=20)
        assert follower.elections <= 2, f"the follower tried to lead {follower.elections} times"
        await asyncio.wait_for(follower.close(), 5)
    finally:
        await leader.close()
        await follower.close()


async def test_the_backlog_says_how_many_rows_wait_and_since_when(conn, tenant_id):
    assert await outbox.backlog(conn) == (0, None)
    async with conn.transaction():
        await outbox.enqueue_record(conn, Topic.dead_letter, key=b"k", value=b"\x00not json",
                                    headers={"eventType": "poison-record"})
    count, age = await outbox.backlog(conn)
    assert count == 1 and 0 <= age < 60
