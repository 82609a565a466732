"""Who may write alerts: a bearer key with a role that may, or a webhook signed with the tenant's secret.

Signed webhooks follow Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``; HMAC-SHA256 over ``id.timestamp.body``; five minutes' tolerance; the
library compares in constant time). A tenant has up to two active secrets (rotation); a tenant
with none uses its *default secret*, derived from the deployment's ``WEBHOOK_SECRET`` and the
tenant id (``whsec_`` + base64 HMAC-SHA256 keyed with the decoded ``WEBHOOK_SECRET`` over the tenant
id), so one tenant's default never signs for another.

``python -m services.ingest.webhook_auth rotate --tenant T`` adds a new secret for tenant T and
prints it; the previous one stays valid until the next rotation, or until
``python -m services.ingest.webhook_auth revoke --tenant T`` (``--keep-newest 0``: every one, back to the
default secret). Both are audited (``--actor``, key id ``cli``).
``python -m services.ingest.webhook_auth show-default --tenant T`` prints tenant T's default secret.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import secrets as token_source
import time
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg
from fastapi import Request

from services.ingest import webhook_secrets_store
from services.ingest.webhook_secrets_store import ACTIVE_SECRETS
from shared.auth import AuditActor, KeyStore, Permission, Principal, authorize
from shared.db import create_pool
from shared.http import Problem
from shared.http_guards import authenticated_caller
from shared.webhooks import WebhookSignatureError, has_signature, verify


@dataclass(frozen=True)
class WriteCaller:
    """Who sent a write: a key's principal, or a tenant's signed webhook (``principal`` None)."""

    principal: Principal | None
    webhook_id: str | None = None

    @property
    def is_webhook(self) -> bool:
        return self.principal is None


def _secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def derived_secret(deployment_secret: str, tenant_id: str) -> str:
    """Tenant ``tenant_id``'s default secret: distinct per tenant, reproducible from ``WEBHOOK_SECRET``."""
    digest = hmac.new(_secret_bytes(deployment_secret), tenant_id.encode(), hashlib.sha256).digest()
    return "whsec_" + base64.b64encode(digest).decode()


class WebhookSecrets:
    """Each tenant's active secrets, cached briefly (a rotation applies within ``ttl`` seconds)."""

    def __init__(self, pool: asyncpg.Pool, default_secret: str, ttl: float = 10.0) -> None:
        self._pool, self._default, self._ttl = pool, default_secret, ttl
        self._cache: dict[str, tuple[float, list[str]]] = {}

    async def for_tenant(self, tenant_id: str) -> list[str]:
        now = time.monotonic()
        cached = self._cache.get(tenant_id)
        if cached and cached[0] > now:
            return cached[1]
        found = await webhook_secrets_store.active_secrets(self._pool, tenant_id)
        found = found or [derived_secret(self._default, tenant_id)]
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[tenant_id] = (now + self._ttl, found)
        return found


def wants_signature_check(headers: Mapping[str, str]) -> bool:
    """A request carrying the signature headers is checked as a webhook (even if it has a key too)."""
    return has_signature(headers)


async def authenticate_key(
    keys: KeyStore,
    request: Request,
    tenant_id: str,
    permission: Permission = Permission.update_alerts,
) -> WriteCaller:
    """401 without a known key, 403 when its role or tenant may not write here. The key is looked up
    once per request: the request guard's lookup, made before the body was read, is reused."""
    principal = await authenticated_caller(request, request.headers.get("authorization"), keys)
    return WriteCaller(principal=authorize(principal, permission, tenant_id))


async def authenticate_webhook(
    secrets: WebhookSecrets, tenant_id: str, headers: Mapping[str, str], body: bytes
) -> WriteCaller:
    """401 unless one of the tenant's active secrets signed ``body`` within the last five minutes."""
    try:
        verify(await secrets.for_tenant(tenant_id), headers, body)
    except WebhookSignatureError as exc:
        raise Problem(
            401,
            "Unauthorized",
            f"webhook signature not valid for tenant {tenant_id}: {exc}",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    return WriteCaller(principal=None, webhook_id=headers.get("webhook-id"))


def new_secret() -> str:
    return "whsec_" + base64.b64encode(token_source.token_bytes(32)).decode()


async def _rotate(dsn: str, tenant_id: str, actor: AuditActor) -> str:
    pool = await create_pool(dsn, schema="ingest", min_size=1, max_size=1)
    try:
        secret = new_secret()
        await webhook_secrets_store.add_secret(pool, tenant_id, secret, actor=actor)
        return secret
    finally:
        await pool.close()


async def _revoke(dsn: str, tenant_id: str, keep_newest: int, actor: AuditActor) -> list[int]:
    pool = await create_pool(dsn, schema="ingest", min_size=1, max_size=1)
    try:
        return await webhook_secrets_store.revoke_secrets(pool, tenant_id, keep_newest=keep_newest, actor=actor)
    finally:
        await pool.close()


def main() -> None:
    import os

    parser = argparse.ArgumentParser(
        prog="python -m services.ingest.webhook_auth",
        description="Manage a tenant's inbound webhook secrets.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rotate = sub.add_parser("rotate", help="add a new secret (printed once); the previous one stays active")
    rotate.add_argument("--tenant", required=True)
    revoke = sub.add_parser(
        "revoke", help="revoke the tenant's secrets but the newest N (ends a rotation; 0: back to the default)"
    )
    revoke.add_argument("--tenant", required=True)
    revoke.add_argument("--keep-newest", type=int, choices=range(ACTIVE_SECRETS), default=1, metavar="N",
                        help="secrets left active, newest first: 1 (default) or 0")
    for command in (rotate, revoke):
        command.add_argument("--actor", help="who is making the change, for the audit log (default: OS user)")
    show = sub.add_parser(
        "show-default", help="print the tenant's default secret (used while it has none of its own)"
    )
    show.add_argument("--tenant", required=True)
    args = parser.parse_args()
    if args.command == "show-default":
        from pydantic import ValidationError

        from services.ingest.config import Settings

        try:
            deployment_secret = Settings().webhook_secret.get_secret_value()
        except ValidationError as exc:
            parser.exit(2, f"settings not valid: {exc}\n")
        print(derived_secret(deployment_secret, args.tenant))
        return
    dsn = os.environ.get("DATABASE_URL", "postgresql://csp:csp@127.0.0.1:5432/csp_triage")
    if args.command == "revoke":
        revoked = asyncio.run(_revoke(dsn, args.tenant, args.keep_newest, AuditActor.cli(args.actor)))
        print(f"revoked {len(revoked)} secret(s) of tenant {args.tenant}" + (f": ids {revoked}" if revoked else ""))
        return
    print(asyncio.run(_rotate(dsn, args.tenant, AuditActor.cli(args.actor))))


if __name__ == "__main__":
    main()
