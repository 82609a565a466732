"""A tenant's inbound webhook secrets (table of migration 0010): read to verify signatures, listed by id
and changed through the write API (``routes_webhook_secrets``) or the command-line tool
(``webhook_auth``), each change audited in its own transaction. Entries name the secrets by id, never
by value."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shared.auth import AuditAction, AuditActor, record_audit

ACTIVE_SECRETS = 2  # the newest unrevoked ones sign: the current secret and, during a rotation, the one before


async def active_secrets(pool: asyncpg.Pool, tenant_id: str) -> list[str]:
    """The tenant's secrets that sign, newest first."""
    rows = await pool.fetch(
        """SELECT secret FROM ingest_webhook_secrets WHERE tenant_id = $1 AND revoked_at IS NULL
           ORDER BY created_at DESC, secret_id DESC LIMIT $2""",
        tenant_id,
        ACTIVE_SECRETS,
    )
    return [row["secret"] for row in rows]


@dataclass(frozen=True)
class ActiveSecret:
    """One of a tenant's secrets that sign, as it may be shown: its id and creation, never its value."""

    secret_id: int
    created_at: datetime


@dataclass(frozen=True)
class Rotation:
    """A secret added: its id and creation, and the ids it retired (only two stay active)."""

    secret_id: int
    created_at: datetime
    revoked_secret_ids: list[int]


async def list_active(pool: asyncpg.Pool, tenant_id: str) -> list[ActiveSecret]:
    """The tenant's secrets that sign (those :func:`active_secrets` reads), newest first; none: its
    default secret signs."""
    rows = await pool.fetch(
        """SELECT secret_id, created_at FROM ingest_webhook_secrets WHERE tenant_id = $1 AND revoked_at IS NULL
           ORDER BY created_at DESC, secret_id DESC LIMIT $2""",
        tenant_id,
        ACTIVE_SECRETS,
    )
    return [ActiveSecret(row["secret_id"], row["created_at"]) for row in rows]


async def _lock(conn: asyncpg.Connection, tenant_id: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"webhook-secrets:{tenant_id}")


async def _revoke_all_but_newest(conn: asyncpg.Connection, tenant_id: str, keep_newest: int) -> list[int]:
    rows = await conn.fetch(
        """UPDATE ingest_webhook_secrets SET revoked_at = now()
           WHERE tenant_id = $1 AND revoked_at IS NULL AND secret_id NOT IN (
               SELECT secret_id FROM ingest_webhook_secrets WHERE tenant_id = $1 AND revoked_at IS NULL
               ORDER BY created_at DESC, secret_id DESC LIMIT $2)
           RETURNING secret_id""",
        tenant_id,
        keep_newest,
    )
    return sorted(row["secret_id"] for row in rows)


async def rotate(pool: asyncpg.Pool, tenant_id: str, secret: str, *, actor: AuditActor) -> Rotation:
    """Add a secret and revoke all but the two newest (the new one and the one it replaces)."""
    async with pool.acquire() as conn, conn.transaction():
        await _lock(conn, tenant_id)
        row = await conn.fetchrow(
            """INSERT INTO ingest_webhook_secrets (tenant_id, secret) VALUES ($1, $2)
               RETURNING secret_id, created_at""",
            tenant_id,
            secret,
        )
        secret_id = row["secret_id"]
        revoked = await _revoke_all_but_newest(conn, tenant_id, ACTIVE_SECRETS)
        await record_audit(conn, tenant_id=tenant_id, actor=actor, action=AuditAction.webhook_secret_added,
                           target=f"webhook-secrets/{secret_id}",
                           changes={"secretId": secret_id, "revokedSecretIds": revoked})
    return Rotation(secret_id, row["created_at"], revoked)


async def add_secret(pool: asyncpg.Pool, tenant_id: str, secret: str, *, actor: AuditActor) -> int:
    """:func:`rotate`, for who needs only the new secret's id."""
    return (await rotate(pool, tenant_id, secret, actor=actor)).secret_id


async def revoke_secrets(pool: asyncpg.Pool, tenant_id: str, *, keep_newest: int, actor: AuditActor) -> list[int]:
    """Revoke the tenant's secrets but the ``keep_newest`` newest; the ids revoked (none: no entry)."""
    async with pool.acquire() as conn, conn.transaction():
        await _lock(conn, tenant_id)
        revoked = await _revoke_all_but_newest(conn, tenant_id, keep_newest)
        if revoked:
            await record_audit(conn, tenant_id=tenant_id, actor=actor, action=AuditAction.webhook_secret_revoked,
                               target="webhook-secrets", changes={"revokedSecretIds": revoked})
    return revoked
