"""What the write API knows of the notifier's deliveries (migration 0074), and redelivery requests.

The notifier owns its delivery log and tells each change of a delivery as a ``delivery-changed``
event; the write API keeps the latest view of each (newest ``occurredDateTime`` wins, each event
applied once), so it can answer ``POST .../redeliver`` with 404 or 409 itself. A redelivery is the
notifier's to make: the write API only enqueues the ``redelivery-requested`` command. A change of an
offboarded tenant (#18) is dropped, looked at in the apply's transaction under the offboarding's lock
(``shared.offboarding``).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared import offboarding, outbox
from shared.db import claim_event
from shared.events import Actor, DeliveryChanged, RedeliveryRequested, Topic

CONSUMER = "ingest-deliveries"
log = logging.getLogger(__name__)


async def apply_delivery_changed(pool: asyncpg.Pool, event: DeliveryChanged) -> bool:
    """Record the delivery's view unless a newer one is known, or drop it if its tenant is offboarded
    (#18); False if the event was applied before."""
    view = event.delivery
    async with pool.acquire() as conn, conn.transaction():
        # In this transaction, first: an offboarding of the tenant in progress is waited for and then
        # seen, so no row of the tenant is committed after the offboarding deleted its rows.
        if await offboarding.is_offboarded(conn, event.tenant_id):
            log.debug("event %s of offboarded tenant %s dropped", event.event_id, event.tenant_id)
            return True
        if not await claim_event(conn, CONSUMER, event.event_id):
            return False
        await conn.execute(
            """INSERT INTO deliveries (delivery_id, tenant_id, state, view, changed_at)
               VALUES ($1, $2, $3, $4::jsonb, $5)
               ON CONFLICT (delivery_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, state = EXCLUDED.state,
                   view = EXCLUDED.view, changed_at = EXCLUDED.changed_at, updated_at = now()
               WHERE deliveries.changed_at <= EXCLUDED.changed_at""",
            view.id,
            event.tenant_id,
            view.state,
            view.model_dump_json(),
            event.occurred_date_time,
        )
    return True


@dataclass(frozen=True)
class RedeliveryAnswer:
    view: dict[str, Any] | None  # None: no such delivery of the tenant
    requested: bool  # False: known but not dead, nothing requested

    @property
    def state(self) -> str | None:
        return self.view["state"] if self.view else None


async def request_redelivery(
    pool: asyncpg.Pool, tenant_id: str, delivery_id: uuid.UUID, actor: Actor
) -> RedeliveryAnswer:
    """If the tenant's delivery is dead, enqueue a ``redelivery-requested`` command for the notifier."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT state, view FROM deliveries WHERE delivery_id = $1 AND tenant_id = $2", delivery_id, tenant_id
        )
        if row is None:
            return RedeliveryAnswer(None, False)
        if row["state"] != "dead":
            return RedeliveryAnswer(json.loads(row["view"]), False)
        command = RedeliveryRequested(tenant_id=tenant_id, delivery_id=delivery_id, actor=actor)
        await outbox.enqueue(conn, Topic.delivery_commands, command)
        return RedeliveryAnswer(json.loads(row["view"]), True)
