"""The last known state of each alert, in PostgreSQL, shared by every ingest instance."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg

from shared.alerts import Alert


class AlertStates:
    """Holds one transaction in which the posted alerts' rows are locked.

    New alerts are inserted at once (a concurrent post of the same new alert waits on the primary
    key until this transaction ends, then sees it as known), known ones are locked ``FOR UPDATE``.
    The caller publishes the events, then :meth:`save` records the new states; if publishing fails
    the transaction rolls back and nothing is recorded.
    """

    def __init__(self, conn: asyncpg.Connection, tenant_id: str, previous: dict[str, Alert | None]) -> None:
        self._conn, self._tenant_id, self.previous = conn, tenant_id, previous

    async def save(self, alerts: Sequence[Alert]) -> None:
        await self._conn.executemany(
            "UPDATE ingest_alert_state SET alert = $3::jsonb, updated_at = now() WHERE tenant_id = $1 AND alert_id = $2",
            [(self._tenant_id, a.id, a.model_dump_json()) for a in alerts],
        )


@asynccontextmanager
async def lock_alert_states(pool: asyncpg.Pool, tenant_id: str, alerts: Sequence[Alert]) -> AsyncIterator[AlertStates]:
    # Sorted ids: two posts locking overlapping sets take the locks in one order, so never deadlock.
    by_id = {a.id: a for a in alerts}
    ids = sorted(by_id)
    async with pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetch(
            """INSERT INTO ingest_alert_state (tenant_id, alert_id, alert)
               SELECT $1, id, alert::jsonb FROM unnest($2::text[], $3::text[]) AS t(id, alert)
               ON CONFLICT (tenant_id, alert_id) DO NOTHING
               RETURNING alert_id""",
            tenant_id, ids, [by_id[i].model_dump_json() for i in ids],
        )
        new_ids = {row["alert_id"] for row in inserted}
        known = await conn.fetch(
            """SELECT alert_id, alert FROM ingest_alert_state
               WHERE tenant_id = $1 AND alert_id = ANY($2::text[]) ORDER BY alert_id FOR UPDATE""",
            tenant_id, [i for i in ids if i not in new_ids],
        )
        previous: dict[str, Alert | None] = {i: None for i in new_ids}
        previous.update({row["alert_id"]: Alert.model_validate_json(row["alert"]) for row in known})
        yield AlertStates(conn, tenant_id, previous)
