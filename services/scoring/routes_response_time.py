"""``GET /response-time`` of the read API: the figures of SPEC §3, computed at read time.

Computed on each request from the read model of ``alert-response-times`` (two index range scans,
O(responses in the window + open alerts)) with the response-time service's own pure functions
(``shared.response_time``), so it is current the moment an alert's event is applied.
"""

from __future__ import annotations

from fastapi import APIRouter

from services.scoring import read_model
from services.scoring.deps import PoolDep, ReaderDep
from shared.response_time import ResponseTimeFigures
from shared.wire import utcnow

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["response time"])


@router.get("/response-time", response_model=ResponseTimeFigures,
            summary="The rolling 30-day average response time and the open alerts beside it")
async def get_response_time(tenant_id: str, caller: ReaderDep, pool: PoolDep) -> ResponseTimeFigures:
    return await read_model.current_figures(pool, tenant_id, utcnow())
