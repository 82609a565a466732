"""Reading the audit log (migration 0061); entries are written by ``shared.auth.record_audit`` in the
transaction of the change they record."""

from __future__ import annotations

import base64
import binascii
import json

import asyncpg

from shared.http import Problem


async def newest_entries(
    pool: asyncpg.Pool, tenant_id: str | None, *, limit: int, before: int | None = None
) -> list[asyncpg.Record]:
    """A tenant's entries (``None``: the deployment's own), newest first, older than entry ``before``."""
    # `=` or `IS NULL` rather than `IS NOT DISTINCT FROM`, which no index serves.
    scope = "tenant_id = $3" if tenant_id is not None else "tenant_id IS NULL AND $3::text IS NULL"
    return await pool.fetch(
        f"""SELECT entry_id, tenant_id, occurred_at, user_id, key_id, action, target, changes FROM auth.audit_log
            WHERE {scope} AND ($1::bigint IS NULL OR entry_id < $1)
            ORDER BY entry_id DESC LIMIT $2""",
        before,
        limit,
        tenant_id,
    )


def position_token(entry_id: int) -> str:
    """The opaque position after entry ``entry_id`` (newest first): a ``skiptoken``."""
    return base64.urlsafe_b64encode(json.dumps(["audit", entry_id]).encode()).decode().rstrip("=")


def position_of(token: str) -> int:
    """The entry a ``skiptoken`` starts after; 422 naming the parameter if it is not one of ours."""
    try:
        kind, entry_id = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if kind != "audit" or type(entry_id) is not int or not 0 < entry_id < 2**63:
            raise ValueError("not a position")
    except (ValueError, TypeError, UnicodeDecodeError, binascii.Error):
        raise Problem(422, "Invalid request", "skiptoken: not a token of this API; follow @odata.nextLink",
                      errors=[{"field": "query.skiptoken", "message": "not a token of this API"}]) from None
    return entry_id
