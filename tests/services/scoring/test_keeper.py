"""The score keeper on the real PostgreSQL and Redis, in-process: what it records with no event."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

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


async def score_changes_waiting(pool, tenant_id: str) -> list[ScoreChanged]:
    """The tenant's ``score-changed`` events in the outbox, in the order the relay publishes them."""
    rows = await pool.fetch(
        "SELECT value FROM outbox WHERE topic = 'score-changes' AND key = $1 ORDER BY id", tenant_id.encode()
    )
    return [ScoreChanged.model_validate_json(bytes(row["value"])) for row in rows]


async def test_on_start_a_changed_catalogue_is_recorded_in_every_tenants_history_with_no_event(
    scoring_pool, redis_client, tenant_id
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
    assert (await store.apply_observation(scoring_pool, before, status, T0)).score_changed
    cache = ScoreCache(redis_client, f"scoring-keeper-test-{uuid.uuid4().hex[:8]}:")
    keeper = ScoreKeeper(scoring_pool, cache, catalogue(ComplianceStatus.compliant), check_seconds=0.2)
    keeper.start()
    try:
        history = await eventually(
            lambda: store.history(scoring_pool, tenant_id, 10), lambda rows: len(rows) == 2, within=20
        )
        assert [(h["score"], h["compliant_requirements_count"]) for h in history] == [(100.0, 2), (50.0, 1)]
        # Each change's event waits in the outbox, in order, for the relay (none runs here).
        waiting = await score_changes_waiting(scoring_pool, tenant_id)
        assert [(e.current_score, e.previous_score) for e in waiting] == [(50.0, None), (100.0, 50.0)]
    finally:
        await keeper.stop()
        async for key in redis_client.scan_iter(match=f"{cache.prefix}*", count=500):
            await redis_client.delete(key)


async def test_applying_a_status_never_waits_for_the_broker_and_its_event_waits_in_the_outbox(
    scoring_pool, redis_client, tenant_id
):
    # No broker at all here: the status is applied, its score-changed event committed with it in the
    # outbox (the relay publishes it once the broker answers), and the cache watch keeps working.
    cache = ScoreCache(redis_client, f"scoring-keeper-test-{uuid.uuid4().hex[:8]}:")
    keeper = ScoreKeeper(scoring_pool, cache, catalogue(ComplianceStatus.noncompliant), check_seconds=0.2)
    status = RequirementStatusObserved(
        tenant_id=tenant_id,
        requirement_type="a",
        compliance_status=ComplianceStatus.compliant,
        observed_date_time=T0,
        source="test",
    )
    started = time.monotonic()
    assert (await asyncio.wait_for(keeper.apply(status), 30)).score_changed
    assert time.monotonic() - started < 5
    [event] = await score_changes_waiting(scoring_pool, tenant_id)
    [entry] = await scoring_pool.fetch(
        "SELECT event_id, created_at, score FROM score_history WHERE tenant_id = $1", tenant_id
    )
    assert (event.event_id, event.occurred_date_time, event.current_score) == (
        entry["event_id"], entry["created_at"], 50.0
    )

    keeper.start()
    try:
        await eventually(cache.is_ready, bool, within=10)
        await redis_client.delete(cache.ready_key)  # the cache is lost meanwhile
        await eventually(cache.is_ready, bool, within=10)
        assert len(await score_changes_waiting(scoring_pool, tenant_id)) == 1
    finally:
        await keeper.stop()
        async for key in redis_client.scan_iter(match=f"{cache.prefix}*", count=500):
            await redis_client.delete(key)
