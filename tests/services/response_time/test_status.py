"""The status publisher on the real PostgreSQL: what it enqueues in the outbox, and when (no Kafka needed)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from services.response_time import status, store
from services.response_time.config import Settings
from shared.events import Topic
from tests.services.response_time.events import created
from tests.support.polling import eventually

H = timedelta(hours=1)


async def statuses(pool) -> list[dict]:
    """The requirement statuses enqueued in the outbox, in their order."""
    rows = await pool.fetch("SELECT value FROM outbox WHERE topic = $1 ORDER BY id", Topic.requirement_status.value)
    return [json.loads(r["value"]) for r in rows]


def observed(event: dict) -> datetime:
    return datetime.fromisoformat(event["observedDateTime"].replace("Z", "+00:00"))


def test_next_observed_is_strictly_after_the_last_published():
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    assert status.next_observed(now, None) == now
    assert status.next_observed(now, now - H) == now
    assert status.next_observed(now, now + H) == now + H + timedelta(microseconds=1)
    assert status.next_observed(now, now) == now + timedelta(microseconds=1)


async def test_a_lagging_instance_still_publishes_a_newer_observed_time(own_rt_pool, tenant_id):
    # Another instance, whose clock runs an hour ahead, published last.
    ahead = datetime.now(UTC) + H
    await own_rt_pool.execute(
        """INSERT INTO response_time_tenants (tenant_id, last_key, last_published_at)
           VALUES ($1, '{"stale": true}'::jsonb, $2)""", tenant_id, ahead)
    assert await store.apply_alert_created(own_rt_pool, created(tenant_id, "a1", datetime.now(UTC) - H))
    assert await status.evaluate_tenant(own_rt_pool, tenant_id)
    first = observed((await statuses(own_rt_pool))[-1])
    assert first == ahead + timedelta(microseconds=1)
    assert await own_rt_pool.fetchval(
        "SELECT last_published_at FROM response_time_tenants WHERE tenant_id = $1", tenant_id) == first
    # the next change is published later still
    assert await store.apply_alert_created(
        own_rt_pool, created(tenant_id, "a2", datetime.now(UTC) - H, response_at=datetime.now(UTC)))
    assert await status.evaluate_tenant(own_rt_pool, tenant_id)
    assert observed((await statuses(own_rt_pool))[-1]) > first


async def test_a_status_is_enqueued_with_the_record_of_it_and_only_when_the_figures_changed(own_rt_pool, tenant_id):
    assert await store.apply_alert_created(
        own_rt_pool, created(tenant_id, "a1", datetime.now(UTC) - 3 * H, response_at=datetime.now(UTC) - H))
    assert await status.evaluate_tenant(own_rt_pool, tenant_id)
    assert not await status.evaluate_tenant(own_rt_pool, tenant_id)  # nothing changed: nothing enqueued
    [published] = await statuses(own_rt_pool)
    recorded = await own_rt_pool.fetchrow(
        "SELECT last_figures, last_published_at FROM response_time_tenants WHERE tenant_id = $1", tenant_id)
    assert (published["tenantId"], published["requirementType"], published["source"]) == (
        tenant_id, "securityAlertsPromptlyResolved", "response-time")
    assert published["complianceStatus"] == "compliant" and published["insights"]["respondedCount"] == 1
    assert published["insights"] == json.loads(recorded["last_figures"])
    assert observed(published) == recorded["last_published_at"]


async def test_an_evaluation_records_the_tenants_next_edge(rt_pool, tenant_id):
    now = datetime.now(UTC)
    leaving_at = now - timedelta(days=30) + timedelta(minutes=5)
    assert await store.apply_alert_created(
        rt_pool, created(tenant_id, "a1", leaving_at - H, response_at=leaving_at))
    await status.evaluate_tenant(rt_pool, tenant_id)
    edge = await rt_pool.fetchval("SELECT next_edge_at FROM response_time_tenants WHERE tenant_id = $1",
                                  tenant_id)
    assert edge == leaving_at + timedelta(days=30)
    assert await store.next_edge(rt_pool) <= edge
    # due once the edge is reached, not before; then evaluated without any event or mark
    assert tenant_id not in await store.due_tenants(rt_pool, edge - timedelta(microseconds=1))
    assert tenant_id in await store.due_tenants(rt_pool, edge)


class PacedPublisher(status.StatusPublisher):
    """Takes 10 ms more per evaluation (as a publish to the broker once did), so a sweep of 400
    tenants lasts seconds; can be told to fail every evaluation of one tenant."""

    def __init__(self, pool, failing: str | None = None) -> None:
        super().__init__(pool, Settings())
        self.failing = failing

    async def evaluate(self, tenant_id: str) -> None:
        await asyncio.sleep(0.01)
        if tenant_id == self.failing:
            raise ConnectionError("injected failure")
        await super().evaluate(tenant_id)


async def wait_published(pool, tenant: str | None = None, at_least: int = 1, within: float = 60) -> list[str]:
    """Until ``at_least`` statuses (of ``tenant``, or of anyone) were enqueued; the tenants in order."""
    published = await eventually(
        lambda: statuses(pool), lambda s: sum(tenant in (None, e["tenantId"]) for e in s) >= at_least,
        within=within, interval=0.02, what=f"{at_least} status(es) of {tenant or 'anyone'}")
    return [e["tenantId"] for e in published]


async def test_a_long_sweep_does_not_hold_back_a_changed_tenant(own_rt_pool, tenant_id):
    # 400 tenants never published: the sweep at start publishes each, 10 ms apiece (4 s at least).
    swept = [f"swept-{i:03d}" for i in range(400)]
    await own_rt_pool.execute("INSERT INTO response_time_tenants (tenant_id) SELECT unnest($1::text[])", swept)
    publisher = PacedPublisher(own_rt_pool)
    publisher.start()
    try:
        await wait_published(own_rt_pool, at_least=10, within=30)  # the sweep is under way
        # An alert arrives (the consumer applies it and wakes the publisher).
        assert await store.apply_alert_created(own_rt_pool, created(tenant_id, "a1", datetime.now(UTC) - H))
        publisher.wake()
        order = await wait_published(own_rt_pool, tenant_id)
        assert len(set(swept) - set(order)) > 100, "the change waited for (most of) the sweep"
        order = await wait_published(own_rt_pool, swept[-1])  # and the sweep still finishes
        assert set(swept) <= set(order)
    finally:
        await publisher.stop()


async def test_steady_changes_do_not_stall_the_sweep(own_rt_pool):
    # A consumer waking the publisher every 20 ms (steady traffic) while 400 tenants are swept: the
    # sweep still advances in whole slices (it took 80 s and more when each wake-up ended a slice).
    swept = [f"swept-{i:03d}" for i in range(400)]
    await own_rt_pool.execute("INSERT INTO response_time_tenants (tenant_id) SELECT unnest($1::text[])", swept)
    publisher = PacedPublisher(own_rt_pool)

    async def steady_traffic() -> None:
        while True:
            publisher.wake()
            await asyncio.sleep(0.02)

    publisher.start()
    traffic = asyncio.create_task(steady_traffic())
    try:
        order = await wait_published(own_rt_pool, at_least=len(swept), within=40)
    finally:
        traffic.cancel()
        await publisher.stop()
    assert set(swept) <= set(order)


async def test_a_tenant_that_keeps_failing_does_not_hold_back_the_others(own_rt_pool):
    now = datetime.now(UTC)
    bad, good = "a-always-fails", "b-fine"  # the failing one sorts first
    publisher = PacedPublisher(own_rt_pool, failing=bad)
    publisher.start()
    try:
        await asyncio.sleep(1)  # the sweep at start is over (no tenants yet): only the marks count now
        for tenant in (bad, good):
            assert await store.apply_alert_created(own_rt_pool, created(tenant, "x", now - H))
        publisher.wake()
        await wait_published(own_rt_pool, good, within=30)
        # The failing tenant is marked again for a later round, not dropped.
        await eventually(
            lambda: own_rt_pool.fetchval("SELECT count(*) FROM response_time_dirty WHERE tenant_id = $1", bad),
            within=10, interval=0.05, what="the failing tenant marked again")
    finally:
        await publisher.stop()
    assert bad not in await wait_published(own_rt_pool, good)


async def test_each_enqueued_status_wakes_the_relay(own_rt_pool, tenant_id):
    woken: list[int] = []
    publisher = status.StatusPublisher(own_rt_pool, Settings(), on_enqueued=lambda: woken.append(1))
    publisher.start()
    try:
        assert await store.apply_alert_created(own_rt_pool, created(tenant_id, "a1", datetime.now(UTC) - H))
        publisher.wake()
        await wait_published(own_rt_pool, tenant_id, within=30)
        await eventually(lambda: len(woken), within=5, what="the relay woken")
    finally:
        await publisher.stop()
