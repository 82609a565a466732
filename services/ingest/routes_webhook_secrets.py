"""``GET | POST | DELETE /v1/tenants/{tenantId}/webhook-secrets``: the secrets a tenant's feed signs its
alerts with (#18; what ``python -m services.ingest.webhook_auth rotate | revoke`` does, over HTTP).

- GET lists the active secrets (the two newest unrevoked: a rotation keeps the previous one) by id and
  creation time, and says whether the tenant has none of its own, so its *default secret* signs.
  Never a secret: a secret is shown once, in the answer that makes it; the default secret never over
  HTTP (it is derived from the deployment's ``WEBHOOK_SECRET``: whoever may know it runs
  ``webhook_auth show-default`` where that is set).
- POST rotates: a new secret, in this answer only (``Cache-Control: no-store``), and the ids it retired.
- DELETE revokes all but the newest ``keepNewest`` (1 ends a rotation; 0 goes back to the default).

Reading takes the read permission (ids and times reveal nothing); changing takes the permission that
manages the tenant (as channels do). Each change is audited under the key that made it (its user, its
key id) in the change's transaction (``webhook_secrets_store``). Every write API process caches a
tenant's secrets ``WEBHOOK_SECRET_CACHE_SECONDS``: a change signs (or stops signing) within that.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import Field

from services.ingest import webhook_secrets_store
from services.ingest.deps import PoolDep, TenantManagerDep, TenantReaderDep
from services.ingest.webhook_auth import new_secret
from shared.auth import AuditActor
from shared.http import TenantIdPath
from shared.wire import UtcDateTime, WireModel

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["webhook secrets"])

KeepNewest = Annotated[int, Query(
    alias="keepNewest", ge=0, le=webhook_secrets_store.ACTIVE_SECRETS - 1,
    description="Secrets left active, newest first: 1 (ends a rotation) or 0 (every one revoked: the "
    "tenant's default secret signs again).",
)]


class WebhookSecretOut(WireModel):
    secret_id: int = Field(description="The secret's id: how the audit log names it.")
    created_date_time: UtcDateTime


class WebhookSecretList(WireModel):
    tenant_id: str
    uses_default_secret: bool = Field(
        description="true: the tenant has no secret of its own, so its default secret (derived from the "
        "deployment's WEBHOOK_SECRET, never shown here) signs.")
    value: list[WebhookSecretOut] = Field(description="The active secrets, newest first (two during a rotation); "
                                          "never a secret itself.")


class WebhookSecretCreated(WebhookSecretOut):
    secret: str = Field(description="The new secret (`whsec_<base64>`), for the tenant's sender. Shown this once.")
    revoked_secret_ids: list[int] = Field(
        description="The secrets this rotation retired: all but the new one and the one before it stay active.")


class WebhookSecretsRevoked(WireModel):
    revoked_secret_ids: list[int] = Field(description="The secrets revoked now; none: nothing changed.")


@router.get(
    "/webhook-secrets",
    response_model=WebhookSecretList,
    summary="The tenant's active inbound webhook secrets, by id (never a secret)",
)
async def list_secrets(tenant_id: TenantIdPath, _: TenantReaderDep, pool: PoolDep) -> WebhookSecretList:
    active = await webhook_secrets_store.list_active(pool, tenant_id)
    return WebhookSecretList(
        tenant_id=tenant_id, uses_default_secret=not active,
        value=[WebhookSecretOut(secret_id=s.secret_id, created_date_time=s.created_at) for s in active])


@router.post(
    "/webhook-secrets",
    status_code=201,
    response_model=WebhookSecretCreated,
    summary="Rotate: a new inbound webhook secret, shown in this answer only; the previous one stays active",
)
async def rotate_secret(
    tenant_id: TenantIdPath, caller: TenantManagerDep, pool: PoolDep, response: Response
) -> WebhookSecretCreated:
    secret = new_secret()
    rotation = await webhook_secrets_store.rotate(pool, tenant_id, secret, actor=AuditActor.of(caller))
    response.headers["Cache-Control"] = "no-store"  # a secret: kept by no cache on the way
    return WebhookSecretCreated(secret_id=rotation.secret_id, created_date_time=rotation.created_at, secret=secret,
                                revoked_secret_ids=rotation.revoked_secret_ids)


@router.delete(
    "/webhook-secrets",
    response_model=WebhookSecretsRevoked,
    summary="Revoke the tenant's inbound webhook secrets but the newest keepNewest (0: back to its default)",
)
async def revoke_secrets(
    tenant_id: TenantIdPath, caller: TenantManagerDep, pool: PoolDep, keep_newest: KeepNewest = 1
) -> WebhookSecretsRevoked:
    revoked = await webhook_secrets_store.revoke_secrets(pool, tenant_id, keep_newest=keep_newest,
                                                         actor=AuditActor.of(caller))
    return WebhookSecretsRevoked(revoked_secret_ids=revoked)
