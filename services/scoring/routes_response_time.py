"""``GET /response-time`` of the read API: the figures of SPEC §3, computed at read time.

Computed from PostgreSQL on each request (two index range scans, O(responses in the window + open
alerts)), so it is current the moment the response-time service commits an event.
"""

from __future__ import annotations

from fastapi import APIRouter

from services.response_time import store
from services.response_time.domain import ResponseTimeFigures
from services.scoring.deps import PoolDep, ReaderDep
from shared.wire import utcnow

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["response time"])


@router.get("/response-time", response_model=ResponseTimeFigures,
            summary="The rolling 30-day average response time and the open alerts beside it")
async def get_response_time(tenant_id: str, caller: ReaderDep, pool: PoolDep) -> ResponseTimeFigures:
    return await store.current_figures(pool, tenant_id, utcnow())
