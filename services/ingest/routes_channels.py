"""``PUT | GET | DELETE /channels/{name}`` of the write API: the tenant's channels (SPEC §5).

A channel is ``{kind, url, secret, routes, escalation}``. A ``webhook`` channel (the default: a body
without ``kind``) is a ticketing system: its secret (Standard Webhooks ``whsec_<base64>``) signs every
delivery and is never returned; a PUT without a secret keeps the current one. A PUT with a new secret
rotates it: the previous secret goes on signing beside the new one (two signatures in
``webhook-signature``) for ``CHANNEL_SECRET_OVERLAP_HOURS``, so the receiver can switch without
rejecting a delivery. A ``teams`` channel is a Microsoft Teams incoming-webhook or Workflows URL that
receives an Adaptive Card per alert: it has no secret, and a PUT that gives one is refused (422), since
Teams verifies no signature (its URL is its credential) and a secret would only seem to protect it.
Unless ``WEBHOOK_ALLOW_PRIVATE_ADDRESSES``, a URL naming a loopback, private or link-local address is
refused (``shared/egress.py``; the notifier checks names when it connects). Each creation, replacement
and deletion is an audit entry (``GET /audit``) and a ``notification-channel-changed`` event (secrets
sealed), both in the change's transaction: the notifier learns its channels from those events alone.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, NoReturn
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Path, Response
from pydantic import Field, field_validator

from services.ingest import channels_store
from services.ingest.deps import CallerDep, PoolDep, SettingsDep, wake_relay_after_write
from shared.auth import AuditActor, Permission, authorize
from shared.channels import CHANNEL_NAME_MAX_LENGTH, CHANNEL_NAME_PATTERN, ChannelKind, Route
from shared.egress import refusal_for_url
from shared.http import Problem, TenantIdPath
from shared.wire import OptionalUtcDateTime, UtcDateTime, WireModel, utcnow

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["channels"], dependencies=[Depends(wake_relay_after_write)])

ChannelName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=CHANNEL_NAME_MAX_LENGTH,
        pattern=CHANNEL_NAME_PATTERN,
        description="Letters, digits, `.`, `_`, `-`.",
    ),
]


class ChannelIn(WireModel):
    kind: ChannelKind = Field(
        ChannelKind.webhook,
        description="`webhook` (the default): signed JSON to a ticketing system; `teams`: an Adaptive Card "
        "to a Microsoft Teams incoming-webhook or Workflows URL.",
    )
    url: str = Field(
        max_length=2048,
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#]+",
        json_schema_extra={"format": "uri"},
        description="http(s) URL that receives the POSTs: the signed JSON, or the Teams card.",
    )
    secret: str | None = Field(
        None,
        description="`whsec_<base64>` (16 to 64 bytes); a webhook channel's: required for a new one, omit "
        "to keep the current one. A Teams channel takes none (Teams verifies no signature).",
    )
    routes: list[Route] = Field(
        default_factory=list,
        max_length=100,
        description="Any matching route sends the alert; none: every non-test alert.",
    )
    escalation: bool = Field(
        False, description="Receives escalations (20 h without response) instead of new alerts."
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        return value.strip()

    @field_validator("secret")
    @classmethod
    def _standard_webhooks_secret(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("whsec_"):
            raise ValueError("must be a Standard Webhooks secret: whsec_<base64>")
        try:
            raw = base64.b64decode(value.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the part after whsec_ is not valid base64") from None
        if not 16 <= len(raw) <= 64:
            raise ValueError(f"the secret must be 16 to 64 bytes, not {len(raw)}")
        return value


class ChannelOut(WireModel):
    name: str = Field(description="The channel's name in its tenant.")
    kind: ChannelKind = Field(description="`webhook`: signed JSON; `teams`: an Adaptive Card.")
    url: str = Field(description="Where the POSTs go.")
    routes: list[Route] = Field(description="Any matching route sends the alert; none: every non-test alert.")
    escalation: bool = Field(description="Receives escalations (20 h without response) instead of new alerts.")
    secret_configured: bool = Field(
        description="True for a webhook channel (it signs with its secret, never returned); false for a Teams "
        "channel (none)."
    )
    previous_secret_valid_until: OptionalUtcDateTime = Field(
        description="While a replaced secret still signs beside the new one (rotation), until when; else null."
    )
    created_date_time: UtcDateTime
    updated_date_time: UtcDateTime


class ChannelList(WireModel):
    value: list[ChannelOut] = Field(description="The tenant's channels, by name.")


def _view(row) -> ChannelOut:
    overlapping = (row["previous_secret"] and row["previous_secret_until"]
                   and row["previous_secret_until"] > utcnow())
    return ChannelOut(
        name=row["name"],
        kind=row["kind"],
        url=row["url"],
        routes=json.loads(row["routes"]),
        escalation=row["escalation"],
        secret_configured=row["secret"] is not None,
        previous_secret_valid_until=row["previous_secret_until"] if overlapping else None,  # null after the overlap
        created_date_time=row["created_at"],
        updated_date_time=row["updated_at"],
    )


@router.put(
    "/channels/{name}",
    summary="Create or replace a channel: a ticketing webhook or a Microsoft Teams channel",
    response_model=ChannelOut,
    responses={201: {"description": "Created", "model": ChannelOut}, 200: {"description": "Replaced"}},
)
async def put_channel(
    tenant_id: TenantIdPath,
    name: ChannelName,
    body: ChannelIn,
    caller: CallerDep,
    pool: PoolDep,
    settings: SettingsDep,
    response: Response,
) -> ChannelOut:
    authorize(caller, Permission.manage, tenant_id)
    if not settings.webhook_allow_private_addresses and (reason := refusal_for_url(body.url)):
        message = f"{reason}: a channel must be on a public address (WEBHOOK_ALLOW_PRIVATE_ADDRESSES)"
        raise Problem(422, "Invalid request", f"url: {message}", errors=[{"field": "url", "message": message}])
    if body.kind is ChannelKind.teams and body.secret is not None:
        _refuse_secret("a Teams channel takes no secret: Teams verifies no signature (its URL is its credential)")
    routes = [r.model_dump(mode="json") for r in body.routes]
    row, created = await channels_store.put_channel(
        pool, tenant_id, name, body.url, body.secret, routes, body.escalation,
        secret_overlap_seconds=settings.channel_secret_overlap_hours * 3600, kind=body.kind,
        sealing_keys=settings.sealing_key_list, actor=AuditActor.of(caller),
    )
    if row is None:
        _refuse_secret("required for a new webhook channel, or one that was a Teams channel")
    response.status_code = 201 if created else 200
    return _view(row)


def _refuse_secret(message: str) -> NoReturn:
    raise Problem(422, "Invalid request", f"secret: {message}", errors=[{"field": "secret", "message": message}])


@router.get("/channels", response_model=ChannelList, summary="The tenant's channels")
async def list_channels(tenant_id: TenantIdPath, caller: CallerDep, pool: PoolDep) -> ChannelList:
    authorize(caller, Permission.read, tenant_id)
    return ChannelList(value=[_view(r) for r in await channels_store.list_channels(pool, tenant_id)])


@router.get("/channels/{name}", response_model=ChannelOut,
            summary="One channel (its secret is never returned)")
async def get_channel(
    tenant_id: TenantIdPath, name: ChannelName, caller: CallerDep, pool: PoolDep
) -> ChannelOut:
    authorize(caller, Permission.read, tenant_id)
    row = await channels_store.get_channel(pool, tenant_id, name)
    if row is None:
        raise Problem(404, "Not found", f"no channel {name} for tenant {tenant_id}")
    return _view(row)


@router.delete("/channels/{name}", status_code=204, summary="Remove a channel")
async def delete_channel(
    tenant_id: TenantIdPath, name: ChannelName, caller: CallerDep, pool: PoolDep, settings: SettingsDep
) -> Response:
    authorize(caller, Permission.manage, tenant_id)
    if not await channels_store.delete_channel(pool, tenant_id, name, sealing_keys=settings.sealing_key_list,
                                               actor=AuditActor.of(caller)):
        raise Problem(404, "Not found", f"no channel {name} for tenant {tenant_id}")
    return Response(status_code=204)
