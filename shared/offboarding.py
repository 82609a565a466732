"""The tenants a service has offboarded (#18), kept in its own ``offboarded_tenants`` table.

A service that consumes ``tenant-offboarded`` deletes what it holds of the tenant and records it
here, in the transaction that claims the event. From then on every handler drops any event of the
tenant: one still in flight, or one a rebuild replays from the topics (``alerts`` is not compacted,
so a fresh consumer reads the tenant's old alerts again). A row stays for good: the tenant id is
retired. One indexed lookup per event (:func:`is_offboarded`), or one per batch
(:func:`offboarded_among`).

An apply that looked ("not offboarded") and commits its rows after the offboarding deleted the
tenant's would leave them behind. So the two are serialised per tenant by a PostgreSQL advisory lock:
the offboarding transaction takes it exclusively first (:func:`lock_for_offboarding`), an apply
transaction takes it shared before it looks (:func:`is_offboarded`, :func:`offboarded_among`, called
inside the apply's transaction, before it touches a row of the tenant). An apply waits for an
offboarding in progress and then sees it; an offboarding waits for the applies that looked before it.
Applies of one tenant never wait for each other.

Each service's migration creates its table with :data:`OFFBOARDED_TENANTS_DDL` (copied, not
imported: a migration is frozen once applied).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

import asyncpg

from shared.events import Event

OFFBOARDED_TENANTS_DDL = """
-- Tenants offboarded (#18, shared/offboarding.py): nothing of them is kept, and every later event of
-- them is dropped. A row stays for good: the tenant id is retired.
CREATE TABLE offboarded_tenants (
    tenant_id     text        PRIMARY KEY,
    offboarded_at timestamptz NOT NULL       -- the occurredDateTime of the tenant-offboarded event
);
"""

Queryable = asyncpg.Connection | asyncpg.Pool

log = logging.getLogger(__name__)

_LOCK = "SELECT {function}(hashtextextended('offboarding:' || $1, 0))"


async def lock_for_offboarding(conn: asyncpg.Connection, tenant_id: str) -> None:
    """First in the offboarding transaction: waits for the applies of the tenant in progress, and
    holds off the next ones until it commits."""
    await conn.execute(_LOCK.format(function="pg_advisory_xact_lock"), tenant_id)


# Each tenant's lock in turn, in the array's order, in one statement (one round trip for a batch of
# many tenants, not one per tenant).
_LOCK_EACH_SHARED = """SELECT pg_advisory_xact_lock_shared(hashtextextended('offboarding:' || t, 0))
                       FROM unnest($1::text[]) WITH ORDINALITY AS l(t, n) ORDER BY n"""


async def _lock_shared(conn: asyncpg.Connection, tenant_ids: list[str]) -> None:
    # Sorted: two batches locking some of the same tenants take them in one order (no deadlock).
    wanted = sorted(set(tenant_ids))
    if len(wanted) == 1:
        await conn.execute(_LOCK.format(function="pg_advisory_xact_lock_shared"), wanted[0])
    elif wanted:
        await conn.execute(_LOCK_EACH_SHARED, wanted)


async def record_offboarded(conn: Queryable, tenant_id: str, at: datetime) -> bool:
    """Record the tenant as offboarded at ``at``; False if it already was (its first time stays)."""
    status = await conn.execute(
        "INSERT INTO offboarded_tenants (tenant_id, offboarded_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        tenant_id, at)
    return status.endswith(" 1")


async def offboarded_at(conn: Queryable, tenant_id: str) -> datetime | None:
    """When the tenant was offboarded; None if it never was."""
    return await conn.fetchval("SELECT offboarded_at FROM offboarded_tenants WHERE tenant_id = $1", tenant_id)


async def offboarded_at_each(conn: Queryable, tenant_ids: Sequence[str]) -> list[datetime | None]:
    """:func:`offboarded_at` of each of ``tenant_ids`` (in their order), in one statement."""
    rows = await conn.fetch("SELECT tenant_id, offboarded_at FROM offboarded_tenants WHERE tenant_id = ANY($1::text[])",
                            list(set(tenant_ids)))
    found = {row["tenant_id"]: row["offboarded_at"] for row in rows}
    return [found.get(tenant_id) for tenant_id in tenant_ids]


async def is_offboarded(conn: asyncpg.Connection, tenant_id: str) -> bool:
    """In an apply's transaction, before it touches the tenant's rows: whether to drop the event.
    Waits for an offboarding of the tenant in progress (the lock), then looks (a statement of its own,
    so it sees what that offboarding committed)."""
    await _lock_shared(conn, [tenant_id])
    return await offboarded_at(conn, tenant_id) is not None


async def offboarded_among(conn: asyncpg.Connection, tenant_ids: Iterable[str]) -> set[str]:
    """:func:`is_offboarded` for a batch of events: which of ``tenant_ids`` to drop."""
    wanted = sorted(set(tenant_ids))
    if not wanted:
        return set()
    await _lock_shared(conn, wanted)
    return await _offboarded(conn, wanted)


async def _offboarded(conn: asyncpg.Connection, tenant_ids: Iterable[str]) -> set[str]:
    wanted = sorted(set(tenant_ids))
    if not wanted:
        return set()
    rows = await conn.fetch("SELECT tenant_id FROM offboarded_tenants WHERE tenant_id = ANY($1::text[])", wanted)
    return {row["tenant_id"] for row in rows}


# A batch's event ids claimed in the dedupe ledger, and its tenants' offboarding locks taken shared, in
# their (sorted) order, in one statement; the ids claimed.
_CLAIM_AND_LOCK = """
WITH claimed AS (
    INSERT INTO processed_events (consumer, event_id) SELECT $1, unnest($2::uuid[])
    ON CONFLICT DO NOTHING RETURNING event_id
), locked AS (
    SELECT pg_advisory_xact_lock_shared(hashtextextended('offboarding:' || t, 0))
    FROM unnest($3::text[]) WITH ORDINALITY AS l(t, n) ORDER BY n
)
SELECT claimed.event_id FROM claimed CROSS JOIN (SELECT count(*) FROM locked) AS all_locked
"""


async def claim_events(conn: asyncpg.Connection, consumer: str, events: Sequence[Event]) -> list[Event]:
    """The events of a batch ``consumer`` is to apply, in their order, in the caller's transaction: each
    id claimed in the dedupe ledger (``processed_events``) in one statement, so an event applied before,
    or a batch consumed again after a crash before its offsets were committed, adds nothing; an id twice
    in the batch counts once; the events of an offboarded tenant are dropped (their ids claimed all the
    same), under the tenants' offboarding locks (:func:`offboarded_among`) until the transaction ends."""
    unique: dict = {}
    for event in events:
        unique.setdefault(event.event_id, event)
    if not unique:
        return []
    # The ids claimed and the tenants' locks in one statement; the look at offboarded_tenants is the next
    # (a statement of its own, so it sees an offboarding that committed while the lock was awaited): two
    # round trips per batch, not three (#15).
    claimed = {r["event_id"] for r in await conn.fetch(
        _CLAIM_AND_LOCK, consumer, list(unique), sorted({e.tenant_id for e in unique.values()}))}
    todo = [e for e in unique.values() if e.event_id in claimed]
    if retired := await _offboarded(conn, [e.tenant_id for e in todo]):
        log.debug("%d event(s) of offboarded tenant(s) %s dropped by %s", sum(e.tenant_id in retired for e in todo),
                  ", ".join(sorted(retired)), consumer)
        todo = [e for e in todo if e.tenant_id not in retired]
    return todo
