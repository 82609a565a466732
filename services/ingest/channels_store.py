"""The write API's channels (table ``channels``, migrations 0072 and 0077), and their events.

Each creation, replacement or deletion is, in one transaction: the row, its audit entry
(``shared.auth.record_audit``: the new kind, URL, routes and escalation flag and whether the secret
changed, never the secret) and the ``notification-channel-changed`` event in the outbox, enqueued after the
row is locked so the events of one channel are published in the order of its changes. A channel no
event told of yet (copied at the upgrade, ``announced`` false) is published by
:func:`announce_unpublished` at start-up.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg

from services.ingest.channel_events import channel_changed
from shared import outbox
from shared.auth import UNATTRIBUTED, AuditAction, AuditActor, record_audit
from shared.channels import ChannelKind
from shared.events import Topic


async def put_channel(
    pool: asyncpg.Pool,
    tenant_id: str,
    name: str,
    url: str,
    secret: str | None,
    routes: list[dict],
    escalation: bool,
    secret_overlap_seconds: float = 86_400.0,
    *,
    kind: ChannelKind = ChannelKind.webhook,
    sealing_keys: Sequence[str],
    actor: AuditActor = UNATTRIBUTED,
) -> tuple[asyncpg.Record | None, bool]:
    """Create or replace a channel, audited as done by ``actor``. (row, created); row None if a webhook
    channel came without a secret and has none to keep (new, or a Teams channel until now).

    A webhook's missing secret keeps the current one; a new secret replacing another leaves the old one
    signing beside it for ``secret_overlap_seconds`` (rotation). A Teams channel has no secret (the
    caller refuses one): made a Teams channel, a webhook's secrets are dropped, not kept aside.
    """
    async with pool.acquire() as conn, conn.transaction():
        current_secret = await conn.fetchval(
            "SELECT secret FROM channels WHERE tenant_id = $1 AND name = $2 FOR UPDATE", tenant_id, name
        )
        if kind is ChannelKind.teams:
            row = await conn.fetchrow(
                """INSERT INTO channels (tenant_id, name, kind, url, secret, routes, escalation)
                   VALUES ($1, $2, 'teams', $3, NULL, $4::jsonb, $5)
                   ON CONFLICT (tenant_id, name) DO UPDATE SET kind = 'teams', url = excluded.url, secret = NULL,
                       previous_secret = NULL, previous_secret_until = NULL, routes = excluded.routes,
                       escalation = excluded.escalation, updated_at = now(), announced = true
                   RETURNING *, (xmax = 0) AS created, clock_timestamp() AS changed_at""",
                tenant_id,
                name,
                url,
                json.dumps(routes),
                escalation,
            )
            secret_changed = current_secret is not None
        elif secret is None:
            row = await conn.fetchrow(
                """UPDATE channels
                   SET url = $3, routes = $4::jsonb, escalation = $5, updated_at = now(), announced = true
                   WHERE tenant_id = $1 AND name = $2 AND kind = 'webhook'
                   RETURNING *, false AS created, clock_timestamp() AS changed_at""",
                tenant_id,
                name,
                url,
                json.dumps(routes),
                escalation,
            )
            secret_changed = False
        else:
            # A webhook until now: the replaced secret signs beside the new one for the overlap. A Teams
            # channel until now had no secret: nothing overlaps.
            row = await conn.fetchrow(
                """INSERT INTO channels (tenant_id, name, kind, url, secret, routes, escalation)
                   VALUES ($1, $2, 'webhook', $3, $4, $5::jsonb, $6)
                   ON CONFLICT (tenant_id, name) DO UPDATE SET kind = 'webhook', url = excluded.url,
                       secret = excluded.secret, routes = excluded.routes, escalation = excluded.escalation,
                       updated_at = now(), announced = true,
                       previous_secret = CASE WHEN channels.secret = excluded.secret
                           THEN channels.previous_secret ELSE channels.secret END,
                       previous_secret_until = CASE WHEN channels.secret = excluded.secret
                           THEN channels.previous_secret_until
                           WHEN channels.secret IS NULL THEN NULL
                           ELSE now() + make_interval(secs => $7) END
                   RETURNING *, (xmax = 0) AS created, clock_timestamp() AS changed_at""",
                tenant_id,
                name,
                url,
                secret,
                json.dumps(routes),
                escalation,
                secret_overlap_seconds,
            )
            secret_changed = current_secret != secret
        if row is None:
            return None, False
        await _audit_put(conn, tenant_id, name, actor, routes, row, created=row["created"],
                         secret_changed=secret_changed)
        await outbox.enqueue(conn, Topic.notification_channels, channel_changed(tenant_id, name, row, sealing_keys))
        return row, row["created"]


async def _audit_put(
    conn: asyncpg.Connection, tenant_id: str, name: str, actor: AuditActor, routes: list[dict],
    row: asyncpg.Record, *, created: bool, secret_changed: bool,
) -> None:
    await record_audit(
        conn, tenant_id=tenant_id, actor=actor,
        action=AuditAction.channel_created if created else AuditAction.channel_replaced,
        target=f"channels/{name}",
        changes={"kind": row["kind"], "url": row["url"], "routes": routes, "escalation": row["escalation"],
                 "secretChanged": secret_changed},
    )


async def get_channel(pool: asyncpg.Pool, tenant_id: str, name: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM channels WHERE tenant_id = $1 AND name = $2", tenant_id, name)


async def list_channels(pool: asyncpg.Pool, tenant_id: str) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM channels WHERE tenant_id = $1 ORDER BY name", tenant_id)


async def delete_channel(
    pool: asyncpg.Pool, tenant_id: str, name: str, *, sealing_keys: Sequence[str], actor: AuditActor = UNATTRIBUTED
) -> bool:
    """Delete a channel, audited as done by ``actor``; False (nothing audited nor told) if there was none."""
    async with pool.acquire() as conn, conn.transaction():
        changed_at = await conn.fetchval(
            "WITH gone AS (DELETE FROM channels WHERE tenant_id = $1 AND name = $2 RETURNING 1)"
            " SELECT clock_timestamp() FROM gone", tenant_id, name)
        deleted = changed_at is not None
        if deleted:
            await record_audit(conn, tenant_id=tenant_id, actor=actor, action=AuditAction.channel_deleted,
                               target=f"channels/{name}", changes={})
            await outbox.enqueue(conn, Topic.notification_channels,
                                 channel_changed(tenant_id, name, None, sealing_keys, changed_at))
    return deleted


async def announce_unpublished(pool: asyncpg.Pool, sealing_keys: Sequence[str], *, batch: int = 500) -> int:
    """Publish every channel no event told of yet (``announced`` false), once; how many were.

    Each batch marks its rows and enqueues their events in one transaction: a second process starting
    at the same time waits for the rows and then finds them announced.
    """
    told = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """UPDATE channels SET announced = true
                   WHERE NOT announced AND (tenant_id, name) IN (
                       SELECT tenant_id, name FROM channels WHERE NOT announced ORDER BY tenant_id, name LIMIT $1)
                   RETURNING *""",
                batch,
            )
            await outbox.enqueue_many(conn, [
                (Topic.notification_channels, channel_changed(row["tenant_id"], row["name"], row, sealing_keys))
                for row in rows
            ])
        told += len(rows)
        if not rows:
            return told
