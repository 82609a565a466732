"""Offboarding a tenant (#18) in the notifier: on the ``tenant-offboarded`` event, in one transaction with
its claim, every row of the tenant goes (its contact, channels and escalation chain, its delivery log
and timers, its closed alerts and requirement states), the tenant is recorded as offboarded (every later
event of it is then dropped: ``store.claim``), and each delivery's key on the compacted ``deliveries``
topic gets a tombstone in the outbox, after whatever the outbox already held for it (so compaction
keeps the tombstone). A delivery pruned before (``store.prune_finished``) has no row left to name its
key: its last state stays on the topic, and every consumer drops it as an event of an offboarded tenant.

A send already under way when the tenant goes is not recalled; its outcome finds no row and is not
recorded (``store.record_outcome``).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.notifier import store
from shared import outbox
from shared.db import claim_event
from shared.events import TenantOffboarded, Topic
from shared.offboarding import lock_for_offboarding, record_offboarded

# In this order: the timers first, so a worker firing some of them (holding them, adding their
# deliveries) is waited for before the deliveries go, and what it added goes too.
TABLES = ("notification_timers", "notification_deliveries", "notifier_closed_alerts", "notifier_contacts",
          "notification_channels", "escalation_chains", "requirement_states")


@dataclass(frozen=True)
class Offboarded:
    """What the offboarding deleted (rows per table) and tombstoned."""

    rows: dict[str, int]
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
    rows: dict[str, int] = {}
    deliveries: list[str] = []
    for table in TABLES:
        if table == "notification_deliveries":
            deleted = await conn.fetch(
                "DELETE FROM notification_deliveries WHERE tenant_id = $1 RETURNING delivery_id", tenant_id)
            deliveries = sorted(str(row["delivery_id"]) for row in deleted)
            rows[table] = len(deleted)
        else:
            status = await conn.execute(f"DELETE FROM {table} WHERE tenant_id = $1", tenant_id)
            rows[table] = int(status.split()[-1])
    await record_offboarded(conn, tenant_id, event.occurred_date_time)
    # Each key as DeliveryChanged makes it.
    await outbox.enqueue_tombstones(conn, Topic.deliveries, [f"{tenant_id}:{d}".encode() for d in deliveries])
    return Offboarded(rows=rows, tombstones=len(deliveries))
