"""Who is calling, and what they may do (SPEC §6).

``Authorization: Bearer <key>``. A key belongs to one tenant, or to every tenant for an operator,
with a role: adminAgent (everything), securityAdministrator (read, update alerts, set the contact),
securityReader (read only). The operator key comes from ``OPERATOR_API_KEY``; other keys live in
PostgreSQL (``api_keys``, only a SHA-256 of each key is stored) and are made with
``python -m shared.auth create-key``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from shared.http import Problem


class Role(StrEnum):
    admin_agent = "adminAgent"
    security_administrator = "securityAdministrator"
    security_reader = "securityReader"


class Permission(StrEnum):
    read = "read"
    update_alerts = "update-alerts"
    set_contact = "set-contact"
    manage = "manage"  # signals, requirement status, channels, redelivery


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.admin_agent: frozenset(Permission),
    Role.security_administrator: frozenset({Permission.read, Permission.update_alerts, Permission.set_contact}),
    Role.security_reader: frozenset({Permission.read}),
}


@dataclass(frozen=True)
class Principal:
    user_id: str
    role: Role
    tenant_id: str | None  # None: every tenant (operator)

    def can(self, permission: Permission, tenant_id: str) -> bool:
        return (self.tenant_id is None or self.tenant_id == tenant_id) and permission in ROLE_PERMISSIONS[self.role]


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    """Resolves bearer keys, caching database look-ups briefly (a revoked key stops within ``ttl``)."""

    def __init__(self, operator_key: str, pool: asyncpg.Pool | None, ttl: float = 30.0) -> None:
        self._operator_digest = key_digest(operator_key)
        self._pool = pool
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def principal(self, key: str) -> Principal | None:
        digest = key_digest(key)
        if hmac.compare_digest(digest, self._operator_digest):
            return Principal(user_id="operator", role=Role.admin_agent, tenant_id=None)
        if self._pool is None:
            return None
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached and cached[0] > now:
            return cached[1]
        row = await self._pool.fetchrow(
            "SELECT tenant_id, role, user_id FROM api_keys WHERE key_digest = $1 AND revoked_at IS NULL", digest)
        found = Principal(user_id=row["user_id"], role=Role(row["role"]), tenant_id=row["tenant_id"]) if row else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + self._ttl, found)
        return found

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Problem(401, "Unauthorized", "send Authorization: Bearer <key>",
                          headers={"WWW-Authenticate": "Bearer"})
        found = await self.principal(authorization[7:].strip())
        if found is None:
            raise Problem(401, "Unauthorized", "unknown or revoked key", headers={"WWW-Authenticate": "Bearer"})
        return found


def authorize(principal: Principal, permission: Permission, tenant_id: str) -> Principal:
    if not principal.can(permission, tenant_id):
        raise Problem(403, "Forbidden", f"role {principal.role.value} of "
                      f"{'every tenant' if principal.tenant_id is None else 'tenant ' + principal.tenant_id} "
                      f"may not {permission.value} for tenant {tenant_id}")
    return principal


async def create_key(dsn: str, tenant_id: str | None, role: Role, user_id: str) -> str:
    key = "csp_" + secrets.token_urlsafe(32)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO api_keys (key_digest, tenant_id, role, user_id) VALUES ($1, $2, $3, $4)",
                           key_digest(key), tenant_id, role.value, user_id)
    finally:
        await conn.close()
    return key


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m shared.auth", description="Manage API keys.")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-key", help="create a key and print it (shown once)")
    create.add_argument("--tenant", help="the tenant it belongs to; omit for every tenant")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--user", required=True, help="the user the key acts as (the actor of its changes)")
    args = parser.parse_args()
    dsn = os.environ.get("DATABASE_URL", "postgresql://csp:csp@127.0.0.1:5432/csp_triage")
    print(asyncio.run(create_key(dsn, args.tenant, Role(args.role), args.user)))


if __name__ == "__main__":
    main()
