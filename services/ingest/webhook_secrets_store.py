"""A tenant's inbound webhook secrets (table of migration 0010): read to verify signatures, changed from
the CLI with each change audited in its own transaction. Entries name the secrets by id, never by value."""

from __future__ import annotations

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


async def add_secret(pool: asyncpg.Pool, tenant_id: str, secret: str, *, actor: AuditActor) -> int:
    """Add a secret and revoke all but the two newest (the new one and the one it replaces); its id."""
    async with pool.acquire() as conn, conn.transaction():
        await _lock(conn, tenant_id)
        secret_id = await conn.fetchval(
            "INSERT INTO ingest_webhook_secrets (tenant_id, secret) VALUES ($1, $2) RETURNING secret_id",
            tenant_id,
            secret,
        )
        revoked = await _revoke_all_but_newest(conn, tenant_id, ACTIVE_SECRETS)
        await record_audit(conn, tenant_id=tenant_id, actor=actor, action=AuditAction.webhook_secret_added,
                           target=f"webhook-secrets/{secret_id}",
                           changes={"secretId": secret_id, "revokedSecretIds": revoked})
    return secret_id


async def revoke_secrets(pool: asyncpg.Pool, tenant_id: str, *, keep_newest: int, actor: AuditActor) -> list[int]:
    """Revoke the tenant's secrets but the ``keep_newest`` newest; the ids revoked (none: no entry)."""
    async with pool.acquire() as conn, conn.transaction():
        await _lock(conn, tenant_id)
        revoked = await _revoke_all_but_newest(conn, tenant_id, keep_newest)
        if revoked:
            await record_audit(conn, tenant_id=tenant_id, actor=actor, action=AuditAction.webhook_secret_revoked,
                               target="webhook-secrets", changes={"revokedSecretIds": revoked})
    return revoked
