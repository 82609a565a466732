"""The Redis score cache on its own: merges keep the newest status whatever their order, and a read
that cannot trust Redis is refused with 503 rather than answered with a wrong score."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from redis.asyncio import Redis

from services.scoring import domain
from services.scoring.cache import ScoreCache
from services.scoring.deps import read_tenant
from services.scoring.store import TenantSnapshot
from shared.events import ComplianceStatus
from shared.http import Problem

T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


def snapshot(tenant_id: str, *statuses: domain.Observation, at: datetime = T0) -> TenantSnapshot:
    return TenantSnapshot(tenant_id, {s.requirement_type: s for s in statuses}, at, at)


def observation(compliant: bool, observed: datetime, event_id: str | None = None) -> domain.Observation:
    return domain.Observation(
        "mfaEnforcedForAdmins",
        ComplianceStatus.compliant if compliant else ComplianceStatus.noncompliant,
        observed,
        event_id or str(uuid.uuid4()),
        source="test",
        insights={"observed": observed.isoformat()},
        applied_at=observed,
    )


@pytest.fixture
def cache(redis_client) -> ScoreCache:
    return ScoreCache(redis_client, f"scoring-cache-test-{uuid.uuid4().hex[:8]}:")


async def test_merges_in_any_order_keep_the_newest_status_and_move_times_forward(cache, tenant_id):
    newer = observation(False, T0 + timedelta(minutes=5))
    older = observation(True, T0)
    try:
        assert await cache.merge(snapshot(tenant_id, newer, at=T0 + timedelta(minutes=5))) == 1
        assert await cache.merge(snapshot(tenant_id, older, at=T0)) == 0  # a stale snapshot changes nothing
        assert await cache.merge(snapshot(tenant_id, newer, at=T0 + timedelta(minutes=5))) == 0  # a repeat
        found = await cache.read(tenant_id)
        assert found.statuses["mfaEnforcedForAdmins"] == newer
        assert found.refreshed_at == T0 + timedelta(minutes=5)
        assert found.score_updated_at == T0 + timedelta(minutes=5)

        same_time_larger_id = observation(True, newer.observed_at, event_id="f" * 32)
        assert await cache.merge(snapshot(tenant_id, same_time_larger_id)) == 1
        assert (await cache.read(tenant_id)).statuses["mfaEnforcedForAdmins"] == same_time_larger_id
    finally:
        await cache.redis.delete(cache.tenant_key(tenant_id))


async def test_a_rebuild_is_marked_complete_only_if_redis_lost_nothing_meanwhile(cache):
    try:
        assert not await cache.is_ready()
        token = await cache.begin_rebuild()
        assert await cache.begin_rebuild() == token  # a second instance joins the same rebuild
        await cache.redis.delete(cache.epoch_key)  # what a flush during the rebuild does
        assert not await cache.finish_rebuild(token)
        assert not await cache.is_ready()
        token = await cache.begin_rebuild()
        assert await cache.finish_rebuild(token)
        assert await cache.is_ready()
    finally:
        await cache.redis.delete(cache.epoch_key, cache.ready_key)


async def test_a_read_answers_503_when_redis_does_not_answer():
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", decode_responses=True, socket_connect_timeout=1)
    keeper = SimpleNamespace(request_rebuild=lambda: None)
    try:
        with pytest.raises(Problem) as refused:
            await read_tenant("tenant-x", ScoreCache(unreachable, "x:"), keeper, 2)
        assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "2"}
    finally:
        await unreachable.aclose()


async def test_a_read_asks_for_a_rebuild_and_answers_503_while_the_cache_is_incomplete(cache, tenant_id):
    asked = []
    keeper = SimpleNamespace(request_rebuild=lambda: asked.append(True))
    with pytest.raises(Problem) as refused:
        await read_tenant(tenant_id, cache, keeper, 1)
    assert refused.value.status == 503 and asked == [True]


async def test_a_read_asks_the_server_for_its_run_again_after_a_second_or_a_new_connection(test_env, monkeypatch):
    # Each read compares the ready marker with the server's run_id; INFO (a large reply) is read again only
    # when the one known is a second old or a connection was made since (a restarted server).
    redis = Redis.from_url(test_env["REDIS_URL"], decode_responses=True)
    cache = ScoreCache(redis, f"scoring-cache-test-{uuid.uuid4().hex[:8]}:")
    infos: list[str] = []
    server_run_id = cache.server_run_id

    async def counted() -> str:
        infos.append(await server_run_id())
        return infos[-1]

    monkeypatch.setattr(cache, "server_run_id", counted)
    now = [1000.0]
    monkeypatch.setattr("services.scoring.cache.time.monotonic", lambda: now[0])
    try:
        await redis.set(cache.ready_key, await server_run_id())
        assert [await cache.is_ready() for _ in range(5)] == [True] * 5
        assert (await cache.read("tenant-x")).ready
        assert len(infos) == 1
        now[0] += 1.5
        assert await cache.is_ready() and len(infos) == 2
        await redis.connection_pool.disconnect()  # what a restarted server leaves: connections made anew
        assert await cache.is_ready() and len(infos) == 3
        await redis.set(cache.ready_key, "0" * 40)  # a marker of another run is not this one's
        assert not (await cache.read("tenant-x")).ready and len(infos) == 3
    finally:
        await redis.delete(cache.ready_key)
        await redis.aclose()
