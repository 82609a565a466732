"""PostgreSQL state of the security contact and the requirement signals (migration 0040).

Each write happens in one transaction holding a per-tenant advisory lock for its kind of state; the
route enqueues the resulting events in the outbox in that transaction (``services.ingest.outgoing``),
so the state and its events commit together, and the events of one tenant's successive changes are
published in the order of the changes. The one exception: the removals of a customer-MFA report are
enqueued by ``replace_customer_mfa``, the only one to know which customers its DELETE took (same
transaction, same guarantee).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.ingest.signals_models import CustomerMfa, CustomerSpending
from shared import outbox
from shared.events import (
    CustomerMfaObserved,
    CustomerMfaRemoved,
    SecurityContact,
    SpendingBudgetThresholdReached,
    Topic,
)


@asynccontextmanager
async def tenant_transaction(
    pool: asyncpg.Pool, tenant_id: str, kind: str
) -> AsyncIterator[asyncpg.Connection]:
    """A transaction in which this tenant's ``kind`` of state is changed by no one else."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"signals:{kind}:{tenant_id}"
        )
        yield conn


# --- security contact -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredContact:
    contact: SecurityContact
    updated_by: str
    updated_at: datetime


async def current_contact(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str) -> StoredContact | None:
    row = await conn.fetchrow(
        "SELECT name, email, phone, updated_by, updated_at FROM security_contacts WHERE tenant_id = $1",
        tenant_id,
    )
    if row is None:
        return None
    return StoredContact(
        SecurityContact(name=row["name"], email=row["email"], phone=row["phone"]),
        row["updated_by"],
        row["updated_at"],
    )


async def save_contact(
    conn: asyncpg.Connection, tenant_id: str, contact: SecurityContact, updated_by: str, now: datetime
) -> None:
    await conn.execute(
        """INSERT INTO security_contacts (tenant_id, name, email, phone, updated_by, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (tenant_id) DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email,
               phone = EXCLUDED.phone, updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at""",
        tenant_id,
        contact.name,
        contact.email,
        contact.phone,
        updated_by,
        now,
    )


async def delete_contact(conn: asyncpg.Connection, tenant_id: str) -> bool:
    status = await conn.execute("DELETE FROM security_contacts WHERE tenant_id = $1", tenant_id)
    return status != "DELETE 0"


async def last_contact_change(conn: asyncpg.Connection, tenant_id: str) -> datetime | None:
    """When the contact last changed (set or cleared); None if it never did (migration 0041)."""
    return await conn.fetchval(
        "SELECT changed_at FROM security_contact_changes WHERE tenant_id = $1", tenant_id
    )


async def record_contact_change(conn: asyncpg.Connection, tenant_id: str, changed_at: datetime) -> None:
    await conn.execute(
        """INSERT INTO security_contact_changes (tenant_id, changed_at) VALUES ($1, $2)
           ON CONFLICT (tenant_id) DO UPDATE SET changed_at = EXCLUDED.changed_at""",
        tenant_id,
        changed_at,
    )


# --- reports --------------------------------------------------------------------------------------


async def claim_report(conn: asyncpg.Connection, tenant_id: str, kind: str, observed: datetime) -> bool:
    """Record ``observed`` as the tenant's latest report of ``kind``; False if a later one is applied."""
    row = await conn.fetchrow(
        """INSERT INTO signal_reports (tenant_id, kind, observed_at) VALUES ($1, $2, $3)
           ON CONFLICT (tenant_id, kind) DO UPDATE SET observed_at = EXCLUDED.observed_at, received_at = now()
               WHERE signal_reports.observed_at <= EXCLUDED.observed_at
           RETURNING 1""",
        tenant_id,
        kind,
        observed,
    )
    return row is not None


async def replace_customer_mfa(
    conn: asyncpg.Connection, tenant_id: str, customers: Sequence[CustomerMfa], observed: datetime
) -> list[str]:
    """Make ``customers`` the tenant's figures; the ids of the customers it no longer has.

    The customers left out are deleted and a ``CustomerMfaRemoved`` of each, with the report's time,
    is enqueued here, in this transaction (an empty report removes every customer, and tells so).
    The events of the report's own customers are the caller's to enqueue, in this transaction too:
    their rows are marked announced.
    """
    ids = [c.customer_tenant_id for c in customers]
    removed = await conn.fetch(
        """DELETE FROM customer_mfa WHERE tenant_id = $1 AND NOT (customer_tenant_id = ANY($2::text[]))
           RETURNING customer_tenant_id""",
        tenant_id,
        ids,
    )
    await conn.execute(
        """INSERT INTO customer_mfa (tenant_id, customer_tenant_id, customer_name, admins, admins_with_mfa,
                                     non_admins_with_mfa, total_users, observed_at)
           SELECT $1, t.id, t.name, t.admins, t.admins_mfa, t.others_mfa, t.users, $8
           FROM unnest($2::text[], $3::text[], $4::int[], $5::int[], $6::int[], $7::int[])
                AS t(id, name, admins, admins_mfa, others_mfa, users)
           ON CONFLICT (tenant_id, customer_tenant_id) DO UPDATE SET customer_name = EXCLUDED.customer_name,
               admins = EXCLUDED.admins, admins_with_mfa = EXCLUDED.admins_with_mfa,
               non_admins_with_mfa = EXCLUDED.non_admins_with_mfa, total_users = EXCLUDED.total_users,
               observed_at = EXCLUDED.observed_at, announced = true""",
        tenant_id,
        ids,
        [c.customer_name for c in customers],
        [c.admins for c in customers],
        [c.admins_with_mfa for c in customers],
        [c.non_admins_with_mfa for c in customers],
        [c.total_users for c in customers],
        observed,
    )
    gone = [row["customer_tenant_id"] for row in removed]
    await outbox.enqueue_many(conn, [(Topic.customer_mfa, _removed(tenant_id, cid, observed)) for cid in gone])
    return gone


