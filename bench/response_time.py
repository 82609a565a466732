"""Response-time service: alert events consumed per second, beside raw aiokafka on the same topic.

Fills a topic of its own (prefix ``bench-<id>-``) with alert events (creates, partner responses,
system changes, over several tenants), then in the same run measures
(a) a raw aiokafka consumer reading the topic from the start (no parsing, no database): the baseline;
(b) this service's handlers (FastStream subscriber, parsing, dedupe ledger, the alert row, the tenant
    mark, each changed alert's ``alert-response-time-changed`` in the outbox, the status publisher and
    the outbox relay, wired as ``app.py`` wires them) consuming the same records into a fresh database.
The baseline is timed from its first fetch (partitions assigned directly), the service from its first
applied record to its last, so group joins count for neither; how long the relay then takes to empty
the outbox is printed beside. The bench database and topics are removed at the end. (The reads of
``GET /alerts`` and ``/response-time`` are the read API's: ``bench/read_model.py``.)
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from datetime import UTC, datetime, timedelta

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.support import Measurement, ratio_line, run_id
from services.response_time.config import Settings
from services.response_time.handlers import build_router
from services.response_time.status import StatusPublisher
from shared import outbox
from shared.alerts import Alert
from shared.db import apply_migrations, create_pool
from shared.events import Actor, ActorType, AlertCreated, AlertUpdated, Event, StatusChange, Topic
from shared.kafka import TOPIC_SPECS, ensure_topics, event_headers, make_broker, topic_name

EVENTS = int(os.environ.get("BENCH_RESPONSE_TIME_EVENTS", "20000"))
TENANTS = 20
DEADLINE_SECONDS = 120


def alert_events(count: int) -> list[Event]:
    rng = random.Random(1)
    now = datetime.now(UTC)
    partner, system = Actor(type=ActorType.user, id="ana"), Actor(type=ActorType.system)
    events: list[Event] = []
    i = 0
    while len(events) < count:
        tenant, alert_id = f"bench-tenant-{i % TENANTS}", f"alert-{i}"
        detected = now - timedelta(minutes=rng.randint(10, 60 * 24 * 40))
        events.append(AlertCreated(tenant_id=tenant, alert=Alert(id=alert_id, detected_date_time=detected,
                                                                 is_test=i % 20 == 0)))
        if rng.random() < 0.6:
            actor = partner if rng.random() < 0.8 else system
            at = detected + timedelta(minutes=rng.randint(1, 3000))
            change = StatusChange(field="status", from_="active", to="investigating", actor=actor,
                                  changed_date_time=at)
            after = Alert(id=alert_id, status="investigating", detected_date_time=detected)
            events.append(AlertUpdated(tenant_id=tenant, alert_id=alert_id, changes=[], actor=actor,
                                       status_changes=[change], changed_date_time=at, alert=after))
        i += 1
    return events[:count]


async def fill(bootstrap: str, topic: str, events: list[Event]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                                linger_ms=10)
    await producer.start()
    try:
        futures = [await producer.send(topic, e.model_dump_json().encode(), key=e.kafka_key(),
                                       headers=[(k, v.encode()) for k, v in event_headers(e).items()])
                   for e in events]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def raw_consumer(bootstrap: str, topic: str, count: int) -> Measurement:
    """Assigned every partition directly (no group join to wait for), timed from the first fetch."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    seen = 0
    try:
        count_of_partitions = next(spec.partitions for spec in TOPIC_SPECS if spec.topic is Topic.alerts)
        partitions = [TopicPartition(topic, p) for p in range(count_of_partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        started = time.monotonic()
        deadline = started + DEADLINE_SECONDS
        while seen < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            seen += sum(len(records) for records in batch.values())
        elapsed = time.monotonic() - started
    finally:
        await consumer.stop()
    return Measurement("raw aiokafka consumer (baseline)", seen, elapsed, [])


async def service_handlers(settings: Settings, count: int) -> tuple[Measurement, str]:
    """The measurement, and a line on how long the relay took to publish what the batches enqueued."""
    pool = await create_pool(settings.database_url, schema="response_time", max_size=4)
    broker = make_broker(settings, client_id="bench-response-time")
    broker.include_router(build_router(settings))
    relay = outbox.OutboxRelay(settings, schema="response_time", client_id="bench-response-time-outbox",
                               publish_timeout_seconds=settings.response_time_publish_timeout_seconds)
    status = StatusPublisher(pool, settings, on_enqueued=relay.wake)
    broker.context.set_global("pool", pool)
    broker.context.set_global("settings", settings)
    broker.context.set_global("status", status)
    broker.context.set_global("relay", relay)
    await relay.start()
    await broker.start()
    status.start()
    applied, first, applied_at_first = 0, None, 0
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:
        while applied < count and time.monotonic() < deadline:
            applied = await pool.fetchval("SELECT count(*) FROM processed_events")
            if applied and first is None:
                first, applied_at_first = time.monotonic(), applied
            await asyncio.sleep(0.02)
        last = time.monotonic()
        # What the batches enqueued is published by the relay after their commits: its lag, for the record.
        waiting = await pool.fetchval("SELECT count(*) FROM outbox")
        while waiting and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            waiting = await pool.fetchval("SELECT count(*) FROM outbox")
        drained = time.monotonic()
    finally:
        await status.stop()
        await broker.stop()
        await relay.close()
        await pool.close()
    if applied < count:
        raise RuntimeError(f"the service applied {applied} of {count} events in {DEADLINE_SECONDS} s")
    if waiting:
        raise RuntimeError(f"{waiting} event(s) still in the outbox after {DEADLINE_SECONDS} s")
    relay_line = (f"  outbox empty {drained - last:.2f} s after the last event was applied "
                  f"({relay.published} events published by the relay)")
    return Measurement("response-time service handlers", applied - applied_at_first,
                       last - (first or last), []), relay_line


async def main() -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    admin_url = os.environ.get("DATABASE_URL", "postgresql://csp:csp@127.0.0.1:5432/csp_triage")
    rid = run_id()
    prefix, database = f"bench-{rid}-", f"csp_bench_{rid}"
    database_url = f"{admin_url.rpartition('/')[0]}/{database}"
    specs = [s for s in TOPIC_SPECS if s.topic in (Topic.alerts, Topic.alert_response_times,
                                                   Topic.requirement_status, Topic.dead_letter)]
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    created: list[str] = []
    try:
        await apply_migrations(database_url)
        created = await ensure_topics(bootstrap, prefix, specs)
        settings = Settings(environment="development", kafka_bootstrap_servers=bootstrap,
                            database_url=database_url, kafka_topic_prefix=prefix,
                            consumer_group=f"bench-response-time-{rid}")
        topic = topic_name(settings, Topic.alerts)
        events = alert_events(EVENTS)
        await fill(bootstrap, topic, events)
        print(f"  {len(events)} alert events over {TENANTS} tenants in {topic}")
        baseline = await raw_consumer(bootstrap, topic, len(events))
        subject, relay_line = await service_handlers(settings, len(events))
        print(baseline.line())
        print(subject.line())
        print(ratio_line(subject, baseline))
        print(relay_line)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
        if created:
            client = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            await client.start()
            try:
                await client.delete_topics(created)
            finally:
                await client.close()
