"""Response-time service: alert events consumed per second, beside raw aiokafka on the same topic.

Fills a topic of its own (prefix ``bench-<id>-``) with alert events (creates, partner responses,
system changes, over several tenants), then in the same run measures
(a) a raw aiokafka consumer reading the topic from the start (no parsing, no database): the baseline;
(b) this service's handlers (FastStream subscriber, parsing, dedupe ledger, the alert row, the tenant
    mark, and the status publisher) consuming the same records into a fresh PostgreSQL database.
The baseline is timed from its first fetch (partitions assigned directly), the service from its first
applied record to its last, so group joins count for neither.
Then the read: the figures of one tenant with a long history (``BENCH_RESPONSE_TIME_HISTORY`` alerts
answered long ago, default a million) through the partial indexes, beside the naive scan of all the
tenant's alerts (baseline); and a page of ``GET /alerts`` 90% down that tenant's list, by position
(skiptoken) beside by offset (skip, baseline). The bench database and topics are removed at the end.
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
from services.response_time import store
from services.response_time.config import Settings
from services.response_time.handlers import build_router
from services.response_time.status import StatusPublisher
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


async def service_handlers(settings: Settings, count: int) -> Measurement:
    pool = await create_pool(settings.database_url, schema="response_time", max_size=4)
    broker = make_broker(settings, client_id="bench-response-time")
    broker.include_router(build_router(settings))
    status = StatusPublisher(pool, broker, settings)
    broker.context.set_global("pool", pool)
    broker.context.set_global("settings", settings)
    broker.context.set_global("status", status)
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
    finally:
        await status.stop()
        await broker.stop()
        await pool.close()
    if applied < count:
        raise RuntimeError(f"the service applied {applied} of {count} events in {DEADLINE_SECONDS} s")
    return Measurement("response-time service handlers", applied - applied_at_first,
                       last - (first or last), [])


HISTORY = int(os.environ.get("BENCH_RESPONSE_TIME_HISTORY", "1000000"))
READS = 200

# The same figures as store._AGGREGATES, computed the naive way: every alert the tenant ever had.
_NAIVE_FIGURES = """
    SELECT count(*) FILTER (WHERE responded_at > $2) AS responded_count,
           COALESCE(sum(latency_us) FILTER (WHERE responded_at > $2), 0) AS responded_latency_us,
           count(*) FILTER (WHERE responded_at IS NULL AND status <> 'resolved') AS open_count,
           min(clock_started_at) FILTER (WHERE responded_at IS NULL AND status <> 'resolved')
               AS oldest_open_started_at
    FROM alerts WHERE tenant_id = $1 AND NOT is_test"""


async def fill_history(pool: asyncpg.Pool, tenant_id: str, history: int) -> None:
    """``history`` alerts answered long ago, 5000 answered in the window, 200 open, in one tenant."""
    await pool.execute(
        """INSERT INTO alerts (tenant_id, alert_id, status, clock_started_at, alert, state_as_of,
                               responded_at, responded_by, latency_us)
           SELECT $1, 'h' || i, 'resolved', now() - interval '400 days' + i * interval '1 second',
                  jsonb_build_object('id', 'h' || i), now(),
                  now() - interval '399 days' + i * interval '1 second', 'ana', 86400000000
           FROM generate_series(1, $2) AS i""", tenant_id, history)
    await pool.execute(
        """INSERT INTO alerts (tenant_id, alert_id, status, clock_started_at, alert, state_as_of,
                               responded_at, responded_by, latency_us)
           SELECT $1, 'w' || i, 'resolved', now() - i * interval '5 minutes' - interval '3 hours',
                  jsonb_build_object('id', 'w' || i), now(), now() - i * interval '5 minutes', 'ana',
                  10800000000
           FROM generate_series(1, 5000) AS i""", tenant_id)
    await pool.execute(
        """INSERT INTO alerts (tenant_id, alert_id, status, clock_started_at, alert, state_as_of)
           SELECT $1, 'o' || i, 'active', now() - i * interval '1 minute',
                  jsonb_build_object('id', 'o' || i), now()
           FROM generate_series(1, 200) AS i""", tenant_id)
    await pool.execute("ANALYZE alerts")


async def timed_reads(name: str, reads: int, read) -> Measurement:
    latencies = []
    started = time.monotonic()
    for _ in range(reads):
        t0 = time.perf_counter()
        await read()
        latencies.append((time.perf_counter() - t0) * 1000)
    return Measurement(name, reads, time.monotonic() - started, latencies)


async def read_figures(database_url: str) -> None:
    pool = await create_pool(database_url, schema="response_time", max_size=2)
    tenant_id = "bench-history-tenant"
    try:
        started = time.monotonic()
        await fill_history(pool, tenant_id, HISTORY)
        print(f"  {HISTORY + 5200} alerts in one tenant ({HISTORY} answered long ago, 5000 in the window, "
              f"200 open), filled in {time.monotonic() - started:.1f} s")
        figures = await store.current_figures(pool, tenant_id, datetime.now(UTC))
        assert figures.responded_count == 5000 and figures.open_count == 200, figures
        naive = await timed_reads("naive scan of the tenant's alerts (baseline)", 5, lambda: pool.fetchrow(
            _NAIVE_FIGURES, tenant_id, datetime.now(UTC) - timedelta(days=30)))
        indexed = await timed_reads("GET /response-time figures (index ranges)", READS,
                                    lambda: store.current_figures(pool, tenant_id, datetime.now(UTC)))
        print(naive.line())
        print(indexed.line())
        print(ratio_line(indexed, naive))
        await deep_page(pool, tenant_id)
    finally:
        await pool.close()


async def deep_page(pool: asyncpg.Pool, tenant_id: str) -> None:
    """GET /alerts far down the list: a page of 100 after 90% of the tenant's alerts, by position
    (skiptoken, the subject) beside by offset (skip, the baseline)."""
    depth = (HISTORY + 5200) * 9 // 10
    [last] = await store.list_alerts(pool, tenant_id, status=None, responded=None, top=1, skip=depth - 1)
    after = (last["clock_started_at"], last["alert_id"])

    def page(**where):
        return store.list_alerts(pool, tenant_id, status=None, responded=None, top=100, **where)

    by_offset, by_position = await page(skip=depth), await page(after=after)
    assert [r["alert_id"] for r in by_offset] == [r["alert_id"] for r in by_position]
    offset = await timed_reads(f"GET /alerts page at {depth} by skip (baseline)", 5, lambda: page(skip=depth))
    position = await timed_reads(f"GET /alerts page at {depth} by skiptoken", READS, lambda: page(after=after))
    print(offset.line())
    print(position.line())
    print(ratio_line(position, offset))


async def main() -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    admin_url = os.environ.get("DATABASE_URL", "postgresql://csp:csp@127.0.0.1:5432/csp_triage")
    rid = run_id()
    prefix, database = f"bench-{rid}-", f"csp_bench_{rid}"
    database_url = f"{admin_url.rpartition('/')[0]}/{database}"
    specs = [s for s in TOPIC_SPECS if s.topic in (Topic.alerts, Topic.requirement_status, Topic.dead_letter)]
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
        subject = await service_handlers(settings, len(events))
        print(baseline.line())
        print(subject.line())
        print(ratio_line(subject, baseline))
        await read_figures(database_url)
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
