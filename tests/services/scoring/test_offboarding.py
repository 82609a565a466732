"""Offboarding a tenant in the scoring service and read API (#18): the tenant-offboarded event deletes every
row of the tenant (statuses, score and its history, the read model, the timelines) and its Redis hash,
and nothing of another; records the tenant; and from then on every event of the tenant is dropped, one in
flight included, and its score never recomputed. Scoring publishes no compacted topic (score-changes is
not compacted): no tombstone. On the real PostgreSQL and Redis, and a scoring process on the real broker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from services.scoring import cache as cache_keys
from services.scoring import offboarding, read_model, store
from services.scoring.cache import ScoreCache
from services.scoring.keeper import ScoreKeeper
from shared.alerts import Alert
from shared.catalogue import Catalogue, Kind, Requirement
from shared.events import (
    Actor,
    ActorType,
    AlertAssigned,
    AlertCreated,
    AlertNoteAdded,
    RequirementStatusObserved,
    TenantOffboarded,
    Topic,
)
from shared.wire import utcnow
from tests.conftest import AUTH
from tests.services.scoring.conftest import event_applied, status_event
from tests.services.scoring.read_model_events import (
    alert_response_time,
    alert_sync_changed,
    customer_mfa,
    delivery_changed,
)
from tests.support.polling import eventually

TABLES = ("requirement_status", "score_state", "score_history", "alert_response_times", "deliveries",
          "customer_mfa", "alert_sync", "alert_timeline", "alert_triage")
H = timedelta(hours=1)
T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
ANA = Actor(type=ActorType.user, id="ana@partner.example")
CATALOGUE = Catalogue(requirements=(Requirement(requirement_type="a", kind=Kind.mandatory, max_score=20),
                                    Requirement(requirement_type="b", kind=Kind.mandatory, max_score=20)))


def offboarded(tenant_id: str) -> TenantOffboarded:
    return TenantOffboarded(tenant_id=tenant_id, actor=Actor(type=ActorType.user, id="operator"))


def observed(tenant_id: str, requirement: str = "a") -> RequirementStatusObserved:
    return RequirementStatusObserved(tenant_id=tenant_id, requirement_type=requirement, compliance_status="compliant",
                                     observed_date_time=utcnow(), source="test")


def batch_of_one(apply_batch):
    """A batch apply as the others: the event alone, truthy if applied (a list of it, or an empty one)."""
    return lambda pool, event: apply_batch(pool, [event])


def read_model_events(tenant_id: str) -> list:
    """An event of each kind the read model keeps (its applying function beside it)."""
    created = AlertCreated(tenant_id=tenant_id, alert=Alert(id="a1", severity="high", detected_date_time=T0))
    return [
        (batch_of_one(read_model.apply_alert_response_times),
         alert_response_time(tenant_id, "a1", T0, responded_at=T0 + H)),
        (batch_of_one(read_model.apply_deliveries), delivery_changed(tenant_id, uuid.uuid4(), T0)),
        (read_model.apply_customer_mfa, customer_mfa(tenant_id, "c1", "Contoso", T0)),
        (read_model.apply_alert_sync, alert_sync_changed(tenant_id, "a1", "synced", last_synced_date_time=T0)),
        (batch_of_one(read_model.apply_alert_events), created),
        (read_model.apply_alert_assigned, AlertAssigned(tenant_id=tenant_id, alert_id="a1", assignee="bo@x.example",
                                                        actor=ANA)),
        (read_model.apply_alert_note_added, AlertNoteAdded(tenant_id=tenant_id, alert_id="a1", note_id=uuid.uuid4(),
                                                           text="called the customer", author=ANA)),
    ]


async def rows_of(pool: asyncpg.Pool, tenant_id: str) -> dict[str, int]:
    return {table: await pool.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", tenant_id)
            for table in TABLES}


async def a_tenant_with_everything(pool: asyncpg.Pool, keeper: ScoreKeeper, tenant_id: str) -> None:
    """A row in every table the scoring service keeps of a tenant, and its Redis hash."""
    assert (await store.apply_observation(pool, CATALOGUE, observed(tenant_id), utcnow())).score_changed
    await keeper.sync_tenant(tenant_id)
    for apply, event in read_model_events(tenant_id):
        assert await apply(pool, event)


async def a_session_waits_for_a_lock(observer: asyncpg.Connection) -> None:
    """Until a session of this test's own database waits for a lock."""
    deadline = asyncio.get_running_loop().time() + 20
    while not await observer.fetchval("SELECT count(*) FROM pg_stat_activity "
                                      "WHERE datname = current_database() AND wait_event_type = 'Lock'"):
        assert asyncio.get_running_loop().time() < deadline, "nothing ever waited for a lock"
        await asyncio.sleep(0.02)


