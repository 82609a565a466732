"""Offboarding a tenant (#18) in the response-time service: on the ``tenant-offboarded`` event, in one
transaction with its claim, every row of the tenant goes (its alerts' clocks, its status bookkeeping),
the tenant is recorded as offboarded (every later event of it is then dropped by ``store``, under
``shared.offboarding``'s per-tenant lock), and each key the service published for it on a compacted
topic gets a tombstone in the outbox: each alert's ``alert-response-times`` key and the tenant's
``securityAlertsPromptlyResolved`` status on ``requirement-status``. They go out after whatever the
outbox already held for those keys, so compaction keeps the tombstone.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.response_time import domain, store
from shared import outbox
from shared.db import claim_event
from shared.events import TenantOffboarded, Topic
from shared.offboarding import lock_for_offboarding, record_offboarded


@dataclass(frozen=True)
class Offboarded:
    """What the offboarding deleted and tombstoned."""

    alerts: int
    tombstones: int


async def offboard(pool: asyncpg.Pool, event: TenantOffboarded) -> Offboarded | None:
    """Apply the event in one transaction (:func:`offboard_in`); None if it was applied before."""
    async with pool.acquire() as conn, conn.transaction():
        return await offboard_in(conn, event)


async def offboard_in(conn: asyncpg.Connection, event: TenantOffboarded) -> Offboarded | None:
    """Delete everything of the tenant, record it offboarded and enqueue its tombstones, in the caller's
    transaction; None if the event was applied before."""
    tenant_id = event.tenant_id
    if not await claim_event(conn, store.CONSUMER, event.event_id):
        return None
    # After the transactions applying its events now; any later one finds it offboarded.
    await lock_for_offboarding(conn, tenant_id)
    alerts = await conn.fetch("DELETE FROM alerts WHERE tenant_id = $1 RETURNING alert_id", tenant_id)
    await conn.execute("DELETE FROM response_time_tenants WHERE tenant_id = $1", tenant_id)
    await conn.execute("DELETE FROM response_time_dirty WHERE tenant_id = $1", tenant_id)
    await record_offboarded(conn, tenant_id, event.occurred_date_time)
    # The keys as AlertResponseTimeChanged and RequirementStatusObserved make them. The status key is
    # tombstoned even if no status of the tenant went out yet: deleting a key never written is harmless.
    alert_keys = [f"{tenant_id}:{row['alert_id']}".encode() for row in sorted(alerts, key=lambda r: r["alert_id"])]
    status_keys = [f"{tenant_id}:{domain.REQUIREMENT_TYPE}".encode()]
    await outbox.enqueue_tombstones(conn, Topic.alert_response_times, alert_keys)
    await outbox.enqueue_tombstones(conn, Topic.requirement_status, status_keys)
    return Offboarded(alerts=len(alerts), tombstones=len(alert_keys) + len(status_keys))
