"""``GET /alerts`` and ``GET /alerts/{alertId}`` of the read API, from the response-time tables."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.scoring.deps import PoolDep, ReaderDep
from shared.http import Problem

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["alerts"])


def _view(row) -> dict[str, Any]:
    import json

    alert = json.loads(row["alert"])
    return {**alert, "status": row["status"], "clockStartedDateTime": row["clock_started_at"].isoformat()}


@router.get("/alerts", summary="The tenant's alerts, newest first")
async def list_alerts(tenant_id: str, caller: ReaderDep, pool: PoolDep,
                      status: Annotated[str | None, Query(description="active | investigating | resolved")] = None,
                      top: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    rows = await pool.fetch(
        """SELECT alert, status, clock_started_at FROM alerts
           WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2)
           ORDER BY clock_started_at DESC, alert_id LIMIT $3""",
        tenant_id, status, top)
    return {"value": [_view(r) for r in rows]}


@router.get("/alerts/{alert_id}", summary="One alert")
async def get_alert(tenant_id: str, alert_id: str, caller: ReaderDep, pool: PoolDep) -> dict[str, Any]:
    row = await pool.fetchrow(
        "SELECT alert, status, clock_started_at FROM alerts WHERE tenant_id = $1 AND alert_id = $2", tenant_id, alert_id)
    if row is None:
        raise Problem(404, "Not found", f"no alert {alert_id} for tenant {tenant_id}")
    return _view(row)
