"""PostgreSQL state of the scoring service: the durable source of each tenant's score.

Per tenant: the winning status of each requirement, the last score and the score history. Each
change is decided in one transaction holding the tenant's ``score_state`` row, so several scoring
instances agree; a score change adds its history entry and its ``score-changed`` event to the
outbox (``shared.outbox``) in that transaction, so the event is published once the change is
committed, and only then. The Redis cache derived from it is ``cache.py``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.scoring import domain
from shared import outbox
from shared.catalogue import Catalogue
from shared.db import claim_event
from shared.events import ComplianceStatus, Event, RequirementStatusObserved, ScoreChanged, Topic
from shared.offboarding import claim_events, is_offboarded

CONSUMER = "scoring"

log = logging.getLogger(__name__)


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
    previous: domain.ScoreSummary | None,
    statuses: dict[str, domain.Observation],
    now: datetime,
) -> tuple[bool, domain.ScoreSummary | None]:
    """Store the tenant's score as of ``now``; on a change, add a history entry and its event. Whether
    the score changed, and the summary ``score_state`` holds now (``previous`` if nothing changed).

    The caller holds the tenant's ``score_state`` row (``_lock_tenant``), so the events of one tenant
    enter the outbox in the order of its changes.
    """
    summary = domain.summarise(catalogue, statuses, now)
    if not summary.differs_from(previous):
        return False, previous
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
        return False, summary
    event = ScoreChanged(
        event_id=uuid.uuid4(),
        occurred_date_time=now,
        tenant_id=tenant_id,
        current_score=summary.current_score,
        projected_score=summary.projected_score,
        previous_score=previous.current_score if previous else None,
        compliant_requirements_count=summary.compliant_requirements_count,
        total_requirements_count=summary.total_requirements_count,
    )
    await conn.execute(
        """INSERT INTO score_history (tenant_id, event_id, created_at, score, projected_score, previous_score,
                                      compliant_requirements_count, total_requirements_count)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        tenant_id,
        event.event_id,
        now,
        event.current_score,
        event.projected_score,
        event.previous_score,
        event.compliant_requirements_count,
        event.total_requirements_count,
    )
    await outbox.enqueue(conn, Topic.score_changes, event)
    return True, summary


def _observation_of(event: RequirementStatusObserved, now: datetime) -> domain.Observation:
    return domain.Observation(
        requirement_type=event.requirement_type,
        compliance_status=event.compliance_status,
        observed_at=event.observed_date_time,
        event_id=str(event.event_id),
        source=event.source,
        insights=event.insights,
        applied_at=now,
    )


async def _store_status(conn: asyncpg.Connection, event: RequirementStatusObserved, now: datetime) -> None:
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
    await conn.execute("UPDATE score_state SET refreshed_at = $2 WHERE tenant_id = $1", event.tenant_id, now)


async def _apply_claimed(conn: asyncpg.Connection, catalogue: Catalogue, tenant_id: str,
                         events: Sequence[RequirementStatusObserved], now: datetime) -> list[Applied]:
    """Apply claimed status events of one tenant, in their order, under its ``score_state`` row lock: the
    newest observation per requirement wins, the score follows each one that wins (a history entry and
    a ``score-changed`` event per change, as applying them one transaction each would)."""
    previous = _previous_summary(await _lock_tenant(conn, tenant_id))
    statuses = await _statuses(conn, tenant_id)
    outcomes = []
    for event in events:
        candidate = _observation_of(event, now)
        if not domain.supersedes(candidate, statuses.get(event.requirement_type)):
            outcomes.append(Applied(claimed=True, superseded=False, score_changed=False))
            continue
        await _store_status(conn, event, now)
        statuses[event.requirement_type] = candidate
        changed, previous = await _record_score(conn, catalogue, tenant_id, previous, statuses, now)
        outcomes.append(Applied(claimed=True, superseded=True, score_changed=changed))
    return outcomes


async def apply_observation(
    pool: asyncpg.Pool, catalogue: Catalogue, event: RequirementStatusObserved, now: datetime
) -> Applied:
    """Apply one status event exactly once: the newest observation wins, the score follows."""
    async with pool.acquire() as conn, conn.transaction():
        if not await claim(conn, CONSUMER, event):
            return Applied(claimed=False, superseded=False, score_changed=False)
        return (await _apply_claimed(conn, catalogue, event.tenant_id, [event], now))[0]


async def apply_observations(
    pool: asyncpg.Pool, catalogue: Catalogue, events: Sequence[RequirementStatusObserved], now: datetime
) -> list[Applied]:
    """:func:`apply_observation` of each event of a batch (its outcome, in their order), in one
    transaction: the ids claimed, the offboarded tenants' events dropped, and each tenant's events applied
    under its row lock in tenant order (two batches lock shared tenants in one order) (#15: a status a
    transaction took some 17 round trips, and the topic fell behind a few hundred alerts a second)."""
    if not events:
        return []
    async with pool.acquire() as conn, conn.transaction():
        claimed = await claim_events(conn, CONSUMER, events)
        by_tenant: dict[str, list[RequirementStatusObserved]] = {}
        for event in claimed:
            by_tenant.setdefault(event.tenant_id, []).append(event)
        outcomes: dict = {}  # by event id: an id twice in the batch is applied (and answered) once, first
        for tenant_id in sorted(by_tenant):
            applied = await _apply_claimed(conn, catalogue, tenant_id, by_tenant[tenant_id], now)
            outcomes.update(zip((event.event_id for event in by_tenant[tenant_id]), applied, strict=True))
    unclaimed = Applied(claimed=False, superseded=False, score_changed=False)
    return [outcomes.pop(event.event_id, unclaimed) for event in events]


async def rescore(pool: asyncpg.Pool, catalogue: Catalogue, tenant_id: str, now: datetime) -> bool:
    """Recompute a tenant's score with no new status (a preview requirement became active); never an
    offboarded tenant's (False)."""
    async with pool.acquire() as conn, conn.transaction():
        if await is_offboarded(conn, tenant_id):  # under its offboarding lock, as claim()
            return False
        state = await _lock_tenant(conn, tenant_id)
        changed, _ = await _record_score(conn, catalogue, tenant_id, _previous_summary(state),
                                         await _statuses(conn, tenant_id), now)
        return changed


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


# --- offboarded tenants (#18, offboarding.py) -----------------------------------------------------------


async def claim(conn: asyncpg.Connection, consumer: str, event: Event) -> bool:
    """Whether ``consumer`` applies ``event``, in the caller's transaction: False if it did before, or if
    the event's tenant is offboarded (dropped, its id claimed all the same). Holds the tenant's
    offboarding lock shared until the transaction ends (``shared.offboarding``): an offboarding under
    way is waited for, then seen, and none starts before this transaction ends, so nothing it writes is
    left behind."""
    if not await claim_event(conn, consumer, event.event_id):
        return False
    if await is_offboarded(conn, event.tenant_id):
        log.debug("event %s of offboarded tenant %s dropped", event.event_id, event.tenant_id)
        return False
    return True


async def offboarded_now(db: asyncpg.Pool | asyncpg.Connection, tenants: list[str]) -> set[str]:
    """Which of ``tenants`` are offboarded as committed now, without the lock (nothing to hold off)."""
    rows = await db.fetch("SELECT tenant_id FROM offboarded_tenants WHERE tenant_id = ANY($1::text[])", tenants)
    return {row["tenant_id"] for row in rows}
