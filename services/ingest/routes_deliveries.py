"""``POST /deliveries/{deliveryId}/redeliver`` of the write API: a dead-lettered delivery, once more.

The notifier owns the delivery log; the write API answers from the deliveries it heard of
(``deliveries_store``): unknown 404, not dead 409, dead 202 with the delivery as last told, once the
``redelivery-requested`` command is committed to the outbox. The notifier then queues the delivery
again with fresh attempts (and tells of it: ``pending``), unless it is no longer dead.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse

from services.ingest import deliveries_store
from services.ingest.deps import CallerDep, PoolDep, wake_relay_after_write
from shared.auth import Permission, authorize
from shared.events import Actor, ActorType
from shared.http import Problem, TenantIdPath

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["deliveries"],
                   dependencies=[Depends(wake_relay_after_write)])


@router.post(
    "/deliveries/{delivery_id}/redeliver",
    status_code=202,
    summary="Ask for a dead delivery to be queued again, with a fresh set of attempts and the same Idempotency-Key",
    responses={404: {"description": "No such delivery"}, 409: {"description": "The delivery is not dead"}},
)
async def redeliver(
    tenant_id: TenantIdPath, delivery_id: Annotated[uuid.UUID, Path()], caller: CallerDep, pool: PoolDep
) -> Any:
    authorize(caller, Permission.manage, tenant_id)
    answer = await deliveries_store.request_redelivery(
        pool, tenant_id, delivery_id, Actor(type=ActorType.user, id=caller.user_id))
    if answer.state is None:
        raise Problem(404, "Not found", f"no delivery {delivery_id} for tenant {tenant_id}")
    if not answer.requested:
        raise Problem(
            409,
            "Not dead",
            f"delivery {delivery_id} is {answer.state}; only a dead delivery can be redelivered",
            state=answer.state,
        )
    return JSONResponse(answer.view, status_code=202)