async def announce_customer_mfa(pool: asyncpg.Pool, *, batch: int = 1000) -> int:
    """Publish, once, the customers' figures no event told of yet (stored before there were such
    events: ``announced`` false); how many. Each batch marks its rows and enqueues their events in one
    transaction; a report changing the same rows meanwhile waits, or is waited for and wins."""
    told = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """UPDATE customer_mfa SET announced = true
                   WHERE NOT announced AND (tenant_id, customer_tenant_id) IN (
                       SELECT tenant_id, customer_tenant_id FROM customer_mfa WHERE NOT announced
                       ORDER BY tenant_id, customer_tenant_id LIMIT $1)
                   RETURNING *""",
                batch,
            )
            await outbox.enqueue_many(conn, [(Topic.customer_mfa, _observed(row)) for row in rows])
        told += len(rows)
        if not rows:
            return told


def _removed(tenant_id: str, customer_tenant_id: str, observed: datetime) -> CustomerMfaRemoved:
    return CustomerMfaRemoved(tenant_id=tenant_id, customer_tenant_id=customer_tenant_id, observed_date_time=observed)


def _observed(row: asyncpg.Record) -> CustomerMfaObserved:
    return CustomerMfaObserved(
        tenant_id=row["tenant_id"],
        customer_tenant_id=row["customer_tenant_id"],
        customer_name=row["customer_name"],
        admins=row["admins"],
        admins_with_mfa=row["admins_with_mfa"],
        non_admins_with_mfa=row["non_admins_with_mfa"],
        total_users=row["total_users"],
        observed_date_time=row["observed_at"],
    )


async def replace_spending(
    conn: asyncpg.Connection,
    tenant_id: str,
    month: str,
    customers: Sequence[CustomerSpending],
    observed: datetime,
) -> None:
    ids = [c.customer_tenant_id for c in customers]
    await conn.execute(
        "DELETE FROM customer_spending WHERE tenant_id = $1 AND NOT (customer_tenant_id = ANY($2::text[]))",
        tenant_id,
        ids,
    )
    await conn.execute(
        """INSERT INTO customer_spending (tenant_id, customer_tenant_id, customer_name, month, monthly_budget,
                                          current_month_spend, observed_at)
           SELECT $1, t.id, t.name, $3, t.budget, t.spend, $7
           FROM unnest($2::text[], $4::text[], $5::numeric[], $6::numeric[]) AS t(id, name, budget, spend)
           ON CONFLICT (tenant_id, customer_tenant_id) DO UPDATE SET customer_name = EXCLUDED.customer_name,
               month = EXCLUDED.month, monthly_budget = EXCLUDED.monthly_budget,
               current_month_spend = EXCLUDED.current_month_spend, observed_at = EXCLUDED.observed_at""",
        tenant_id,
        ids,
        month,
        [c.customer_name for c in customers],
        [c.monthly_budget for c in customers],
        [c.current_month_spend for c in customers],
        observed,
    )


async def claim_notifications(
    conn: asyncpg.Connection, candidates: Sequence[SpendingBudgetThresholdReached]
) -> list[SpendingBudgetThresholdReached]:
    """The candidates not notified yet for their tenant, customer and month, now recorded as notified.

    The rows commit with the caller's transaction and the notifications' outbox rows: if that rolls
    back, the next report tries again.
    """
    if not candidates:
        return []
    inserted = await conn.fetch(
        """INSERT INTO spending_notifications (tenant_id, customer_tenant_id, month, threshold_percent,
                                               budget, spend, event_id)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::numeric[], $6::numeric[],
                                $7::uuid[])
           ON CONFLICT DO NOTHING
           RETURNING customer_tenant_id""",
        [n.tenant_id for n in candidates],
        [n.customer_tenant_id for n in candidates],
        [n.month for n in candidates],
        [n.threshold_percent for n in candidates],
        [n.budget for n in candidates],
        [n.spend for n in candidates],
        [n.event_id for n in candidates],
    )
    claimed = {row["customer_tenant_id"] for row in inserted}
    return [n for n in candidates if n.customer_tenant_id in claimed]