def keeper_of(pool: asyncpg.Pool, redis_client) -> ScoreKeeper:
    return ScoreKeeper(pool, ScoreCache(redis_client, f"scoring-test-{uuid.uuid4().hex[:8]}:"), CATALOGUE)


async def test_the_event_deletes_everything_of_the_tenant_and_its_redis_hash_and_records_it(
    scoring_pool, redis_client
):
    pool, keeper = scoring_pool, keeper_of(scoring_pool, redis_client)
    cache = keeper.cache
    tenant, other = "tenant-leaving", "tenant-staying"
    for each in (tenant, other):
        await a_tenant_with_everything(pool, keeper, each)
    before = await rows_of(pool, tenant)
    assert all(before.values()), before
    other_before = await rows_of(pool, other)
    assert await redis_client.exists(cache.tenant_key(tenant), cache.tenant_key(other)) == 2
    outbox_before = await pool.fetchval("SELECT count(*) FROM outbox")

    event = offboarded(tenant)
    assert await offboarding.offboard(pool, cache, event) == offboarding.Offboarded(rows=before)

    assert await rows_of(pool, tenant) == dict.fromkeys(TABLES, 0)
    assert await rows_of(pool, other) == other_before
    assert not await redis_client.exists(cache.tenant_key(tenant))
    assert await redis_client.exists(cache.tenant_key(other))
    assert await pool.fetchval("SELECT offboarded_at FROM offboarded_tenants WHERE tenant_id = $1",
                               tenant) == event.occurred_date_time
    assert await pool.fetchval("SELECT count(*) FROM outbox") == outbox_before  # nothing to tombstone

    # Applied before (a redelivery after a crash between the commit and Redis): the hash goes all the same.
    await redis_client.hset(cache.tenant_key(tenant), "refreshed", "1")
    assert await offboarding.offboard(pool, cache, event) is None
    assert not await redis_client.exists(cache.tenant_key(tenant))


async def test_every_later_event_of_the_tenant_is_dropped_and_its_score_never_recomputed(
    scoring_pool, redis_client
):
    pool, keeper = scoring_pool, keeper_of(scoring_pool, redis_client)
    tenant = "tenant-gone"
    await a_tenant_with_everything(pool, keeper, tenant)
    await offboarding.offboard(pool, keeper.cache, offboarded(tenant))

    assert await keeper.apply(observed(tenant, "b")) == store.Applied(claimed=False, superseded=False,
                                                                       score_changed=False)
    for apply, event in read_model_events(tenant):
        assert not await apply(pool, event)
    assert not await store.rescore(pool, CATALOGUE, tenant, utcnow())
    await keeper.rescore_everyone()

    assert await rows_of(pool, tenant) == dict.fromkeys(TABLES, 0)
    assert not await redis_client.exists(keeper.cache.tenant_key(tenant))


