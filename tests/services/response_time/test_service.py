"""The response-time service as a real process on the real broker and PostgreSQL.

Each test runs the service on topics, a consumer group and a database of its own (``prefix`` and
``own_database`` fixtures), so no other response-time process of the session (the ``system``
fixture's) sees its events or evaluates its tenants: that one would publish a tenant's figures to
its own topics and record them as published, and this test's topic would never see them.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from services.response_time import domain, store
from shared.dead_letters import DeadLetter
from shared.events import Actor, ActorType
from shared.response_time import WINDOW, aggregate
from shared.responses import NEAR_LIMIT_HOURS
from tests.services.response_time.events import created, folded, mixed_stream
from tests.services.response_time.running import produce_all, service
from tests.support.kafka import produce, read_topic

H = timedelta(hours=1)
SYSTEM = Actor(type=ActorType.system)


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


async def test_an_open_alert_reaching_20_hours_publishes_a_status_with_no_further_event(
    make_service, kafka_bootstrap, prefix, own_database
):
    """The notifier warns when an open alert nears 24 hours: the status saying so must go out when the
    alert reaches 20 h, though nothing happens to it then (no sweep comes within the test either)."""
    rt = service(make_service, prefix, own_database, RESPONSE_TIME_REEVALUATE_SECONDS="3600").start()
    try:
        tenant = f"tenant-near-{uuid.uuid4().hex[:8]}"
        # 20 s of margin (the service is ready: it only has to join its group and evaluate): on a loaded
        # machine the first evaluation must still come before the crossing.
        crossing = datetime.now(UTC) + timedelta(seconds=20)
        await produce_all(kafka_bootstrap, f"{prefix}alerts",
                          [created(tenant, "n1", crossing - timedelta(hours=NEAR_LIMIT_HOURS))])

        records = await read_topic(kafka_bootstrap, f"{prefix}requirement-status", count=2, timeout=100,
                                   predicate=status_records(tenant))
        statuses = [r["value"] for r in records]
        assert statuses and datetime.fromisoformat(statuses[0]["observedDateTime"]) < crossing, (
            f"the first evaluation came after the crossing, the test proves nothing: {statuses}")
        assert len(statuses) == 2, f"no status when the open alert reached 20 hours: {statuses}"
        first, second = (s["insights"] for s in statuses)
        assert (first["openCount"], first["openAlertNearLimit"]) == (1, False)
        assert (second["openCount"], second["openAlertNearLimit"], second["atRisk"]) == (1, True, False)
        assert 20.0 <= second["oldestOpenAgeHours"] < 20.1
        # Published at the crossing itself (the wake-up there), not at a later sweep.
        published_after = datetime.fromisoformat(statuses[1]["observedDateTime"]) - crossing
        assert timedelta(0) <= published_after < timedelta(seconds=30), published_after
    finally:
        rt.stop()


async def test_a_poison_record_is_dead_lettered_and_the_rest_of_the_batch_applied(
    make_service, kafka_bootstrap, prefix, own_database, own_rt_pool, tenant_id
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
            return bool(await own_rt_pool.fetchval("SELECT count(*) FROM alerts WHERE tenant_id = $1", tenant_id))

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


async def test_killed_mid_stream_resumes_without_double_count_or_loss(
    make_service, kafka_bootstrap, prefix, own_database, own_rt_pool, tenant_id
):
    now = datetime.now(UTC).replace(microsecond=0)
    events = mixed_stream(tenant_id, 1200, now)
    distinct_ids = list({e.event_id for e in events})
    await produce_all(kafka_bootstrap, f"{prefix}alerts", events)

    async def applied() -> int:
        return await own_rt_pool.fetchval(
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

    expected = {c.alert_id: c for c in folded(events)}
    rows = await own_rt_pool.fetch(f"SELECT {store._CLOCK_COLUMNS} FROM alerts WHERE tenant_id = $1", tenant_id)
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
    assert await store.window_aggregates(own_rt_pool, tenant_id, now) == aggregate(expected.values(), now)
    assert (await store.window_aggregates(own_rt_pool, tenant_id, now)).responded_count > 0


async def _at_least(count, target: int) -> bool:
    return await count() >= target
