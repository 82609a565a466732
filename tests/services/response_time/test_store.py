"""The store on the real PostgreSQL: events folded exactly once, and SQL figures equal to the reference."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.response_time import domain, store
from shared.db import create_pool
from shared.events import Actor, ActorType, AlertResponseTimeChanged, Topic
from shared.response_time import MICROSECONDS_PER_HOUR, aggregate, window_start
from tests.services.response_time.conftest import SCHEMA
from tests.services.response_time.events import created, updated

H = timedelta(hours=1)
NOW = datetime.now(UTC).replace(microsecond=0)


async def clocks(rt_pool, tenant: str) -> list[domain.AlertClock]:
    rows = await rt_pool.fetch(f"SELECT {store._CLOCK_COLUMNS} FROM alerts WHERE tenant_id = $1", tenant)
    return [store._clock(r) for r in rows]


async def test_each_event_applies_once(rt_pool, tenant_id):
    event = created(tenant_id, "a1", NOW - 5 * H)
    assert await store.apply_alert_created(rt_pool, event)
    assert not await store.apply_alert_created(rt_pool, event)
    update = updated(tenant_id, "a1", NOW - 2 * H, NOW - 5 * H)
    assert await store.apply_alert_updated(rt_pool, update)
    assert not await store.apply_alert_updated(rt_pool, update)
    row = await rt_pool.fetchrow(
        "SELECT status, responded_at, responded_by, latency_us FROM alerts "
        "WHERE tenant_id = $1 AND alert_id = 'a1'",
        tenant_id,
    )
    assert dict(row) == {
        "status": "resolved",
        "responded_at": NOW - 2 * H,
        "responded_by": "ana@partner.example",
        "latency_us": 3 * MICROSECONDS_PER_HOUR,
    }
    assert (
        await rt_pool.fetchval("SELECT count(*) FROM response_time_dirty WHERE tenant_id = $1", tenant_id)
        == 1
    )


async def test_update_before_create_is_reconciled_in_the_database(rt_pool, tenant_id):
    assert await store.apply_alert_updated(rt_pool, updated(tenant_id, "late", NOW - 1 * H))
    figures = await store.current_figures(rt_pool, tenant_id, NOW)
    assert figures.responded_count == 1  # counted already, from the provisional start (latency 0)
    assert await store.apply_alert_created(rt_pool, created(tenant_id, "late", None, ingested=NOW - 4 * H))
    figures = await store.current_figures(rt_pool, tenant_id, NOW)
    assert (figures.responded_count, figures.average_response_time_in_hours) == (1, 3.0)
    row = await rt_pool.fetchrow("SELECT status, created_seen FROM alerts WHERE tenant_id = $1", tenant_id)
    assert (row["status"], row["created_seen"]) == ("resolved", True)


async def test_sql_figures_equal_the_reference_at_the_window_edges(rt_pool, tenant_id):
    edge = NOW - timedelta(days=30)
    events = [
        created(tenant_id, "exactly-30-days", edge - 2 * H, response_at=edge),
        created(tenant_id, "just-inside", edge - 5 * H, response_at=edge + timedelta(microseconds=1)),
        created(tenant_id, "recent", NOW - 30 * H, response_at=NOW - 5 * H),
        created(tenant_id, "before-detection", NOW - 3 * H, response_at=NOW - 4 * H),
        created(tenant_id, "test-alert", NOW - 200 * H, response_at=NOW - H, is_test=True),
        created(tenant_id, "open-test", NOW - 900 * H, is_test=True),
        created(tenant_id, "open-old", NOW - 40 * H),
        created(tenant_id, "open-new", NOW - 2 * H + timedelta(microseconds=7)),
        created(tenant_id, "open-future", NOW + 2 * H),
    ]
    for event in events:
        assert await store.apply_alert_created(rt_pool, event)
    other_tenant = f"{tenant_id}-other"
    assert await store.apply_alert_created(
        rt_pool, created(other_tenant, "recent", NOW - 99 * H, response_at=NOW - H)
    )

    for now in (NOW, NOW + timedelta(microseconds=1), NOW - timedelta(microseconds=1), NOW + 10 * H):
        reference = aggregate(await clocks(rt_pool, tenant_id), now)
        assert await store.window_aggregates(rt_pool, tenant_id, now) == reference
    figures = await store.current_figures(rt_pool, tenant_id, NOW)
    assert figures.responded_count == 3 and figures.open_count == 3
    # (5 h + 25 h + 0 h) / 3 responses in the window
    assert figures.average_response_time_in_hours == 10.0 and figures.compliant
    assert figures.oldest_open_age_hours == 40.0
    assert (await store.current_figures(rt_pool, other_tenant, NOW)).average_response_time_in_hours == 98.0


async def test_window_query_uses_the_partial_indexes(rt_pool, tenant_id):
    async with rt_pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                "EXPLAIN " + store._AGGREGATES, tenant_id, window_start(NOW), NOW
            )
        )
    # Which index the planner picks depends on the table's statistics (other tests share it), so
    # the test asserts what matters: with sequential scans made prohibitive, an index serves every
    # part of the query, i.e. the figures never need a scan of the tenant's whole history.
    assert "Seq Scan" not in plan, plan
    assert "Index" in plan, plan


async def test_a_batch_applies_each_event_once_in_order(rt_pool, tenant_id):
    create = created(tenant_id, "b1", NOW - 6 * H)
    first = updated(tenant_id, "b1", NOW - 5 * H, NOW - 6 * H)
    later = updated(tenant_id, "b1", NOW - 1 * H, NOW - 6 * H)
    assert await store.apply_events(rt_pool, [create, first, first, later, create]) == [tenant_id]
    assert await store.apply_events(rt_pool, [create, first, later]) == []  # a replay of the whole batch
    row = await rt_pool.fetchrow(
        "SELECT responded_at, latency_us FROM alerts WHERE tenant_id = $1", tenant_id
    )
    assert (row["responded_at"], row["latency_us"]) == (NOW - 5 * H, MICROSECONDS_PER_HOUR)
    claimed = await rt_pool.fetchval(
        "SELECT count(*) FROM processed_events WHERE consumer = $1 AND event_id = ANY($2::uuid[])",
        store.CONSUMER,
        [create.event_id, first.event_id, later.event_id],
    )
    assert claimed == 3


async def test_closed_unanswered_alerts_in_sql_equal_the_reference(rt_pool, tenant_id):
    system = Actor(type=ActorType.system)
    events = [
        created(tenant_id, "system-resolved", NOW - timedelta(days=365)),
        updated(tenant_id, "system-resolved", NOW - timedelta(days=364), actor=system),
        created(tenant_id, "reopened", NOW - 50 * H),
        updated(tenant_id, "reopened", NOW - 49 * H, actor=system),
        updated(tenant_id, "reopened", NOW - 48 * H, actor=system, to="active"),
        created(tenant_id, "resolved-then-answered", NOW - 30 * H),
        updated(tenant_id, "resolved-then-answered", NOW - 29 * H, actor=system),
        updated(tenant_id, "resolved-then-answered", NOW - 20 * H, to="investigating"),
        created(tenant_id, "open", NOW - 10 * H),
    ]
    assert await store.apply_events(rt_pool, events) == [tenant_id]
    for now in (NOW, NOW + 10 * H):
        reference = aggregate(await clocks(rt_pool, tenant_id), now)
        assert await store.window_aggregates(rt_pool, tenant_id, now) == reference
    figures = await store.current_figures(rt_pool, tenant_id, NOW)
    assert (figures.open_count, figures.oldest_open_age_hours) == (2, 50.0)
    assert (figures.responded_count, figures.average_response_time_in_hours) == (1, 10.0)


async def test_two_events_of_a_new_alert_applied_concurrently_equal_them_applied_in_order(own_database, tenant_id):
    # Two consumers briefly hold one partition during a rebalance: each applies one event of an alert
    # that has no row yet, so there is no row for either to lock. Both transactions are held just
    # before their insert (a SHARE lock on the table, taken by a third session) until both are there.
    creation = created(tenant_id, "new", NOW - 5 * H)
    response = updated(tenant_id, "new", NOW - 2 * H, NOW - 5 * H)
    in_order = f"{tenant_id}-in-order"
    # One connection each, so each pool's session (its pid) is known.
    reference_pool, first, second = [await create_pool(own_database, schema=SCHEMA, max_size=1) for _ in range(3)]
    first_pid, second_pid = [await pool.fetchval("SELECT pg_backend_pid()") for pool in (first, second)]
    blocker = await asyncpg.connect(own_database, server_settings={"search_path": SCHEMA})
    try:
        await store.apply_events(reference_pool, [_for(creation, in_order)])
        await store.apply_events(reference_pool, [_for(response, in_order)])

        async with blocker.transaction():
            await blocker.execute("LOCK TABLE alerts IN SHARE MODE")
            applying_response = asyncio.create_task(store.apply_events(first, [response]))
            await _waits_for_a_lock(blocker, first_pid)
            applying_creation = asyncio.create_task(store.apply_events(second, [creation]))
            await _waits_for_a_lock(blocker, second_pid)
        assert await asyncio.wait_for(asyncio.gather(applying_response, applying_creation), 30) == [
            [tenant_id],
            [tenant_id],
        ]

        (concurrent,) = await clocks(reference_pool, tenant_id)
        (reference,) = await clocks(reference_pool, in_order)
        assert dataclasses.replace(concurrent, tenant_id=in_order) == reference
        assert concurrent.response == domain.Response(NOW - 2 * H, "ana@partner.example")
    finally:
        await blocker.close()
        for pool in (reference_pool, first, second):
            await pool.close()


def _for(event, tenant: str):
    """The same event for another tenant, under an id of its own."""
    return event.model_copy(update={"tenant_id": tenant, "event_id": uuid.uuid4()})


async def _waits_for_a_lock(observer: asyncpg.Connection, pid: int) -> None:
    """Until the session ``pid`` waits for a lock (a row, a table or an advisory lock)."""
    deadline = asyncio.get_running_loop().time() + 20
    while await observer.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid) != "Lock":
        assert asyncio.get_running_loop().time() < deadline, "the transaction never reached its lock"
        await asyncio.sleep(0.02)


# --- alert-response-times through the outbox ---------------------------------------------------------


async def response_time_rows(pool) -> list[AlertResponseTimeChanged]:
    """The alert-response-time-changed events waiting in the outbox, in their order."""
    rows = await pool.fetch("SELECT key, value, headers FROM outbox WHERE topic = $1 ORDER BY id",
                            Topic.alert_response_times.value)
    events = [AlertResponseTimeChanged.model_validate_json(r["value"]) for r in rows]
    for row, event in zip(rows, events, strict=True):
        assert bytes(row["key"]) == event.kafka_key()
        assert json.loads(row["headers"])["eventType"] == "alert-response-time-changed"
    return events


async def test_each_change_of_an_alert_enqueues_its_stored_state_once(own_rt_pool, tenant_id):
    create_a1, create_a2 = created(tenant_id, "a1", NOW - 5 * H), created(tenant_id, "a2", NOW - 4 * H)
    response = updated(tenant_id, "a1", NOW - 2 * H, NOW - 5 * H, to="investigating")
    assert await store.apply_events(own_rt_pool, [create_a1, create_a2]) == [tenant_id]
    assert await store.apply_events(own_rt_pool, [response, response]) == [tenant_id]
    assert await store.apply_events(own_rt_pool, [response]) == []  # a redelivery
    # An update that occurred before the stored state, with no partner change: it moves nothing.
    stale = updated(tenant_id, "a1", NOW - 3 * H, NOW - 5 * H, actor=Actor(type=ActorType.system), to="active")
    stale = stale.model_copy(update={"occurred_date_time": NOW - 3 * H})
    assert await store.apply_events(own_rt_pool, [stale]) == []

    events = await response_time_rows(own_rt_pool)
    assert [(e.alert_id, e.status, e.latency_us) for e in events] == [
        ("a1", "active", None), ("a2", "active", None), ("a1", "investigating", 3 * MICROSECONDS_PER_HOUR)]
    # The last event of each alert is its row as stored.
    for event in events[1:]:
        row = await own_rt_pool.fetchrow(
            """SELECT alert, status, is_test, clock_started_at, responded_at, responded_by, latency_us
               FROM alerts WHERE tenant_id = $1 AND alert_id = $2""", tenant_id, event.alert_id)
        assert (json.loads(row["alert"]), row["status"], row["is_test"], row["clock_started_at"],
                row["responded_at"], row["responded_by"], row["latency_us"]) == (
            event.alert, event.status, event.is_test, event.clock_started_date_time, event.responded_date_time,
            event.responded_by, event.latency_us)


async def test_a_rolled_back_batch_enqueues_nothing(own_rt_pool, tenant_id):
    async with own_rt_pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                assert await store.apply_events_in(conn, [created(tenant_id, "gone", NOW - H)]) == [tenant_id]
                assert len(await response_time_rows(conn)) == 1  # enqueued, in the transaction
                raise RuntimeError("the batch fails after its events were applied")
    assert await response_time_rows(own_rt_pool) == []
    assert await own_rt_pool.fetchval("SELECT count(*) FROM alerts") == 0
