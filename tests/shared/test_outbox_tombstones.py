"""Tombstones (#18, offboarding): the outbox publishes a key with no value once the transaction
commits, in order with the events written before it; a consumer of any topic acknowledges a
tombstone and moves on: it is no event, so never a dead letter."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from faststream import Context
from faststream.kafka import KafkaRouter
from pydantic import BaseModel

from shared import outbox
from shared.dead_letters import DeadLetter
from shared.events import Actor, ActorType, RedeliveryRequested, Topic
from shared.kafka import (
    DeadLetterMiddleware,
    PoisonEvent,
    ensure_topics,
    event_type_is,
    is_tombstone,
    make_broker,
    subscriber_options,
    topic_name,
)
from shared.settings import CommonSettings
from tests.support.kafka import produce, read_topic
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def conn(own_database: str):
    """A connection to a schema of this test holding an outbox table as shared.outbox describes it."""
    schema = f"tombstones_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(own_database)
    await connection.execute(f"CREATE SCHEMA {schema}; SET search_path TO {schema}; {outbox.OUTBOX_DDL}")
    yield connection, schema
    await connection.close()


async def test_tombstones_go_out_after_the_commit_in_order_with_the_events_before_them(
        own_database, conn, kafka_bootstrap, topic_prefix, tenant_id):
    connection, schema = conn
    # Topics of this test alone: other tests read the run's topics and expect events, not tombstones.
    settings = CommonSettings(environment="development", database_url=own_database,
                              kafka_bootstrap_servers=kafka_bootstrap,
                              kafka_topic_prefix=f"{topic_prefix}tomb-{uuid.uuid4().hex[:6]}-")
    await ensure_topics(kafka_bootstrap, settings.kafka_topic_prefix)
    delivery = uuid.uuid4()
    event = RedeliveryRequested(tenant_id=tenant_id, delivery_id=delivery, actor=Actor(type=ActorType.user, id="t"))
    mine = (f"{tenant_id}:{delivery}".encode(), f"{tenant_id}:other".encode())
    with pytest.raises(RuntimeError):
        async with connection.transaction():
            await outbox.enqueue_tombstones(connection, Topic.delivery_commands, [f"{tenant_id}:gone".encode()])
            raise RuntimeError("rolled back: its tombstone must never go out")
    async with connection.transaction():
        await outbox.enqueue(connection, Topic.delivery_commands, event)
        await outbox.enqueue_tombstones(connection, Topic.delivery_commands, mine)
        await outbox.enqueue_tombstones(connection, Topic.delivery_commands, [])  # nothing to do, no error
    assert (await outbox.backlog(connection))[0] == 3

    relay = outbox.OutboxRelay(settings, schema=schema, client_id="test-tombstones")
    await relay.start()
    try:
        records = await read_topic(kafka_bootstrap, topic_name(settings, Topic.delivery_commands), count=3, timeout=15)
        await eventually(lambda: outbox.backlog(connection), lambda b: b == (0, None))
    finally:
        await relay.close()
    # One partition per key: the event and its key's tombstone come in the order written.
    by_key = {r["key"]: [] for r in records}
    for r in sorted(records, key=lambda r: (r["partition"], r["offset"])):
        by_key[r["key"]].append(r)
    first, then = by_key[f"{tenant_id}:{delivery}"]
    assert first["value"]["eventId"] == str(event.event_id)
    assert then["value"] is None and then["headers"] == {"eventType": "tombstone"}
    assert [r["value"] for r in by_key[f"{tenant_id}:other"]] == [None]
    assert f"{tenant_id}:gone" not in by_key
    assert sorted(by_key) == sorted(k.decode() for k in mine)


class Ping(BaseModel):
    n: int


async def test_a_consumer_acknowledges_a_tombstone_and_moves_on_without_a_dead_letter(
        test_env, kafka_bootstrap, topic_prefix):
    # A subscriber the way every service has them: a handler per event type, then one that refuses
    # every other record as poison. A tombstone reaches none of them; a real poison record still does.
    settings = CommonSettings(kafka_topic_prefix=f"{topic_prefix}tomb-{uuid.uuid4().hex[:6]}-",
                              consumer_group=f"tomb-{uuid.uuid4().hex[:6]}")
    await ensure_topics(kafka_bootstrap, settings.kafka_topic_prefix)
    source = topic_name(settings, Topic.deliveries)
    seen: list[int] = []
    router = KafkaRouter()
    records = router.subscriber(source, **subscriber_options(settings))

    @records(filter=event_type_is("ping"))
    async def on_ping(event: Ping) -> None:
        seen.append(event.n)

    @records()
    async def on_other_event_type(body: Any, message=Context("message")) -> None:
        raise PoisonEvent(f"no handler for eventType {(message.headers or {}).get('eventType')!r}")

    broker = make_broker(settings, client_id="tomb-test")
    broker.include_router(router)
    DeadLetterMiddleware.retry_pause_seconds = 0.1
    await produce(kafka_bootstrap, source, b'{"n": 1}', key=b"k", headers={"eventType": "ping"})
    await produce(kafka_bootstrap, source, None, key=b"k", headers={"eventType": "tombstone"})
    await produce(kafka_bootstrap, source, None, key=b"k")  # a tombstone another producer wrote: no header
    await produce(kafka_bootstrap, source, b"", key=b"k", headers={"eventType": "ping"})  # empty: one too
    await produce(kafka_bootstrap, source, b'{"n": 9}', key=b"k", headers={"eventType": "unknown"})  # poison
    await produce(kafka_bootstrap, source, b'{"n": 2}', key=b"k", headers={"eventType": "ping"})
    await broker.start()
    try:
        await eventually(lambda: list(seen), lambda s: s == [1, 2], within=30, what="both pings handled")
    finally:
        await broker.stop()
        DeadLetterMiddleware.retry_pause_seconds = 1.0
    dead = await read_topic(kafka_bootstrap, topic_name(settings, Topic.dead_letter), timeout=5)
    letters = [DeadLetter.model_validate(d["value"]) for d in dead]
    assert [letter.record.original_bytes() for letter in letters] == [b'{"n": 9}'], (
        "only the record of an unknown event type is poison; the tombstones are not")


def test_a_tombstone_is_a_record_without_a_value():
    class Record:
        def __init__(self, value: bytes | None) -> None:
            self.value = value

    assert is_tombstone(Record(None)) and is_tombstone(Record(b""))
    assert not is_tombstone(Record(b"{}"))
    assert not is_tombstone((Record(None),)), "a batch is not one record"
