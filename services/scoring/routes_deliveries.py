"""``GET /deliveries`` and ``GET /deliveries/{deliveryId}`` of the read API: the notifier's delivery log."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from services.notifier.store import DELIVERY_COLUMNS, delivery_view
from services.scoring.deps import PoolDep, ReaderDep
from shared.http import Problem

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["deliveries"])


class DeliveryState(StrEnum):
    pending = "pending"
    delivered = "delivered"
    dead = "dead"
    skipped = "skipped"
    cancelled = "cancelled"


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
    rows = await pool.fetch(
        f"""SELECT {DELIVERY_COLUMNS} FROM notification_deliveries
            WHERE tenant_id = $1 AND ($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR alert_id = $3)
            ORDER BY created_at DESC, delivery_id LIMIT $4""",
        tenant_id,
        state.value if state else None,
        alert_id,
        top,
    )
    return {"value": [delivery_view(r) for r in rows]}


@router.get("/deliveries/{delivery_id}", summary="One notification and its last attempt")
async def get_delivery(
    tenant_id: str, delivery_id: Annotated[uuid.UUID, Path()], caller: ReaderDep, pool: PoolDep
) -> dict[str, Any]:
    row = await pool.fetchrow(
        f"SELECT {DELIVERY_COLUMNS} FROM notification_deliveries WHERE tenant_id = $1 AND delivery_id = $2",
        tenant_id,
        delivery_id,
    )
    if row is None:
        raise Problem(404, "Not found", f"no delivery {delivery_id} for tenant {tenant_id}")
    return delivery_view(row)