async def test_an_event_applied_while_the_offboarding_commits_waits_for_it_and_is_dropped(
    scoring_pool, redis_client
):
    pool, cache = scoring_pool, keeper_of(scoring_pool, redis_client).cache
    tenant = "tenant-late"
    async with pool.acquire() as offboarding_conn, pool.acquire() as observer:
        transaction = offboarding_conn.transaction()
        await transaction.start()
        await offboarding.offboard_in(offboarding_conn, offboarded(tenant))
        applying = asyncio.create_task(
            read_model.apply_alert_response_times(pool, [alert_response_time(tenant, "a", T0)]))
        await a_session_waits_for_a_lock(observer)
        assert not applying.done()
        await transaction.commit()
    assert await applying == []
    assert await rows_of(pool, tenant) == dict.fromkeys(TABLES, 0)
    assert not await redis_client.exists(cache.tenant_key(tenant))


async def test_the_read_api_shows_nothing_of_an_offboarded_tenant_and_a_replay_brings_nothing_back(
    scoring, send_status, send_event, tenant_id, db_pool, redis_client
):
    status = await send_status(status_event(tenant_id, "mfaEnforcedForAdmins", "compliant", utcnow()))
    shown = await send_event(Topic.alert_response_times, alert_response_time(tenant_id, "a1", utcnow() - H))
    await event_applied(db_pool, status)
    key = cache_keys.tenant_key(scoring.env["REDIS_KEY_PREFIX"], tenant_id)
    await eventually(lambda: redis_client.exists(key), what="the tenant's Redis hash")
    await eventually(lambda: alerts_of(scoring, tenant_id), lambda alerts: len(alerts) == 1, what="the alert shown")

    await send_event(Topic.tenants, offboarded(tenant_id))
    await eventually(lambda: db_pool.fetchval("SELECT count(*) FROM offboarded_tenants WHERE tenant_id = $1",
                                              tenant_id), what="the tenant offboarded")
    await eventually(lambda: redis_client.exists(key), lambda n: n == 0, what="the Redis hash gone")
    assert await alerts_of(scoring, tenant_id) == []
    assert await rows_of(db_pool, tenant_id) == dict.fromkeys(TABLES, 0)
    # The score of a tenant it knows nothing of (the catalogue's unobserved statuses), as for any such id.
    assert await score_body(scoring, tenant_id) == await score_body(scoring, f"never-{uuid.uuid4().hex[:8]}")

    # Its events again (a replay: the same ids, already claimed; and new ones): nothing comes back.
    replayed = await send_status(status_event(tenant_id, "mfaEnforcedForAdmins", "noncompliant", utcnow()))
    await send_event(Topic.alert_response_times, shown)
    await event_applied(db_pool, replayed)
    assert await rows_of(db_pool, tenant_id) == dict.fromkeys(TABLES, 0)
    assert not await redis_client.exists(key)


async def alerts_of(process, tenant_id: str) -> list:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{process.url}/v1/tenants/{tenant_id}/alerts", headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()["value"]


async def score_body(process, tenant_id: str) -> tuple[int, dict]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{process.url}/v1/tenants/{tenant_id}/security-score", headers=AUTH)
    return response.status_code, response.json()


async def test_a_merge_that_read_the_tenant_just_before_its_offboarding_leaves_no_hash_behind(
    scoring_pool, redis_client
):
    """A status applied just before the offboarding commits merges into Redis what it read before: if the
    hash went meanwhile, the merge must not bring it back. (The rows are still there, the tenant already
    recorded: the moment between the merge's read and its write.)"""
    pool, keeper = scoring_pool, keeper_of(scoring_pool, redis_client)
    tenant = "tenant-merging"
    assert (await store.apply_observation(pool, CATALOGUE, observed(tenant), utcnow())).score_changed
    await pool.execute("INSERT INTO offboarded_tenants (tenant_id, offboarded_at) VALUES ($1, now())", tenant)

    await keeper.sync_tenant(tenant)
    assert not await redis_client.exists(keeper.cache.tenant_key(tenant))
    await keeper.cache.redis.delete(keeper.cache.ready_key)
    assert await keeper.rebuild()
    assert not await redis_client.exists(keeper.cache.tenant_key(tenant))
