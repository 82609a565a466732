"""The status publisher's evaluation on the real PostgreSQL, with a stand-in broker (no Kafka needed)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from services.response_time import status, store
from services.response_time.config import Settings
from tests.services.response_time.events import created

H = timedelta(hours=1)


class RecordingBroker:
    """Acknowledges every publish at once and keeps what was published."""

    def __init__(self) -> None:
        self.published: list[dict] = []

    async def publish(self, body: bytes, **_: object) -> None:
        self.published.append(json.loads(body))


class UnreachableBroker:
    """A broker outage: a publish never gets its acknowledgement."""

    async def publish(self, body: bytes, **_: object) -> None:
        await asyncio.Event().wait()


def observed(event: dict) -> datetime:
    return datetime.fromisoformat(event["observedDateTime"].replace("Z", "+00:00"))


def test_next_observed_is_strictly_after_the_last_published():
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    assert status.next_observed(now, None) == now
    assert status.next_observed(now, now - H) == now
    assert status.next_observed(now, now + H) == now + H + timedelta(microseconds=1)
    assert status.next_observed(now, now) == now + timedelta(microseconds=1)


async def test_a_lagging_instance_still_publishes_a_newer_observed_time(db_pool, tenant_id):
    # Another instance, whose clock runs an hour ahead, published last.
    ahead = datetime.now(UTC) + H
    await db_pool.execute(
        """INSERT INTO response_time_tenants (tenant_id, last_key, last_published_at)
           VALUES ($1, '{"stale": true}'::jsonb, $2)""", tenant_id, ahead)
    broker, settings = RecordingBroker(), Settings()
    assert await store.apply_alert_created(db_pool, created(tenant_id, "a1", datetime.now(UTC) - H))
    assert await status.evaluate_tenant(db_pool, broker, settings, tenant_id)
    first = observed(broker.published[-1])
    assert first == ahead + timedelta(microseconds=1)
    assert await db_pool.fetchval(
        "SELECT last_published_at FROM response_time_tenants WHERE tenant_id = $1", tenant_id) == first
    # the next change is published later still
    assert await store.apply_alert_created(
        db_pool, created(tenant_id, "a2", datetime.now(UTC) - H, response_at=datetime.now(UTC)))
    assert await status.evaluate_tenant(db_pool, broker, settings, tenant_id)
    assert observed(broker.published[-1]) > first


async def test_a_publish_during_a_broker_outage_gives_up_and_frees_the_tenant(db_pool, tenant_id):
    settings = Settings(response_time_publish_timeout_seconds=0.5)
    await db_pool.execute("INSERT INTO response_time_tenants (tenant_id) VALUES ($1)", tenant_id)
    assert await store.apply_alert_created(db_pool, created(tenant_id, "a1", datetime.now(UTC) - H))
    with pytest.raises(TimeoutError):
        await status.evaluate_tenant(db_pool, UnreachableBroker(), settings, tenant_id)
    # nothing recorded, and the row lock is released (NOWAIT would fail on a held lock)
    async with db_pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT last_key FROM response_time_tenants WHERE tenant_id = $1 FOR UPDATE NOWAIT", tenant_id)
    assert row["last_key"] is None


async def test_an_evaluation_records_the_tenants_next_edge(db_pool, tenant_id):
    now = datetime.now(UTC)
    leaving_at = now - timedelta(days=30) + timedelta(minutes=5)
    assert await store.apply_alert_created(
        db_pool, created(tenant_id, "a1", leaving_at - H, response_at=leaving_at))
    await status.evaluate_tenant(db_pool, RecordingBroker(), Settings(), tenant_id)
    edge = await db_pool.fetchval("SELECT next_edge_at FROM response_time_tenants WHERE tenant_id = $1",
                                  tenant_id)
    assert edge == leaving_at + timedelta(days=30)
    assert await store.next_edge(db_pool) <= edge
    # due once the edge is reached, not before; then evaluated without any event or mark
    assert tenant_id not in await store.due_tenants(db_pool, edge - timedelta(microseconds=1))
    assert tenant_id in await store.due_tenants(db_pool, edge)


class SlowBroker(RecordingBroker):
    """Acknowledges each publish after a few milliseconds, as a real broker does."""

    def __init__(self) -> None:
        super().__init__()
        self.condition = asyncio.Condition()

    async def publish(self, body: bytes, **kwargs: object) -> None:
        await asyncio.sleep(0.01)
        await super().publish(body, **kwargs)
        async with self.condition:
            self.condition.notify_all()

    async def wait_published(self, tenant: str | None = None, at_least: int = 1) -> None:
        """Until ``at_least`` statuses (of ``tenant``, or of anyone) were published."""
        async with self.condition:
            await self.condition.wait_for(
                lambda: sum(tenant in (None, e["tenantId"]) for e in self.published) >= at_least)


async def test_a_long_sweep_does_not_hold_back_a_changed_tenant(own_pool, tenant_id):
    # 400 tenants never published: the sweep at start publishes each, 10 ms apiece (4 s at least).
    swept = [f"swept-{i:03d}" for i in range(400)]
    await own_pool.execute("INSERT INTO response_time_tenants (tenant_id) SELECT unnest($1::text[])", swept)
    broker = SlowBroker()
    publisher = status.StatusPublisher(own_pool, broker, Settings())
    publisher.start()
    try:
        await asyncio.wait_for(broker.wait_published(at_least=10), 30)  # the sweep is under way
        # An alert arrives (the consumer applies it and wakes the publisher).
        assert await store.apply_alert_created(own_pool, created(tenant_id, "a1", datetime.now(UTC) - H))
        publisher.wake()
        await asyncio.wait_for(broker.wait_published(tenant_id), 60)
        order = [e["tenantId"] for e in broker.published]
        assert len(set(swept) - set(order)) > 100, "the change waited for (most of) the sweep"
        await asyncio.wait_for(broker.wait_published(swept[-1]), 60)  # and the sweep still finishes
        assert set(swept) <= {e["tenantId"] for e in broker.published}
    finally:
        await publisher.stop()


async def test_steady_changes_do_not_stall_the_sweep(own_pool):
    # A consumer waking the publisher every 20 ms (steady traffic) while 400 tenants are swept: the
    # sweep still advances in whole slices (it took 80 s and more when each wake-up ended a slice).
    swept = [f"swept-{i:03d}" for i in range(400)]
    await own_pool.execute("INSERT INTO response_time_tenants (tenant_id) SELECT unnest($1::text[])", swept)
    broker = SlowBroker()
    publisher = status.StatusPublisher(own_pool, broker, Settings())

    async def steady_traffic() -> None:
        while True:
            publisher.wake()
            await asyncio.sleep(0.02)

    publisher.start()
    traffic = asyncio.create_task(steady_traffic())
    try:
        await asyncio.wait_for(broker.wait_published(at_least=len(swept)), 40)
    finally:
        traffic.cancel()
        await publisher.stop()
    assert set(swept) <= {e["tenantId"] for e in broker.published}


class BrokerFailingFor(SlowBroker):
    """Refuses the statuses of one tenant (a tenant whose evaluation always fails)."""

    def __init__(self, tenant_id: str) -> None:
        super().__init__()
        self.tenant_id = tenant_id

    async def publish(self, body: bytes, **kwargs: object) -> None:
        if json.loads(body)["tenantId"] == self.tenant_id:
            raise ConnectionError("injected failure")
        await super().publish(body, **kwargs)


async def test_a_tenant_that_keeps_failing_does_not_hold_back_the_others(own_pool):
    now = datetime.now(UTC)
    bad, good = "a-always-fails", "b-fine"  # the failing one sorts first
    broker = BrokerFailingFor(bad)
    publisher = status.StatusPublisher(own_pool, broker, Settings())
    publisher.start()
    try:
        await asyncio.sleep(1)  # the sweep at start is over (no tenants yet): only the marks count now
        for tenant in (bad, good):
            assert await store.apply_alert_created(own_pool, created(tenant, "x", now - H))
        publisher.wake()
        await asyncio.wait_for(broker.wait_published(good), 30)
        # The failing tenant is marked again for a later round, not dropped.
        for _ in range(200):
            if await own_pool.fetchval("SELECT count(*) FROM response_time_dirty WHERE tenant_id = $1", bad):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the failing tenant was not marked again")
    finally:
        await publisher.stop()
    assert bad not in {e["tenantId"] for e in broker.published}
