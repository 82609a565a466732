"""The outbox of ``score-changed`` events: score-history rows not yet published.

``store.py`` adds a history row in the transaction that changes the score; here those rows are
published in order and marked published, so no change is lost; one sent again carries its eventId.
"""

from __future__ import annotations

import asyncpg

from shared.events import ScoreChanged


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
