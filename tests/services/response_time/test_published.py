"""What the response-time service publishes, on the real broker and PostgreSQL: each alert's state on
``alert-response-times`` through the outbox, once per change, never for a rolled-back batch; its state
rebuilt from the ``alerts`` topic into an empty schema; an upgraded deployment's alerts published once.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.response_time import domain, store
from services.response_time.config import Settings
from shared import outbox
from shared.db import create_pool
from shared.events import AlertResponseTimeChanged, Topic
from shared.kafka import event_headers
from shared.response_time import aggregate
from tests.services.response_time.conftest import SCHEMA
from tests.services.response_time.events import SYSTEM, created, mixed_stream, updated
from tests.services.response_time.running import produce_all, service
from tests.support.databases import migrated_database
from tests.support.kafka import read_topic
from tests.support.polling import eventually

H = timedelta(hours=1)
MIGRATIONS = Path(store.__file__).parent / "migrations"


async def response_times(bootstrap: str, prefix: str, tenant_id: str) -> list[AlertResponseTimeChanged]:
    """Every alert-response-time-changed record of the tenant so far, in the topic's order."""
    records = await read_topic(bootstrap, f"{prefix}{Topic.alert_response_times.value}", timeout=5,
                               predicate=lambda r: r["key"].startswith(f"{tenant_id}:"))
    events = [AlertResponseTimeChanged.model_validate(r["value"]) for r in records]
    for record, event in zip(records, events, strict=True):
        assert record["key"] == event.kafka_key().decode()
        assert record["headers"]["eventType"] == "alert-response-time-changed"
    return events


async def test_each_change_of_an_alert_is_published_once_with_its_latency(
    make_service, kafka_bootstrap, prefix, own_database, tenant_id
):
    now = datetime.now(UTC).replace(microsecond=0)
    create = created(tenant_id, "a1", now - 5 * H)
    response = updated(tenant_id, "a1", now - 2 * H, now - 5 * H, to="investigating")
    resolution = updated(tenant_id, "a1", now - H, now - 5 * H, actor=SYSTEM, to="resolved")
    # One record per batch, so each event, each duplicate too, is a transaction of its own (a batch
    # publishes each alert's state once, as the batch leaves it).
    rt = service(make_service, prefix, own_database, RESPONSE_TIME_BATCH_SIZE="1").start()
    try:
        # Each duplicate (the same event id again) comes before the resolution, on the alert's partition:
        # once the resolution is published, anything a duplicate published would be there too.
        await produce_all(kafka_bootstrap, f"{prefix}alerts", [create, response, response, create, resolution])
        events = await eventually(lambda: response_times(kafka_bootstrap, prefix, tenant_id),
                                  lambda got: any(e.status == "resolved" for e in got), within=60,
                                  what="the resolution published")
    finally:
        rt.stop()
    assert [(e.alert_id, e.status, e.latency_us) for e in events] == [
        ("a1", "active", None),
        ("a1", "investigating", 3 * 3_600_000_000),
        ("a1", "resolved", 3 * 3_600_000_000),  # write-once: a system resolution leaves the response
    ]
    assert (events[1].responded_date_time, events[1].responded_by) == (now - 2 * H, "ana@partner.example")
    assert events[0].clock_started_date_time == now - 5 * H and events[0].alert["id"] == "a1"


async def test_a_rolled_back_batch_publishes_nothing(kafka_bootstrap, prefix, own_database, own_rt_pool, tenant_id):
    settings = Settings(database_url=own_database, kafka_bootstrap_servers=kafka_bootstrap, kafka_topic_prefix=prefix)
    relay = outbox.OutboxRelay(settings, schema=SCHEMA, client_id="test-response-time-outbox")
    await relay.start()
    try:
        async with own_rt_pool.acquire() as conn:
            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    assert await store.apply_events_in(conn, [created(tenant_id, "gone", datetime.now(UTC) - H)])
                    raise RuntimeError("the batch fails after its events were applied")
        assert await store.apply_events(own_rt_pool, [created(tenant_id, "kept", datetime.now(UTC) - H)])
        relay.wake()
        events = await eventually(lambda: response_times(kafka_bootstrap, prefix, tenant_id), within=30,
                                  what="the committed batch published")
        await eventually(lambda: outbox.backlog(own_rt_pool), lambda b: b == (0, None), within=10,
                         what="the outbox emptied")
    finally:
        await relay.close()
    assert [e.alert_id for e in events] == ["kept"]


_STATE_COLUMNS = """tenant_id, alert_id, display_name, alert_type, severity, status, customer_tenant_id, is_test,
                    detected_at, clock_started_at, alert::text, ingested_at, created_seen, state_as_of,
                    responded_at, responded_by, latency_us"""


async def state(pool, tenant_id: str, now: datetime) -> tuple[list[dict], object]:
    """The tenant's per-alert rows (all but their bookkeeping times) and its figures at ``now``."""
    rows = await pool.fetch(f"SELECT {_STATE_COLUMNS} FROM alerts WHERE tenant_id = $1 ORDER BY alert_id",
                            tenant_id)
    return [dict(r) for r in rows], await store.current_figures(pool, tenant_id, now)


