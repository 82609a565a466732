"""The tenants' escalation chains (table ``escalation_chains``, migration 0078), and their events.

Each change (set, replaced, cleared) is, in one transaction holding the tenant's lock: the row, its
audit entry (``escalation-chain-set`` with the steps, or ``escalation-chain-cleared``) and the
``escalation-chain-changed`` event in the outbox, so the events of one tenant are published in the
order of its changes. A change that changes nothing (the chain in force again, clearing none) writes,
audits and tells nothing.

A change's time is the database's clock (the write API may run on several hosts), strictly after the
tenant's previous change: a consumer that keeps the newest chain then keeps the last one committed.
A removed chain keeps its row (``steps`` NULL) for that reason.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.ingest.contact import next_change_time
from shared import outbox
from shared.auth import AuditAction, AuditActor, record_audit
from shared.events import EscalationChainChanged, EscalationStep, Topic

TARGET = "escalation-chain"  # the audit entries' target


@dataclass(frozen=True)
class StoredChain:
    steps: list[EscalationStep]
    created_at: datetime
    updated_at: datetime
    updated_by: str


def _wire(steps: list[EscalationStep]) -> list[dict]:
    """The steps as stored and audited: ``{afterMinutes, email}`` or ``{afterMinutes, channel}``."""
    return [step.model_dump(mode="json", exclude_none=True) for step in steps]


def _chain(row: asyncpg.Record | None) -> StoredChain | None:
    if row is None or row["steps"] is None:
        return None
    steps = row["steps"]
    steps = json.loads(steps) if isinstance(steps, str) else steps
    return StoredChain([EscalationStep.model_validate(s) for s in steps], row["created_at"], row["updated_at"],
                       row["updated_by"])


@asynccontextmanager
async def _tenant_transaction(pool: asyncpg.Pool, tenant_id: str) -> AsyncIterator[asyncpg.Connection]:
    # A lock, not the row's: a tenant's first chain has no row to lock yet.
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"escalation-chain:{tenant_id}")
        yield conn


async def _row(db: asyncpg.Pool | asyncpg.Connection, tenant_id: str) -> asyncpg.Record | None:
    return await db.fetchrow("SELECT * FROM escalation_chains WHERE tenant_id = $1", tenant_id)


async def _change_time(conn: asyncpg.Connection, row: asyncpg.Record | None) -> datetime:
    return next_change_time(await conn.fetchval("SELECT clock_timestamp()"), row["updated_at"] if row else None)


async def current_chain(db: asyncpg.Pool | asyncpg.Connection, tenant_id: str) -> StoredChain | None:
    """The chain in force; None if the tenant has none (never set, or removed)."""
    return _chain(await _row(db, tenant_id))


async def set_chain(
    pool: asyncpg.Pool, tenant_id: str, steps: list[EscalationStep], *, actor: AuditActor
) -> tuple[StoredChain, bool]:
    """Make ``steps`` the tenant's chain, audited as done by ``actor``: (the chain in force, whether it was
    created: the tenant had none). The chain already in force: returned as it is, nothing written."""
    async with _tenant_transaction(pool, tenant_id) as conn:
        row = await _row(conn, tenant_id)
        current = _chain(row)
        if current is not None and _wire(current.steps) == _wire(steps):
            return current, False
        now = await _change_time(conn, row)
        row = await conn.fetchrow(
            """INSERT INTO escalation_chains AS chain (tenant_id, steps, updated_by, created_at, updated_at)
               VALUES ($1, $2::jsonb, $3, $4, $4)
               ON CONFLICT (tenant_id) DO UPDATE SET steps = excluded.steps, updated_by = excluded.updated_by,
                   updated_at = excluded.updated_at,
                   created_at = CASE WHEN chain.steps IS NULL THEN excluded.created_at ELSE chain.created_at END
               RETURNING *""",
            tenant_id, json.dumps(_wire(steps)), actor.user_id, now,
        )
        await record_audit(conn, tenant_id=tenant_id, actor=actor, action=AuditAction.escalation_chain_set,
                           target=TARGET, changes={"steps": _wire(steps)}, occurred_at=now)
        await outbox.enqueue(conn, Topic.escalation_chains,
                             EscalationChainChanged(tenant_id=tenant_id, occurred_date_time=now, steps=steps))
        return _chain(row), current is None


async def clear_chain(pool: asyncpg.Pool, tenant_id: str, *, actor: AuditActor) -> bool:
    """Remove the tenant's chain, audited as done by ``actor``; False (nothing written) if it had none."""
    async with _tenant_transaction(pool, tenant_id) as conn:
        row = await _row(conn, tenant_id)
        if _chain(row) is None:
            return False
        now = await _change_time(conn, row)
        await conn.execute(
            "UPDATE escalation_chains SET steps = NULL, updated_by = $2, updated_at = $3 WHERE tenant_id = $1",
            tenant_id, actor.user_id, now,
        )
        await record_audit(conn, tenant_id=tenant_id, actor=actor, action=AuditAction.escalation_chain_cleared,
                           target=TARGET, changes={}, occurred_at=now)
        await outbox.enqueue(conn, Topic.escalation_chains,
                             EscalationChainChanged(tenant_id=tenant_id, occurred_date_time=now, steps=None))
        return True
