"""``GET /v1/tenants/{tenantId}/audit`` and ``GET /v1/audit``: the audit log of configuration changes.

Each entry is one change (security contact set or cleared, a channel created, replaced or deleted,
an API key created or revoked, webhook secrets added or revoked), written in the transaction that
made it: who (``userId``), with which key (``keyId``: its id, ``operator`` for ``OPERATOR_API_KEY``,
``cli`` for the command-line tools), what (``action``, ``target``, ``changes``: never a secret) and
when. A tenant's log is readable by any key that may read the tenant; the deployment's log (keys of
every tenant) by operators only.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import Field

from services.ingest import audit_store
from services.ingest.deps import CallerDep, PoolDep
from services.ingest.paging import NextLinkPage
from shared.auth import AuditAction, Permission, authorize, authorize_operator
from shared.http import TenantIdPath
from shared.wire import UtcDateTime, WireModel

router = APIRouter(tags=["audit"])

MAX_PAGE = 1000


class AuditEntry(WireModel):
    id: str = Field(description="The entry's id; larger is later.")
    tenant_id: str | None = Field(description="The tenant changed; null: the deployment (a key of every tenant).")
    occurred_date_time: UtcDateTime = Field(description="When the change was made.")
    user_id: str = Field(description="Who made it: the user of the key, or the CLI's `--actor`.")
    key_id: str = Field(description="With which key: its `keyId`, `operator` (OPERATOR_API_KEY) or `cli`.")
    action: AuditAction = Field(description="What was done.")
    target: str = Field(description="What it was done to: `security-contact`, `channels/{name}`, `keys/{keyId}`, "
                        "`webhook-secrets/{secretId}`, `webhook-secrets`, `connections/graph`, `escalation-chain` "
                        "or `tenants/{tenantId}`.")
    changes: dict[str, Any] = Field(description="A summary of the change (new values; never a secret).")


class AuditPage(NextLinkPage):
    value: list[AuditEntry] = Field(description="Entries, newest first.")


Top = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")]
SkipToken = Annotated[
    str | None, Query(max_length=512, description="Where the page starts; from `@odata.nextLink`, opaque.")
]


async def _page(pool, request: Request, tenant_id: str | None, top: int, skiptoken: str | None) -> AuditPage:
    before = audit_store.position_of(skiptoken) if skiptoken else None
    rows = await audit_store.newest_entries(pool, tenant_id, limit=top + 1, before=before)
    entries = [
        AuditEntry(id=str(r["entry_id"]), tenant_id=r["tenant_id"], occurred_date_time=r["occurred_at"],
                   user_id=r["user_id"], key_id=r["key_id"], action=AuditAction(r["action"]), target=r["target"],
                   changes=json.loads(r["changes"]))
        for r in rows[:top]
    ]
    next_link = None
    if len(rows) > top:
        # By position: entries written meanwhile do not shift the next page. Relative: never built from
        # the client's Host header.
        following = request.url.include_query_params(
            top=top, skiptoken=audit_store.position_token(rows[top - 1]["entry_id"]))
        next_link = f"{following.path}?{following.query}"
    return AuditPage(value=entries, next_link=next_link)


@router.get(
    "/v1/tenants/{tenant_id}/audit",
    response_model=AuditPage,
    summary="The tenant's configuration changes, newest first, in pages: who, with which key, what, when",
)
async def tenant_audit(
    tenant_id: TenantIdPath, caller: CallerDep, pool: PoolDep, request: Request, top: Top = 100,
    skiptoken: SkipToken = None,
) -> AuditPage:
    authorize(caller, Permission.read, tenant_id)
    return await _page(pool, request, tenant_id, top, skiptoken)


@router.get(
    "/v1/audit",
    response_model=AuditPage,
    summary="The deployment's own changes (API keys of every tenant), newest first, in pages (operators)",
    responses={403: {"description": "The key is not an operator's (adminAgent of every tenant)"}},
)
async def deployment_audit(
    caller: CallerDep, pool: PoolDep, request: Request, top: Top = 100, skiptoken: SkipToken = None
) -> AuditPage:
    authorize_operator(caller, "read the deployment's audit log")
    return await _page(pool, request, None, top, skiptoken)
