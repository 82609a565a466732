"""The tenants a service has offboarded (#18), kept in its own ``offboarded_tenants`` table.

A service that consumes ``tenant-offboarded`` deletes what it holds of the tenant and records it
here, in the transaction that claims the event. From then on every handler drops any event of the
tenant: one still in flight, or one a rebuild replays from the topics (``alerts`` is not compacted,
so a fresh consumer reads the tenant's old alerts again). A row stays for good: the tenant id is
retired. One indexed lookup per event (:func:`is_offboarded`), or one per batch
(:func:`offboarded_among`).

Each service's migration creates its table with :data:`OFFBOARDED_TENANTS_DDL` (copied, not
imported: a migration is frozen once applied).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import asyncpg

OFFBOARDED_TENANTS_DDL = """
-- Tenants offboarded (#18, shared/offboarding.py): nothing of them is kept, and every later event of
-- them is dropped. A row stays for good: the tenant id is retired.
CREATE TABLE offboarded_tenants (
    tenant_id     text        PRIMARY KEY,
    offboarded_at timestamptz NOT NULL       -- the occurredDateTime of the tenant-offboarded event
);
"""

Queryable = asyncpg.Connection | asyncpg.Pool


async def record_offboarded(conn: Queryable, tenant_id: str, at: datetime) -> bool:
    """Record the tenant as offboarded at ``at``; False if it already was (its first time stays)."""
    status = await conn.execute(
        "INSERT INTO offboarded_tenants (tenant_id, offboarded_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        tenant_id, at)
    return status.endswith(" 1")


async def offboarded_at(conn: Queryable, tenant_id: str) -> datetime | None:
    """When the tenant was offboarded; None if it never was."""
    return await conn.fetchval("SELECT offboarded_at FROM offboarded_tenants WHERE tenant_id = $1", tenant_id)


async def is_offboarded(conn: Queryable, tenant_id: str) -> bool:
    return await offboarded_at(conn, tenant_id) is not None


async def offboarded_among(conn: Queryable, tenant_ids: Iterable[str]) -> set[str]:
    """Which of ``tenant_ids`` are offboarded: one query for a batch of events."""
    wanted = sorted(set(tenant_ids))
    if not wanted:
        return set()
    rows = await conn.fetch("SELECT tenant_id FROM offboarded_tenants WHERE tenant_id = ANY($1::text[])", wanted)
    return {row["tenant_id"] for row in rows}
