"""The score keeper on the real PostgreSQL and Redis, in-process: what it records with no event."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest

from services.scoring import store
from services.scoring.cache import ScoreCache
from services.scoring.keeper import ScoreKeeper
from shared.catalogue import Catalogue, Kind, Requirement
from shared.events import ComplianceStatus, RequirementStatusObserved, ScoreChanged
from tests.support.polling import eventually

T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


def catalogue(assumed_for_b: ComplianceStatus) -> Catalogue:
    return Catalogue(
        requirements=(
            Requirement(requirement_type="a", kind=Kind.mandatory, max_score=20),
            Requirement(
                requirement_type="b",
                kind=Kind.mandatory,
                max_score=20,
                unobserved_compliance_status=assumed_for_b,
            ),
        )
    )


async def test_on_start_a_changed_catalogue_is_recorded_in_every_tenants_history_with_no_event(
    own_pool, redis_client, tenant_id
):
    # Scores stored under a catalogue that assumed "b" noncompliant; the new one assumes it compliant
    # (as an upgrade that adds unobservedComplianceStatus does): the history must follow on start.
    before = catalogue(ComplianceStatus.noncompliant)
    status = RequirementStatusObserved(
        tenant_id=tenant_id,
        requirement_type="a",
        compliance_status=ComplianceStatus.compliant,
        observed_date_time=T0,
        source="test",
    )
    assert (await store.apply_observation(own_pool, before, status, T0)).score_changed
    published: list[ScoreChanged] = []

    async def publish(event: ScoreChanged) -> None:
        published.append(event)

    cache = ScoreCache(redis_client, f"scoring-keeper-test-{uuid.uuid4().hex[:8]}:")
    keeper = ScoreKeeper(own_pool, cache, catalogue(ComplianceStatus.compliant), publish, check_seconds=0.2)
    keeper.start()
    try:
        history = await eventually(
            lambda: store.history(own_pool, tenant_id, 10), lambda rows: len(rows) == 2, within=20
        )
        assert [(h["score"], h["compliant_requirements_count"]) for h in history] == [(100.0, 2), (50.0, 1)]
        await eventually(lambda: published, lambda p: [e.current_score for e in p] == [50.0, 100.0], within=30)
    finally:
        await keeper.stop()
        async for key in redis_client.scan_iter(match=f"{cache.prefix}*", count=500):
            await redis_client.delete(key)


async def test_a_publish_that_never_completes_neither_stalls_the_consumer_nor_the_cache_watch(
    own_pool, redis_client, tenant_id
):
    # The broker takes the connection and never acknowledges: each publish gives up after its timeout,
    # the change stays in the outbox, and the periodic check still rebuilds a lost cache meanwhile.
    async def publish_never_acknowledged(event: ScoreChanged) -> None:
        await asyncio.Event().wait()

    cache = ScoreCache(redis_client, f"scoring-keeper-test-{uuid.uuid4().hex[:8]}:")
    default = catalogue(ComplianceStatus.noncompliant)
    keeper = ScoreKeeper(
        own_pool, cache, default, publish_never_acknowledged, check_seconds=0.2, publish_timeout_seconds=0.5
    )
    status = RequirementStatusObserved(
        tenant_id=tenant_id,
        requirement_type="a",
        compliance_status=ComplianceStatus.compliant,
        observed_date_time=T0,
        source="test",
    )
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(keeper.apply(status), 30)  # the consumer retries the record later
    assert time.monotonic() - started < 5
    pending = "SELECT count(*) FROM score_history WHERE tenant_id = $1 AND published_at IS NULL"
    assert await own_pool.fetchval(pending, tenant_id) == 1  # applied, and kept to publish

    keeper.start()
    try:
        await eventually(cache.is_ready, bool, within=10)
        await redis_client.delete(cache.ready_key)  # the cache is lost while the publish still hangs
        await eventually(cache.is_ready, bool, within=10)
        assert await own_pool.fetchval(pending, tenant_id) == 1
    finally:
        await keeper.stop()
        async for key in redis_client.scan_iter(match=f"{cache.prefix}*", count=500):
            await redis_client.delete(key)
