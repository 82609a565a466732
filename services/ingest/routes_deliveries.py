"""``POST /deliveries/{deliveryId}/redeliver`` of the write API: a dead-lettered delivery, once more."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from services.ingest import channels_store
from services.ingest.deps import CallerDep, PoolDep
from services.notifier.store import delivery_view
from shared.auth import Permission, authorize
from shared.http import Problem, TenantIdPath

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["deliveries"])



@router.post(
    "/deliveries/{delivery_id}/redeliver",
    status_code=202,
    summary="Queue a dead delivery again, with a fresh set of attempts and the same Idempotency-Key",
    responses={404: {"description": "No such delivery"}, 409: {"description": "The delivery is not dead"}},
)
async def redeliver(
    tenant_id: TenantIdPath, delivery_id: Annotated[uuid.UUID, Path()], caller: CallerDep, pool: PoolDep
) -> Any:
    authorize(caller, Permission.manage, tenant_id)
    row, requeued = await channels_store.redeliver(pool, tenant_id, delivery_id)
    if row is None:
        raise Problem(404, "Not found", f"no delivery {delivery_id} for tenant {tenant_id}")
    if not requeued:
        raise Problem(
            409,
            "Not dead",
            f"delivery {delivery_id} is {row['state']}; only a dead delivery can be redelivered",
            state=row["state"],
        )
    return JSONResponse(delivery_view(row), status_code=202)
