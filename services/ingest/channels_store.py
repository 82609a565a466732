"""SQL of the write API's channel and delivery endpoints (tables of migration 0050, used by the notifier).

A channel's creation, replacement or deletion is audited in its own transaction (``shared.auth.record_audit``):
its new URL, routes and escalation flag and whether its secret changed, never the secret.
"""

from __future__ import annotations

import json
import uuid

import asyncpg

from services.notifier.store import DELIVERY_COLUMNS
from shared.auth import UNATTRIBUTED, AuditAction, AuditActor, record_audit


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
    actor: AuditActor = UNATTRIBUTED,
) -> tuple[asyncpg.Record | None, bool]:
    """Create or replace a channel, audited as done by ``actor``; a missing secret keeps the current one.
    (row, created); row None if a new channel came without a secret. A new secret replacing another leaves
    the old one signing beside it for ``secret_overlap_seconds`` (rotation)."""
    async with pool.acquire() as conn, conn.transaction():
        current_secret = await conn.fetchval(
            "SELECT secret FROM notification_channels WHERE tenant_id = $1 AND name = $2 FOR UPDATE", tenant_id, name
        )
        if secret is None:
            row = await conn.fetchrow(
                """UPDATE notification_channels
                   SET url = $3, routes = $4::jsonb, escalation = $5, updated_at = now()
                   WHERE tenant_id = $1 AND name = $2 RETURNING *""",
                tenant_id,
                name,
                url,
                json.dumps(routes),
                escalation,
            )
            if row is not None:
                await _audit_put(conn, tenant_id, name, actor, routes, row, created=False, secret_changed=False)
            return row, False
        row = await conn.fetchrow(
            """INSERT INTO notification_channels (tenant_id, name, url, secret, routes, escalation)
               VALUES ($1, $2, $3, $4, $5::jsonb, $6)
               ON CONFLICT (tenant_id, name) DO UPDATE SET url = excluded.url, secret = excluded.secret,
                   routes = excluded.routes, escalation = excluded.escalation, updated_at = now(),
                   previous_secret = CASE WHEN notification_channels.secret = excluded.secret
                       THEN notification_channels.previous_secret ELSE notification_channels.secret END,
                   previous_secret_until = CASE WHEN notification_channels.secret = excluded.secret
                       THEN notification_channels.previous_secret_until
                       ELSE now() + make_interval(secs => $7) END
               RETURNING *, (xmax = 0) AS created""",
            tenant_id,
            name,
            url,
            secret,
            json.dumps(routes),
            escalation,
            secret_overlap_seconds,
        )
        await _audit_put(conn, tenant_id, name, actor, routes, row, created=row["created"],
                         secret_changed=current_secret != secret)
        return row, row["created"]


async def _audit_put(
    conn: asyncpg.Connection, tenant_id: str, name: str, actor: AuditActor, routes: list[dict],
    row: asyncpg.Record, *, created: bool, secret_changed: bool,
) -> None:
    await record_audit(
        conn, tenant_id=tenant_id, actor=actor,
        action=AuditAction.channel_created if created else AuditAction.channel_replaced,
        target=f"channels/{name}",
        changes={"url": row["url"], "routes": routes, "escalation": row["escalation"], "secretChanged": secret_changed},
    )


async def get_channel(pool: asyncpg.Pool, tenant_id: str, name: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT * FROM notification_channels WHERE tenant_id = $1 AND name = $2", tenant_id, name
    )


async def list_channels(pool: asyncpg.Pool, tenant_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM notification_channels WHERE tenant_id = $1 ORDER BY name", tenant_id
    )


async def delete_channel(
    pool: asyncpg.Pool, tenant_id: str, name: str, *, actor: AuditActor = UNATTRIBUTED
) -> bool:
    """Delete a channel, audited as done by ``actor``; False (nothing audited) if there was none."""
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.execute(
            "DELETE FROM notification_channels WHERE tenant_id = $1 AND name = $2", tenant_id, name
        )
        deleted = status.endswith(" 1")
        if deleted:
            await record_audit(conn, tenant_id=tenant_id, actor=actor, action=AuditAction.channel_deleted,
                               target=f"channels/{name}", changes={})
    return deleted


async def redeliver(
    pool: asyncpg.Pool, tenant_id: str, delivery_id: uuid.UUID
) -> tuple[asyncpg.Record | None, bool]:
    """Put a dead delivery back in the queue with fresh attempts. (row, requeued); row None if unknown."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"""UPDATE notification_deliveries
                SET state = 'pending', attempts = 0, redeliveries = redeliveries + 1, next_attempt_at = now(),
                    dead_at = NULL, updated_at = now(),
                    -- The death being retried is news no more: an event still unpublished (Kafka was
                    -- down) would otherwise go out later as stale, with the eventId of the next death.
                    dead_letter_published = true
                WHERE tenant_id = $1 AND delivery_id = $2 AND state = 'dead'
                RETURNING {DELIVERY_COLUMNS}""",
            tenant_id,
            delivery_id,
        )
        if row is not None:
            return row, True
        row = await conn.fetchrow(
            f"""SELECT {DELIVERY_COLUMNS} FROM notification_deliveries
                WHERE tenant_id = $1 AND delivery_id = $2""",
            tenant_id,
            delivery_id,
        )
        return row, False
