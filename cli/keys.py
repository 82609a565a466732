"""``csp-triage keys``: API keys through the write API (``/v1/keys``); operators only (an operator's
key: adminAgent of every tenant). A key is shown once, when it is made; then only its key id names it."""

from __future__ import annotations

from typing import Any

import click

from cli.client import segment
from cli.context import Settings, each, emit, json_option, pass_settings
from cli.output import fields, table

HEADINGS = ["KEY ID", "TENANT", "ROLE", "USER", "CREATED", "EXPIRES", "LAST USED", "REVOKED"]
ROLES = ["adminAgent", "securityAdministrator", "securityReader"]


def key_row(key: dict[str, Any]) -> list[Any]:
    return [key.get("keyId"), key.get("tenantId") or "every tenant", key.get("role"), key.get("userId"),
            key.get("createdDateTime"), key.get("expiresDateTime"), key.get("lastUsedDateTime"),
            key.get("revokedDateTime")]


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (operators only)."""


@keys.command("list")
@click.option("--include-revoked", is_flag=True, help="Revoked keys too.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="Most keys to list (pages are followed up to it).")
@json_option
@pass_settings
def list_keys(settings: Settings, include_revoked: bool, limit: int) -> None:
    """Keys newest first: the tenant's if a tenant is set, else every key. Never a key itself."""
    document = settings.write.pages("/v1/keys", {"tenantId": settings.tenant,
                                                 "includeRevoked": "true" if include_revoked else None},
                                    limit, page_size=min(limit, 1000))
    emit(settings, document, lambda d: table(HEADINGS, [key_row(key) for key in d["value"]]))


@keys.command("show")
@click.argument("key_id")
@click.option("--include-revoked", is_flag=True, help="Show it even if it was revoked.")
@json_option
@pass_settings
def show_key(settings: Settings, key_id: str, include_revoked: bool) -> None:
    """One key's fields (never the key itself)."""
    document = settings.write.get(f"/v1/keys/{segment(key_id)}", includeRevoked="true" if include_revoked else None)
    emit(settings, document, fields)


@keys.command("create")
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="adminAgent (everything), securityAdministrator (read, update alerts, set the contact) "
              "or securityReader (read only).")
@click.option("--user", "user_id", required=True, help="The user the key acts as (its alert updates, the audit log).")
@click.option("--every-tenant", is_flag=True,
              help="A key of every tenant rather than of the tenant set (with adminAgent: an operator's key).")
@click.option("--expires", metavar="DATETIME",
              help="When it stops working (ISO 8601 in UTC, e.g. 2027-01-01T00:00:00Z). Default: never.")
@click.option("--rate-per-second", type=float, help="Its own rate limit (default: the deployment's).")
@click.option("--rate-burst", type=int, help="Its own burst (default: the deployment's).")
@json_option
@pass_settings
def create_key(settings: Settings, role: str, user_id: str, every_tenant: bool, expires: str | None,
               rate_per_second: float | None, rate_burst: int | None) -> None:
    """Make a key of the tenant set (or of every tenant); the key is printed this once."""
    if not every_tenant and not settings.tenant:
        raise click.UsageError("no tenant: give --tenant, set CSP_TRIAGE_TENANT, or ask for --every-tenant")
    body = {"tenantId": None if every_tenant else settings.tenant, "role": role, "userId": user_id,
            "expiresDateTime": expires, "ratePerSecond": rate_per_second, "rateBurst": rate_burst}
    created = settings.write.request("POST", "/v1/keys", json={name: value for name, value in body.items()
                                                                if value is not None})
    emit(settings, created, fields)
    click.echo("The key is shown this once: only a digest of it is kept.", err=True)


@keys.command("revoke")
@click.argument("key_ids", nargs=-1, required=True, metavar="KEY_ID...")
@json_option
@pass_settings
def revoke(settings: Settings, key_ids: tuple[str, ...]) -> None:
    """Revoke keys: at once on the write API that answers, within its key cache time on the others."""
    def delete(key_id: str) -> tuple[str, Any]:
        settings.write.request("DELETE", f"/v1/keys/{segment(key_id)}")
        return "revoked", None

    each(settings, key_ids, delete, "KEY ID")
