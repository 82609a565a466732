"""The response-time service as a real process on the real broker and PostgreSQL.

Each test runs the service on topics, a consumer group and a database of its own (``prefix`` and
``own_database`` fixtures), so no other response-time process of the session (the ``system``
fixture's) sees its events or evaluates its tenants: that one would publish a tenant's figures to
its own topics and record them as published, and this test's topic would never see them.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest_asyncio
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from services.response_time import domain, store
from shared.dead_letters import DeadLetter
from shared.events import Actor, ActorType, AlertCreated, Event
from shared.kafka import ensure_topics, event_headers
from shared.response_time import WINDOW, aggregate
from tests.services.response_time.events import PARTNER, created, updated
from tests.support.kafka import produce, read_topic

H = timedelta(hours=1)
SYSTEM = Actor(type=ActorType.system)


async def produce_all(bootstrap: str, topic: str, events: list[Event]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(
                topic,
                e.model_dump_json().encode(),
                key=e.kafka_key(),
                headers=[(k, v.encode()) for k, v in event_headers(e).items()],
            )
            for e in events
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


@pytest_asyncio.fixture
async def prefix(topic_prefix: str, kafka_bootstrap: str):
    """A topic prefix of this test alone; its topics are deleted afterwards."""
    own = f"{topic_prefix}rt-{uuid.uuid4().hex[:6]}-"
    created = await ensure_topics(kafka_bootstrap, own)
    yield own
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(created)
    finally:
        await admin.close()


def service(make_service, prefix: str, database_url: str, **env: str):
    return make_service("response-time", KAFKA_TOPIC_PREFIX=prefix, DATABASE_URL=database_url, **env)


def status_records(tenant: str):
    return lambda r: r["key"] == f"{tenant}:{domain.REQUIREMENT_TYPE}"


async def wait_for(predicate, within: float = 60.0, pause: float = 0.2):
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true after {within} s")
        await asyncio.sleep(pause)


async def test_status_is_published_and_a_response_leaving_the_window_changes_it(
    make_service, kafka_bootstrap, prefix, own_database
):
    rt = service(make_service, prefix, own_database).start()
    try:
        slow, expiring = f"tenant-slow-{uuid.uuid4().hex[:8]}", f"tenant-exp-{uuid.uuid4().hex[:8]}"
        now = datetime.now(UTC)
        # 40 s of margin: on a loaded machine the first evaluation must still come before the edge.
        edge = now + timedelta(seconds=40)
        leaves_at = edge - WINDOW  # the response time that leaves the window at the edge
        events = [
            created(slow, "s1", now - 40 * H, response_at=now - 10 * H),
            created(expiring, "e1", leaves_at - 2 * H, response_at=leaves_at),
        ]
        await produce_all(kafka_bootstrap, f"{prefix}alerts", events)

        slow_status = await read_topic(
            kafka_bootstrap,
            f"{prefix}requirement-status",
            count=1,
            timeout=40,
            predicate=status_records(slow),
        )
        value = slow_status[0]["value"]
        assert value["complianceStatus"] == "noncompliant" and value["source"] == "response-time"
        assert (
            value["insights"]["averageResponseTimeInHours"] == 30.0
            and value["insights"]["respondedCount"] == 1
        )

        # The expiring response is first counted, then leaves the window with no new event.
        # Only the edge (no sweep comes within the test: the default interval is a minute) publishes it.
        expiring_status = await read_topic(
            kafka_bootstrap,
            f"{prefix}requirement-status",
            count=2,
            timeout=60,
            predicate=status_records(expiring),
        )
        statuses = [r["value"] for r in expiring_status]
        assert statuses and datetime.fromisoformat(statuses[0]["observedDateTime"]) < edge, (
            f"the first evaluation came after the edge, the test proves nothing: {statuses}")
        assert len(statuses) == 2, f"no status when the response left the window: {statuses}"
        first, second = statuses
        assert (
            first["insights"]["respondedCount"] == 1
            and first["insights"]["averageResponseTimeInHours"] == 2.0
        )
        assert (
            second["insights"]["respondedCount"] == 0
            and second["insights"]["averageResponseTimeInHours"] is None
        )
        assert second["complianceStatus"] == "compliant"
        # Published at the edge itself, not at a later sweep: correct to the minute.
        published_after_edge = datetime.fromisoformat(second["observedDateTime"]) - edge
        assert timedelta(0) <= published_after_edge < timedelta(minutes=1), published_after_edge
    finally:
        rt.stop()


async def test_a_poison_record_is_dead_lettered_and_the_rest_of_the_batch_applied(
    make_service, kafka_bootstrap, prefix, own_database, own_pool, tenant_id
):
    rt = service(make_service, prefix, own_database).start()
    try:
        key = f"{tenant_id}:broken".encode()
        await produce(
            kafka_bootstrap,
            f"{prefix}alerts",
            b'{"eventType": "alert-created", "alert": 7}',
            key=key,
            headers={"eventType": "alert-created", "tenantId": tenant_id},
        )
        now = datetime.now(UTC)
        await produce_all(kafka_bootstrap, f"{prefix}alerts", [created(tenant_id, "fine", now - H)])

        async def stored() -> bool:
            return bool(await own_pool.fetchval("SELECT count(*) FROM alerts WHERE tenant_id = $1", tenant_id))

        await wait_for(stored, within=60)
        dead = await read_topic(
            kafka_bootstrap,
            f"{prefix}dead-letter",
            count=1,
            timeout=30,
            predicate=lambda r: r["key"] == key.decode(),
        )
        assert dead[0]["headers"]["dlq.error"] == "ValidationError"
        assert dead[0]["headers"]["dlq.source"].startswith(f"{prefix}alerts[")
        # The one envelope of every dead letter, as the middleware writes it.
        letter = DeadLetter.model_validate(dead[0]["value"])
        assert (letter.kind, letter.consumer, letter.tenant_id) == ("poison-record", "response-time", tenant_id)
        assert letter.record.original_bytes() == b'{"eventType": "alert-created", "alert": 7}'
        assert letter.record.headers["eventType"] == "alert-created"
    finally:
        rt.stop()


def _stream(tenant: str, alerts: int, now: datetime) -> list[Event]:
    """A mixed stream: creates, partner and system updates, test alerts, late creates, redeliveries."""
    rng = random.Random(7)
    events: list[Event] = []
    for i in range(alerts):
        detected = now - timedelta(minutes=rng.randint(60, 60 * 24 * 40)) if i % 5 else None
        ingested = now - timedelta(minutes=rng.randint(30, 60 * 24 * 40))
        create = created(
            tenant,
            f"a{i}",
            detected,
            ingested=ingested,
            is_test=(i % 17 == 0),
            response_at=(detected or ingested) + H if i % 11 == 0 else None,
        )
        start = detected or ingested
        updates = [
            updated(
                tenant,
                f"a{i}",
                start + timedelta(minutes=rng.randint(1, 3000)),
                detected,
                actor=PARTNER if i % 3 else SYSTEM,
                to="investigating",
            )
            for _ in range(rng.randint(0, 2))
        ]
        if i % 13 == 0 and updates:
            events += updates + [create]  # the update overtakes its create
        else:
            events += [create] + updates
        if i % 7 == 0:
            events.append(events[-1])  # a redelivery: the same event id again
    return events


def _expected(events: list[Event]) -> list[domain.AlertClock]:
    clocks: dict[str, domain.AlertClock] = {}
    seen: set = set()
    for event in events:
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        if isinstance(event, AlertCreated):
            clocks[event.alert.id] = domain.on_created(clocks.get(event.alert.id), event)
        else:
            clocks[event.alert_id] = domain.on_updated(clocks.get(event.alert_id), event)
    return list(clocks.values())


async def test_killed_mid_stream_resumes_without_double_count_or_loss(
    make_service, kafka_bootstrap, prefix, own_database, own_pool, tenant_id
):
    now = datetime.now(UTC).replace(microsecond=0)
    events = _stream(tenant_id, 1200, now)
    distinct_ids = list({e.event_id for e in events})
    await produce_all(kafka_bootstrap, f"{prefix}alerts", events)

    async def applied() -> int:
        return await own_pool.fetchval(
            "SELECT count(*) FROM processed_events WHERE consumer = $1 AND event_id = ANY($2::uuid[])",
            store.CONSUMER,
            distinct_ids,
        )

    # Small batches, so the stream is far from applied when the kill lands.
    rt = service(make_service, prefix, own_database, RESPONSE_TIME_REEVALUATE_SECONDS="2",
                 RESPONSE_TIME_BATCH_SIZE="100")
    rt.start(wait=False)
    try:
        await wait_for(lambda: _at_least(applied, len(distinct_ids) // 10), within=120, pause=0.02)
        rt.kill()
        at_kill = await applied()
        assert at_kill < len(distinct_ids), "the service finished before it could be killed mid-stream"

        rt.start()
        await wait_for(lambda: _at_least(applied, len(distinct_ids)), within=180, pause=0.5)
    finally:
        rt.stop()

    expected = {c.alert_id: c for c in _expected(events)}
    rows = await own_pool.fetch(f"SELECT {store._CLOCK_COLUMNS} FROM alerts WHERE tenant_id = $1", tenant_id)
    stored = {r["alert_id"]: store._clock(r) for r in rows}
    assert set(stored) == set(expected)
    for alert_id, clock in expected.items():
        got = stored[alert_id]
        assert (got.response, got.clock_started_at, got.is_test, got.status, got.created_seen) == (
            clock.response,
            clock.clock_started_at,
            clock.is_test,
            clock.status,
            clock.created_seen,
        ), alert_id
    assert await store.window_aggregates(own_pool, tenant_id, now) == aggregate(expected.values(), now)
    assert (await store.window_aggregates(own_pool, tenant_id, now)).responded_count > 0


async def _at_least(count, target: int) -> bool:
    return await count() >= target
