"""What the write API knows of the notifier's deliveries (migration 0074), and redelivery requests.

The notifier owns its delivery log and tells each change of a delivery as a ``delivery-changed``
event; the write API keeps the latest state of each (newest ``occurredDateTime`` wins, each event
applied once), and its view while it is dead, so it can answer ``POST .../redeliver`` with 404 or 409
itself, or 202 with the view. A redelivery is the
notifier's to make: the write API only enqueues the ``redelivery-requested`` command. A change of an
offboarded tenant (#18) is dropped, looked at in the apply's transaction under the offboarding's lock
(``shared.offboarding``).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared import offboarding, outbox
from shared.events import Actor, DeliveriesGrouped, DeliveryChanged, RedeliveryRequested, Topic, delivery_changes

CONSUMER = "ingest-deliveries"
DEAD = "dead"
log = logging.getLogger(__name__)


async def apply_deliveries_changed(
    pool: asyncpg.Pool, events: Sequence[DeliveryChanged | DeliveriesGrouped]
) -> int:
    """Record each delivery's state unless a newer one is known (a deliveries-grouped event: that of each
    delivery it names), and its view while it is dead (the body of a redelivery's 202; a 409 tells the
    state alone), a batch in one transaction and one upsert; the events applied before, and those of an
    offboarded tenant (#18), are dropped (``shared.offboarding.claim_events``). Returns how many were applied."""
    async with pool.acquire() as conn, conn.transaction():
        todo = await offboarding.claim_events(conn, CONSUMER, events)
        # One upsert cannot touch a row twice: of a delivery's changes in the batch, the newest (the later
        # of two at one time) goes, as applying them one by one would have left it.
        newest: dict[uuid.UUID, DeliveryChanged] = {}
        for event in delivery_changes(todo):
            known = newest.get(event.delivery.id)
            if known is None or known.occurred_date_time <= event.occurred_date_time:
                newest[event.delivery.id] = event
        if newest:
            await conn.execute(
                """INSERT INTO deliveries (delivery_id, tenant_id, state, view, changed_at)
                   SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::timestamptz[])
                   ON CONFLICT (delivery_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, state = EXCLUDED.state,
                       view = EXCLUDED.view, changed_at = EXCLUDED.changed_at, updated_at = now()
                   WHERE deliveries.changed_at <= EXCLUDED.changed_at""",
                list(newest), [e.tenant_id for e in newest.values()], [e.delivery.state for e in newest.values()],
                [e.delivery.model_dump_json() if e.delivery.state == DEAD else None for e in newest.values()],
                [e.occurred_date_time for e in newest.values()],
            )
    return len(todo)


@dataclass(frozen=True)
class RedeliveryAnswer:
    state: str | None  # None: no such delivery of the tenant
    view: dict[str, Any] | None  # the dead delivery's view; None when not dead
    requested: bool  # False: unknown or not dead, nothing requested


async def request_redelivery(
    pool: asyncpg.Pool, tenant_id: str, delivery_id: uuid.UUID, actor: Actor
) -> RedeliveryAnswer:
    """If the tenant's delivery is dead, enqueue a ``redelivery-requested`` command for the notifier."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT state, view FROM deliveries WHERE delivery_id = $1 AND tenant_id = $2", delivery_id, tenant_id
        )
        if row is None:
            return RedeliveryAnswer(None, None, False)
        if row["state"] != DEAD:
            return RedeliveryAnswer(row["state"], None, False)
        command = RedeliveryRequested(tenant_id=tenant_id, delivery_id=delivery_id, actor=actor)
        await outbox.enqueue(conn, Topic.delivery_commands, command)
        return RedeliveryAnswer(DEAD, json.loads(row["view"]), True)
