"""I/O of the scoring service: PostgreSQL (the durable source) and the Redis score cache.

PostgreSQL holds, per tenant, the winning status of each requirement, the last score and the score
history (which doubles as the outbox of ``score-changed`` events). Each change is decided in one
transaction holding the tenant's ``score_state`` row, so several scoring instances agree.

Redis holds derived state only: per tenant one hash with each requirement's winning status and two
timestamps, merged by a Lua script that keeps the newest observation, so concurrent or repeated
syncs (events, rebuilds, several instances) never regress it. A marker key says the cache is
complete; when Redis loses its data the marker goes with it and the service rebuilds from PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from redis.asyncio import Redis

from services.scoring import domain
from services.scoring.config import Settings
from shared.catalogue import Catalogue
from shared.db import claim_event
from shared.events import ComplianceStatus, RequirementStatusObserved, ScoreChanged

CONSUMER = "scoring"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def from_micros(value: int | str) -> datetime:
    return _EPOCH + timedelta(microseconds=int(value))


# --- PostgreSQL --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    claimed: bool  # False: this event was applied before (a redelivery)
    superseded: bool  # the status replaced the tenant's previous one for that requirement
    score_changed: bool


@dataclass(frozen=True)
class TenantSnapshot:
    tenant_id: str
    statuses: dict[str, domain.Observation]
    score_updated_at: datetime | None
    refreshed_at: datetime | None


def _observation(row: asyncpg.Record) -> domain.Observation:
    insights = row["insights"]
    return domain.Observation(
        requirement_type=row["requirement_type"],
        compliance_status=ComplianceStatus(row["compliance_status"]),
        observed_at=row["observed_at"],
        event_id=str(row["event_id"]),
        source=row["source"],
        insights=json.loads(insights) if isinstance(insights, str) else dict(insights or {}),
        applied_at=row["applied_at"],
    )


async def _statuses(conn: asyncpg.Connection, tenant_id: str) -> dict[str, domain.Observation]:
    rows = await conn.fetch(
        """SELECT requirement_type, compliance_status, observed_at, event_id, source, insights, applied_at
           FROM requirement_status WHERE tenant_id = $1""",
        tenant_id,
    )
    return {row["requirement_type"]: _observation(row) for row in rows}


async def _lock_tenant(conn: asyncpg.Connection, tenant_id: str) -> asyncpg.Record:
    await conn.execute("INSERT INTO score_state (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING", tenant_id)
    return await conn.fetchrow(
        """SELECT current_score, projected_score, compliant_requirements_count, total_requirements_count
           FROM score_state WHERE tenant_id = $1 FOR UPDATE""",
        tenant_id,
    )


def _previous_summary(row: asyncpg.Record) -> domain.ScoreSummary | None:
    if row["current_score"] is None:
        return None
    return domain.ScoreSummary(
        row["current_score"],
        row["projected_score"],
        row["compliant_requirements_count"],
        row["total_requirements_count"],
    )


async def _record_score(
    conn: asyncpg.Connection,
    catalogue: Catalogue,
    tenant_id: str,
    state: asyncpg.Record,
    statuses: dict[str, domain.Observation],
    now: datetime,
) -> bool:
    """Store the tenant's score as of ``now``; on a change, add a history entry (and outbox event)."""
    previous = _previous_summary(state)
    summary = domain.summarise(catalogue, statuses, now)
    if not summary.differs_from(previous):
        return False
    score_changed = summary.is_score_change(previous)
    await conn.execute(
        """UPDATE score_state SET current_score = $2, projected_score = $3, compliant_requirements_count = $4,
                  total_requirements_count = $5,
                  score_updated_at = CASE WHEN $7 THEN $6 ELSE score_updated_at END
           WHERE tenant_id = $1""",
        tenant_id,
        summary.current_score,
        summary.projected_score,
        summary.compliant_requirements_count,
        summary.total_requirements_count,
        now,
        score_changed,
    )
    if not score_changed:
        # Only projectedScore moved: stored, but SPEC §4 keeps history entries for score changes only.
        return False
    await conn.execute(
        """INSERT INTO score_history (tenant_id, event_id, created_at, score, projected_score, previous_score,
                                      compliant_requirements_count, total_requirements_count)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        tenant_id,
        uuid.uuid4(),
        now,
        summary.current_score,
        summary.projected_score,
        previous.current_score if previous else None,
        summary.compliant_requirements_count,
        summary.total_requirements_count,
    )
    return True


async def apply_observation(
    pool: asyncpg.Pool, catalogue: Catalogue, event: RequirementStatusObserved, now: datetime
) -> Applied:
    """Apply one status event exactly once: the newest observation wins, the score follows."""
    candidate = domain.Observation(
        requirement_type=event.requirement_type,
        compliance_status=event.compliance_status,
        observed_at=event.observed_date_time,
        event_id=str(event.event_id),
        source=event.source,
        insights=event.insights,
        applied_at=now,
    )
    async with pool.acquire() as conn, conn.transaction():
        if not await claim_event(conn, CONSUMER, event.event_id):
            return Applied(claimed=False, superseded=False, score_changed=False)
        state = await _lock_tenant(conn, event.tenant_id)
        statuses = await _statuses(conn, event.tenant_id)
        if not domain.supersedes(candidate, statuses.get(event.requirement_type)):
            return Applied(claimed=True, superseded=False, score_changed=False)
        await conn.execute(
            """INSERT INTO requirement_status (tenant_id, requirement_type, compliance_status, observed_at,
                                               event_id, source, insights, applied_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)
               ON CONFLICT (tenant_id, requirement_type) DO UPDATE SET
                   compliance_status = excluded.compliance_status, observed_at = excluded.observed_at,
                   event_id = excluded.event_id, source = excluded.source, insights = excluded.insights,
                   applied_at = excluded.applied_at""",
            event.tenant_id,
            event.requirement_type,
            event.compliance_status.value,
            event.observed_date_time,
            event.event_id,
            event.source,
            json.dumps(event.insights),
            now,
        )
        await conn.execute(
            "UPDATE score_state SET refreshed_at = $2 WHERE tenant_id = $1", event.tenant_id, now
        )
        statuses[event.requirement_type] = candidate
        changed = await _record_score(conn, catalogue, event.tenant_id, state, statuses, now)
        return Applied(claimed=True, superseded=True, score_changed=changed)


async def rescore(pool: asyncpg.Pool, catalogue: Catalogue, tenant_id: str, now: datetime) -> bool:
    """Recompute a tenant's score with no new status (a preview requirement became active)."""
    async with pool.acquire() as conn, conn.transaction():
        state = await _lock_tenant(conn, tenant_id)
        return await _record_score(conn, catalogue, tenant_id, state, await _statuses(conn, tenant_id), now)


async def tenant_ids(pool: asyncpg.Pool, *, after: str = "", limit: int = 500) -> list[str]:
    rows = await pool.fetch(
        "SELECT tenant_id FROM score_state WHERE tenant_id > $1 ORDER BY tenant_id LIMIT $2", after, limit
    )
    return [row["tenant_id"] for row in rows]


async def every_tenant(pool: asyncpg.Pool, page: int = 500) -> AsyncIterator[list[str]]:
    after = ""
    while batch := await tenant_ids(pool, after=after, limit=page):
        yield batch
        after = batch[-1]


async def snapshots(pool: asyncpg.Pool, tenants: list[str]) -> list[TenantSnapshot]:
    async with pool.acquire() as conn:
        states = await conn.fetch(
            """SELECT tenant_id, score_updated_at, refreshed_at FROM score_state
               WHERE tenant_id = ANY($1::text[])""",
            tenants,
        )
        rows = await conn.fetch(
            """SELECT tenant_id, requirement_type, compliance_status, observed_at, event_id, source, insights,
                      applied_at
               FROM requirement_status WHERE tenant_id = ANY($1::text[])""",
            tenants,
        )
    statuses: dict[str, dict[str, domain.Observation]] = {}
    for row in rows:
        statuses.setdefault(row["tenant_id"], {})[row["requirement_type"]] = _observation(row)
    return [
        TenantSnapshot(
            s["tenant_id"], statuses.get(s["tenant_id"], {}), s["score_updated_at"], s["refreshed_at"]
        )
        for s in states
    ]


async def history(pool: asyncpg.Pool, tenant_id: str, top: int) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT created_at, score, projected_score, compliant_requirements_count, total_requirements_count
           FROM score_history WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2""",
        tenant_id,
        top,
    )


def _score_changed(row: asyncpg.Record) -> ScoreChanged:
    return ScoreChanged(
        event_id=row["event_id"],
        occurred_date_time=row["created_at"],
        tenant_id=row["tenant_id"],
        current_score=row["score"],
        projected_score=row["projected_score"],
        previous_score=row["previous_score"],
        compliant_requirements_count=row["compliant_requirements_count"],
        total_requirements_count=row["total_requirements_count"],
    )


async def publish_pending(pool: asyncpg.Pool, tenant_id: str, publish) -> int:
    """Publish the tenant's unpublished score changes in order (the outbox), then mark them published.

    Rows are locked while published, so two instances do not both send one; a crash between the
    publish and the mark sends it again with the same eventId, which consumers drop.
    """
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """SELECT id, tenant_id, event_id, created_at, score, projected_score, previous_score,
                      compliant_requirements_count, total_requirements_count
               FROM score_history WHERE tenant_id = $1 AND published_at IS NULL
               ORDER BY id FOR UPDATE SKIP LOCKED""",
            tenant_id,
        )
        for row in rows:
            await publish(_score_changed(row))
        if rows:
            await conn.execute(
                "UPDATE score_history SET published_at = now() WHERE id = ANY($1::bigint[])",
                [row["id"] for row in rows],
            )
        return len(rows)


async def tenants_with_pending_changes(pool: asyncpg.Pool, limit: int = 1000) -> list[str]:
    rows = await pool.fetch(
        "SELECT DISTINCT tenant_id FROM score_history WHERE published_at IS NULL LIMIT $1", limit
    )
    return [row["tenant_id"] for row in rows]


# --- Redis: the score cache ----------------------------------------------------------------------------


def connect_redis(settings: Settings) -> Redis:
    """The service's Redis client, every connection attempt and every command bounded.

    A Redis that hangs then makes a score read answer 503 within about these timeouts (a redis
    ``TimeoutError``), and the keeper's checks fail and try again, rather than waiting forever
    (redis-py before 8.0 has no timeout by default).
    """
    return Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=settings.redis_connect_timeout_seconds,
        socket_timeout=settings.redis_command_timeout_seconds,
    )


# KEYS[1] the tenant's hash. ARGV[1] refreshed (µs or ""), ARGV[2] score updated (µs or ""), then
# groups of four: field, observed µs, event id, status JSON. Timestamps only move forward; a status
# replaces the stored one only when its (observed, event id) is larger, as domain.supersedes says.
_MERGE_TENANT = """
local h = KEYS[1]
local function forward(field, value)
  if value == '' then return end
  local stored = redis.call('HGET', h, field)
  if (not stored) or tonumber(stored) < tonumber(value) then redis.call('HSET', h, field, value) end
end
forward('refreshed', ARGV[1])
forward('scoreUpdated', ARGV[2])
local replaced = 0
for i = 3, #ARGV, 4 do
  local field, observed, event_id = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local stored = redis.call('HGET', h, field)
  local newer = true
  if stored then
    local s = cjson.decode(stored)
    if s.o > observed or (s.o == observed and s.e >= event_id) then newer = false end
  end
  if newer then
    redis.call('HSET', h, field, ARGV[i + 3])
    replaced = replaced + 1
  end
end
return replaced
"""

# KEYS[1] the rebuild epoch, KEYS[2] the ready marker; ARGV[1] the epoch token, ARGV[2] the Redis
# server's run_id. The marker is set only if the epoch this rebuild began under still exists: a flush
# during the rebuild leaves the cache not ready. The marker holds the run_id: a restart (a new run_id)
# may have lost the last writes (AOF fsync every second) while keeping the marker, so a marker of
# another run means "not ready" and the cache is rebuilt.
_FINISH_REBUILD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2])
  return 1
end
return 0
"""

_STATUS_FIELD = "s:"


@dataclass(frozen=True)
class CachedTenant:
    ready: bool
    statuses: dict[str, domain.Observation]
    score_updated_at: datetime | None
    refreshed_at: datetime | None


def _status_json(o: domain.Observation) -> str:
    return json.dumps(
        {
            "o": to_micros(o.observed_at),
            "e": o.event_id,
            "c": o.compliance_status.value,
            "src": o.source,
            "ins": o.insights,
            "app": to_micros(o.applied_at) if o.applied_at else None,
        },
        separators=(",", ":"),
    )


def _status_from_json(requirement_type: str, text: str) -> domain.Observation:
    data: dict[str, Any] = json.loads(text)
    return domain.Observation(
        requirement_type=requirement_type,
        compliance_status=ComplianceStatus(data["c"]),
        observed_at=from_micros(data["o"]),
        event_id=data["e"],
        source=data.get("src", ""),
        insights=data.get("ins") or {},
        applied_at=from_micros(data["app"]) if data.get("app") is not None else None,
    )


class ScoreCache:
    """The Redis side: merge a tenant's state in, read it back, and the ready marker of rebuilds."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ready_key = f"{prefix}ready"
        self.epoch_key = f"{prefix}epoch"
        self._merge = redis.register_script(_MERGE_TENANT)
        self._finish = redis.register_script(_FINISH_REBUILD)

    def tenant_key(self, tenant_id: str) -> str:
        return f"{self.prefix}t:{tenant_id}"

    async def merge(self, snapshot: TenantSnapshot) -> int:
        args: list[Any] = [
            to_micros(snapshot.refreshed_at) if snapshot.refreshed_at else "",
            to_micros(snapshot.score_updated_at) if snapshot.score_updated_at else "",
        ]
        for observation in snapshot.statuses.values():
            args += [
                _STATUS_FIELD + observation.requirement_type,
                to_micros(observation.observed_at),
                observation.event_id,
                _status_json(observation),
            ]
        return int(await self._merge(keys=[self.tenant_key(snapshot.tenant_id)], args=args))

    async def read(self, tenant_id: str) -> CachedTenant:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.ready_key)
            pipe.info("server")
            pipe.hgetall(self.tenant_key(tenant_id))
            marker, server, fields = await pipe.execute()
        ready = _marks_this_run(marker, server)
        statuses = {
            name[len(_STATUS_FIELD) :]: _status_from_json(name[len(_STATUS_FIELD) :], value)
            for name, value in fields.items()
            if name.startswith(_STATUS_FIELD)
        }
        return CachedTenant(
            ready=bool(ready),
            statuses=statuses,
            score_updated_at=from_micros(fields["scoreUpdated"]) if "scoreUpdated" in fields else None,
            refreshed_at=from_micros(fields["refreshed"]) if "refreshed" in fields else None,
        )

    async def is_ready(self) -> bool:
        """Complete: rebuilt (or kept up) since this Redis server started, not merely marked once."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.ready_key)
            pipe.info("server")
            marker, server = await pipe.execute()
        return _marks_this_run(marker, server)

    async def server_run_id(self) -> str:
        return str((await self.redis.info("server"))["run_id"])

    async def begin_rebuild(self) -> str:
        """The epoch this rebuild runs under (shared with any other instance rebuilding now)."""
        token = uuid.uuid4().hex
        if await self.redis.set(self.epoch_key, token, nx=True):
            return token
        return await self.redis.get(self.epoch_key) or token

    async def finish_rebuild(self, token: str, run_id: str | None = None) -> bool:
        """Mark the cache complete for ``run_id``: the server run the rebuild began under (read it
        before ``begin_rebuild``; a restart meanwhile leaves the marker naming the old run)."""
        run_id = run_id or await self.server_run_id()
        return bool(await self._finish(keys=[self.epoch_key, self.ready_key], args=[token, run_id]))


def _marks_this_run(marker: str | bytes | None, server: dict) -> bool:
    if isinstance(marker, bytes):
        marker = marker.decode()
    return marker is not None and marker == str(server.get("run_id"))
