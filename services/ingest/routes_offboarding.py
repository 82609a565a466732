"""``POST /v1/tenants/{tenantId}/offboarding`` of the write API (#18): a tenant's data deleted everywhere.

Operators only (an operator key, adminAgent of every tenant). The body says ``dryRun`` (required, so
nothing is deleted by omission); a real run also names the tenant again (``confirmTenantId``), so a
request made for another tenant, or sent by a tool that fills in a body, deletes nothing.

- A dry run (200) counts what would go: the write API's rows of the tenant per table, and the keys it
  would tombstone per compacted topic. Nothing changes.
- A real run (202) deletes them in one transaction with the tombstones, ``tenant-offboarded`` on
  ``tenants`` and an audit entry in the deployment's log (``offboarding_store``). The other services
  delete what they hold once they read the event: accepted, not yet done everywhere. Running it again
  is safe (it deletes whatever a write in flight at the time left, and tells the others again).

From then on every write under the tenant's path is refused, 410 (:func:`refuse_writes_of_offboarded`,
on every router but this one), and its reads find nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from services.ingest import offboarding_store, store
from services.ingest.deps import CallerDep, CatalogueDep, KeysDep, PoolDep, wake_relay_after_write
from shared.auth import AuditActor, Permission, Principal, authorize, authorize_operator
from shared.catalogue import Catalogue, RequirementType
from shared.http import Problem, TenantIdPath
from shared.http_openapi import TENANT_PARAMETER
from shared.wire import TENANT_ID_MAX_LENGTH, OptionalUtcDateTime, WireModel, format_utc, utcnow

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["offboarding"],
                   dependencies=[Depends(wake_relay_after_write)])

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Published by the response-time service, which tombstones it itself; every other status is the write API's.
NOT_PUBLISHED_HERE = frozenset({RequirementType.security_alerts_promptly_resolved})


class OffboardingIn(WireModel):
    dry_run: bool = Field(strict=True, description="true: only count what would be deleted; false: delete it.")
    confirm_tenant_id: str | None = Field(
        None, max_length=TENANT_ID_MAX_LENGTH,
        description="The tenant's id again: required when `dryRun` is false, so nothing is deleted by mistake.")


class OffboardingOut(WireModel):
    tenant_id: str
    dry_run: bool
    offboarded_date_time: OptionalUtcDateTime = Field(
        description="When the tenant was offboarded (its first time); null: it is not (a dry run).")
    rows: dict[str, int] = Field(
        description="Per table (`schema.table`), the tenant's rows deleted (a dry run: that would be).")
    tombstones: dict[str, int] = Field(
        description="Per compacted topic, the keys of the tenant tombstoned (a dry run: that would be); "
        "topics without any are left out.")


def published_requirements(catalogue: Catalogue) -> list[str]:
    return [r.requirement_type for r in catalogue.requirements if r.requirement_type not in NOT_PUBLISHED_HERE]


def _answer(tenant_id: str, dry_run: bool, found: offboarding_store.Inventory) -> JSONResponse:
    body = OffboardingOut(
        tenant_id=tenant_id, dry_run=dry_run, offboarded_date_time=found.offboarded_at, rows=found.rows,
        tombstones={topic.value: len(keys) for topic, keys in sorted(found.tombstones.items())})
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if dry_run else 202)


async def _operator(tenant_id: TenantIdPath, caller: CallerDep) -> Principal:
    # As a dependency: refused before the body is judged. The permission first, so a key of every tenant
    # without it is told which it lacks.
    return authorize_operator(authorize(caller, Permission.manage, tenant_id), "offboard a tenant")


OperatorDep = Annotated[Principal, Depends(_operator)]


def _unconfirmed(tenant_id: str) -> Problem:
    message = f"a real offboarding names its tenant again: must be {tenant_id!r}"
    return Problem(422, "Invalid request", f"confirmTenantId: {message}",
                   errors=[{"field": "confirmTenantId", "message": message}])


@router.post(
    "/offboarding",
    response_model=OffboardingOut,
    summary="Delete everything of the tenant, everywhere (operators): a dry run counts it first",
    responses={
        200: {"description": "A dry run: what would be deleted; nothing changed"},
        202: {"description": "Deleted here, tombstones and tenant-offboarded committed; the other services "
                             "delete theirs on the event", "model": OffboardingOut},
        403: {"description": "The key is not an operator's (adminAgent of every tenant)"},
    },
)
async def offboard_tenant(
    tenant_id: TenantIdPath, body: OffboardingIn, caller: OperatorDep, pool: PoolDep, keys: KeysDep,
    catalogue: CatalogueDep,
) -> JSONResponse:
    requirements = published_requirements(catalogue)
    if body.dry_run:
        return _answer(tenant_id, True, await offboarding_store.inventory(pool, tenant_id, requirements))
    if body.confirm_tenant_id != tenant_id:
        raise _unconfirmed(tenant_id)
    done = await offboarding_store.offboard(pool, tenant_id, requirements, actor=AuditActor.of(caller), now=utcnow())
    for digest in done.key_digests:
        keys.forget(digest)  # at once here; other processes within API_KEY_CACHE_SECONDS (writes are 410 anyway)
    return _answer(tenant_id, False, done)


async def refuse_writes_of_offboarded(request: Request) -> None:
    """A dependency of every router with tenant routes but this one: 410 for a write under an offboarded
    tenant's path (before its body is judged). One indexed look-up per write (those of concurrent writes
    in one statement); reads pass."""
    tenant_id = request.path_params.get(TENANT_PARAMETER)
    if request.method not in WRITE_METHODS or not isinstance(tenant_id, str):
        return
    offboarded_at = await store.offboarded_at(request.app.state.pool, tenant_id)
    if offboarded_at is not None:
        raise Problem(410, "Tenant offboarded",
                      f"tenant {tenant_id} was offboarded at {format_utc(offboarded_at)}; it takes no more writes")


GONE = {"description": "The tenant was offboarded: it takes no more writes",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def document_gone(schema: dict[str, Any]) -> None:
    """The 410 in the OpenAPI document of every write under a tenant's path (but the offboarding's)."""
    for path, item in schema.get("paths", {}).items():
        if not path.startswith(f"/v1/tenants/{{{TENANT_PARAMETER}}}/") or path.endswith("/offboarding"):
            continue
        for method, operation in item.items():
            if method.upper() in WRITE_METHODS:
                operation.setdefault("responses", {}).setdefault("410", GONE)