@dataclass(frozen=True)
class Timing:
    """An alert as a read model of alert-response-times holds it (what the figures read)."""

    status: str
    is_test: bool
    clock_started_at: datetime
    responded_at: datetime | None
    latency_us: int | None


def latest_timings(events: list[AlertResponseTimeChanged]) -> list[Timing]:
    latest = {e.alert_id: e for e in events}  # the topic is compacted by alert: the last one counts
    return [Timing(e.status, e.is_test, e.clock_started_date_time, e.responded_date_time, e.latency_us)
            for e in latest.values()]


async def test_the_state_rebuilt_from_the_alerts_topic_into_an_empty_schema_equals_the_state_before(
    make_service, kafka_bootstrap, prefix, own_database, own_rt_pool, test_env, tenant_id
):
    now = datetime.now(UTC).replace(microsecond=0)
    events = mixed_stream(tenant_id, 300, now)
    distinct_ids = list({e.event_id for e in events})
    await produce_all(kafka_bootstrap, f"{prefix}alerts", events)

    async def applied(pool) -> int:
        return await pool.fetchval(
            "SELECT count(*) FROM processed_events WHERE consumer = $1 AND event_id = ANY($2::uuid[])",
            store.CONSUMER, distinct_ids)

    first = service(make_service, prefix, own_database).start()
    try:
        await eventually(lambda: applied(own_rt_pool), lambda n: n == len(distinct_ids), within=120,
                         what="the stream applied")
        await eventually(lambda: outbox.backlog(own_rt_pool), lambda b: b == (0, None), within=30,
                         what="the outbox emptied")
    finally:
        first.stop()
    before = await state(own_rt_pool, tenant_id, now)
    assert len(before[0]) == 300 and before[1].responded_count > 0 and before[1].open_count > 0
    # What the service published says the same: the figures of its last event per alert are its own.
    published = latest_timings(await response_times(kafka_bootstrap, prefix, tenant_id))
    assert aggregate(published, now) == await store.window_aggregates(own_rt_pool, tenant_id, now)

    _, _, current = own_database.rpartition("/")
    async with migrated_database(own_database, f"{current}_rebuilt") as empty:
        pool = await create_pool(empty, schema=SCHEMA)
        try:
            assert await pool.fetchval("SELECT count(*) FROM alerts") == 0
            # A consumer group of its own: the alerts topic from its beginning.
            group = f"{prefix}response-time-rebuild-{uuid.uuid4().hex[:6]}"
            rebuilt = service(make_service, prefix, empty, CONSUMER_GROUP=group).start()
            try:
                await eventually(lambda: applied(pool), lambda n: n == len(distinct_ids), within=120,
                                 what="the stream applied again")
            finally:
                rebuilt.stop()
            after = await state(pool, tenant_id, now)
        finally:
            await pool.close()
    assert after[1] == before[1]
    assert after[0] == before[0]


async def test_an_upgrade_publishes_every_alert_already_known_once_as_stored(own_rt_pool, tenant_id):
    now = datetime.now(UTC).replace(microsecond=0)
    await store.apply_events(own_rt_pool, [
        created(tenant_id, "answered", now - 5 * H, response_at=now - 2 * H),
        created(tenant_id, "open", None, ingested=now - 3 * H, is_test=True),
        updated(tenant_id, "resolved", now - H, now - 4 * H, actor=SYSTEM),
    ])
    rows = await own_rt_pool.fetch(f"SELECT {store._CLOCK_COLUMNS} FROM alerts WHERE tenant_id = $1", tenant_id)
    stored = {r["alert_id"]: store._clock(r) for r in rows}
    # The deployment before 0071: its alerts, and no outbox. The migration runs as the runner runs it.
    async with own_rt_pool.acquire() as conn, conn.transaction():
        await conn.execute("DROP TABLE outbox")
        await conn.execute((MIGRATIONS / "0071_outbox.sql").read_text())
    records = await own_rt_pool.fetch("SELECT topic, key, value, headers FROM outbox ORDER BY id")
    assert {r["topic"] for r in records} == {Topic.alert_response_times.value}
    events = [AlertResponseTimeChanged.model_validate_json(r["value"]) for r in records]
    assert sorted(e.alert_id for e in events) == sorted(stored)
    for record, event in zip(records, events, strict=True):
        assert bytes(record["key"]) == event.kafka_key()
        assert json.loads(record["headers"]) == {"content-type": "application/json", **event_headers(event)}
        expected = AlertResponseTimeChanged(tenant_id=tenant_id, alert_id=event.alert_id,
                                            **domain.published_view(stored[event.alert_id]))
        assert event.model_dump(exclude={"event_id", "occurred_date_time"}) == expected.model_dump(
            exclude={"event_id", "occurred_date_time"})
