"""``GET /deliveries`` and ``GET /deliveries/{deliveryId}`` of the read API: the notifier's delivery log, as
its read model of ``deliveries`` holds it (each delivery as the notifier last showed it)."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from services.scoring import read_model
from services.scoring.deps import PoolDep, ReaderDep
from shared.events import DeliveryView
from shared.http import Problem

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["deliveries"])


class DeliveryState(StrEnum):
    pending = "pending"
    delivered = "delivered"
    dead = "dead"
    skipped = "skipped"
    cancelled = "cancelled"


def _body(view: str) -> dict[str, Any]:
    # Through the model, not the stored JSON as it is: its fields in the contract's order, every one
    # present (null when unset), whatever order jsonb keeps the keys in.
    return DeliveryView.model_validate_json(view).model_dump(mode="json")


@router.get("/deliveries", summary="The tenant's notifications, newest first (state=dead: the dead letters)")
async def list_deliveries(
    tenant_id: str,
    caller: ReaderDep,
    pool: PoolDep,
    state: Annotated[
        DeliveryState | None, Query(description="pending | delivered | dead | skipped | cancelled")
    ] = None,
    alert_id: Annotated[str | None, Query(alias="alertId", max_length=256)] = None,
    top: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    views = await read_model.list_deliveries(
        pool, tenant_id, state=state.value if state else None, alert_id=alert_id, top=top
    )
    return {"value": [_body(view) for view in views]}


@router.get("/deliveries/{delivery_id}", summary="One notification and its last attempt")
async def get_delivery(
    tenant_id: str, delivery_id: Annotated[uuid.UUID, Path()], caller: ReaderDep, pool: PoolDep
) -> dict[str, Any]:
    view = await read_model.get_delivery(pool, tenant_id, delivery_id)
    if view is None:
        raise Problem(404, "Not found", f"no delivery {delivery_id} for tenant {tenant_id}")
    return _body(view)
