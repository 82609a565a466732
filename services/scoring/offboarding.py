"""Offboarding a tenant (#18) in the scoring service: on the ``tenant-offboarded`` event, in one transaction
with its claim, every row of the tenant goes (its statuses, score and score history, the read API's read
model and timelines), and the tenant is recorded as offboarded (every later event of it is then dropped:
``store.claim``; its score is never recomputed: ``store.rescore``). Then its Redis hash goes, also when
the event was applied before (a crash after the commit, before Redis). Scoring publishes no compacted
topic (``score-changes`` keeps a bounded history), so there is nothing to tombstone.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.scoring import store
from services.scoring.cache import ScoreCache
from shared.db import claim_event
from shared.events import TenantOffboarded
from shared.offboarding import lock_for_offboarding, record_offboarded

TABLES = ("requirement_status", "score_state", "score_history", "alert_response_times", "deliveries",
          "customer_mfa", "alert_sync", "alert_timeline", "alert_triage")


@dataclass(frozen=True)
class Offboarded:
    """What the offboarding deleted: rows per table."""

    rows: dict[str, int]


async def offboard(pool: asyncpg.Pool, cache: ScoreCache, event: TenantOffboarded) -> Offboarded | None:
    """Apply the event (:func:`offboard_in`, one transaction), then delete the tenant's Redis hash; None
    if the event was applied before."""
    async with pool.acquire() as conn, conn.transaction():
        done = await offboard_in(conn, event)
    # After the commit: a score read meanwhile still finds the hash, never a hash without its rows behind.
    await cache.forget(event.tenant_id)
    return done


async def offboard_in(conn: asyncpg.Connection, event: TenantOffboarded) -> Offboarded | None:
    """Delete every row of the tenant and record it offboarded, in the caller's transaction; None if the
    event was applied before."""
    tenant_id = event.tenant_id
    if not await claim_event(conn, store.CONSUMER, event.event_id):
        return None
    # After the transactions applying its events now; any later one finds it offboarded.
    await lock_for_offboarding(conn, tenant_id)
    rows = {}
    for table in TABLES:
        status = await conn.execute(f"DELETE FROM {table} WHERE tenant_id = $1", tenant_id)
        rows[table] = int(status.split()[-1])
    await record_offboarded(conn, tenant_id, event.occurred_date_time)
    return Offboarded(rows=rows)
