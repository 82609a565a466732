"""``csp-triage webhook-secrets``: the secrets a tenant's feed signs its alerts with, through the write API
(``/v1/tenants/{t}/webhook-secrets``). A secret is shown once, when it is made; then only its id names
it. The tenant's default secret (while it has none of its own) is never shown over HTTP."""

from __future__ import annotations

import click

from cli.context import Settings, emit, json_option, pass_settings
from cli.output import fields, table

HEADINGS = ["SECRET ID", "CREATED"]
DEFAULT_SIGNS = ("the tenant has no secret of its own: its default secret (derived from the deployment's "
                 "WEBHOOK_SECRET) signs")


@click.group("webhook-secrets")
def webhook_secrets() -> None:
    """List, rotate and revoke the tenant's inbound webhook secrets."""


def _path(settings: Settings) -> str:
    return f"{settings.tenant_path()}/webhook-secrets"


@webhook_secrets.command("list")
@json_option
@pass_settings
def list_secrets(settings: Settings) -> None:
    """The active secrets (two during a rotation), newest first, by id; never a secret."""
    document = settings.write.get(_path(settings))
    emit(settings, document, lambda d: table(HEADINGS, [[s.get("secretId"), s.get("createdDateTime")]
                                                        for s in d["value"]]))
    if document.get("usesDefaultSecret"):
        click.echo(DEFAULT_SIGNS, err=True)


@webhook_secrets.command("rotate")
@json_option
@pass_settings
def rotate(settings: Settings) -> None:
    """Make a new secret, printed this once; the previous one stays active until the next rotation or
    `revoke` (so the sender can switch without a gap)."""
    emit(settings, settings.write.request("POST", _path(settings)), fields)
    click.echo("The secret is shown this once: give it to the tenant's sender now. The write APIs take it "
               "within WEBHOOK_SECRET_CACHE_SECONDS.", err=True)


@webhook_secrets.command("revoke")
@click.option("--keep-newest", type=click.IntRange(0, 1), default=1, show_default=True, metavar="N",
              help="Secrets left active, newest first: 1 ends a rotation; 0 revokes every one (the default "
              "secret signs again).")
@json_option
@pass_settings
def revoke(settings: Settings, keep_newest: int) -> None:
    """Revoke the tenant's secrets but the newest N; prints the ids revoked."""
    emit(settings, settings.write.request("DELETE", _path(settings), params={"keepNewest": keep_newest}), fields)
    if keep_newest == 0:
        click.echo(DEFAULT_SIGNS, err=True)
